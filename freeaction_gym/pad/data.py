"""Demonstrations for the PAD policy: (current RGB + depth, task) -> (future RGB + depth,
action chunk) samples from an episode dataset with depth (``freeaction data metaworld ROOT
--demos``), held in memory at the policy's resolution.

Units: RGB in [-1, 1]; depth ``(log(d) - mean) / std`` of metric depth d (meters, clipped to
[0.05, 10]) with train-split statistics; actions raw MetaWorld actions in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from freeaction_gym.data.episodes import list_episodes, load_episode, task_of_path

DEPTH_RANGE_M = (0.05, 10.0)


def downsample(x: np.ndarray, size: int) -> np.ndarray:
    """Area-average (..., H, W, C) or (..., H, W) frames to size x size (H multiple of size)."""
    h = x.shape[-3] if x.ndim >= 3 and x.shape[-1] in (1, 3) else x.shape[-2]
    if h % size:
        raise ValueError(f"frame size {h} is not a multiple of {size}")
    f = h // size
    if f == 1:
        return x.astype(np.float32)
    if x.shape[-1] == 3:
        lead = x.shape[:-3]
        y = x.reshape(*lead, size, f, size, f, 3).astype(np.float32)
        return y.mean(axis=(-4, -2))
    lead = x.shape[:-2]
    return x.reshape(*lead, size, f, size, f).astype(np.float32).mean(axis=(-3, -1))


def log_depth(depth_m: np.ndarray) -> np.ndarray:
    return np.log(np.clip(depth_m.astype(np.float32), *DEPTH_RANGE_M))


@dataclass
class DemoStats:
    """Normalisation saved with the policy."""

    depth_mean: float
    depth_std: float
    tasks: list[str]

    def rgb(self, frames_u8: np.ndarray, size: int) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float32 (..., 3, size, size) in [-1, 1]."""
        x = downsample(frames_u8, size) / 127.5 - 1.0
        return torch.from_numpy(np.moveaxis(x, -1, -3).copy())

    def depth(self, depth_m: np.ndarray, size: int) -> torch.Tensor:
        """meters (..., H, W) -> float32 (..., size, size) normalised log depth."""
        x = (downsample(log_depth(depth_m), size) - self.depth_mean) / self.depth_std
        return torch.from_numpy(x.astype(np.float32))


def future_offsets(horizon: int, future_frames: int) -> list[int]:
    """Frame offsets of the k predicted frames: evenly up to the end of the chunk."""
    return [round((j + 1) * horizon / future_frames) for j in range(future_frames)]


class DemoBank:
    """All demonstration steps of a split in memory; :meth:`sample` draws training batches.

    rgb (N_frames, 3, S, S), depth (N_frames, S, S) normalised; per step t of episode e the
    sample is frame t -> frames t + offsets (clamped to the episode's last frame) and actions
    t .. t + H - 1 (past the end: the last action repeated).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        image_size: int,
        horizon: int,
        future_frames: int,
        tasks: Sequence[str] | None = None,
        stats: DemoStats | None = None,
    ) -> None:
        paths = list_episodes(root, split, tasks)
        episodes = [load_episode(p, load_depth=True) for p in paths]
        if any(ep.depth is None for ep in episodes):
            raise ValueError(f"{root}/{split} has episodes without depth; regenerate with depth")
        if stats is None:
            logd = np.concatenate([log_depth(ep.depth).ravel() for ep in episodes])
            names = sorted({task_of_path(p) for p in paths})
            stats = DemoStats(float(logd.mean()), float(logd.std() + 1e-6), names)
        self.stats, self.horizon, self.size = stats, horizon, image_size
        self.offsets = future_offsets(horizon, future_frames)
        rgb, depth, starts, index = [], [], [], []
        base = 0
        self.actions: list[np.ndarray] = []
        self.task_ids: list[int] = []
        for e, (p, ep) in enumerate(zip(paths, episodes, strict=True)):
            task = task_of_path(p)
            if task not in stats.tasks:
                raise ValueError(f"task {task} of {p} is not one the policy knows: {stats.tasks}")
            rgb.append(stats.rgb(ep.rgb, image_size))
            depth.append(stats.depth(ep.depth, image_size))
            self.actions.append(ep.action.astype(np.float32))
            self.task_ids.append(stats.tasks.index(task))
            starts.append(base)
            index += [(e, t) for t in range(len(ep.action))]
            base += ep.rgb.shape[0]
        self.rgb, self.depth = torch.cat(rgb), torch.cat(depth)
        self.starts, self.index = starts, index
        self.lengths = [a.shape[0] for a in self.actions]

    def __len__(self) -> int:
        return len(self.index)

    def item(self, i: int) -> dict[str, torch.Tensor]:
        e, t = self.index[i]
        s, n = self.starts[e], self.lengths[e]
        fut = [s + min(t + o, n) for o in self.offsets]
        acts = self.actions[e][t : t + self.horizon]
        if len(acts) < self.horizon:
            acts = np.concatenate([acts, np.repeat(acts[-1:], self.horizon - len(acts), 0)])
        return {
            "obs_rgb": self.rgb[s + t],
            "obs_depth": self.depth[s + t][None],
            "image": self.rgb[fut].flatten(0, 1),  # (3k, S, S)
            "depth": self.depth[fut],  # (k, S, S)
            "action": torch.from_numpy(acts),
            "task": torch.tensor(self.task_ids[e]),
        }

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        items = [self.item(int(i)) for i in rng.integers(0, len(self), batch)]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}
