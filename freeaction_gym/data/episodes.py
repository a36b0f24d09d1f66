"""The on-disk episode format, its reader and a clip dataset for world-model training.

Layout of a dataset root (``FORMAT_VERSION`` 1; written by
:mod:`freeaction_gym.data.metaworld_gen`)::

    {root}/meta.json                       {"format_version", "generator", "config", "camera", ...}
    {root}/{split}/{task}_{index:05d}.npz  one episode, split in train / val / test
    {root}/stats.json                      train-split statistics (freeaction_gym.data.stats)

An episode of T actions has T+1 frames; frame 0 is after reset, frame k+1 after action k:

    rgb      uint8   (T+1, H, W, 3)
    depth    float16 (T+1, H, W)   metric depth in meters (optional)
    action   float32 (T, A)        A = 4 for MetaWorld, in [-1, 1]
    reward   float32 (T,)          reward of action k (summed over the simulator repeats)
    success  bool    (T,)          success reached during action k
    layout   int     ()            layout index (into MetaWorld ``MT1(task, seed).train_tasks``)
    seed     int     ()            the episode's RNG seed
    task     str     ()            task name
    state    float32 (T+1, 7)      robot/object state per frame (optional; MetaWorld:
                                   hand xyz m, gripper opening, object xyz m)
    keypoints float32 (T+1, K, 3)  arm keypoints per frame, meters (optional)
    goal_pos float32 (3,)          the scene's goal position, meters (optional; MetaWorld's
                                   ``_target_pos``)

Other scalar keys (e.g. ``noise_sigma``) are kept in :attr:`Episode.info`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from freeaction_gym.utils.errors import UserError

FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
REQUIRED_KEYS = ("rgb", "action", "reward", "success", "layout", "seed", "task")
MAKE_HINT = "freeaction data metaworld {root}"


class EpisodeFormatError(UserError):
    """An episode file is missing, corrupt or has inconsistent arrays (the message names it)."""


def episode_path(root: str | os.PathLike, split: str, task: str, index: int) -> Path:
    """``{root}/{split}/{task}_{index:05d}.npz``."""
    return Path(root) / split / f"{task}_{index:05d}.npz"


def task_of_path(path: str | os.PathLike) -> str:
    """Task name from an episode file name (``push-v3_00012.npz`` -> ``push-v3``)."""
    return Path(path).stem.rsplit("_", 1)[0]


@dataclass(frozen=True)
class Episode:
    """One episode; arrays are read-only (episodes may be shared by a cache)."""

    rgb: np.ndarray
    """uint8 (T+1, H, W, 3)."""
    action: np.ndarray
    """float32 (T, A)."""
    reward: np.ndarray
    """float32 (T,)."""
    success: np.ndarray
    """bool (T,): success reached during action k."""
    task: str
    layout: int
    seed: int
    depth: np.ndarray | None = None
    """float16 (T+1, H, W) meters, or None when absent / not loaded."""
    state: np.ndarray | None = None
    """float32 (T+1, S) per-frame state (MetaWorld: ``metaworld_gen.STATE_NAMES``), or None."""
    keypoints: np.ndarray | None = None
    """float32 (T+1, K, 3) per-frame arm keypoints in meters, or None."""
    goal_pos: np.ndarray | None = None
    """float32 (3,) the scene's goal position in meters (MetaWorld's ``_target_pos``), or None."""
    info: dict[str, Any] = field(default_factory=dict)
    """Other scalar keys of the file (e.g. ``noise_sigma``)."""
    path: Path | None = None

    @property
    def num_actions(self) -> int:
        return int(self.action.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])


def _fail(path: Path, msg: str) -> EpisodeFormatError:
    return EpisodeFormatError(f"episode {path}: {msg}")


def load_episode(
    path: str | os.PathLike, load_depth: bool = True, action_dim: int | None = 4
) -> Episode:
    """Read and validate one episode file.

    ``action_dim``: expected action width (``None`` accepts any). Raises
    :class:`EpisodeFormatError` naming the file for unreadable/corrupt files, missing keys
    and inconsistent shapes (e.g. ``len(action) != len(rgb) - 1``); ``FileNotFoundError``
    if it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode file not found: {path}")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in REQUIRED_KEYS if k not in z.files]
            if missing:
                raise _fail(path, f"missing keys {missing} (has {sorted(z.files)})")
            for key in z.files:
                if key == "depth" and not load_depth:
                    continue
                arrays[key] = z[key]
    except EpisodeFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as e:
        raise _fail(path, f"unreadable or corrupt .npz ({type(e).__name__}: {e})") from e

    rgb, action = arrays.pop("rgb"), arrays.pop("action")
    reward, success = arrays.pop("reward"), arrays.pop("success")
    depth = arrays.pop("depth", None)
    state, keypoints = arrays.pop("state", None), arrays.pop("keypoints", None)
    goal_pos = arrays.pop("goal_pos", None)
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise _fail(path, f"rgb must be uint8 (T+1, H, W, 3), got {rgb.dtype} {rgb.shape}")
    if action.ndim != 2 or not np.issubdtype(action.dtype, np.floating):
        raise _fail(path, f"action must be float (T, A), got {action.dtype} {action.shape}")
    if action_dim is not None and action.shape[1] != action_dim:
        raise _fail(path, f"action dim is {action.shape[1]}, expected {action_dim}")
    t = action.shape[0]
    if t < 1 or rgb.shape[0] != t + 1:
        raise _fail(path, f"{t} actions need {t + 1} frames, rgb has {rgb.shape[0]}")
    for name, arr in (("reward", reward), ("success", success)):
        if arr.shape != (t,):
            raise _fail(path, f"{name} must have shape ({t},), got {arr.shape}")
    if depth is not None and depth.shape != rgb.shape[:3]:
        raise _fail(path, f"depth must have shape {rgb.shape[:3]}, got {depth.shape}")
    if state is not None and (state.ndim != 2 or state.shape[0] != t + 1):
        raise _fail(path, f"state must have shape ({t + 1}, S), got {state.shape}")
    if keypoints is not None and (keypoints.ndim != 3 or keypoints.shape[0] != t + 1):
        raise _fail(path, f"keypoints must have shape ({t + 1}, K, 3), got {keypoints.shape}")
    if goal_pos is not None and goal_pos.shape != (3,):
        raise _fail(path, f"goal_pos must have shape (3,), got {goal_pos.shape}")
    for arr in (rgb, action, reward, success, depth, state, keypoints):
        if arr is not None:
            arr.flags.writeable = False
    scalars = {k: v.item() for k, v in arrays.items() if v.ndim == 0}
    return Episode(
        rgb=rgb,
        action=action.astype(np.float32, copy=False),
        reward=reward.astype(np.float32, copy=False),
        success=success.astype(bool, copy=False),
        task=str(scalars.pop("task")),
        layout=int(scalars.pop("layout")),
        seed=int(scalars.pop("seed")),
        depth=depth,
        state=state,
        keypoints=keypoints,
        goal_pos=None if goal_pos is None else goal_pos.astype(np.float32),
        info=scalars,
        path=path,
    )


