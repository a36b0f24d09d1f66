"""Re-render a dataset through the world model: ``freeaction imagine``.

Every episode's recorded actions are replayed autoregressively, exactly as the imagined
environment steps (one action per step, the env preset's sampler), starting from the
episode's real first frame. The result is written in the same episode format
(:mod:`freeaction_gym.data.episodes`) with the *imagined* frames and the *real* labels
(reward, success, layout, task) of the recorded episode:

    rgb      uint8   (T+1, H, W, 3)  frame 0 real, frames 1..T imagined
    action, reward, success, layout, seed, task   copied from the source episode
    sample   int     ()              which imagined sample (0..samples-1)
    source   str     ()              the source episode's file name

A reward/success head trained on such episodes (``freeaction train-reward --data real_root
imagined_root``) learns to read the real outcome off the world model's (blurred) frames -
what an imagined environment needs to judge policies. Sample ``s`` of an episode uses the
generator seed ``seed + 1_000_003 * s + episode seed``: reruns give identical files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from freeaction_gym.data.episodes import (
    episode_path,
    list_episodes,
    load_episode,
    read_meta,
    task_of_path,
    write_episode,
    write_json_atomic,
)
from freeaction_gym.utils.args import make_output_dir, require_at_least


@dataclass
class ImagineArgs:
    data: str = "data/metaworld_default"
    """Source dataset root (``meta.json`` + split folders)."""
    out: str = "data/metaworld_imagined"
    """Destination root (same layout; ``meta.json`` records how it was made)."""
    preset: str = "FreeActionMetaWorldV2-v0"
    """Env preset whose model and sampler are used (any ``envs_config`` id or YAML path; an
    action-conditioned one: replayed actions have no robot state to draw prompts from)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset (e.g. ``{"sampling": {"truncation": {"mode": "none"}}}``)."""
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    tasks: list[str] | None = None
    """Only these tasks (default: all of the source)."""
    samples: int = 1
    """Imagined rollouts per episode (different initial noise)."""
    max_actions: int | None = None
    """Replay at most this many actions per episode (default: all)."""
    batch_size: int = 32
    """Episodes imagined together (one batched model call per step)."""
    seed: int = 0


def _load(args: ImagineArgs):
    """(world model, env config) of the preset + overrides (no reward, no termination, and
    frames only: an agent's ``proprio_obs`` option is dropped, as nothing observes)."""
    from freeaction_gym.envs import factory
    from freeaction_gym.envs.config import make_env_config

    options = {
        **args.env_kwargs,
        "reward": "none",
        "terminate_on_success": False,
        "proprio_obs": False,
    }
    cfg = make_env_config(args.preset, **options)
    if cfg.action_chunk != 1:
        raise ValueError(f"imagine replays one action per step; {args.preset} has chunk > 1")
    return factory.load_world_model(cfg), cfg


def imagine_batch(world, cfg, episodes: list, seeds: list[int], steps: int) -> np.ndarray:
    """Replay ``steps`` actions of each episode from its first frame through the env core
    (one batched model call per step); uint8 ``(B, steps + 1, H, W, 3)``, frame 0 the real
    one. Episode ``i``'s noise generator is seeded from ``default_rng(seeds[i])``."""
    from freeaction_gym.envs.core import ImaginationCore
    from freeaction_gym.rewards import ZeroReward

    cfg = replace(cfg, max_episode_steps=max(1, steps))
    core = ImaginationCore(world, cfg, None, ZeroReward(), [], len(episodes))
    for i, (ep, seed) in enumerate(zip(episodes, seeds, strict=True)):
        core.reset_env(i, np.random.default_rng(seed), {"initial_frame": ep.rgb[0]})
    out = np.zeros((len(episodes), steps + 1, *episodes[0].rgb.shape[1:]), np.uint8)
    out[:, 0] = np.stack([ep.rgb[0] for ep in episodes])
    for t in range(steps):
        actions = np.stack([np.clip(ep.action[t], -1.0, 1.0) for ep in episodes])
        out[:, t + 1] = core.step(actions[:, None].astype(np.float32)).frames[:, 0]
    return out


def imagine_dataset(args: ImagineArgs) -> dict[str, Any]:
    """Write the imagined copy of ``args.splits`` of ``args.data``; returns a summary."""
    from freeaction_gym.utils.threads import configure_threads

    configure_threads()
    require_at_least(1, samples=args.samples, batch_size=args.batch_size)
    src, out = Path(args.data), Path(args.out)
    meta = read_meta(src)
    world, cfg = _load(args)
    make_output_dir(out)
    for name in ("stats.json",):
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    write_json_atomic(
        out / "meta.json",
        {
            **meta,
            "imagined": {
                "source": str(src),
                "preset": args.preset,
                "model": str(cfg.model),
                "sampling": cfg.sampling,
                "samples": args.samples,
                "max_actions": args.max_actions,
                "seed": args.seed,
            },
        },
    )
    t0, written = time.time(), 0
    for split in args.splits:
        paths = list_episodes(src, split, args.tasks)
        jobs = [(p, s) for s in range(args.samples) for p in paths]
        bar = tqdm(total=len(jobs), desc=f"imagine {split}", unit="ep", mininterval=5)
        counters: dict[str, int] = {}
        for start in range(0, len(jobs), args.batch_size):
            chunk = jobs[start : start + args.batch_size]
            eps = [load_episode(p, load_depth=False, action_dim=None) for p, _ in chunk]
            steps = min(ep.num_actions for ep in eps)
            if args.max_actions is not None:
                steps = min(steps, args.max_actions)
            seeds = [
                args.seed + 1_000_003 * s + ep.seed for ep, (_, s) in zip(eps, chunk, strict=True)
            ]
            frames = imagine_batch(world, cfg, eps, seeds, steps)
            for ep, (path, s), rgb in zip(eps, chunk, frames, strict=True):
                task = task_of_path(path)
                k = counters[task] = counters.get(task, -1) + 1
                write_episode(
                    episode_path(out, split, task, k),
                    {
                        "rgb": rgb,
                        "action": ep.action[:steps],
                        "reward": ep.reward[:steps],
                        "success": ep.success[:steps],
                        "layout": np.int64(ep.layout),
                        "seed": np.int64(ep.seed),
                        "task": np.str_(task),
                        "sample": np.int64(s),
                        "source": np.str_(Path(path).name),
                    },
                )
                written += 1
            bar.update(len(chunk))
        bar.close()
    return {"episodes": written, "minutes": (time.time() - t0) / 60, "out": str(out)}


def parse_args(argv: list[str] | None = None) -> ImagineArgs:
    from freeaction_gym.utils.args import parse_assignments

    d = ImagineArgs()
    p = argparse.ArgumentParser(prog="freeaction imagine", description=__doc__.split("\n")[0])
    p.add_argument("--data", default=d.data, help="source dataset root")
    p.add_argument("--out", default=d.out, help="destination root")
    p.add_argument("--preset", default=d.preset, help="env preset (model + sampler)")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="K=V", help="preset overrides")
    p.add_argument("--splits", nargs="+", default=d.splits)
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--samples", type=int, default=d.samples)
    p.add_argument("--max-actions", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    a = p.parse_args(argv)
    return ImagineArgs(
        data=a.data,
        out=a.out,
        preset=a.preset,
        env_kwargs=parse_assignments(a.env_kwargs),
        splits=a.splits,
        tasks=a.tasks,
        samples=a.samples,
        max_actions=a.max_actions,
        batch_size=a.batch_size,
        seed=a.seed,
    )


def main(argv: list[str] | None = None) -> int:
    summary = imagine_dataset(parse_args(argv))
    print(json.dumps(summary, indent=2))
    return 0
