"""Recorded real transitions into an off-policy agent's replay buffer, before it trains.

The direct half of Sutton's Dyna (1990): the agent learns from its real experience as well
as from the model's. Episodes in the on-disk format (:mod:`freeaction_gym.data.episodes`:
``rgb`` uint8 (T+1, H, W, 3), ``action`` (T, A), ``reward`` (T,), and for a Dict observation
``state`` (T+1, S) whose first 4 columns are the ``proprio`` observation) enter the buffer
in the layout the training env gives it:

- frames stacked oldest to newest along the channels, zeros before the first frame
  (SB3's ``VecFrameStack``), channel-first when the buffer's image space is
  (``VecTransposeImage``); ``proprio`` stacked the same way;
- actions rescaled to [-1, 1] from the action space's box, as SAC stores its own;
- rewards raw (the buffer scales them when it samples);
- the last step of every episode is a time-limit truncation (``done`` with
  ``TimeLimit.truncated``): n-step returns stop there and bootstrap from its last
  observation, and never run into the next episode stored after it.

A buffer with ``E`` env columns takes ``E`` episodes of equal length per block of rows;
:func:`prefill` uses the last ``len(paths) // E * E`` of the paths it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gymnasium import spaces

from freeaction_gym.envs.spaces import PROPRIO_DIM


def episode_paths(items: Sequence[str | Path]) -> list[Path]:
    """``.npz`` files, a directory standing for its sorted ``*.npz``; missing ones are an
    error naming them."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.npz"))
            if not found:
                raise FileNotFoundError(f"prefill directory {p} holds no *.npz episodes")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"prefill episode {p} does not exist")
    return out


def count_transitions(paths: Sequence[Path]) -> int:
    """Transitions (actions) the episodes hold, reading only their ``action`` arrays."""
    total = 0
    for p in paths:
        with np.load(p) as z:
            if "action" not in z.files:
                raise ValueError(f"{p} has no 'action' array: not a recorded episode")
            total += int(z["action"].shape[0])
    return total


def stack_frames(x: np.ndarray, k: int) -> np.ndarray:
    """(T+1, ..., C) -> (T+1, ..., k*C): row t holds rows t-k+1..t along the last axis,
    oldest first, zeros before row 0 (SB3's ``VecFrameStack``, ``channels_order="last"``)."""
    c = x.shape[-1]
    out = np.zeros((*x.shape[:-1], k * c), x.dtype)
    for j in range(k):  # slot j holds the frame k-1-j steps back
        lag = k - 1 - j
        out[lag:, ..., j * c : (j + 1) * c] = x[: len(x) - lag]
    return out


def _image_layout(space: spaces.Box) -> tuple[int, bool]:
    """(frames stacked, channels first) of a stacked RGB image space (SB3's rule: the
    smallest dimension is the channels)."""
    from stable_baselines3.common.preprocessing import is_image_space_channels_first

    first = is_image_space_channels_first(space)
    channels = space.shape[0] if first else space.shape[-1]
    if channels % 3:
        raise ValueError(f"image space {space.shape} is not a stack of RGB frames")
    return channels // 3, first


def episode_observations(
    path: Path, space: spaces.Space, data: dict[str, np.ndarray] | None = None
) -> np.ndarray | dict[str, np.ndarray]:
    """The (T+1) observations of a recorded episode in ``space``'s layout (a Box image or a
    Dict of ``image`` and ``proprio``); ``data``: the episode's arrays if already loaded."""
    if data is None:
        data = _load(path)
    for key in ("rgb", "action", "reward"):
        if key not in data:
            raise ValueError(f"{path} has no {key!r} array: not a recorded episode")
    image_space = space["image"] if isinstance(space, spaces.Dict) else space
    k, first = _image_layout(image_space)
    rgb = data["rgb"]
    want = image_space.shape[1:] if first else image_space.shape[:-1]
    if rgb.ndim != 4 or rgb.shape[1:3] != tuple(want) or rgb.shape[3] != 3:
        raise ValueError(
            f"{path}: frames {rgb.shape} do not fit the agent's image space {image_space.shape} "
            f"(need (T+1, {want[0]}, {want[1]}, 3))"
        )
    if len(rgb) != len(data["action"]) + 1 or len(data["reward"]) != len(data["action"]):
        raise ValueError(
            f"{path}: {len(rgb)} frames, {len(data['action'])} actions, "
            f"{len(data['reward'])} rewards (need T+1, T, T)"
        )
    image = stack_frames(rgb, k)
    if first:
        image = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
    if not isinstance(space, spaces.Dict):
        return image
    if "state" not in data:
        raise ValueError(f"{path} has no 'state' array: the proprio observation needs it")
    proprio = data["state"][:, :PROPRIO_DIM].astype(np.float32)
    k_p = space["proprio"].shape[0] // PROPRIO_DIM
    return {"image": image, "proprio": stack_frames(proprio, k_p)}


def scale_actions(actions: np.ndarray, space: spaces.Box) -> np.ndarray:
    """Actions of the box ``space`` -> [-1, 1] (SAC's buffer layout), clipped to the box."""
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    a = np.clip(np.asarray(actions, np.float32), low, high)
    return 2.0 * (a - low) / (high - low) - 1.0


def used_paths(paths: Sequence[Path], n_envs: int) -> list[Path]:
    """The episodes :func:`prefill` takes into a buffer of ``n_envs`` columns: the last
    ``len(paths) // n_envs * n_envs``."""
    paths = list(paths)
    return paths[len(paths) % n_envs :]


def prefill(buffer, paths: Sequence[Path], action_space: spaces.Box) -> int:
    """Add the transitions of ``paths`` to an SB3 replay ``buffer`` (empty or not); returns
    how many were added. Uses the last ``len(paths) // n_envs * n_envs`` paths, ``n_envs``
    per block of rows; raises if they do not fit the buffer's free rows."""
    n = buffer.n_envs
    paths = used_paths(paths, n)
    if not paths:
        return 0
    space = buffer.observation_space
    lengths = [count_transitions([p]) for p in paths]
    free = buffer.buffer_size - (buffer.buffer_size if buffer.full else buffer.pos)
    if sum(lengths) // n > free:
        raise ValueError(
            f"{sum(lengths)} prefill transitions do not fit the replay buffer's "
            f"{free * n} free slots: raise buffer_size"
        )
    for start in range(0, len(paths), n):
        block = paths[start : start + n]
        if len(set(lengths[start : start + n])) != 1:
            raise ValueError(f"episodes of one block differ in length: {block}")
        data = [_load(p) for p in block]  # each file read once
        obs = [episode_observations(p, space, d) for p, d in zip(block, data, strict=True)]
        actions = [scale_actions(d["action"], action_space) for d in data]
        rewards = [d["reward"].astype(np.float32) for d in data]
        steps = lengths[start]
        for t in range(steps):
            last = t == steps - 1
            buffer.add(
                _rows(obs, t),
                _rows(obs, t + 1),
                np.stack([a[t] for a in actions]),
                np.array([r[t] for r in rewards], np.float32),
                np.full(n, last),
                [{"TimeLimit.truncated": last} for _ in range(n)],
            )
    return sum(lengths)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _rows(obs: list, t: int):
    """Row ``t`` of each episode's observations, stacked over the block's episodes."""
    if isinstance(obs[0], dict):
        return {key: np.stack([o[key][t] for o in obs]) for key in obs[0]}
    return np.stack([o[t] for o in obs])
