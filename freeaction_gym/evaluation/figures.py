"""Strip figures: real vs imagined frames at a few rollout steps, one labelled row each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def frames_at_steps(video: np.ndarray, num_context: int, steps: Sequence[int]) -> np.ndarray:
    """Frames of ``video`` uint8 (N, F, H, W, 3) at rollout ``steps`` (step 0 = the last
    context frame, step k = frame ``num_context - 1 + k``) -> (N, len(steps), H, W, 3)."""
    idx = [num_context - 1 + k for k in steps]
    if max(idx) >= video.shape[1] or min(steps) < 0:
        raise ValueError(f"steps {tuple(steps)} outside 0..{video.shape[1] - num_context}")
    return video[:, idx]


def save_strip(
    path: str | Path,
    rows: Sequence[tuple[str, np.ndarray]],
    steps: Sequence[int],
    title: str | None = None,
    gap_every: int | None = None,
) -> Path:
    """PNG of a grid: one row per ``(label, frames)`` with frames uint8 (S, H, W, 3) at
    ``steps`` (column titles "step k"); ``gap_every`` rows a thin gap separates groups
    (e.g. real + each model for one episode). Frames are shown pixel for pixel (nearest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows or any(f.shape[0] != len(steps) for _, f in rows):
        raise ValueError(f"every row needs {len(steps)} frames (one per step)")
    n_rows, n_cols = len(rows), len(steps)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.25 * n_cols + 1.1, 1.25 * n_rows + (0.35 if title else 0.1)),
        squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.06},
    )  # fmt: skip
    for r, (label, frames) in enumerate(rows):
        for c, step in enumerate(steps):
            ax = axes[r, c]
            ax.imshow(frames[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {step}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
            if gap_every and r % gap_every == gap_every - 1 and r < n_rows - 1:
                ax.spines["bottom"].set_linewidth(2.5)
    if title:
        fig.suptitle(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
