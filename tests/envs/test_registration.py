"""Every registered id passes Gymnasium's and stable-baselines3's env checkers on tiny
artifacts; IRASim ids explain what is missing and read FREEACTION_* env vars instead."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import freeaction_gym
from freeaction_gym.envs.env import VideoWorldModelEnv


@pytest.mark.parametrize("env_id", freeaction_gym.ENV_IDS)
def test_check_env_every_registered_id(tiny, env_id):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    assert env_id in gym.registry
    env = gym.make(env_id, render_mode="rgb_array", **tiny.kwargs(env_id))
    try:
        assert isinstance(env.unwrapped, VideoWorldModelEnv)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # any checker warning fails, except:
            # the tiny model's 32x32 frames are below SB3's CnnPolicy minimum (36x36).
            warnings.filterwarnings("ignore", message="The minimal resolution for an image")
            gym_check_env(env.unwrapped)
            sb3_check_env(env, warn=True)
    finally:
        env.close()


def test_registration_is_cheap_and_lazy():
    spec = gym.spec("FreeActionRT1-v0")
    assert spec.entry_point == "freeaction_gym.envs.env:VideoWorldModelEnv"
    assert spec.vector_entry_point == "freeaction_gym.envs.vector:VideoWorldModelVectorEnv"
    assert set(freeaction_gym.ENV_IDS) <= set(gym.registry)


@pytest.mark.parametrize(
    ("env_id", "tag", "dataset"),
    [
        ("FreeActionRT1-v0", "RT1", "rt1"),
        ("FreeActionBridge-v0", "BRIDGE", "bridge"),
        ("FreeActionLanguageTable-v0", "LANGUAGETABLE", "languagetable"),
    ],
)
def test_irasim_id_without_paths_explains_what_to_provide(no_irasim_env_vars, env_id, tag, dataset):
    with pytest.raises(FileNotFoundError) as err:
        gym.make(env_id)
    msg = str(err.value)
    for needed in (
        "model",
        "vae",
        "reset_bank",
        f"FREEACTION_{tag}_CHECKPOINT",
        f"FREEACTION_{tag}_VAE",
        f"FREEACTION_{tag}_BANK",
        "README",
        "Bringing IRASim checkpoints",
        f"e.g. {dataset}/checkpoints/",  # the example path is the id's own dataset
    ):
        assert needed in msg, needed


def test_irasim_missing_only_the_vae_names_it(tiny, no_irasim_env_vars, tmp_path):
    kw = tiny.irasim_kwargs("FreeActionRT1-v0")
    kw["vae"] = str(tmp_path / "no_vae_here")
    with pytest.raises(FileNotFoundError, match=r"\['vae'\]"):
        gym.make("FreeActionRT1-v0", **kw)


def test_irasim_paths_from_environment_variables(tiny, no_irasim_env_vars, monkeypatch):
    monkeypatch.setenv("FREEACTION_RT1_CHECKPOINT", str(tiny.rt1_ckpt))
    monkeypatch.setenv("FREEACTION_RT1_VAE", str(tiny.vae))
    monkeypatch.setenv("FREEACTION_RT1_BANK", str(tiny.irasim_bank))
    env = gym.make("FreeActionRT1-v0", action_chunk=3, sampling=dict(tiny.fast))
    ref = gym.make("FreeActionRT1-v0", **tiny.irasim_kwargs("FreeActionRT1-v0"))
    assert env.action_space.shape == (3, 7)
    assert env.observation_space.shape == (64, 80, 3)
    a = np.full((3, 7), 0.3, np.float32)
    obs, _ = env.reset(seed=0)
    obs_ref, _ = ref.reset(seed=0)
    np.testing.assert_array_equal(obs, obs_ref)
    np.testing.assert_array_equal(env.step(a)[0], ref.step(a)[0])
