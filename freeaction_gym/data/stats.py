"""Dataset statistics from the TRAIN split, saved as ``{root}/stats.json``.

Keys (``A`` = action dim; all actions are raw dataset actions):

* ``action_mean``, ``action_std`` (population std), ``action_min``, ``action_max``: (A,)
  lists over every train step;
* ``action_step_l2_mean``: mean over steps of ``||a_t||_2``;
* ``mu_act[kind][space][chunk]``: FreeAction's ``mu_act`` for every
  :class:`~freeaction_gym.diffusion.action_norm.ActionNormSpec` (kind ``chunk_l2`` /
  ``mean_step_l2``, space ``raw`` / ``normalized`` with the mean/std above), over all
  non-overlapping ``chunk``-step windows of each episode, chunk in ``MU_ACT_CHUNKS`` (JSON
  keys are strings: ``stats["mu_act"]["chunk_l2"]["raw"]["4"]``);
* ``pixel_mean``, ``pixel_std``: (3,) RGB over all train frames, in [0, 1] units;
* ``frame_change_frac``: mean fraction of pixels whose max channel change between
  consecutive frames exceeds ``CHANGE_THRESHOLD`` (10/255);
* ``depth_mean``, ``depth_std``, ``depth_min``, ``depth_max`` in meters (if stored);
* ``per_task[task]``: ``episodes``, ``success_rate`` (fraction of episodes with success at
  any step), ``mean_return``; ``split_counts[split][task]``: episode files per split.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.data.episodes import (
    SPLITS,
    list_episodes,
    load_episode,
    task_of_path,
    write_json_atomic,
)

MU_ACT_CHUNKS = (1, 4, 15)
CHANGE_THRESHOLD = 10  # in uint8 units (10/255)
STATS_FILE = "stats.json"


def frame_change_fraction(rgb: np.ndarray, threshold: int = CHANGE_THRESHOLD) -> float:
    """Mean over consecutive frame pairs of the fraction of pixels whose largest channel
    change exceeds ``threshold`` (uint8 units). ``rgb`` uint8 (T+1, H, W, 3)."""
    diff = np.abs(np.diff(rgb.astype(np.int16), axis=0)).max(axis=-1)  # (T, H, W)
    return float((diff > threshold).mean())


def _split_counts(root: Path) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        per_task: dict[str, int] = {}
        for p in sorted((root / split).glob("*.npz")) if (root / split).is_dir() else []:
            per_task[task_of_path(p)] = per_task.get(task_of_path(p), 0) + 1
        counts[split] = per_task
    return counts


def compute_stats(root: str | os.PathLike, write: bool = True) -> dict[str, Any]:
    """Statistics of ``{root}/train`` (see the module docstring); written to
    ``{root}/stats.json`` when ``write``. Streams episodes (one in memory at a time)."""
    from freeaction_gym.diffusion.action_norm import ActionNormSpec, mean_action_norm

    root = Path(root)
    paths = list_episodes(root, "train")
    actions: list[np.ndarray] = []  # (T_i, A) each; small
    px_sum, px_sq, px_n = np.zeros(3), np.zeros(3), 0
    d_sum, d_sq, d_n, d_min, d_max = 0.0, 0.0, 0, np.inf, -np.inf
    change_sum, change_n = 0.0, 0
    per_task: dict[str, dict[str, list[float]]] = {}
    for p in paths:
        ep = load_episode(p, load_depth=True, action_dim=None)
        actions.append(np.asarray(ep.action, np.float64))
        rgb = ep.rgb.reshape(-1, 3).astype(np.float64) / 255.0
        px_sum += rgb.sum(0)
        px_sq += (rgb**2).sum(0)
        px_n += rgb.shape[0]
        change_sum += frame_change_fraction(ep.rgb) * ep.num_actions
        change_n += ep.num_actions
        if ep.depth is not None:
            d = ep.depth.astype(np.float64)
            d_sum, d_sq, d_n = d_sum + d.sum(), d_sq + (d**2).sum(), d_n + d.size
            d_min, d_max = min(d_min, float(d.min())), max(d_max, float(d.max()))
        t = per_task.setdefault(ep.task, {"success": [], "return": []})
        t["success"].append(float(ep.success.any()))
        t["return"].append(float(ep.reward.sum()))

    flat = np.concatenate(actions)  # (sum T_i, A)
    mean, std = flat.mean(0), flat.std(0)
    mu_act: dict[str, dict[str, dict[str, float]]] = {}
    for kind in ("chunk_l2", "mean_step_l2"):
        for space in ("raw", "normalized"):
            spec = ActionNormSpec(kind=kind, space=space)
            for chunk in MU_ACT_CHUNKS:
                total, n_win = 0.0, 0
                for a in actions:  # weight each episode by its number of windows
                    n = a.shape[0] // chunk
                    if n:
                        total += mean_action_norm(a, chunk, spec, mean, std) * n
                        n_win += n
                value = total / n_win if n_win else float("nan")
                mu_act.setdefault(kind, {}).setdefault(space, {})[str(chunk)] = value
    px_mean = px_sum / px_n
    stats: dict[str, Any] = {
        "split": "train",
        "num_episodes": len(paths),
        "num_steps": int(flat.shape[0]),
        "action_dim": int(flat.shape[1]),
        "action_mean": mean.tolist(),
        "action_std": std.tolist(),
        "action_min": flat.min(0).tolist(),
        "action_max": flat.max(0).tolist(),
        "action_step_l2_mean": float(np.linalg.norm(flat, axis=1).mean()),
        "mu_act": mu_act,
        "pixel_mean": px_mean.tolist(),
        "pixel_std": np.sqrt(np.maximum(px_sq / px_n - px_mean**2, 0.0)).tolist(),
        "frame_change_frac": change_sum / max(change_n, 1),
        "per_task": {
            task: {
                "episodes": len(v["success"]),
                "success_rate": float(np.mean(v["success"])),
                "mean_return": float(np.mean(v["return"])),
            }
            for task, v in sorted(per_task.items())
        },
        "split_counts": _split_counts(root),
    }
    if d_n:
        d_mean = d_sum / d_n
        stats.update(
            depth_mean=d_mean,
            depth_std=float(np.sqrt(max(d_sq / d_n - d_mean**2, 0.0))),
            depth_min=d_min,
            depth_max=d_max,
        )
    if write:
        write_json_atomic(root / STATS_FILE, stats)
    return stats


def load_stats(root: str | os.PathLike) -> dict[str, Any]:
    """``{root}/stats.json``; a clear error naming the command if it is missing."""
    path = Path(root) / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: generation writes it when it finishes; compute it with "
            f"`freeaction data metaworld {root} --stats-only` or "
            "freeaction_gym.data.stats.compute_stats(root)"
        )
    return json.loads(path.read_text())
