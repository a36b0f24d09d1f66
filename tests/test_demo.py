"""``freeaction demo``: its episodes are reset-bank scenes, the agent numbers over seeds carry
t-intervals, and a short run writes every output with grounded success equal to the real."""

from __future__ import annotations

import json

import numpy as np
import pytest

from freeaction_gym.assets import resolve_asset_path
from freeaction_gym.demo import DEMO_EPISODES, bank_indices
from freeaction_gym.demo_agent import interval
from freeaction_gym.envs.bank import ResetBank


def test_demo_episodes_are_bank_scenes():
    bank = ResetBank.load(resolve_asset_path("bundled:metaworld_default/reset_bank.npz"))
    with np.load(resolve_asset_path(DEMO_EPISODES)) as demo:
        rgb, tasks = demo["rgb"], demo["task"]
    idx = bank_indices(rgb[:, 0], bank)
    assert idx == [0, 1, 20, 21, 40, 41]
    assert [str(bank.task[j]) for j in idx] == [str(t) for t in tasks]
    with pytest.raises(ValueError, match="demo episode 0's first frame is in no reset-bank"):
        bank_indices(255 - rgb[:1, 0], bank)


def test_interval_is_the_t_interval_of_the_mean():
    r = interval([0.2, 0.4, 0.9])
    mean, std = 0.5, float(np.std([0.2, 0.4, 0.9], ddof=1))
    half = 4.302652729911275 * std / np.sqrt(3)  # t(0.975, 2 dof)
    assert r["mean"] == pytest.approx(mean) and r["std"] == pytest.approx(std)
    assert (r["low"], r["high"]) == pytest.approx((mean - half, mean + half))
    clipped = interval([0.0, 0.0, 0.3], bounds=(0.0, 1.0))
    assert clipped["low"] == 0.0 and clipped["high"] < 1.0
    one = interval([0.7])
    assert one["low"] == one["high"] == one["mean"] == 0.7 and one["n"] == 1


def test_short_demo_writes_its_outputs(tmp_path):
    pytest.importorskip("metaworld")
    from freeaction_gym.demo import run_demo

    s = run_demo(tmp_path / "demo", steps=3, episodes=2, seed=0)
    for name in ("rollouts.mp4", "psnr_over_time.png", "summary.json", "summary.md"):
        assert (tmp_path / "demo" / name).is_file()
    saved = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(saved["runs"]) == {"grounded", "grounded, plain sampler", "v2 (action adaLN)"}
    assert saved["runs"]["v2 (action adaLN)"]["env"] == "FreeActionMetaWorldV2-v0"
    psnr = s["mean_psnr_db"]
    assert all(15 < v < 60 for v in psnr.values())
    assert psnr["grounded"] > psnr["copy first frame"]  # it moves the arm the right way
