"""The ``support`` env option: imagined episodes halt (with a penalty) once the running sum
of their actions leaves the box the training data covered; bounds from a dataset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from freeaction_gym.data.episodes import FORMAT_VERSION, write_episode, write_json_atomic
from freeaction_gym.envs.config import make_env_config
from freeaction_gym.envs.support import displacement_support
from freeaction_gym.envs.vector import make_sb3_vec_env

ENV_ID = "FreeActionMetaWorldV2-v0"  # the action-path preset (tiny models)
SUPPORT = {"low": [-1.5, -9, -9, -9], "high": [1.5, 9, 9, 9], "penalty": 5.0}
PUSH_X = np.array([0.8, 0.0, 0.0, 0.0], np.float32)  # displacement x: 0.8, 1.6 -> out at step 2


def make(tiny, **kw) -> gym.Env:
    return gym.make(
        ENV_ID, model=str(tiny.world_dir), sampling=dict(tiny.fast), reward="learned", **kw
    )


def test_episode_halts_when_leaving_support_with_penalty(tiny):
    guarded, free = make(tiny, support=SUPPORT), make(tiny)
    for env in (guarded, free):
        env.reset(seed=3)
    o1, r1, term1, trunc1, info1 = guarded.step(PUSH_X)
    f1, s1, *_ = free.step(PUSH_X)
    assert not term1 and not info1["out_of_support"]
    np.testing.assert_array_equal(o1, f1)  # the guard changes nothing inside the box
    assert r1 == pytest.approx(s1)
    o2, r2, term2, trunc2, info2 = guarded.step(PUSH_X)
    f2, s2, term_free, *_ = free.step(PUSH_X)
    assert term2 and info2["out_of_support"] and not trunc2
    assert not term_free
    np.testing.assert_array_equal(o2, f2)
    assert r2 == pytest.approx(s2 - 5.0, abs=1e-4)
    with pytest.raises(RuntimeError, match="reset"):
        guarded.step(PUSH_X)
    guarded.reset(seed=3)  # the displacement starts again from zero
    *_, term, _, info = guarded.step(PUSH_X)
    assert not term and not info["out_of_support"]
    guarded.step(-PUSH_X)  # back and forth stays inside
    *_, term, _, info = guarded.step(-PUSH_X)
    assert not term


def test_vector_envs_halt_only_the_env_that_left(tiny):
    vec = make_sb3_vec_env(
        2,
        preset=ENV_ID,
        seed=0,
        model=str(tiny.world_dir),
        sampling=dict(tiny.fast),
        reward="none",
        support=SUPPORT,
    )
    vec.reset()
    acts = np.stack([PUSH_X, -PUSH_X * 0.5])
    _, _, dones, infos = vec.step(acts)
    assert not dones.any()
    _, rew, dones, infos = vec.step(acts)
    assert dones.tolist() == [True, False]
    assert infos[0]["out_of_support"] and not infos[1]["out_of_support"]
    assert rew[0] == pytest.approx(-5.0) and rew[1] == 0.0  # zero reward minus the penalty
    venv = gym.make_vec(
        ENV_ID,
        num_envs=2,
        model=str(tiny.world_dir),
        sampling=dict(tiny.fast),
        reward="none",
        support=SUPPORT,
    )
    venv.reset(seed=0)
    venv.step(acts)
    _, _, term, trunc, info = venv.step(acts)
    assert term.tolist() == [True, False] and info["out_of_support"].tolist() == [True, False]


def test_support_option_validation(tiny):
    with pytest.raises(ValueError, match="low and high"):
        make_env_config(ENV_ID, support={"low": [0.0]})
    with pytest.raises(ValueError, match="low < high"):
        make_env_config(ENV_ID, support={"low": [1, 0, 0, 0], "high": [0, 1, 1, 1]})
    with pytest.raises(ValueError, match="unknown key"):
        make_env_config(ENV_ID, support={"low": [0], "high": [1], "margin": 1})
    with pytest.raises(ValueError, match="model's actions have 4"):
        make(tiny, support={"low": [-1, -1], "high": [1, 1]})


def test_displacement_support_matches_numpy_quantiles(tmp_path):
    rng = np.random.default_rng(0)
    write_json_atomic(tmp_path / "meta.json", {"format_version": FORMAT_VERSION})
    sums = []
    for e in range(5):
        a = rng.uniform(-1, 1, (12, 4)).astype(np.float32)
        sums.append(np.cumsum(a[:8].astype(np.float64), 0))
        write_episode(
            tmp_path / "train" / f"reach-v3_{e:05d}.npz",
            dict(
                rgb=np.zeros((13, 8, 8, 3), np.uint8),
                action=a,
                reward=np.zeros(12, np.float32),
                success=np.zeros(12, bool),
                layout=e,
                seed=e,
                task="reach-v3",
            ),
        )
    sup = displacement_support(str(tmp_path), horizon=8, quantile=0.1, dims=[0, 2])
    d = np.concatenate(sums)
    np.testing.assert_allclose(sup["low"][0], np.quantile(d[:, 0], 0.1), atol=1e-3)
    np.testing.assert_allclose(sup["high"][2], np.quantile(d[:, 2], 0.9), atol=1e-3)
    assert sup["low"][1] == -1e9 and sup["high"][3] == 1e9
    assert all(lo < hi for lo, hi in zip(sup["low"], sup["high"], strict=True))
    with pytest.raises(ValueError, match="quantile"):
        displacement_support(str(tmp_path), quantile=0.7)
