"""A tiny dataset + trained world model shared by the evaluation tests (built once per session).

The dataset is synthetic (a square "gripper" that moves by each action's xy on a fixed
background, in the on-disk episode format with stats.json), so it needs no MuJoCo and
writes in well under a second; the model is ``configs/debug.yaml`` trained for a few steps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from freeaction_gym.data.episodes import (
    FORMAT_VERSION,
    list_episodes,
    load_episode,
    read_meta,
    write_episode,
    write_json_atomic,
)

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


def write_state_dataset(
    root: Path, episodes: dict[str, int], actions: int = 20, size: int = 32, seed: int = 0
) -> Path:
    """Episodes with per-frame ``state`` (``metaworld_gen.STATE_NAMES`` layout) whose frames
    show it: a 4x4 "hand" moved by 2 px per unit of action xy, coloured by the gripper
    opening ``(a_3 + 1) / 2`` (red closed -> yellow open), and a 3x3 blue "object" that
    drifts by up to 1 px per frame.
    1 px = 1 cm: hand xyz = (x, y, 10) cm, object xyz = (x, y, 2) cm."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    background = np.stack([xx * 4, yy * 4, np.full_like(xx, 90)], -1).astype(np.uint8)
    write_json_atomic(root / "meta.json", {"format_version": FORMAT_VERSION, "generator": "test"})
    for split, count in episodes.items():
        for i in range(count):
            a = rng.uniform(-1, 1, (actions, 4)).astype(np.float32)
            hand = np.empty((actions + 1, 2))
            hand[0] = rng.uniform(4, size - 8, 2)
            for t in range(actions):
                hand[t + 1] = np.clip(hand[t] + 2 * a[t, :2], 0, size - 4)
            grip = np.concatenate([[0.5], (a[:, 3] + 1) / 2])  # (T+1,)
            drift = rng.integers(-1, 2, (actions + 1, 2))
            obj = np.clip(rng.integers(0, size - 3, 2) + np.cumsum(drift, 0), 0, size - 3)
            rgb = np.repeat(background[None], actions + 1, axis=0)
            for t, ((x, y), (u, v)) in enumerate(zip(hand.astype(int), obj, strict=True)):
                rgb[t, v : v + 3, u : u + 3] = (20, 40, 240)
                rgb[t, y : y + 4, x : x + 4] = (230, int(30 + 200 * grip[t]), 30)
            state = np.zeros((actions + 1, 7), np.float32)
            state[:, :2] = hand.astype(int) * 0.01
            state[:, 2] = 0.1
            state[:, 3] = grip
            state[:, 4:6] = obj * 0.01
            state[:, 6] = 0.02
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
                    "state": state,
                },
            )
    from freeaction_gym.data.stats import compute_stats

    compute_stats(root)
    return root


@pytest.fixture(scope="session")
def state_dataset(tmp_path_factory) -> Path:
    """32x32 synthetic dataset with per-frame state: 48 train / 2 val / 3 test episodes of
    30 actions (the frame size of the session's tiny world model)."""
    return write_state_dataset(
        tmp_path_factory.mktemp("state_data"), {"train": 48, "val": 2, "test": 3}, actions=30
    )


def add_arm_prompts(root: Path, resolution: int = 32) -> Path:
    """What visual action prompts need, added to a :func:`write_state_dataset` dataset: the
    workspace camera in meta.json and per-frame arm keypoints (a made-up arm whose hand
    follows the state)."""
    from freeaction_gym.data.metaworld_gen import CAMERA_PRESETS, KEYPOINT_BODIES

    cam = CAMERA_PRESETS["workspace"]
    meta = read_meta(root) | {
        "camera": {"lookat": list(cam.lookat), "azimuth": cam.azimuth,
                   "elevation": cam.elevation, "distance": cam.distance},
        "config": {"resolution": resolution},
    }  # fmt: skip
    write_json_atomic(root / "meta.json", meta)
    for split in ("train", "val", "test"):
        for path in list_episodes(root, split) if (root / split).is_dir() else []:
            ep = load_episode(path, load_depth=False)
            hand = np.stack(
                [ep.state[:, 0] - 0.15, 0.6 + ep.state[:, 1], 0.15 + 0 * ep.state[:, 2]], 1
            )
            shoulder = np.array([0.0, 0.35, 0.45])
            k = np.linspace(0, 1, len(KEYPOINT_BODIES))[None, :, None]  # (1, K, 1)
            keypoints = (1 - k) * shoulder + k * hand[:, None]  # (T+1, K, 3)
            arrays = {
                "rgb": ep.rgb, "action": ep.action, "reward": ep.reward, "success": ep.success,
                "layout": np.array(ep.layout), "seed": np.array(ep.seed), "task": np.array(ep.task),
                "state": ep.state, "keypoints": keypoints.astype(np.float32),
            }  # fmt: skip
            write_episode(path, arrays)
    return root


@pytest.fixture(scope="module")
def prompt_dataset(state_dataset, tmp_path_factory) -> Path:
    """A copy of the state dataset with the workspace camera and arm keypoints
    (:func:`add_arm_prompts`): prompt models train and are scored on it."""
    root = tmp_path_factory.mktemp("prompt_data") / "data"
    shutil.copytree(state_dataset, root, ignore=shutil.ignore_patterns(".cache"))
    return add_arm_prompts(root)


@pytest.fixture(scope="module")
def transfer_prompt_dataset(tmp_path_factory) -> Path:
    """A test-only prompt dataset (as ``freeaction data metaworld --train 0 --val 0`` makes)
    of other episodes than prompt_dataset's: 3 test episodes of 30 actions."""
    root = tmp_path_factory.mktemp("transfer") / "data"
    root.mkdir()
    write_state_dataset(root, {"train": 1, "test": 3}, actions=30, seed=5)
    shutil.rmtree(root / "train")
    (root / "stats.json").unlink()
    return add_arm_prompts(root)


@pytest.fixture(scope="session")
def tiny_world_two_context(tmp_path_factory) -> Path:
    """Directory of a randomly initialised pixel-space world model with 2 context frames
    (32x32, 4 frames: chunk 2), its adaLN / final layer perturbed so outputs vary."""
    import torch

    from freeaction_gym.models import VideoDiT, dit_config
    from freeaction_gym.world_model import DiffusionConfig, PixelCodec, WorldModel

    torch.manual_seed(0)
    cfg = dit_config(
        "tiny", input_size=(32, 32), in_channels=3, patch_size=8, num_frames=4, action_dim=4,
        num_context_frames=2,
    )  # fmt: skip
    dit = VideoDiT(cfg)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    stats = {"mu_act": {"mean_step_l2": {"raw": {"1": 0.9}}}, "action_mean": [0.0] * 4,
             "action_std": [1.0] * 4}  # fmt: skip
    world = WorldModel(
        dit, PixelCodec(), DiffusionConfig(prediction_type="sample", target="delta"), stats
    )
    return world.save_pretrained(tmp_path_factory.mktemp("world_n2"))
