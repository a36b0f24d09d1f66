"""Benchmark bookkeeping (freeaction_gym/evaluation/sample_efficiency.py) against
straightforward re-computations with numpy/scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from freeaction_gym.evaluation.sample_efficiency import (
    EvalRecord,
    curve_points,
    load_records,
    markdown_table,
    paired_difference,
    plot_curves,
    summarize,
)


def record(method, seed, steps, success, returns, scenes=None, seconds=None) -> EvalRecord:
    scenes = scenes if scenes is not None else list(range(len(success)))
    return EvalRecord(method, "reach-v3", seed, steps, scenes, success, returns, seconds, 1.0, "p")


def test_curve_points():
    assert curve_points([10_000, 30_000], 5_000) == [5_000, 10_000, 15_000, 20_000, 25_000, 30_000]
    assert curve_points([12, 24], 0) == [12, 24]
    assert curve_points([7, 10], 4) == [4, 7, 8, 10]


def test_summary_pools_episodes_and_reports_seed_intervals(tmp_path):
    rng = np.random.default_rng(0)
    recs = [
        record(
            "dyna",
            s,
            100,
            list(rng.random(5) < 0.5),
            list(rng.normal(10 * s, 1, 5)),
            seconds=60.0 * (s + 1),
        )
        for s in range(3)
    ]
    for i, r in enumerate(recs):
        r.save(tmp_path / f"r{i}.json")
    loaded = load_records(tmp_path)
    assert [r.returns for r in loaded] == [r.returns for r in recs]  # JSON round trip
    cell = summarize(loaded, n_boot=500)["dyna|reach-v3|100"]
    pooled = np.concatenate([r.returns for r in recs])
    per_seed = [np.mean(r.returns) for r in recs]
    assert cell["return"] == pytest.approx(pooled.mean())
    assert cell["return_per_seed"] == pytest.approx(per_seed)
    half = stats.sem(per_seed) * stats.t.ppf(0.975, 2)
    assert cell["return_seed_ci"] == pytest.approx(
        [np.mean(per_seed) - half, np.mean(per_seed) + half]
    )
    lo, hi = cell["return_ci"]
    assert lo < pooled.mean() < hi and cell["episodes"] == 15 and cell["seeds"] == [0, 1, 2]
    assert cell["train_minutes"] == pytest.approx(2.0)


def test_paired_difference_pairs_by_seed_and_scene():
    a = [
        record("dyna", 0, 5, [True] * 3, [5.0, 7.0, 9.0], scenes=[4, 2, 9]),
        record("dyna", 1, 5, [False] * 2, [1.0, 2.0], scenes=[4, 2]),
    ]
    b = [
        record("model_free", 0, 5, [False] * 3, [1.0, 4.0, 3.0], scenes=[9, 4, 2]),
        record("model_free", 2, 5, [True], [0.0], scenes=[4]),
    ]  # seed 2 has no partner
    d = paired_difference(a, b, "return")
    x, y = np.array([5.0, 7.0, 9.0]), np.array([4.0, 3.0, 1.0])  # matched by scene id
    assert d["pairs"] == 3 and d["diff"] == pytest.approx((x - y).mean())
    assert d["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    s = paired_difference(a, b, "success")
    assert s["diff"] == pytest.approx(1.0)


def test_table_and_plot(tmp_path):
    recs = [
        record(m, s, st, [s == 0, True], [1.0 + s, 2.0], seconds=None if st == 0 else 30.0)
        for m, st in (("dyna", 10), ("model_free", 10), ("random", 0))
        for s in (0, 1)
    ]
    summary = summarize(recs, n_boot=200)
    diffs = {
        "dyna|reach-v3|10": {
            m: paired_difference(recs[:2], recs[2:4], m) for m in ("success", "return")
        }
    }
    text = markdown_table(summary, diffs, ["reach-v3"], [10], ["dyna", "model_free"], ["random"])
    lines = text.splitlines()
    assert len(lines) == 5 and lines[2].startswith("| reach-v3 | 10 | dyna | 0.75 [")
    assert "| 0.5 |" in lines[2] and "+0.00" in lines[2]  # minutes; identical: diff 0
    assert lines[4].startswith("| reach-v3 | - | random |")
    assert "| 1.00, 0.50 |" in lines[2]  # every seed: values in seed order, unlabelled
    partial = summarize([*recs, record("seeded", 1, 10, [False, True], [3.0, 4.0])], n_boot=50)
    text = markdown_table(partial, {}, ["reach-v3"], [10], ["dyna", "seeded"], ["random"])
    assert "| seeded | 0.50 [" in text and "| s1 0.50 |" in text  # lacks seed 0: named
    plot_curves(summary, ["reach-v3"], ["dyna", "model_free"], ["random"], tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
