"""Observation/action spaces and action validation shared by every env flavour."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from freeaction_gym.envs.config import EnvConfig


def action_bound(cfg, action_dim: int) -> np.ndarray:
    """(A,) float32: the half-width of the action box per dimension (``cfg.action_bound``,
    default 1)."""
    bound = getattr(cfg, "action_bound", None)
    return np.ones(action_dim, np.float32) if bound is None else np.asarray(bound, np.float32)


def action_space(cfg: EnvConfig, action_dim: int) -> spaces.Box:
    """Box(-b, b) with b = ``cfg.action_bound`` (default 1): (A,) for chunk 1, else (K, A)."""
    shape = (action_dim,) if cfg.action_chunk == 1 else (cfg.action_chunk, action_dim)
    b = np.broadcast_to(action_bound(cfg, action_dim), shape)
    return spaces.Box(-b, b, shape=shape, dtype=np.float32)


PROPRIO_DIM = 4
"""``proprio_obs``: hand xyz (m) and gripper opening, the first columns of the robot state."""


def proprio_space() -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, shape=(PROPRIO_DIM,), dtype=np.float32)


def with_proprio(image_space: spaces.Box, proprio_obs: bool) -> spaces.Space:
    """``image_space``, or with ``proprio_obs`` Dict(image=image_space, proprio=(4,))."""
    if not proprio_obs:
        return image_space
    return spaces.Dict({"image": image_space, "proprio": proprio_space()})


def observation_space(cfg: EnvConfig, frame_shape: tuple[int, ...], latent_shape) -> spaces.Space:
    """Box(latent) | Box(uint8 (H, W, 3 * frame_stack)) | (``proprio_obs``) Dict of that image
    and ``proprio`` float32 (4,)."""
    if cfg.observation == "latent":
        return spaces.Box(-np.inf, np.inf, shape=tuple(latent_shape), dtype=np.float32)
    h, w, c = frame_shape
    image = spaces.Box(0, 255, shape=(h, w, c * cfg.frame_stack), dtype=np.uint8)
    return with_proprio(image, cfg.proprio_obs)


def obs_at(obs, i: int):
    """A copy of env ``i``'s observation in a batch (an array, or a dict of arrays)."""
    if isinstance(obs, dict):
        return {k: v[i].copy() for k, v in obs.items()}
    return obs[i].copy()


def set_obs_at(obs, i: int, value) -> None:
    """Write env ``i``'s observation into a batch (an array, or a dict of arrays)."""
    if isinstance(obs, dict):
        for k, v in obs.items():
            v[i] = value[k]
    else:
        obs[i] = value


def validate_actions(actions, cfg, action_dim: int, num_envs: int | None) -> np.ndarray:
    """Check and convert policy actions to (N, K, A) float32 in the action box [-b, b]
    (b = ``cfg.action_bound``, default 1).

    Accepts per env (A,), (K, A) or the flat (K*A,) of a floating dtype; raises
    ``ValueError`` naming the problem for a wrong shape, a non-float dtype (integers too:
    cast with ``.astype(np.float32)``), NaN/inf, or (``out_of_range='error'``) values outside
    the box; clips otherwise (before the float32 cast, so 1e300 clips to b)."""
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
    a = a.reshape(num_envs or 1, k, action_dim)
    b = action_bound(cfg, action_dim).astype(a.dtype)
    if (np.abs(a) > b).any():
        if cfg.out_of_range == "error":
            box = "[-1, 1]" if cfg.action_bound is None else f"[-b, b], b = {cfg.action_bound}"
            raise ValueError(
                f"action outside {box} (max |a| = {np.abs(a).max():.3g}); "
                "set out_of_range='clip' to clip instead"
            )
        a = np.clip(a, -b, b)
    return a.astype(np.float32)