def write_episode(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write one episode as a compressed ``.npz`` via a temporary file + ``os.replace``, so a
    crash never leaves a half-written episode under its final name."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"cannot write episode {path}: missing arrays {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike, obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON via a temporary file + ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    """``{root}/meta.json``; a clear error if ``root`` is not a dataset."""
    meta_path = Path(root) / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"no episode dataset at {root}: {meta_path} does not exist. "
            f"Make one with `{MAKE_HINT.format(root=root)}`"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise EpisodeFormatError(
            f"{meta_path}: format_version {meta.get('format_version')}, this reader reads "
            f"{FORMAT_VERSION}"
        )
    return meta


def list_episodes(
    root: str | os.PathLike, split: str, tasks: Sequence[str] | None = None
) -> list[Path]:
    """Episode files of ``split`` (sorted by task, then index), optionally only ``tasks``.

    Raises ``FileNotFoundError`` when ``root`` has no ``meta.json`` or the split (or one of
    ``tasks``) has no episodes, naming what was looked for and the command that makes it.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    read_meta(root)
    split_dir = Path(root) / split
    paths = sorted(split_dir.glob("*.npz")) if split_dir.is_dir() else []
    hint = f"make them with `{MAKE_HINT.format(root=root)}`"
    if not paths:
        raise FileNotFoundError(
            f"no episodes in {split_dir} (looked for {split_dir}/*.npz); {hint}"
        )
    if tasks is not None:
        paths = [p for p in paths if task_of_path(p) in set(tasks)]
        found = {task_of_path(p) for p in paths}
        absent = [t for t in tasks if t not in found]
        if absent:
            raise FileNotFoundError(
                f"no {split} episodes for tasks {absent} in {split_dir} "
                f"(looked for {split_dir}/<task>_<index>.npz); {hint} --tasks {' '.join(tasks)}"
            )
    return paths


def stems_matching(stems: Sequence[str], pattern: str | None) -> np.ndarray:
    """Bool (len(stems),): which file stems fully match the regular expression
    ``pattern`` (all False when ``pattern`` is None). Used to oversample episodes by name,
    e.g. the ones a Dyna loop collected."""
    if pattern is None:
        return np.zeros(len(stems), dtype=bool)
    rx = re.compile(pattern)
    return np.array([rx.fullmatch(str(s)) is not None for s in stems], dtype=bool)


def check_fraction(fraction: float, name: str = "fraction") -> float:
    """``fraction`` as a float in (0, 1]; a ``ValueError`` naming ``name`` otherwise."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValueError(f"{name} must be a number in (0, 1], got {fraction!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (a share of the episodes), got {fraction}")
    return float(fraction)


def stratified_subset(
    paths: Sequence[str | os.PathLike], fraction: float, seed: int = 0
) -> list[Path]:
    """A fixed share of ``paths``, per task: each task's episodes are ranked by a seeded hash
    of their file name (blake2b of ``"{seed}/{name}"``) and the first
    ``max(1, floor(fraction * n_task + 1/2))`` are kept. The ranking depends on neither the
    fraction nor the other episodes, so for one ``seed`` smaller fractions are subsets of
    larger ones and adding episodes to a dataset keeps the old choice of the old ones.
    Returned in the input order."""
    fraction = check_fraction(fraction)
    by_task: dict[str, list[Path]] = {}
    for p in map(Path, paths):
        by_task.setdefault(task_of_path(p), []).append(p)

    def rank(p: Path) -> bytes:
        return hashlib.blake2b(f"{seed}/{p.name}".encode(), digest_size=8).digest()

    keep: set[Path] = set()
    for episodes in by_task.values():
        k = max(1, math.floor(fraction * len(episodes) + 0.5))
        keep.update(sorted(episodes, key=rank)[:k])
    return [p for p in map(Path, paths) if p in keep]


class ClipDataset(torch.utils.data.Dataset):
    """Windows of ``clip_len`` consecutive frames from episode files.

    Item ``i`` is a dict: ``frames`` uint8 (F, H, W, 3), ``actions`` float32 (F-1, A) (action k
    leads from frame k to k+1), ``reward`` float32 (F-1,), ``success`` bool (F-1,),
    ``task_id`` int (index into :attr:`tasks`), ``episode`` int (index into ``paths``),
    ``start`` int (first frame), and ``depth`` float32 (F, H, W) meters if ``load_depth``.
    Windows start at 0, stride, 2*stride, ... while they fit in the episode.

    ``cache=False`` keeps at most ``lru_size`` episodes in memory (least recently used are
    dropped); ``cache=True`` keeps every episode once loaded. Only action lengths are read at
    construction.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        clip_len: int,
        stride: int = 1,
        tasks: Sequence[str] | None = None,
        load_depth: bool = False,
        cache: bool = False,
        lru_size: int = 8,
        action_dim: int | None = 4,
    ) -> None:
        if clip_len < 2:
            raise ValueError(f"clip_len must be >= 2 (a clip needs an action), got {clip_len}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ClipDataset got no episode paths")
        self.clip_len, self.stride = clip_len, stride
        self.load_depth, self.cache, self.lru_size = load_depth, cache, max(1, lru_size)
        self.action_dim = action_dim
        ep_tasks = [task_of_path(p) for p in self.paths]
        self.tasks = list(tasks) if tasks is not None else sorted(set(ep_tasks))
        unknown = sorted(set(ep_tasks) - set(self.tasks))
        if unknown:
            raise ValueError(f"episodes of tasks {unknown} are not in tasks={self.tasks}")
        self._task_ids = [self.tasks.index(t) for t in ep_tasks]
        self._index: list[tuple[int, int]] = []  # (episode, start frame)
        for e, p in enumerate(self.paths):
            n_frames = self._num_actions(p) + 1
            self._index.extend((e, s) for s in range(0, n_frames - clip_len + 1, stride))
        if not self._index:
            raise ValueError(f"no episode has {clip_len} frames (clip_len too long)")
        self._episodes: OrderedDict[int, Episode] = OrderedDict()

    @staticmethod
    def _num_actions(path: Path) -> int:
        try:
            with np.load(path, allow_pickle=False) as z:
                return int(z["action"].shape[0])
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as e:
            raise EpisodeFormatError(f"episode {path}: cannot read actions ({e})") from e

    def __len__(self) -> int:
        return len(self._index)

    def episode(self, e: int) -> Episode:
        """Episode ``e`` (through the cache)."""
        ep = self._episodes.get(e)
        if ep is not None:
            self._episodes.move_to_end(e)
            return ep
        ep = load_episode(self.paths[e], load_depth=self.load_depth, action_dim=self.action_dim)
        if self.load_depth and ep.depth is None:
            raise EpisodeFormatError(
                f"episode {self.paths[e]}: load_depth=True but it has no depth"
            )
        self._episodes[e] = ep
        if not self.cache:
            while len(self._episodes) > self.lru_size:
                self._episodes.popitem(last=False)
        return ep

    def window(self, i: int) -> tuple[int, int]:
        """``(episode, start frame)`` of item ``i``."""
        return self._index[i]

    def __getitem__(self, i: int) -> dict[str, Any]:
        e, s = self._index[i]
        ep = self.episode(e)
        f = slice(s, s + self.clip_len)
        a = slice(s, s + self.clip_len - 1)
        item: dict[str, Any] = {
            "frames": torch.from_numpy(ep.rgb[f].copy()),  # (F, H, W, 3) uint8
            "actions": torch.from_numpy(ep.action[a].copy()),  # (F-1, A)
            "reward": torch.from_numpy(ep.reward[a].copy()),  # (F-1,)
            "success": torch.from_numpy(ep.success[a].copy()),  # (F-1,)
            "task_id": self._task_ids[e],
            "episode": e,
            "start": s,
        }
        if self.load_depth:
            item["depth"] = torch.from_numpy(ep.depth[f].astype(np.float32))  # (F, H, W) m
        return item
