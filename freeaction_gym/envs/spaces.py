"""Observation/action spaces and action validation shared by every env flavour."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from freeaction_gym.envs.config import EnvConfig


def action_space(cfg: EnvConfig, action_dim: int) -> spaces.Box:
    """Box(-1, 1): (A,) for chunk 1, else (K, A)."""
    shape = (action_dim,) if cfg.action_chunk == 1 else (cfg.action_chunk, action_dim)
    return spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float32)


def observation_space(cfg: EnvConfig, frame_shape: tuple[int, ...], latent_shape) -> spaces.Box:
    if cfg.observation == "latent":
        return spaces.Box(-np.inf, np.inf, shape=tuple(latent_shape), dtype=np.float32)
    h, w, c = frame_shape
    return spaces.Box(0, 255, shape=(h, w, c * cfg.frame_stack), dtype=np.uint8)


def validate_actions(actions, cfg, action_dim: int, num_envs: int | None) -> np.ndarray:
    """Check and convert policy actions to (N, K, A) float32 in [-1, 1].

    Accepts per env (A,), (K, A) or the flat (K*A,) of a floating dtype; raises
    ``ValueError`` naming the problem for a wrong shape, a non-float dtype (integers too:
    cast with ``.astype(np.float32)``), NaN/inf, or (``out_of_range='error'``) values outside
    [-1, 1]; clips otherwise (before the float32 cast, so 1e300 clips to 1)."""
    a = np.asarray(actions)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"actions must be a float array, got dtype {a.dtype}")
    k = cfg.action_chunk
    per_env = [(k, action_dim), (k * action_dim,)] if k > 1 else [(action_dim,), (1, action_dim)]
    lead = () if num_envs is None else (num_envs,)
    if not any(a.shape == lead + s for s in per_env):
        expect = " or ".join(str(lead + s) for s in per_env)
        raise ValueError(f"action has shape {a.shape}; expected {expect}")
    if not np.isfinite(a).all():
        raise ValueError("action contains NaN or inf")
    if np.abs(a).max(initial=0.0) > 1.0:
        if cfg.out_of_range == "error":
            raise ValueError(
                f"action outside [-1, 1] (max |a| = {np.abs(a).max():.3g}); "
                "set out_of_range='clip' to clip instead"
            )
        a = np.clip(a, -1.0, 1.0)
    return a.astype(np.float32).reshape(num_envs or 1, k, action_dim)
