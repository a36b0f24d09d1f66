"""Markdown table cells of the studies' interval dicts.

A cell dict is :func:`~freeaction_gym.evaluation.replay.ci_cell`'s ``{mean, lo, hi, n}`` (a
95% interval over episodes or clips), :func:`~freeaction_gym.evaluation.replay.diff_cell`'s
``{mean, lo, hi, p}`` (a paired difference with its t-test p) or a ratio's ``{mean, lo, hi}``
(:func:`~freeaction_gym.evaluation.paired_stats.paired_ratio_ci`). A non-finite mean is
shown as ``-``.
"""

from __future__ import annotations

import numpy as np


def format_half_width(cell: dict, digits: int) -> str:
    """``mean ± half-width`` of a ci_cell / diff_cell (a diff_cell's mean signed)."""
    m, lo, hi = cell["mean"], cell["lo"], cell["hi"]
    if not np.isfinite(m):
        return "-"
    half = "" if not np.isfinite(hi - lo) or hi == lo else f" ± {(hi - lo) / 2:.{digits}f}"
    sign = "+" if "p" in cell and m >= 0 else ""
    return f"{sign}{m:.{digits}f}{half}"


def format_half_width_p(cell: dict, digits: int) -> str:
    """:func:`format_half_width`, with the paired p if any."""
    text = format_half_width(cell, digits)
    return text + (f" (p={cell['p']:.2g})" if "p" in cell and np.isfinite(cell["p"]) else "")


def format_ratio(cell: dict) -> str:
    """``mean x [lo, hi]`` of a ratio to a baseline."""
    if not np.isfinite(cell["mean"]):
        return "-"
    return f"{cell['mean']:.2f}x [{cell['lo']:.2f}, {cell['hi']:.2f}]"


def format_interval(cell: dict, digits: int = 2) -> str:
    """``mean [lo, hi]`` of a ci_cell."""
    if not np.isfinite(cell["mean"]):
        return "-"
    return f"{cell['mean']:.{digits}f} [{cell['lo']:.{digits}f}, {cell['hi']:.{digits}f}]"


def format_paired(cell: dict | None, digits: int = 2) -> str:
    """``+mean [+lo, +hi] (p=...)`` of a diff_cell (``-`` for None)."""
    if cell is None or not np.isfinite(cell["mean"]):
        return "-"
    lo, hi, p = cell["lo"], cell["hi"], cell["p"]
    return f"{cell['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] (p={p:.2g})"
