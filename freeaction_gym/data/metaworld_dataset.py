"""A whole MetaWorld dataset: every missing episode of a config, generated in worker
processes and written in the :mod:`freeaction_gym.data.episodes` format, then the stats.

The root's ``meta.json`` records the config and refuses a root made with other settings;
each episode file is written atomically and existing files are skipped, so an interrupted
run resumes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from freeaction_gym.data.episodes import (
    FORMAT_VERSION,
    SPLITS,
    episode_path,
    write_episode,
    write_json_atomic,
)
from freeaction_gym.data.metaworld_config import MetaWorldDataConfig
from freeaction_gym.data.metaworld_env import make_metaworld_env
from freeaction_gym.data.metaworld_episode import generate_episode
from freeaction_gym.data.metaworld_render import (
    CAMERA_PRESETS,
    SceneRenderer,
    headless_gl_defaults,
)


def _check_or_write_meta(root: Path, cfg: MetaWorldDataConfig) -> None:
    """Refuse to mix episodes generated with different settings in one root."""
    meta_path = root / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path} has format_version {old.get('format_version')}, "
                f"this code writes {FORMAT_VERSION}: use a new root"
            )
        new = json.loads(json.dumps(asdict(cfg)))  # tuples -> lists like the stored file
        # A field newer than the stored file counts as its default (older datasets resume).
        defaults = json.loads(json.dumps(asdict(MetaWorldDataConfig())))
        diff = [
            k
            for k in new
            if k not in cfg.COUNT_FIELDS and old["config"].get(k, defaults[k]) != new[k]
        ]
        if diff:
            raise ValueError(
                f"{meta_path} was written with different settings ({', '.join(diff)}): "
                "use a new root or the same settings"
            )
    camera = asdict(CAMERA_PRESETS[cfg.camera]) if cfg.camera in CAMERA_PRESETS else cfg.camera
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "metaworld",
        "config": asdict(cfg),
        "camera": camera,
        "splits": list(SPLITS),
    }
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(meta_path, meta)


_WORKER: dict[str, Any] = {}


def _worker_init(cfg: MetaWorldDataConfig, root: str) -> None:
    headless_gl_defaults()
    _WORKER.update(cfg=cfg, root=Path(root), envs={})


def _worker_run(job: tuple[str, str, int]) -> tuple[str, bool, float]:
    """Generate + write one episode; reuses one env per task in this process."""
    task, split, index = job
    cfg: MetaWorldDataConfig = _WORKER["cfg"]
    envs: dict[str, tuple[Any, SceneRenderer]] = _WORKER["envs"]
    t0 = time.perf_counter()
    if task not in envs:
        for env, render in envs.values():  # one MuJoCo renderer at a time (REFERENCE §6)
            render.close()
            env.close()
        envs.clear()
        envs[task] = make_metaworld_env(
            task,
            cfg.layout_of(split, index)[0],
            0,
            cfg.camera,
            cfg.resolution,
            cfg.depth,
            cfg.depth_clip_m,
        )
    arrays = generate_episode(cfg, task, split, index, envs[task])
    write_episode(episode_path(_WORKER["root"], split, task, index), arrays)
    return task, bool(arrays["success"].any()), time.perf_counter() - t0


def generate_dataset(
    root: str | os.PathLike,
    cfg: MetaWorldDataConfig,
    num_workers: int = 2,
    progress: bool = True,
    write_stats: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate every missing episode of ``cfg`` under ``root``; returns a summary dict
    (``generated``, ``skipped``, per-task expert ``success_rate`` of the generated episodes,
    ``seconds_per_episode``). Existing episode files are skipped (resume)."""
    import metaworld

    unknown = [t for t in cfg.tasks if t not in metaworld.env_dict.ALL_V3_ENVIRONMENTS]
    if unknown:
        raise ValueError(
            f"unknown MetaWorld v3 tasks {unknown}; see metaworld.env_dict.ALL_V3_ENVIRONMENTS"
        )
    root = Path(root)
    _check_or_write_meta(root, cfg)
    jobs = [(t, s, i) for s in SPLITS for t in cfg.tasks for i in range(cfg.episodes(s))]
    todo = [j for j in jobs if not episode_path(root, j[1], j[0], j[2]).exists()]
    log(
        f"[metaworld] {root}: {len(jobs)} episodes, {len(jobs) - len(todo)} exist, "
        f"{len(todo)} to generate with {num_workers} worker(s)"
    )
    from tqdm import tqdm

    results: list[tuple[str, bool, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), disable=not progress, unit="ep", dynamic_ncols=True)
    if num_workers <= 1:
        _worker_init(cfg, str(root))
        try:
            for job in todo:
                results.append(_worker_run(job))
                bar.update()
        finally:
            for env, render in _WORKER.pop("envs", {}).values():
                render.close()
                env.close()
    else:
        ctx = mp.get_context("spawn")
        # Jobs are ordered by task, so chunks keep a worker on one task (one env build).
        chunk = max(1, min(8, len(todo) // (4 * num_workers)))
        with ctx.Pool(num_workers, initializer=_worker_init, initargs=(cfg, str(root))) as pool:
            for res in pool.imap_unordered(_worker_run, todo, chunksize=chunk):
                results.append(res)
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - t0
    rates = {
        t: float(np.mean([s for tt, s, _ in results if tt == t]))
        for t in cfg.tasks
        if any(tt == t for tt, _, _ in results)
    }
    summary = {
        "generated": len(results),
        "skipped": len(jobs) - len(todo),
        "seconds": elapsed,
        "seconds_per_episode": elapsed / max(1, len(results)),
        "success_rate": rates,
    }
    if write_stats and cfg.train_episodes > 0:
        from freeaction_gym.data.stats import compute_stats

        compute_stats(root, write=True)
    return summary
