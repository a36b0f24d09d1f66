"""Evaluation clips from an IRASim-layout dataset (RT-1 / Bridge / Language-Table).

The same :class:`~freeaction_gym.evaluation.rollout.Clips` the MetaWorld reader returns, so
every experiment script runs unchanged on the real datasets a user brings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from freeaction_gym.data.irasim_layout import IRASimClipDataset
from freeaction_gym.evaluation.rollout import Clips


def collect_irasim_clips(
    root: str | Path,
    split: str = "test",
    dataset: str = "rt1",
    num_frames: int | None = 16,
    num_clips: int | None = None,
    seed: int = 0,
    resolution: tuple[int, int] | None = None,
) -> Clips:
    """Non-overlapping ``num_frames`` windows (stride = length, IRASim's val/test clips), or
    whole episodes cut to the shortest one with ``num_frames=None``; with ``num_clips`` a
    fixed random subset (``seed``) in dataset order. Actions are IRASim's (x20 deltas)."""
    if num_frames is None:
        probe = IRASimClipDataset(root, split, dataset, clip_len=2, stride=1)  # reads JSON only
        num_frames = min(ep.num_frames for ep in probe.episodes)
    ds = IRASimClipDataset(
        root, split, dataset, clip_len=num_frames, stride=num_frames, resolution=resolution
    )
    index = np.arange(len(ds))
    if num_clips is not None and num_clips < len(ds):
        index = np.sort(np.random.default_rng(seed).choice(len(ds), num_clips, replace=False))
    items = [ds[int(i)] for i in index]
    return Clips(
        frames=np.stack([it["frames"].numpy() for it in items]),
        actions=torch.stack([it["actions"].float() for it in items]),
        episodes=[str(it["episode_id"]) for it in items],
        starts=[int(it["start"]) for it in items],
    )
