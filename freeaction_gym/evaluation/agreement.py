"""Does the imagined world rank policies like the real one? Correlations with bootstrap CIs.

Inputs are per-episode scores of P policies on the same N scenes in both worlds,
``imagined`` and ``real`` float (P, N) (success 0/1 or return), and the scenes' groups
``groups`` (N,) (the task). A *point* is one (policy, group) pair: its mean score over the
group's scenes in each world. The agreement of the two worlds is the Pearson and Spearman
correlation over all points (scipy.stats). Confidence intervals resample scenes with
replacement within each group - the same resample for every policy and both worlds, since
the episodes of one scene are paired - and take percentiles of the recomputed statistic.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def point_means(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, list]:
    """(P, N) scores -> (P, G) means per group and the sorted group labels."""
    labels = sorted(set(np.asarray(groups).tolist()))
    g = np.asarray(groups)
    return np.stack([scores[:, g == lab].mean(axis=1) for lab in labels], axis=1), labels


def correlations(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson r and Spearman rho of two equal-length 1-D arrays (NaN when a side is
    constant, where neither is defined)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"need two equal-length arrays of >= 3 points, got {x.size}, {y.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {
        "pearson": float(stats.pearsonr(x, y)[0]),
        "spearman": float(stats.spearmanr(x, y)[0]),
    }


def resample_indices(groups: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """int (n_boot, N): scene indices drawn with replacement within each group."""
    g = np.asarray(groups)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, g.size), np.int64)
    for lab in sorted(set(g.tolist())):
        members = np.flatnonzero(g == lab)
        out[:, members] = members[rng.integers(0, members.size, (n_boot, members.size))]
    return out


def agreement(
    imagined: np.ndarray,
    real: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Pearson/Spearman over the (policy, group) points with percentile-bootstrap CIs, plus
    the mean absolute gap between the worlds' point means and the per-episode agreement
    rate (fraction of episodes both worlds score alike; for 0/1 scores)."""
    imagined, real = np.asarray(imagined, np.float64), np.asarray(real, np.float64)
    if imagined.shape != real.shape or imagined.ndim != 2:
        raise ValueError(f"need (P, N) scores of equal shape, got {imagined.shape}, {real.shape}")
    xi, _ = point_means(imagined, groups)
    xr, _ = point_means(real, groups)
    out = correlations(xi, xr)
    boots: dict[str, list[float]] = {"pearson": [], "spearman": []}
    for idx in resample_indices(groups, n_boot, seed):
        bi, _ = point_means(imagined[:, idx], groups)
        br, _ = point_means(real[:, idx], groups)
        for k, v in correlations(bi, br).items():
            boots[k].append(v)
    alpha = (1 - level) / 2
    for k, vals in boots.items():
        v = np.asarray(vals)
        v = v[np.isfinite(v)]
        lo, hi = np.quantile(v, [alpha, 1 - alpha]) if v.size else (np.nan, np.nan)
        out[f"{k}_lo"], out[f"{k}_hi"] = float(lo), float(hi)
    out["mean_abs_gap"] = float(np.abs(xi - xr).mean())
    out["episode_agreement"] = float((imagined == real).mean())
    out["points"] = int(xi.size)
    return out
