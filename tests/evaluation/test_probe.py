"""State probe: errors in cm, learning a synthetic task, save/load, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from freeaction_gym.evaluation.probe import probe_errors, state_errors
from freeaction_gym.rewards.state_probe import StateProbe, StateProbeConfig, predict_states
from freeaction_gym.training.train_probe import (
    TrainProbeArgs,
    load_state_frames,
    main,
    random_blur,
    train_probe,
)

SMALL = {"channels": [16, 32, 32], "hidden": 64}


def test_state_errors_are_euclidean_cm_and_gripper_units():
    truth = np.zeros((2, 7))
    pred = truth.copy()
    pred[0, :3] = (0.03, 0.04, 0.0)  # 5 cm
    pred[1, 3] = -0.25
    pred[1, 4:7] = (0.0, 0.01, 0.0)  # 1 cm
    e = state_errors(pred, truth)
    np.testing.assert_allclose(e["hand_cm"], [5.0, 0.0])
    np.testing.assert_allclose(e["gripper"], [0.0, 0.25])
    np.testing.assert_allclose(e["object_cm"], [0.0, 1.0])
    with pytest.raises(ValueError, match="states must both be"):
        state_errors(pred[:, :6], truth[:, :6])


def test_random_blur_matches_a_gaussian_filter_and_keeps_unblurred_frames():
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), np.uint8))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_blur(frames, 0.0, 1.5, g), frames)
    out = random_blur(frames, 1.0, 1.5, torch.Generator().manual_seed(1))
    # the same draws: sigma ~ U(0, 1.5); reference = scipy's Gaussian, truncated at 3 px
    sigma = torch.rand(6, generator=torch.Generator().manual_seed(1)) * 1.5
    for i in range(6):
        ref = ndimage.gaussian_filter(
            frames[i].numpy().astype(float), (float(sigma[i]),) * 2 + (0,), mode="nearest",
            truncate=3 / float(sigma[i]),
        )  # fmt: skip
        assert np.abs(out[i].numpy().astype(float) - ref).max() <= 1.0


def test_probe_learns_a_synthetic_task(state_dataset, tmp_path):
    torch.set_num_threads(1)
    args = TrainProbeArgs(
        data=str(state_dataset), out=str(tmp_path / "probe"), steps=500, batch_size=32,
        lr=3e-3, eval_every=250, max_minutes=None, blur_prob=0.0, **SMALL,
    )  # fmt: skip
    metrics = train_probe(args)
    test = load_state_frames(state_dataset, "test")
    # a probe that ignores the frame predicts the train mean: the error to beat
    mean = load_state_frames(state_dataset, "train").states.double().mean(0)
    blind = state_errors(mean.expand_as(test.states).numpy(), test.states.numpy())
    t = metrics["test"]
    assert t["hand_cm"]["mean"] < 0.35 * blind["hand_cm"].mean()
    assert t["hand_cm"]["mean"] < 3.5  # cm = px here
    assert t["gripper"]["mean"] < 0.5 * blind["gripper"].mean()
    assert t["object_cm"]["mean"] < 0.5 * blind["object_cm"].mean()
    saved = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    assert saved["test"]["hand_cm"]["mean"] == pytest.approx(t["hand_cm"]["mean"])
    # the floor of the saved probe is recorded next to it and reproduced by probe_errors
    probe = StateProbe.from_pretrained(tmp_path / "probe")
    again = probe_errors(probe, test.frames.numpy(), test.states.numpy())
    assert again["hand_cm"].mean() == pytest.approx(t["hand_cm"]["mean"], rel=1e-5)
    meta = json.loads((tmp_path / "probe" / "config.json").read_text())
    assert meta["floor"]["gripper"]["mean"] == pytest.approx(t["gripper"]["mean"])


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = StateProbeConfig(state_mean=[0.1] * 7, state_std=[0.5] * 7, **SMALL)
    probe = StateProbe(cfg)
    frames = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), np.uint8)
    probe.save_pretrained(tmp_path / "p")
    loaded = StateProbe.from_pretrained(tmp_path / "p")
    assert loaded.config == probe.config
    np.testing.assert_array_equal(predict_states(loaded, frames), predict_states(probe, frames))
    with pytest.raises(FileNotFoundError, match="train-probe"):
        StateProbe.from_pretrained(tmp_path / "missing")


def test_config_validation():
    with pytest.raises(ValueError, match="one entry per state column"):
        StateProbeConfig(state_mean=[0.0] * 3)
    with pytest.raises(ValueError, match="state_std must be > 0"):
        StateProbeConfig(state_std=[0.0] * 7)


def test_data_without_state_fails_clearly(tiny_dataset):
    with pytest.raises(ValueError, match="no per-frame state"):
        load_state_frames(tiny_dataset, "test")


def test_cli_runs(state_dataset, tmp_path):
    from freeaction_gym.cli import main as freeaction

    out = tmp_path / "cli_probe"
    argv = ["--data", str(state_dataset), "--out", str(out), "--steps", "3", "--eval-every", "3"]
    assert freeaction(["train-probe", *argv, "--channels", "8", "8", "--hidden", "16"]) == 0
    assert StateProbe.from_pretrained(out).config.channels == (8, 8)
    assert main([*argv, "--out", str(tmp_path / "module"), "--channels", "8"]) == 0
