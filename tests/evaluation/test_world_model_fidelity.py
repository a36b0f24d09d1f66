"""Smoke test: experiments/world_model_fidelity.py --quick, two tiny models (1 and 2 context
frames), a probe trained on the fly, on the synthetic dataset with per-frame state."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_world_model_fidelity_quick(tiny, tiny_world_two_context, state_dataset, tmp_path):
    out, doc = tmp_path / "fidelity", tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\nhand-written text\n")
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "FREEACTION_THREADS": "1"}
    cmd = [
        sys.executable, str(REPO / "experiments" / "world_model_fidelity.py"), "--quick",
        "--models", f"one={tiny.world_dir}", f"two={tiny_world_two_context}",
        "--data", str(state_dataset), "--fresh", str(state_dataset),
        "--probe", str(tmp_path / "probe"), "--steps", "1", "5", "10", "40",
        "--sampling", "num_steps=1", "two:num_steps=2", "--out", str(out),
        "--update-doc", str(doc),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    metrics = json.loads((out / "metrics.json").read_text())
    per_clip = json.loads((out / "per_clip.json").read_text())
    assert metrics["models"]["one"]["num_context"] == 1
    assert metrics["models"]["two"]["num_context"] == 2
    assert metrics["models"]["one"]["sampling"]["num_steps"] == 1
    assert metrics["models"]["two"]["sampling"]["num_steps"] == 2
    # the rest of the sampling settings come from the env preset
    assert metrics["models"]["one"]["sampling"]["truncation"]["mode"] == "action_scaled"
    assert set(metrics["datasets"]) == {"test", "fresh"}
    test = metrics["datasets"]["test"]
    assert test["horizon"] == 29 and test["steps"] == [1, 5, 10]  # 31 frames - 2 context
    assert len(test["episodes"]) == 3
    for name in ("one", "two"):
        rep = test["models"][name]["replay"]
        for metric in ("hand_cm", "gripper", "sharpness_moving", "blockiness", "ms_ssim"):
            assert math.isfinite(rep[metric]["10"]["mean"]), (name, metric)
        assert len(per_clip["test"][name]["per_episode"]["ssim"]["5"]) == 3
        short = test["models"][name]["short"]
        assert math.isfinite(short["action sensitivity"]["mean"])
        assert test["models"][name]["ms_per_frame"] > 0
    # the same real frames are scored for both models
    one, two = (per_clip["test"][n]["per_episode"] for n in ("one", "two"))
    assert one["floor_gripper"]["10"] == two["floor_gripper"]["10"]
    assert metrics["probe"]["floor"]["hand_cm"]["mean"] > 0
    assert (tmp_path / "probe" / "model.safetensors").is_file()

    results = (out / "results.md").read_text()
    assert "| one | 10 |" in results and "| two | 10 |" in results
    assert "*real frames (probe floor)*" in results and "action sensitivity" in results
    assert "gripper / floor @10" in results and "rollout SSIM - copy (1..29)" in results
    for label in ("test", "fresh"):
        assert (out / f"strip_{label}.png").stat().st_size > 0
    text = doc.read_text()
    assert "hand-written text" in text and "<!-- world-model-fidelity:begin -->" in text
    assert "](fidelity/strip_test.png)" in text  # relative to the document


def test_zero_clip_counts_are_refused(load_experiment):
    script = load_experiment("world_model_fidelity")
    for flag in ("--short-clips", "--episodes", "--strip-episodes"):
        with pytest.raises(SystemExit, match=f"{flag} must be >= 1, got 0"):
            script.main([flag, "0"])
