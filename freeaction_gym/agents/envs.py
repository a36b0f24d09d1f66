"""stable-baselines3 VecEnvs for any registered id: the batched world-model env
(:func:`~freeaction_gym.envs.vector.make_sb3_vec_env`, one model call per step for all
envs), the real MetaWorld counterpart (:func:`~freeaction_gym.envs.real_metaworld.
make_real_vec_env`), or SB3's generic ``make_vec_env`` for anything else."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import freeaction_gym  # noqa: F401  (registers the ids)
from freeaction_gym.envs.registration import ENTRY, REAL_ENTRY


def env_kind(env_id: str) -> str:
    """``imagined``, ``real`` or ``other`` (by the registered entry point)."""
    entry = gym.spec(env_id).entry_point
    return {ENTRY: "imagined", REAL_ENTRY: "real"}.get(entry, "other")


def make_vec_env(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    frame_stack: int = 1,
    monitor: bool = True,
):
    """``num_envs`` copies of ``env_id`` as an SB3 ``VecEnv`` (env ``i`` seeded ``seed + i``),
    wrapped in ``VecMonitor`` (episode returns/lengths) and, for ``frame_stack > 1``, a
    channel-last ``VecFrameStack``. Images stay (H, W, C): SB3 transposes for CNNs."""
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor

    spec = gym.spec(env_id)
    kwargs = {**spec.kwargs, **(env_kwargs or {})}
    kind = env_kind(env_id)
    if kind == "imagined":
        from freeaction_gym.envs.vector import make_sb3_vec_env

        vec = make_sb3_vec_env(num_envs, seed=seed, **kwargs)
    elif kind == "real":
        from freeaction_gym.envs.real_metaworld import make_real_vec_env

        vec = make_real_vec_env(num_envs, seed=seed, **kwargs)
    else:
        from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

        vec = sb3_make_vec_env(env_id, num_envs, seed=seed, env_kwargs=env_kwargs)
    if monitor:
        vec = VecMonitor(vec)
    if frame_stack > 1:
        vec = VecFrameStack(vec, frame_stack, channels_order="last")
    return vec


def last_frame(obs: np.ndarray) -> np.ndarray:
    """The newest RGB frame of a (H, W, 3*S) channel-stacked observation."""
    return np.asarray(obs)[..., -3:]
