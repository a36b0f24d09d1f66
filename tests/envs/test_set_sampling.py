"""``VideoWorldModelEnv.set_sampling``: the sampler changes between steps of one episode
(the browser play page's live controls), checked as at make time; a rejected change
leaves the sampler as it was, and changing back reproduces an unchanged env's frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

ACTION = np.array([0.5, -0.5, 0.2, 1.0], np.float32)


def make(tiny):
    kw = dict(model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="goal_latent")
    return gym.make("FreeActionMetaWorld-v0", **kw)


def test_change_applies_from_the_next_step(tiny):
    env = make(tiny)
    env.reset(seed=0)
    assert env.step(ACTION)[4]["guidance_weight"] == 0.0
    env.unwrapped.set_sampling({"guidance": {"mode": "action_scaled", "lam": 2.0, "cutoff": 1.0}})
    info = env.step(ACTION)[4]
    norm = info["action_norm"]
    assert info["guidance_weight"] == pytest.approx(2.0 * norm)  # eq. 2, every step guided
    env.unwrapped.set_sampling({"truncation": {"mode": "none"}, "num_steps": 3})
    info = env.step(ACTION)[4]
    assert np.isinf(info["tau"]) and env.unwrapped.core.sampling.num_steps == 3
    assert env.unwrapped.config.sampling["guidance"]["lam"] == 2.0  # merged, not replaced


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"num_steps": 0}, "num_steps must be >= 1"),
        ({"num_steps": 5000}, "exceeds the model's"),
        ({"truncation": {"tau_min": 2.0}}, "tau_min <= tau_max"),
        ({"guidance": {"cutoff": 2.0}}, "cutoff"),
        ({"steps": 2}, "unknown"),
    ],
)
def test_rejected_change_keeps_the_sampler(tiny, bad, words):
    env = make(tiny)
    env.reset(seed=0)
    before = (env.unwrapped.core.sampling, dict(env.unwrapped.config.sampling))
    with pytest.raises(ValueError, match=words):
        env.unwrapped.set_sampling(bad)
    assert (env.unwrapped.core.sampling, dict(env.unwrapped.config.sampling)) == before


def test_changing_back_reproduces_an_unchanged_env(tiny):
    a, b = make(tiny), make(tiny)
    a.reset(seed=4)
    b.reset(seed=4)
    b.unwrapped.set_sampling({"num_steps": 3})
    b.unwrapped.set_sampling(dict(tiny.fast))  # back to the make-time sampler
    for _ in range(3):
        assert np.array_equal(a.step(ACTION)[0], b.step(ACTION)[0])
