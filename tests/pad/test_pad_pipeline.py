"""PAD end to end on tiny budgets: demos -> DemoBank -> train (+resume) -> real-sim eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from freeaction_gym.data.metaworld_gen import MetaWorldDataConfig, generate_dataset
from freeaction_gym.pad.data import DemoBank, downsample, future_offsets
from freeaction_gym.pad.io import load_pad
from freeaction_gym.pad.policy import PADPolicy
from freeaction_gym.pad.train import PADTrainArgs, train_pad

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demos")
    cfg = MetaWorldDataConfig.demonstrations(
        tasks=["reach-v3"], train_episodes=2, val_episodes=1, test_episodes=1, frames=30,
        resolution=16,
    )  # fmt: skip
    generate_dataset(root, cfg, num_workers=1, progress=False, log=lambda s: None)
    return root


def test_downsample_is_area_mean():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    y = downsample(x, 2)
    np.testing.assert_allclose(y[1, 0, 1], x[1, :2, 2:].reshape(-1, 3).mean(0))
    d = np.random.default_rng(0).random((3, 4, 4))
    np.testing.assert_allclose(downsample(d, 2)[2, 1, 0], d[2, 2:, :2].mean(), rtol=1e-6)
    assert future_offsets(4, 1) == [4] and future_offsets(4, 2) == [2, 4]


def test_demo_bank_samples_align_frames_and_actions(demos):
    bank = DemoBank(demos, "train", image_size=8, horizon=3, future_frames=1)
    assert bank.stats.tasks == ["reach-v3"] and len(bank) == sum(bank.lengths)
    e_len = bank.lengths[0]
    item = bank.item(e_len - 1)  # last step of episode 0: future clamped, actions padded
    assert item["obs_rgb"].shape == (3, 8, 8) and item["image"].shape == (3, 8, 8)
    assert torch.equal(item["image"], bank.rgb[e_len])  # the episode's last frame
    assert torch.equal(item["action"][1], item["action"][0])  # padding repeats the last
    mid = bank.item(0)
    assert torch.equal(mid["image"], bank.rgb[3]) and torch.equal(mid["obs_rgb"], bank.rgb[0])
    assert float(bank.rgb.min()) >= -1 and float(bank.rgb.max()) <= 1
    assert abs(float(bank.depth.mean())) < 0.2  # normalised with its own statistics


def test_train_resume_and_closed_loop_eval(demos, tmp_path):
    args = PADTrainArgs(data=str(demos), out=str(tmp_path / "run"), image_size=8, patch_size=4,
                        hidden_size=32, depth=2, num_heads=2, horizon=3, steps=4, batch_size=4,
                        checkpoint_every=2, log_every=2, threads=1)  # fmt: skip
    policy_dir = train_pad(args)
    model, stats, meta = load_pad(policy_dir)
    assert meta["step"] == 4 and model.config.horizon == 3
    args.steps = 6  # resume continues from step 4
    train_pad(args)
    assert load_pad(policy_dir)[2]["step"] == 6
    pol = PADPolicy(model, stats, ("image", "depth"), 1.0, num_steps=2)
    rgb = np.zeros((2, 16, 16, 3), np.uint8)
    depth = np.ones((2, 16, 16), np.float32)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    a1, out = pol.act(rgb, depth, ["reach-v3"] * 2, gens)
    a2, _ = pol.act(
        rgb, depth, ["reach-v3"] * 2, [torch.Generator().manual_seed(i) for i in range(2)]
    )
    assert a1.shape == (2, 3, 4) and np.array_equal(a1, a2) and np.abs(a1).max() <= 1
    with pytest.raises(ValueError, match="trained on"):
        pol.act(rgb, depth, ["push-v3"] * 2)

    env = os.environ | {
        "FREEACTION_THREADS": "1",
        "MUJOCO_GL": "osmesa",
        "PYOPENGL_PLATFORM": "osmesa",
    }
    out_dir = tmp_path / "eval"
    doc = tmp_path / "RESULTS.md"
    script = str(REPO / "experiments" / "pad_truncation.py")
    cmd = [sys.executable, script, "--quick", "--policy", str(policy_dir), "--out", str(out_dir),
           "--update-doc", str(doc), "--episodes", "2", "--max-actions", "4"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out_dir / "metrics.json").read_text())
    rows = set(m["summary"])
    assert {"baseline", "truncate image", "truncate depth+image", "truncate action+depth+image",
            "scripted expert", "random"} == rows  # fmt: skip
    assert all(len(v["reach-v3"]) == 2 for v in m["episodes"].values())
    assert "<!-- pad:begin -->" in doc.read_text()
