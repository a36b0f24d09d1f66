"""The whole loop, ``configs/dyna/quick.yaml`` on tiny artefacts (the session's 32x32 world
model and a 6-episode base dataset): 2 iterations of real collection, world-model
fine-tune, reward refit, PPO in imagination and real + imagined evaluation, through the
``freeaction dyna`` command; then a rerun that has nothing left to do."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

pytest.importorskip("metaworld")

from freeaction_gym.cli import main as cli  # noqa: E402
from freeaction_gym.data.episodes import load_episode  # noqa: E402
from freeaction_gym.dyna.dataset import LoopDataset  # noqa: E402
from freeaction_gym.envs.bank import ResetBank  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY_PPO = (
    "agent.hp={ppo: {n_steps: 16, batch_size: 16, n_epochs: 1, policy_kwargs: "
    "{features_extractor_kwargs: {features_dim: 32, channels: [8, 8]}, "
    "net_arch: {pi: [32], vf: [32]}}}}"
)


def weights(model_dir: Path) -> dict[str, np.ndarray]:
    return load_file(str(model_dir / "model.safetensors"))


def test_quick_dyna_loop_end_to_end(tiny, base_root, tmp_path, fingerprint):
    base_before = fingerprint(base_root)
    out = tmp_path / "run"
    argv = [
        "dyna", "--config", str(REPO / "configs/dyna/quick.yaml"),
        f"output={out}", f"data.base={base_root}", f"world_model.init={tiny.world_dir}",
        "progress=false", "collect.episodes=2", "collect.steps=6", "collect.batch_size=2",
        "world_model.steps=3", "reward.steps=10", "reward.eval_every=5",
        "reward.batch_size=16", "agent.timesteps=32", "agent.num_envs=2", TINY_PPO,
        "eval.episodes=2", "eval.steps=6", "eval.batch_size=2",
    ]  # fmt: skip
    assert cli(argv) == 0

    # the dataset grew by the collected episodes, in the format, and the base is untouched
    ds = LoopDataset(out / "data")
    assert ds.counts() == {"base_train": 3, "collected": 4, "val": 1, "test": 2}
    for path in ds.collected():
        ep = load_episode(path, load_depth=False)
        assert ep.num_actions == 6 and ep.state.shape == (7, 7) and ep.keypoints.shape[0] == 7
    assert fingerprint(base_root) == base_before

    # the world model changed, and iteration 1 continued from iteration 0's weights
    state = json.loads((out / "state.json").read_text())["iterations"]
    start = weights(tiny.world_dir)
    first, second = (weights(out / f"iter_00{i}/world_model/model") for i in (0, 1))
    assert start.keys() == first.keys() == second.keys()
    for a, b in ((start, first), (first, second)):
        assert any(not np.array_equal(a[k], b[k]) for k in a)
    assert state[1]["world_model"]["init"] == state[0]["world_model"]["model"]
    assert (out / "iter_001/reward/model.safetensors").is_file()

    # iteration 1 collected with iteration 0's agent, which iteration 1 continued training
    assert state[0]["collect"]["policy"] == "generator mix"
    assert state[1]["collect"]["policy"] == "ppo iter_000 + noise 0.2"
    # the agent started from every visited reset state: 3 base + 2 collected per iteration
    assert [s["agent"]["reset_bank_entries"] for s in state] == [5, 7]
    assert "support" in state[1]["agent"]["env_kwargs"]

    # the evaluation ran in both worlds; metrics and plot written
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["real_env_steps"] for r in rows] == [12, 24]
    for r in rows:
        assert r["episodes"] == 2 and 0.0 <= r["real_success"] <= 1.0
        assert math.isfinite(r["real_return"]) and math.isfinite(r["imagined_return"])
        assert r["gap_success"] == pytest.approx(r["imagined_success"] - r["real_success"])
    assert (out / "dyna.png").read_bytes()[:4] == b"\x89PNG"

    # rerunning the command finds every stage finished
    before = (out / "state.json").read_text()
    assert cli(argv) == 0
    assert (out / "state.json").read_text() == before


def test_quick_dyna_loop_with_the_state_reward(tiny, base_root, tmp_path):
    """``reward.mode=state``: no head is fit; the agent trains and is evaluated in an
    imagined env that scores MetaWorld's reach reward on the integrated robot state, started
    from strided bank entries that carry the arm's motion."""
    out = tmp_path / "run"
    argv = [
        "dyna", "--config", str(REPO / "configs/dyna/quick.yaml"),
        f"output={out}", f"data.base={base_root}", f"world_model.init={tiny.world_dir}",
        "progress=false", "iterations=1", "collect.episodes=2", "collect.steps=6",
        "collect.batch_size=2", "world_model.steps=2", "reward.mode=state",
        "agent.timesteps=32", "agent.num_envs=2", "agent.start_stride=2", TINY_PPO,
        "eval.episodes=2", "eval.steps=6", "eval.batch_size=2",
    ]  # fmt: skip
    assert cli(argv) == 0
    state = json.loads((out / "state.json").read_text())["iterations"][0]
    assert state["reward"]["reward_head"] is None
    assert state["reward"]["proprio"] == "bundled:metaworld_vap/proprio"
    assert not (out / "iter_000/reward").exists()
    env = state["agent"]["env_kwargs"]
    assert env["reward"] == "state" and env["state_source"] == "proprio"
    assert "reward_head" not in env
    bank = ResetBank.load(out / "iter_000/agent/reset_bank.npz")
    assert bank.has_motion and any("@" in str(e) for e in bank.episode)  # mid-episode starts
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert 0.0 <= row["imagined_success"] <= 1.0 and row["imagined_return"] >= 0.0
    assert row["imagined_return"] <= 40.0 * 6  # at most MetaWorld's 4 x 10 per step
