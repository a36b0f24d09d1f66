"""Imagined-vs-real agreement statistics: values against scipy, bootstrap structure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from freeaction_gym.evaluation.agreement import (
    agreement,
    correlations,
    point_means,
    resample_indices,
)


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = 0.5 * x + rng.normal(scale=0.5, size=12)
    c = correlations(x, y)
    assert c["pearson"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert c["spearman"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert np.isnan(correlations(np.ones(4), np.arange(4))["pearson"])
    with pytest.raises(ValueError, match=">= 3 points"):
        correlations([1, 2], [1, 2])


def test_point_means_per_group():
    scores = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], float)
    groups = np.array(["b", "a", "b", "a"])
    means, labels = point_means(scores, groups)
    assert labels == ["a", "b"]
    np.testing.assert_allclose(means, [[0.5, 1.0], [0.5, 0.0]])


def test_resample_indices_stay_within_groups():
    groups = np.array(["a"] * 5 + ["b"] * 3)
    idx = resample_indices(groups, 200, seed=1)
    assert idx.shape == (200, 8)
    assert (idx[:, :5] < 5).all() and (idx[:, 5:] >= 5).all()
    np.testing.assert_array_equal(idx, resample_indices(groups, 200, seed=1))
    assert len(np.unique(idx[:, :5])) == 5  # every scene gets drawn somewhere


def test_agreement_identical_worlds_and_noisy_ones():
    rng = np.random.default_rng(2)
    quality = np.linspace(0.05, 0.95, 6)[:, None]  # 6 policies
    groups = np.array(["reach"] * 20 + ["push"] * 20)
    real = (rng.random((6, 40)) < quality).astype(float)
    same = agreement(real, real.copy(), groups, n_boot=300)
    assert same["pearson"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    assert same["mean_abs_gap"] == 0.0 and same["episode_agreement"] == 1.0
    assert same["points"] == 12
    flipped = 1.0 - real  # imagination ranks the policies backwards
    bad = agreement(flipped, real, groups, n_boot=300)
    assert bad["pearson"] == pytest.approx(-1.0)
    noisy = (rng.random((6, 40)) < quality).astype(float)  # same quality, fresh episodes
    ag = agreement(noisy, real, groups, n_boot=500)
    assert 0.5 < ag["pearson"] < 1.0
    assert ag["pearson_lo"] <= ag["pearson"] <= ag["pearson_hi"]
    assert ag["spearman_lo"] <= ag["spearman_hi"]
    with pytest.raises(ValueError, match="equal shape"):
        agreement(real[:, :5], real, groups)
