"""Means, 95% intervals (scipy's t distribution, percentile bootstrap) and paired
differences for per-clip / per-episode scores."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi) of the finite entries of 1-D ``x``: Student-t interval of the mean.
    One finite value gives a zero-width interval; none gives NaNs."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (float("nan"),) * 3
    m = float(x.mean())
    if x.size == 1:
        return m, m, m
    half = float(stats.sem(x) * stats.t.ppf(0.5 + level / 2, x.size - 1))
    return m, m - half, m + half


def paired_diff_ci(
    x: np.ndarray, base: np.ndarray, level: float = 0.95
) -> tuple[float, float, float, float]:
    """(mean diff, lo, hi, p) of ``x - base`` over pairs where both are finite; ``p`` is the
    two-sided paired t-test (scipy.stats.ttest_rel), NaN if undefined."""
    x, base = np.asarray(x, np.float64), np.asarray(base, np.float64)
    if x.shape != base.shape:
        raise ValueError(f"paired scores need equal shapes, got {x.shape} and {base.shape}")
    ok = np.isfinite(x) & np.isfinite(base)
    d = x[ok] - base[ok]
    m, lo, hi = mean_ci(d, level)
    if d.size < 2 or np.all(d == d[0]):
        return m, lo, hi, float("nan")
    return m, lo, hi, float(stats.ttest_rel(x[ok], base[ok]).pvalue)


def bootstrap_ci(
    values, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``: resample with
    replacement ``n_resamples`` times, take the (1-c)/2 and (1+c)/2 quantiles of the means."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            x[rng.integers(0, x.size, (min(1000, n_resamples - i), x.size))].mean(axis=1)
            for i in range(0, n_resamples, 1000)
        ]
    )
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_ratio_ci(
    x: np.ndarray, base: np.ndarray, level: float = 0.95, n_resamples: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean(x) / mean(base), lo, hi) over pairs where both are finite, e.g. "the prompt
    model's error is 0.45x the action model's": a percentile bootstrap interval that
    resamples the pairs together (resamples whose base mean is 0 are dropped). NaNs when
    fewer than 2 pairs remain or the base mean is 0."""
    x, base = np.asarray(x, np.float64), np.asarray(base, np.float64)
    if x.shape != base.shape:
        raise ValueError(f"paired scores need equal shapes, got {x.shape} and {base.shape}")
    ok = np.isfinite(x) & np.isfinite(base)
    x, base = x[ok], base[ok]
    if x.size < 2 or base.mean() == 0:
        return (float("nan"),) * 3
    idx = np.random.default_rng(seed).integers(0, x.size, (n_resamples, x.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = x[idx].mean(axis=1) / base[idx].mean(axis=1)  # (n_resamples,)
    ratios = ratios[np.isfinite(ratios)]
    ratio = float(x.mean() / base.mean())
    if ratios.size == 0:
        return ratio, float("nan"), float("nan")
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return ratio, float(lo), float(hi)
