"""The Action Error Ratio: per-clip errors against a straightforward recomputation with a
toy inverse-dynamics model, ratio 1 on real frames and > 1 on corrupted ones, the IDM's
save/load round trip, clear errors, and ``freeaction train-idm`` on the state dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from freeaction_gym.cli import COMMANDS
from freeaction_gym.evaluation.action_error import (
    InverseDynamicsConfig,
    InverseDynamicsModel,
    action_error_ratio,
    clip_action_errors,
)
from freeaction_gym.models.checkpoint import CheckpointError
from freeaction_gym.rewards.state_probe import StateProbe, StateProbeConfig
from freeaction_gym.training.train_idm import TrainIDMArgs, load_frame_pairs, train_idm

N, F, HW, A = 3, 6, 4, 4
STEP = 20.0  # grey levels per unit of action 0


class BrightnessIDM:
    """Reads action 0 exactly off a brightness change (up to uint8 rounding) and says 0 for
    the other dimensions, whose true values then are its error on real frames."""

    def __call__(self, frames_t: torch.Tensor, frames_t1: torch.Tensor) -> torch.Tensor:
        d = frames_t1.double().mean((1, 2, 3)) - frames_t.double().mean((1, 2, 3))  # (B,)
        return torch.cat([(d / STEP)[:, None], torch.zeros(len(d), A - 1, dtype=d.dtype)], 1)


def toy_clips(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Videos uint8 (N, F, HW, HW, 3) whose brightness follows the cumulative action 0."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (N, F - 1, A))
    level = 120 + STEP * np.concatenate([np.zeros((N, 1)), np.cumsum(actions[..., 0], 1)], 1)
    video = np.broadcast_to(np.round(level)[:, :, None, None, None], (N, F, HW, HW, 3))
    return np.ascontiguousarray(video).astype(np.uint8), actions


def reference_errors(video: np.ndarray, actions: np.ndarray, num_context: int) -> np.ndarray:
    """The per-clip mean absolute action error, written out pair by pair."""
    out = np.zeros(len(video))
    for i in range(len(video)):
        errs = []
        for t in range(num_context - 1, video.shape[1] - 1):
            d = float(video[i, t + 1].astype(float).mean() - video[i, t].astype(float).mean())
            pred = np.array([d / STEP, 0.0, 0.0, 0.0])
            errs.append(np.abs(pred - actions[i, t]).mean())
        out[i] = np.mean(errs)
    return out


@pytest.mark.parametrize("num_context", [1, 2])
def test_clip_errors_match_a_pairwise_recomputation(num_context):
    video, actions = toy_clips()
    got = clip_action_errors(BrightnessIDM(), video, actions, num_context)
    assert got.shape == (N,) and got.dtype == np.float64
    np.testing.assert_allclose(got, reference_errors(video, actions, num_context), rtol=1e-12)
    # the toy reads action 0 up to rounding: the error is the other dimensions' mean |a|
    floor = np.abs(actions[:, num_context - 1 :, 1:]).sum(-1).mean(1) / A
    np.testing.assert_allclose(got, floor, atol=0.5 / STEP / A + 1e-9)


def test_ratio_is_one_on_real_frames_and_above_one_on_corrupted_ones():
    video, actions = toy_clips()
    idm = BrightnessIDM()
    same = action_error_ratio(idm, video.copy(), video, torch.from_numpy(actions))
    np.testing.assert_array_equal(same, np.ones(N))
    frozen = video.copy()
    frozen[:, 1:] = video[:, :1]  # nothing moves: every action 0 is read as 0
    shuffled = video[:, ::-1].copy()  # time reversed: the sign of each action flips
    for bad in (frozen, shuffled):
        ratio = action_error_ratio(idm, bad, video, actions)
        assert ratio.shape == (N,) and np.all(ratio > 1.0)
        want = reference_errors(bad, actions, 1) / reference_errors(video, actions, 1)
        np.testing.assert_allclose(ratio, want, rtol=1e-12)
    # a clip the IDM reads perfectly on real frames has no finite ratio (dropped by mean_ci)
    zero = actions.copy()
    zero[..., 1:] = 0.0
    exact = np.round(zero[..., 0] * STEP) / STEP  # brightness steps are whole grey levels
    zero[..., 0] = exact
    video0 = toy_clips()[0]
    level = 120 + STEP * np.concatenate([np.zeros((N, 1)), np.cumsum(exact, 1)], 1)
    video0[:] = np.round(level).astype(np.uint8)[:, :, None, None, None]
    r = action_error_ratio(idm, frozen, video0, zero)
    assert np.all(np.isinf(r) | np.isnan(r))


def test_inputs_are_checked_with_clear_errors():
    video, actions = toy_clips()
    idm = BrightnessIDM()
    with pytest.raises(ValueError, match="uint8 videos"):
        action_error_ratio(idm, video.astype(np.float32), video, actions)
    with pytest.raises(ValueError, match="differ in shape"):
        action_error_ratio(idm, video[:, :-1], video, actions)
    with pytest.raises(ValueError, match=r"actions must be \(N, F - 1, A\)"):
        clip_action_errors(idm, video, actions[:, :-1])
    with pytest.raises(ValueError, match="leaves no predicted frame"):
        clip_action_errors(idm, video, actions, num_context=F)
    with pytest.raises(ValueError, match="the IDM predicts"):
        clip_action_errors(idm, video, actions[..., :2])


def small_idm(seed: int = 0) -> InverseDynamicsModel:
    torch.manual_seed(seed)
    cfg = InverseDynamicsConfig(
        action_dim=A, channels=(8, 8), pool_size=2, hidden=16,
        action_mean=[0.1, -0.2, 0.0, 0.3], action_std=[0.5, 0.6, 0.7, 0.8],
    )  # fmt: skip
    return InverseDynamicsModel(cfg).eval()


def test_model_shapes_units_and_save_load_round_trip(tmp_path):
    idm = small_idm()
    g = torch.Generator().manual_seed(1)
    t0 = torch.randint(0, 256, (5, 16, 16, 3), generator=g, dtype=torch.uint8)
    t1 = torch.randint(0, 256, (5, 16, 16, 3), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        out, norm = idm(t0, t1), idm.forward_normalized(t0, t1)
    assert out.shape == (5, A)
    torch.testing.assert_close(out, norm * idm.action_std + idm.action_mean)
    torch.testing.assert_close(idm.normalize(out), norm)
    idm.save_pretrained(tmp_path / "idm", {"data": "somewhere"})
    loaded = InverseDynamicsModel.from_pretrained(tmp_path / "idm")
    assert loaded.config == idm.config and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(t0, t1), out)
    assert json.loads((tmp_path / "idm" / "config.json").read_text())["data"] == "somewhere"
    with pytest.raises(ValueError, match=r"two \(B, H, W, 3\) batches"):
        idm(t0, t1[:, :8])


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="freeaction train-idm"):
        InverseDynamicsModel.from_pretrained(tmp_path / "nothing")
    StateProbe(StateProbeConfig(channels=(8,), hidden=8)).save_pretrained(tmp_path / "probe")
    with pytest.raises(CheckpointError, match="not a InverseDynamicsModel config"):
        InverseDynamicsModel.from_pretrained(tmp_path / "probe")
    with pytest.raises(ValueError, match="one entry per action dimension"):
        InverseDynamicsConfig(action_dim=2, action_mean=[0.0])
    with pytest.raises(ValueError, match="action_std must be > 0"):
        InverseDynamicsConfig(action_dim=1, action_std=[0.0])


def test_frame_pairs_follow_the_episodes(state_dataset):
    pairs = load_frame_pairs(state_dataset, "val")
    assert len(pairs) == 2 * 30 and pairs.frames.shape == (2 * 31, 32, 32, 3)
    from freeaction_gym.data.episodes import list_episodes, load_episode

    ep = load_episode(list_episodes(state_dataset, "val")[1])
    t0, t1 = pairs.batch(np.array([30 + 7]))  # episode 1, step 7
    assert torch.equal(t0[0], torch.from_numpy(ep.rgb[7].copy()))
    assert torch.equal(t1[0], torch.from_numpy(ep.rgb[8].copy()))
    assert torch.equal(pairs.actions[37], torch.from_numpy(ep.action[7].copy()))


def test_train_idm_writes_a_loadable_model(state_dataset, tmp_path):
    assert "train-idm" in COMMANDS
    out = tmp_path / "idm"
    args = TrainIDMArgs(
        data=str(state_dataset), out=str(out), steps=4, batch_size=8, eval_every=2,
        channels=[8, 8], hidden=16, max_minutes=None,
    )  # fmt: skip
    m = train_idm(args)
    assert m["steps_done"] == 4 and len(m["val_history"]) == 2
    assert m["test"]["pairs"] == 3 * 30 and np.isfinite(m["test"]["action_error"]["mean"])
    idm = InverseDynamicsModel.from_pretrained(out)
    assert idm.config.action_dim == 4 and idm.config.channels == (8, 8)
    meta = json.loads((out / "config.json").read_text())
    assert meta["floor"]["action_error"]["mean"] == m["test"]["action_error"]["mean"]
    with pytest.raises(SystemExit) as exit_info:  # registered like train-probe
        COMMANDS["train-idm"](["--help"])
    assert exit_info.value.code == 0
