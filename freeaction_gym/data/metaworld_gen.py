"""MetaWorld episode generator: noisy scripted experts rendered to a small-video dataset.

Each episode is one MetaWorld v3 task in one fixed layout (``metaworld.MT1(task, seed=S)``
gives 50 layouts per seed; the splits use disjoint seeds, ``train`` S=0, ``val`` S=500,
``test`` S=1000, and episode ``i`` uses layout ``i % 50``). A recorded action is held for
``action_repeat`` simulator steps (MetaWorld moves <= 1 cm per step, sub-pixel at 64x64);
the frame after the last repeat is recorded, the reward is summed over the repeats and
success is their maximum.

Actions come from :class:`ExplorationPolicy`: the task's scripted expert plus Gaussian noise
with a per-episode sigma, uniform random actions, held random "perturbation segments" and
sometimes a non-expert gripper behaviour, so the world model sees many actions per state.

Episodes are written in the format of :mod:`freeaction_gym.data.episodes`
(``{root}/meta.json``, ``{root}/{split}/{task}_{index:05d}.npz``, ``{root}/stats.json``)
with these MetaWorld specifics: ``action`` (T, 4) in [-1, 1] is the xyz mocap delta
(x 1 cm per simulator step) and the gripper effort (+1 closes); ``depth`` float16 meters is
clipped at ``depth_clip_m``; ``layout`` indexes ``MT1(task, seed=layout_seed).train_tasks``;
extra scalars ``layout_seed``, ``noise_sigma`` and ``explore_level`` describe the episode.

Generation is deterministic given the config (a re-run writes identical arrays), writes
each file atomically and skips files that already exist, so an interrupted run resumes.

This module is the command line (``freeaction data metaworld``) and the generator's public
names; the work is done in :mod:`~freeaction_gym.data.metaworld_config` (the config,
layouts and seeds), :mod:`~freeaction_gym.data.metaworld_render` (camera presets, the
renderer), :mod:`~freeaction_gym.data.metaworld_env` (envs, robot state),
:mod:`~freeaction_gym.data.metaworld_policies` (the action policies),
:mod:`~freeaction_gym.data.metaworld_episode` (one episode) and
:mod:`~freeaction_gym.data.metaworld_dataset` (a dataset, in worker processes).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from freeaction_gym.data.episodes import FORMAT_VERSION, SPLITS, episode_path
from freeaction_gym.data.metaworld_config import (
    LAYOUTS_PER_SEED,  # noqa: F401  (kept importable from here)
    MetaWorldDataConfig,
    config_from_meta,
    episode_seed,
)
from freeaction_gym.data.metaworld_dataset import generate_dataset
from freeaction_gym.data.metaworld_env import (
    KEYPOINT_BODIES,
    STATE_NAMES,
    make_metaworld_env,
    robot_state,
)
from freeaction_gym.data.metaworld_episode import generate_episode
from freeaction_gym.data.metaworld_policies import ExplorationPolicy, RandomWalkPolicy
from freeaction_gym.data.metaworld_render import (
    CAMERA_PRESETS,
    FLIPPED_CAMERAS,  # noqa: F401  (kept importable from here)
    FreeCamera,
    SceneRenderer,
    headless_gl_defaults,
)


def main_metaworld(argv: list[str] | None = None) -> int:
    """``freeaction data metaworld ROOT [options]``: generate (or resume) a dataset."""
    d = MetaWorldDataConfig()
    p = argparse.ArgumentParser(
        prog="freeaction data metaworld", description=__doc__.split("\n")[0]
    )
    p.add_argument("root", help="output directory (meta.json, train/ val/ test/, stats.json)")
    p.add_argument("--tasks", nargs="+", default=d.tasks, help="MetaWorld v3 task names")
    p.add_argument("--train", type=int, default=d.train_episodes, help="train episodes per task")
    p.add_argument("--val", type=int, default=d.val_episodes, help="val episodes per task")
    p.add_argument("--test", type=int, default=d.test_episodes, help="test episodes per task")
    p.add_argument("--frames", type=int, default=d.frames, help="actions per episode (T+1 frames)")
    p.add_argument(
        "--action-repeat", type=int, default=d.action_repeat, help="sim steps per action"
    )
    p.add_argument("--resolution", type=int, default=d.resolution, help="image size (square)")
    p.add_argument(
        "--camera",
        default=d.camera,
        help=f"preset {sorted(CAMERA_PRESETS)} or a MetaWorld camera (corner2, ...)",
    )
    p.add_argument("--no-depth", action="store_true", help="do not store depth")
    p.add_argument(
        "--demos",
        action="store_true",
        help="clean scripted-expert demonstrations cut shortly after the first success",
    )
    p.add_argument(
        "--stop-after-success",
        type=int,
        default=None,
        help="actions kept after the first success (-1: fixed length; --demos: 2)",
    )
    p.add_argument(
        "--random-walk-prob",
        type=float,
        default=d.random_walk_prob,
        help="per-episode probability of a smooth random-walk episode instead of the expert",
    )
    p.add_argument(
        "--train-layout-seeds",
        type=int,
        default=d.train_layout_seeds,
        help="consecutive MT1 seeds the train split draws layouts from (50 layouts each)",
    )
    p.add_argument(
        "--layout-seeds",
        type=int,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        default=[d.layout_seeds[s] for s in SPLITS],
        help="MT1 layout seed per split (e.g. 0 500 3000 for a set of fresh test layouts)",
    )
    p.add_argument("--seed", type=int, default=d.base_seed, help="base seed of the episode seeds")
    p.add_argument("--workers", type=int, default=2, help="worker processes (1 = in-process)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--stats-only", action="store_true", help="only (re)compute stats.json")
    args = p.parse_args(argv)
    headless_gl_defaults()
    if args.stats_only:
        from freeaction_gym.data.stats import compute_stats

        stats = compute_stats(args.root, write=True)
        print(json.dumps({k: stats[k] for k in ("num_episodes", "per_task")}, indent=2))
        return 0
    extra = {}
    if args.stop_after_success is not None:
        extra["stop_after_success"] = args.stop_after_success
    make = MetaWorldDataConfig.demonstrations if args.demos else MetaWorldDataConfig
    cfg = make(
        **extra,
        tasks=list(args.tasks),
        train_episodes=args.train,
        val_episodes=args.val,
        test_episodes=args.test,
        frames=args.frames,
        action_repeat=args.action_repeat,
        resolution=args.resolution,
        camera=args.camera,
        depth=not args.no_depth,
        base_seed=args.seed,
        random_walk_prob=args.random_walk_prob,
        train_layout_seeds=args.train_layout_seeds,
        layout_seeds=dict(zip(SPLITS, args.layout_seeds, strict=True)),
    )
    summary = generate_dataset(
        args.root, cfg, num_workers=args.workers, progress=not args.no_progress
    )
    print(json.dumps(summary, indent=2))
    return 0


__all__: Sequence[str] = (
    "CAMERA_PRESETS",
    "FORMAT_VERSION",
    "SPLITS",
    "KEYPOINT_BODIES",
    "STATE_NAMES",
    "ExplorationPolicy",
    "RandomWalkPolicy",
    "FreeCamera",
    "MetaWorldDataConfig",
    "SceneRenderer",
    "config_from_meta",
    "episode_path",
    "episode_seed",
    "generate_dataset",
    "generate_episode",
    "main_metaworld",
    "robot_state",
    "make_metaworld_env",
)


if __name__ == "__main__":
    raise SystemExit(main_metaworld())
