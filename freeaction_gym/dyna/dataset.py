"""The loop's dataset: the base dataset plus every episode the loop collected.

A dataset root in the on-disk format (:mod:`freeaction_gym.data.episodes`) that every
existing reader and trainer takes unchanged::

    {root}/meta.json      the base's, plus {"dyna": {"base": ..., "tasks": ...}}
    {root}/stats.json     the base's (see below)
    {root}/{split}/*.npz  symbolic links to the base's episodes (absolute targets)
    {root}/train/{task}_{i}.npz, i >= COLLECTED_OFFSET: collected episodes (real files)

The base root is only read. Collected episodes are train-split files named after their
iteration (``reach-v3_100000.npz`` is iteration 0's first), so a listing shows where each
came from and ``list_episodes`` sorts them after the base's. ``stats.json`` stays the
base's: the world model's sampler normalises action norms by it (FreeAction's ``mu_act``),
and keeping it fixed means iterations differ only in their weights.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from freeaction_gym.data.episodes import (
    SPLITS,
    read_meta,
    task_of_path,
    write_json_atomic,
)

COLLECTED_OFFSET = 100_000
"""Index of iteration 0's first collected episode; iteration ``k`` starts at
``(k + 1) * COLLECTED_OFFSET``."""

COLLECTED_PATTERN = r".+_[1-9][0-9]{5,}"
"""File stems of collected episodes (index >= COLLECTED_OFFSET); base episodes' indices are
smaller, so their stems never match (a regular expression, matched in full)."""


def collected_index(iteration: int, k: int) -> int:
    """File index of episode ``k`` (0-based) of ``iteration``."""
    if not 0 <= k < COLLECTED_OFFSET:
        raise ValueError(f"episode number {k} out of range [0, {COLLECTED_OFFSET})")
    return (iteration + 1) * COLLECTED_OFFSET + k


class LoopDataset:
    """A loop dataset at ``root`` (made by :meth:`create`)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        meta = read_meta(self.root)
        if "dyna" not in meta:
            raise ValueError(f"{self.root} is a dataset but not a dyna loop dataset")
        self.base = Path(meta["dyna"]["base"])

    @classmethod
    def create(
        cls,
        root: str | os.PathLike,
        base: str | os.PathLike,
        tasks: list[str] | None = None,
        train_per_task: int | None = None,
    ) -> LoopDataset:
        """Link the base's episodes (of ``tasks``; at most ``train_per_task`` train episodes
        per task) into ``root``. Idempotent: an existing loop dataset of the same base is
        opened as is (its collected episodes kept)."""
        root, base = Path(root), Path(base).resolve()
        if (root / "meta.json").is_file():
            ds = cls(root)
            if ds.base != base:
                raise ValueError(f"{root} links the base {ds.base}, not {base}")
            return ds
        meta = read_meta(base)
        for split in SPLITS:
            split_dir = base / split
            paths = sorted(split_dir.glob("*.npz")) if split_dir.is_dir() else []
            if tasks is not None:
                paths = [p for p in paths if task_of_path(p) in set(tasks)]
            if split == "train" and train_per_task is not None:
                count: dict[str, int] = {}
                kept = []
                for p in paths:
                    count[task_of_path(p)] = count.get(task_of_path(p), 0) + 1
                    if count[task_of_path(p)] <= train_per_task:
                        kept.append(p)
                paths = kept
            (root / split).mkdir(parents=True, exist_ok=True)
            for p in paths:
                link = root / split / p.name
                if not link.is_symlink():
                    link.symlink_to(p.resolve())
        if (base / "stats.json").is_file():
            shutil.copyfile(base / "stats.json", root / "stats.json")
        meta["dyna"] = {"base": str(base), "tasks": tasks, "train_per_task": train_per_task}
        write_json_atomic(root / "meta.json", meta)  # last: its presence marks a complete link
        return cls(root)

    def collected_path(self, task: str, iteration: int, k: int) -> Path:
        return self.root / "train" / f"{task}_{collected_index(iteration, k):06d}.npz"

    def collected(self, iteration: int | None = None) -> list[Path]:
        """Collected episode files (all, or those of ``iteration``), sorted."""
        out = []
        for p in sorted((self.root / "train").glob("*.npz")):
            if p.is_symlink():
                continue
            index = int(p.stem.rsplit("_", 1)[1])
            if index >= COLLECTED_OFFSET and (
                iteration is None or index // COLLECTED_OFFSET == iteration + 1
            ):
                out.append(p)
        return out

    def counts(self) -> dict[str, int]:
        """``{"base_train": n, "collected": m, "val": ..., "test": ...}`` episode files."""
        collected = len(self.collected())
        train = len(list((self.root / "train").glob("*.npz")))
        out = {"base_train": train - collected, "collected": collected}
        for split in ("val", "test"):
            out[split] = len(list((self.root / split).glob("*.npz")))
        return out

    def summary(self) -> dict:
        return {"root": str(self.root), "base": str(self.base), **self.counts()}

    def __repr__(self) -> str:
        return f"LoopDataset({json.dumps(self.summary())})"
