"""Where does an AVID adapter trust the frozen model? Its mask over a rollout.

The AVID output is ``m * pre + (1 - m) * adapt`` (:mod:`~freeaction_gym.models.avid`): m near
1 keeps the frozen action-free model's prediction, m near 0 hands the pixel to the adapter.
The seed's claim: the mask opens up (m drops) on the robot arm, the part the actions move,
keeps the pretrained model on the static background, and is lower at high noise.

:func:`collect_masks` rolls clips out with the model's ``mask_history`` switched on and
files every denoiser call's mask by chunk and sampling step (:class:`MaskTrace`);
:func:`mask_statistics` splits the masks into the pixels the real video moves (the arm and
what it pushes, :func:`~freeaction_gym.evaluation.fidelity.motion_mask` between consecutive
real frames) and the static rest, per clip and per diffusion step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from freeaction_gym.evaluation.fidelity import motion_mask
from freeaction_gym.evaluation.replay import imagine
from freeaction_gym.evaluation.rollout import chunk_sizes, max_chunk
from freeaction_gym.world_model.model import SamplingConfig, WorldModel


@dataclass
class MaskTrace:
    """The masks of a rollout of B clips over T predicted frames with S sampling steps."""

    masks: np.ndarray
    """float32 (S, B, T, H, W): step s's mask on every predicted frame (step 0 = the
    noisiest, S - 1 = the last, whose output is the frame), at the frames' resolution."""
    frames: np.ndarray
    """uint8 (B, n + T, H, W, 3): the context and the imagined frames of the rollout."""
    num_context: int


def collect_masks(
    world: WorldModel,
    frames: np.ndarray,
    actions: torch.Tensor,
    sampling: SamplingConfig,
    seed: int = 0,
) -> MaskTrace:
    """Roll out clips uint8 (B, F, H, W, 3) from their context under ``actions``
    (B, F - 1, A) in one batch and keep the AVID model's mask of every denoiser call.
    ``sampling`` must make one call per step (no classifier-free guidance)."""
    dit = world.dit
    if not hasattr(dit, "mask_history"):
        raise ValueError(f"{type(dit).__name__} has no mask: collect_masks needs an AVIDModel")
    if sampling.guidance.mode != "none":
        raise ValueError("collect_masks needs guidance mode 'none' (one call per step)")
    n = world.num_context
    dit.mask_history = []
    try:
        run = imagine(world, frames, actions, sampling, None, seed, len(frames), "masks")
        history = dit.mask_history
    finally:
        dit.mask_history = None
    sizes = chunk_sizes(frames.shape[1] - n, max_chunk(world))
    steps = len(history) // len(sizes)
    if not history or steps * len(sizes) != len(history):
        raise ValueError(
            f"{len(history)} masks for {len(sizes)} chunks: not one mask per sampling step "
            "(a mode without a mask, or a sampler with several calls per step)"
        )
    per_chunk = [  # (S, B, k, h, w) the predicted frames' masks of each chunk
        torch.stack([m[:, n:, 0] for m in history[c * steps : (c + 1) * steps]])
        for c in range(len(sizes))
    ]
    masks = torch.cat(per_chunk, dim=2)  # (S, B, T, h, w)
    size = frames.shape[2:4]
    if tuple(masks.shape[-2:]) != tuple(size):  # a latent grid: nearest to the frame size
        masks = F.interpolate(masks.flatten(0, 2)[:, None], size=size, mode="nearest")[:, 0]
        masks = masks.unflatten(0, (steps, len(frames), -1))
    return MaskTrace(masks.float().numpy(), run.frames, n)


def moving_regions(real: np.ndarray, threshold: float = 10, dilate: int = 1) -> np.ndarray:
    """bool (B, F - 1, H, W): pixels of real frame f (f >= 1) that differ from frame f - 1
    (:func:`motion_mask`), i.e. what the actions move."""
    b, f = real.shape[:2]
    cur = real[:, 1:].reshape(-1, *real.shape[2:])
    prev = real[:, :-1].reshape(-1, *real.shape[2:])
    return motion_mask(cur, prev, threshold, dilate).reshape(b, f - 1, *real.shape[2:4])


def mask_statistics(trace: MaskTrace, real: np.ndarray, threshold: float = 10) -> dict:
    """Mask means of a :class:`MaskTrace` against the real clips uint8 (B, n + T, H, W, 3):
    ``moving`` / ``static`` (B,) the last step's mean mask over each clip's moving / static
    pixels (nan where a clip has none), ``per_step`` / ``per_step_moving`` /
    ``per_step_static`` (S,) the mean mask of every sampling step (noisiest first) over all
    pixels / the moving ones / the static ones, pooled over clips."""
    n = trace.num_context
    moving = moving_regions(real, threshold)[:, n - 1 :]  # (B, T, H, W): predicted frames
    m = trace.masks  # (S, B, T, H, W)
    if m.shape[1:] != moving.shape:
        raise ValueError(f"masks {m.shape[1:]} and real clips' frames {moving.shape} differ")

    def region_mean(x: np.ndarray, where: np.ndarray, axes) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (x * where).sum(axes) / where.sum(axes)

    last = m[-1]  # (B, T, H, W)
    return {
        "moving": region_mean(last, moving, (1, 2, 3)),
        "static": region_mean(last, ~moving, (1, 2, 3)),
        "per_step": m.mean((1, 2, 3, 4)),
        "per_step_moving": region_mean(m, moving[None], (1, 2, 3, 4)),
        "per_step_static": region_mean(m, ~moving[None], (1, 2, 3, 4)),
    }


def save_mask_rollout(
    path: str | Path, trace: MaskTrace, real: np.ndarray, clip: int = 0, title: str = ""
) -> Path:
    """PNG of one clip over its predicted frames: the real frames, the imagined ones and
    the last step's mask (0 black = the adapter, 1 white = the frozen model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, t = trace.num_context, trace.masks.shape[2]
    rows = [("real", real[clip, n:]), ("imagined", trace.frames[clip, n:]), ("mask", None)]
    fig, axes = plt.subplots(3, t, figsize=(1.1 * t + 0.8, 3.6), squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for k in range(t):
            ax = axes[r, k]
            if frames is None:
                ax.imshow(trace.masks[-1, clip, k], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(frames[k], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {k + 1}", fontsize=7)
            if k == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(
        title or "AVID mask over a rollout (white: frozen model, black: adapter)", fontsize=8
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_mask_per_step(path: str | Path, curves: dict[str, dict]) -> Path:
    """PNG of the mean mask per sampling step (noisiest first): for every ``name`` a solid
    line over moving pixels and a dashed one over static pixels (``mask_statistics``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, (name, stats) in enumerate(curves.items()):
        x = np.arange(1, len(stats["per_step"]) + 1)
        color = f"C{i % 10}"
        ax.plot(x, stats["per_step_moving"], "-o", color=color, ms=3, label=f"{name}, moving")
        ax.plot(x, stats["per_step_static"], "--", color=color, label=f"{name}, static")
    ax.set_xlabel("sampling step (1 = noisiest)")
    ax.set_ylabel("mean mask m (1 = frozen model)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
