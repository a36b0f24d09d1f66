"""Open-loop replay: context alignment, per-episode noise, scores of a perfect prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.evaluation.figures import frames_at_steps, save_strip
from freeaction_gym.evaluation.metrics import ssim_video
from freeaction_gym.evaluation.paired_stats import mean_ci
from freeaction_gym.evaluation.replay import (
    PSNR_CAP,
    evaluate_replay,
    imagine,
    load_replay_set,
    score_replay,
    short_clip_scores,
    summarize,
    summarize_short,
)
from freeaction_gym.evaluation.rollout import collect_clips
from freeaction_gym.rewards.state_probe import StateProbe, StateProbeConfig
from freeaction_gym.world_model import load_world_model

FAST = {"scheduler": "ddim", "num_steps": 2}


def sampling(world):
    return lambda k: world.default_sampling(k, **FAST)


@pytest.fixture(scope="module")
def probe():
    torch.manual_seed(0)
    return StateProbe(StateProbeConfig(channels=(8, 8), hidden=16)).eval()


def test_replay_set_aligns_models_with_different_context(state_dataset):
    data = load_replay_set(state_dataset, "test", num_context=2, horizon=10, num_clips=2)
    assert data.clips.frames.shape[1] == 12 and data.states.shape[:2] == (2, 12)
    assert data.horizon == 10
    one = data.for_context(1)
    assert one.clips.actions.shape[1] == 10 and one.states.shape[1] == 11
    for k in (0, 1, 10):  # step k is the same real frame (and state) for n = 1 and n = 2
        np.testing.assert_array_equal(
            frames_at_steps(one.clips.frames, 1, [k]), frames_at_steps(data.clips.frames, 2, [k])
        )
        np.testing.assert_array_equal(one.states[:, k], data.states[:, 1 + k])
    with pytest.raises(ValueError, match="reserves 2 context frames"):
        data.for_context(3)


def test_perfect_prediction_scores(state_dataset, probe):
    data = load_replay_set(state_dataset, "test", num_context=1, horizon=10, num_clips=3)
    real = data.clips.frames
    steps = (1, 5, 10)
    z = torch.zeros(3, 3, 1, 1, 1)
    s = score_replay(real, real.copy(), 1, steps, data.states, probe, (z, z))
    for k in steps:
        np.testing.assert_allclose(s["ssim"][k], 1.0)
        np.testing.assert_allclose(s["ms_ssim"][k], 1.0, atol=1e-6)
        np.testing.assert_allclose(s["psnr"][k], PSNR_CAP)
        np.testing.assert_allclose(s["sharpness_whole"][k], 1.0)
        np.testing.assert_allclose(s["sharpness_moving"][k], 1.0)
        np.testing.assert_allclose(s["latent_l2"][k], 0.0)
        np.testing.assert_array_equal(s["hand_cm"][k], s["floor_hand_cm"][k])
        np.testing.assert_array_equal(s["blockiness"][k], s["blockiness_real"][k])
        assert (s["copy_ssim"][k] < 1).all()  # the hand moved
    np.testing.assert_allclose(s["ssim_rollout"][10], 1.0)  # mean over steps 1..10
    copy = np.repeat(real[:, :1], 11, axis=1)
    np.testing.assert_allclose(s["copy_ssim_rollout"][10], ssim_video(copy, real, skip_first=1))
    summary = summarize(s)
    m, lo, hi = mean_ci(s["copy_psnr"][5])
    assert summary["copy_psnr"][5] == {"mean": m, "lo": lo, "hi": hi, "n": 3}
    gain = summary["ssim - copy"][10]
    assert gain["mean"] == pytest.approx(np.mean(1.0 - s["copy_ssim"][10]))
    assert gain["mean"] > 0 and gain["lo"] < gain["mean"] < gain["hi"]
    with pytest.raises(ValueError, match="outside"):
        score_replay(real, real, 1, (11,))


def test_each_episode_draws_its_own_noise(tiny, state_dataset):
    world = load_world_model(tiny.world_dir)
    clips = collect_clips(state_dataset, "test", 6, 3)
    a = imagine(world, clips.frames, clips.actions, sampling(world), 1, seed=3, batch=1)
    b = imagine(world, clips.frames, clips.actions, sampling(world), 1, seed=3, batch=3)
    diff = np.abs(a.frames.astype(int) - b.frames)  # batch composition does not matter
    assert diff.max() <= 1 and diff.mean() < 1e-3  # (up to float round-off in batched BLAS)
    np.testing.assert_array_equal(a.frames[:, 0], clips.frames[:, 0])  # the context is real
    c = imagine(world, clips.frames, clips.actions, sampling(world), 1, seed=4, batch=3)
    assert not np.array_equal(a.frames[:, 1:], c.frames[:, 1:])
    assert a.ms_per_frame > 0


def test_two_context_model_replays_and_scores(tiny, tiny_world_two_context, state_dataset, probe,
                                              tmp_path):  # fmt: skip
    data = load_replay_set(state_dataset, "test", num_context=2, horizon=8, num_clips=2)
    n2 = load_world_model(tiny_world_two_context)
    n1 = load_world_model(tiny.world_dir)
    res = {}
    for name, world in (("n2", n2), ("n1", n1)):
        res[name] = evaluate_replay(world, data, sampling(world), probe, (1, 4, 8), chunk=None)
        assert res[name].imagined.shape[1] == world.num_context + 8
        assert set(res[name].scores["hand_cm"]) == {1, 4, 8}
    # both were scored against the same real frames: equal floors and copy baselines
    for m in ("floor_hand_cm", "copy_psnr", "blockiness_real"):
        np.testing.assert_array_equal(res["n1"].scores[m][4], res["n2"].scores[m][4])
    np.testing.assert_array_equal(res["n2"].imagined[:, :2], data.clips.frames[:, :2])
    rows = [("real", frames_at_steps(data.clips.frames, 2, [0, 1, 8])[0])]
    rows += [(k, frames_at_steps(r.imagined, w.num_context, [0, 1, 8])[0])
             for (k, r), w in zip(res.items(), (n2, n1), strict=True)]  # fmt: skip
    png = save_strip(tmp_path / "strip.png", rows, [0, 1, 8], gap_every=3)
    assert png.stat().st_size > 0


def test_short_clips_copy_and_shuffled(tiny_world_two_context, state_dataset):
    world = load_world_model(tiny_world_two_context)
    clips = collect_clips(state_dataset, "test", 2 + 4, 4)
    s = short_clip_scores(world, clips, 2, sampling(world), None, seed=0, batch=4)
    for key in ("psnr", "copy_psnr", "psnr_shuffled", "ssim", "ms_ssim", "moving_psnr_shuffled"):
        assert s[key].shape == (4,) and np.isfinite(s[key]).all()
    summary = summarize_short(s)
    sens = summary["action sensitivity"]
    assert sens["mean"] == pytest.approx(np.mean(s["moving_psnr"] - s["moving_psnr_shuffled"]))
