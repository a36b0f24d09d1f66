"""Where a world model's error sits: moving vs static pixels, and small-change zeroing.

Short rollouts (1 context frame + K actions) on held-out clips; "moving" pixels are those
whose true frame differs from the context by > 10 (uint8) in any channel. Also tries zeroing
every predicted change smaller than a threshold (is the static-region error small noise?).

    python experiments/error_regions.py --split val --num-clips 96
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from freeaction_gym.evaluation import psnr_video, ssim_video  # noqa: E402
from freeaction_gym.evaluation.rollout import (  # noqa: E402
    collect_clips,
    encode_frames,
    max_chunk,
    rollout_autoregressive,
)
from freeaction_gym.utils.args import parse_args  # noqa: E402
from freeaction_gym.world_model import load_world_model  # noqa: E402


@dataclass
class Args:
    """Moving- vs static-region error of short rollouts."""

    model: str = "bundled:metaworld_default"
    data: str = "data/metaworld_default"
    split: str = "val"
    num_clips: int = 96
    steps: int = 2
    """DDIM steps (no CFG, no truncation)."""
    seed: int = 0


def region_mse(pred: np.ndarray, truth: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    e = ((pred[:, 1:].astype(np.float32) - truth[:, 1:].astype(np.float32)) ** 2).mean(-1)
    return float(e[moving].mean()), float(e[~moving].mean())


def main() -> None:
    args = parse_args(Args)
    world = load_world_model(args.model)
    k = max_chunk(world)
    clips = collect_clips(args.data, args.split, k + 1, args.num_clips, seed=0)
    z = encode_frames(world, clips.frames)
    plain = world.default_sampling(
        k, num_steps=args.steps, guidance={"mode": "none"}, truncation={"mode": "none"}
    )
    g = torch.Generator().manual_seed(args.seed)
    out = rollout_autoregressive(world, z[:, :1], clips.actions, plain, k, g)
    truth = clips.frames
    moving = np.abs(truth[:, 1:].astype(int) - truth[:, :1].astype(int)).max(-1) > 10
    copy = np.repeat(truth[:, :1], truth.shape[1], 1)
    print(
        f"{len(truth)} clips of {truth.shape[1]} frames, {100 * moving.mean():.1f}% moving pixels"
    )
    print("| prediction | MSE moving | MSE static | PSNR | SSIM |\n|---|---|---|---|---|")
    rows = {"copy context": copy, "model": world.decode(out).numpy()}
    delta = out[:, 1:] - out[:, :1]
    for th in (0.01, 0.05, 0.1):
        kept = torch.where(delta.abs() > th, delta, torch.zeros_like(delta))
        rows[f"model, |change| < {th} zeroed"] = world.decode(
            torch.cat([out[:, :1], out[:, :1] + kept], 1)
        ).numpy()
    for name, pred in rows.items():
        mv, st = region_mse(pred, truth, moving)
        psnr = np.minimum(psnr_video(pred, truth), 100).mean()
        print(
            f"| {name} | {mv:.0f} | {st:.1f} | {psnr:.2f} | {ssim_video(pred, truth).mean():.3f} |"
        )


if __name__ == "__main__":
    main()
