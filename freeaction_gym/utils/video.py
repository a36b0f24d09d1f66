"""Comparison videos: episodes side by side (columns) and stacked (rows)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def comparison_grid(columns: Sequence[np.ndarray], scale: int = 3) -> np.ndarray:
    """``columns`` of uint8 (N, T, H, W, 3) (same shape) -> uint8 (T, N*H*s, C*W*s, 3):
    row n shows episode n of every column, left to right, upscaled ``scale`` x."""
    if not columns:
        raise ValueError("comparison_grid needs at least one column")
    shape = columns[0].shape
    if any(c.shape != shape for c in columns) or len(shape) != 5:
        raise ValueError(
            f"columns must share one (N, T, H, W, 3) shape, got {[c.shape for c in columns]}"
        )
    rows = np.concatenate(columns, axis=3)  # (N, T, H, C*W, 3)
    grid = np.concatenate(list(rows), axis=1)  # (T, N*H, C*W, 3)
    return grid.repeat(scale, axis=1).repeat(scale, axis=2)


def write_comparison(
    path: str | Path, columns: Sequence[np.ndarray], scale: int = 3, fps: int = 8
) -> None:
    """Write :func:`comparison_grid` of ``columns`` as an mp4."""
    import imageio.v2 as imageio

    imageio.mimwrite(path, list(comparison_grid(columns, scale)), fps=fps, macro_block_size=1)
