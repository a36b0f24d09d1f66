"""||a|| definitions (chunk / per-step, raw / normalized) and mu_act."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.diffusion import ActionNormSpec, action_norm, mean_action_norm

RNG = np.random.default_rng(0)
ACTS = RNG.normal(size=(3, 15, 7)) * np.array([1, 2, 3, 0.5, 0.5, 0.5, 1]) + 0.3
MEAN = ACTS.reshape(-1, 7).mean(0)
STD = ACTS.reshape(-1, 7).std(0)


def np_chunk_l2(a):
    return np.sqrt((a.reshape(a.shape[0], -1) ** 2).sum(1))


def np_mean_step_l2(a):
    return np.array([np.mean([np.sqrt(np.sum(step**2)) for step in sample]) for sample in a])


def test_chunk_and_mean_step_vs_numpy() -> None:
    a = torch.from_numpy(ACTS).float()
    got_chunk = action_norm(a, ActionNormSpec("chunk_l2"))
    got_step = action_norm(a, ActionNormSpec("mean_step_l2"))
    assert got_chunk.shape == (3,) and got_chunk.dtype == torch.float32
    np.testing.assert_allclose(got_chunk.numpy(), np_chunk_l2(ACTS), rtol=1e-5)
    np.testing.assert_allclose(got_step.numpy(), np_mean_step_l2(ACTS), rtol=1e-5)
    # the two definitions really differ (chunk ~ sqrt(K) x per-step for similar steps)
    assert (got_chunk > 2 * got_step).all()
    # the spec is callable and the default is mean_step_l2 on raw actions
    torch.testing.assert_close(ActionNormSpec()(a), got_step)


@pytest.mark.parametrize("kind", ["chunk_l2", "mean_step_l2"])
def test_normalized_space_uses_mean_std(kind) -> None:
    spec = ActionNormSpec(kind, "normalized")
    got = action_norm(torch.from_numpy(ACTS), spec, MEAN, STD)
    z = (ACTS - MEAN) / STD
    ref = np_chunk_l2(z) if kind == "chunk_l2" else np_mean_step_l2(z)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5)
    raw = action_norm(torch.from_numpy(ACTS), ActionNormSpec(kind, "raw"))
    assert not np.allclose(got.numpy(), raw.numpy())
    # torch mean/std work too
    got_t = action_norm(torch.from_numpy(ACTS), spec, torch.from_numpy(MEAN), torch.from_numpy(STD))
    torch.testing.assert_close(got_t, got)


def test_mean_action_norm_non_overlapping_windows() -> None:
    seqs = RNG.normal(size=(2, 23, 7))  # 23 = 3 windows of 7 + 2 left over
    chunk = 7
    for spec in (ActionNormSpec("chunk_l2"), ActionNormSpec("mean_step_l2")):
        vals = []
        for s in seqs:
            for start in range(0, 23 - chunk + 1, chunk):
                w = s[start : start + chunk][None]
                vals.append((np_chunk_l2(w) if spec.kind == "chunk_l2" else np_mean_step_l2(w))[0])
        assert len(vals) == 6
        assert mean_action_norm(seqs, chunk, spec) == pytest.approx(np.mean(vals), rel=1e-6)
    # a single (T, A) sequence
    one = seqs[0]
    spec = ActionNormSpec("chunk_l2")
    want = np.mean([np_chunk_l2(one[i : i + 5][None])[0] for i in range(0, 20, 5)])
    assert mean_action_norm(one, 5, spec) == pytest.approx(want, rel=1e-6)
    # normalized space
    spec = ActionNormSpec("mean_step_l2", "normalized")
    m, s = seqs.reshape(-1, 7).mean(0), seqs.reshape(-1, 7).std(0)
    z = (seqs[:, :21] - m) / s
    want = np.mean(np_mean_step_l2(z.reshape(6, 7, 7)))
    assert mean_action_norm(seqs, 7, spec, m, s) == pytest.approx(want, rel=1e-6)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        action_norm(torch.zeros(15, 7))
    with pytest.raises(ValueError):
        action_norm(torch.zeros(1, 2, 15, 7))
    with pytest.raises(ValueError):
        action_norm(torch.zeros(2, 15, 7), ActionNormSpec(space="normalized"))
    with pytest.raises(ValueError):
        mean_action_norm(np.zeros((1, 2, 15, 7)), 5)
    with pytest.raises(ValueError):
        mean_action_norm(np.zeros(15), 5)
    with pytest.raises(ValueError):
        mean_action_norm(np.zeros((10, 7)), 11)
    with pytest.raises(ValueError):
        ActionNormSpec(kind="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ActionNormSpec(space="pixels")  # type: ignore[arg-type]
