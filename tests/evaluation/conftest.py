"""A tiny dataset + trained world model shared by the evaluation tests (built once per session).

The dataset is synthetic (a square "gripper" that moves by each action's xy on a fixed
background, in the on-disk episode format with stats.json), so it needs no MuJoCo and
writes in well under a second; the model is ``configs/debug.yaml`` trained for a few steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freeaction_gym.data.episodes import FORMAT_VERSION, write_episode, write_json_atomic

REPO = Path(__file__).resolve().parents[2]


def write_synthetic_dataset(
    root: Path, episodes: dict[str, int], actions: int = 20, size: int = 64, seed: int = 0
) -> Path:
    """Episodes of a 6x6 square moved by 3 px per unit of action xy (clipped to the frame)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    background = np.stack([xx * 2, yy * 2, np.full_like(xx, 90)], -1).astype(np.uint8)
    write_json_atomic(root / "meta.json", {"format_version": FORMAT_VERSION, "generator": "test"})
    for split, count in episodes.items():
        for i in range(count):
            a = rng.uniform(-1, 1, (actions, 4)).astype(np.float32)
            pos = np.empty((actions + 1, 2))
            pos[0] = rng.uniform(10, size - 16, 2)
            for t in range(actions):
                pos[t + 1] = np.clip(pos[t] + 3 * a[t, :2], 0, size - 6)
            rgb = np.repeat(background[None], actions + 1, axis=0)
            for t, (x, y) in enumerate(pos.astype(int)):
                rgb[t, y : y + 6, x : x + 6] = (230, 30, 30)
            write_episode(
                root / split / f"synth-v0_{i:05d}.npz",
                {
                    "rgb": rgb,
                    "action": a,
                    "reward": np.zeros(actions, np.float32),
                    "success": np.zeros(actions, bool),
                    "layout": np.array(i),
                    "seed": np.array(seed + i),
                    "task": np.array("synth-v0"),
                },
            )
    from freeaction_gym.data.stats import compute_stats

    compute_stats(root)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Synthetic dataset: 3 train / 2 val / 2 test episodes of 20 actions, 64x64."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("tiny_data"), {"train": 3, "val": 2, "test": 2}
    )


@pytest.fixture(scope="session")
def tiny_world_model(tiny_dataset, tmp_path_factory) -> Path:
    """Directory of a ``configs/debug.yaml`` world model trained 10 steps on tiny_dataset."""
    from freeaction_gym.training.config import load_config
    from freeaction_gym.training.train_dit import train_dit

    run = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config(
        REPO / "configs" / "debug.yaml",
        [
            f"data.root={tiny_dataset}",
            f"loop.output={run}",
            "optim.steps=10",
            "loop.eval_every=0",
            "loop.checkpoint_every=10",
        ],
    )
    return train_dit(cfg, resume=False)
