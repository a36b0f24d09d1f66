"""experiments/policy_eval_subset.py: the agreement of a subset of a finished study's family
(policies and tasks), against scipy, and the list of points above the gap target."""

from __future__ import annotations

import pytest
from scipy.stats import pearsonr, spearmanr

REAL = {  # policy -> task -> success, return
    "expert sigma=0": {"reach-v3": (1.0, 1400.0), "push-v3": (1.0, 1100.0)},
    "random": {"reach-v3": (0.0, 250.0), "push-v3": (0.0, 7.0)},
    "agent a": {"reach-v3": (0.6, 1200.0), "push-v3": (0.0, 5.0)},
    "agent b": {"reach-v3": (0.3, 900.0), "push-v3": (0.0, 6.0)},
    "agent c": {"reach-v3": (0.1, 700.0), "push-v3": (0.0, 4.0)},
}
IMAG = {
    "expert sigma=0": {"reach-v3": (1.0, 1300.0), "push-v3": (1.0, 950.0)},
    "random": {"reach-v3": (0.0, 330.0), "push-v3": (0.0, 30.0)},
    "agent a": {"reach-v3": (0.05, 800.0), "push-v3": (0.0, 300.0)},
    "agent b": {"reach-v3": (0.4, 1000.0), "push-v3": (0.0, 100.0)},
    "agent c": {"reach-v3": (0.2, 900.0), "push-v3": (0.0, 200.0)},
}


def study() -> dict:
    def table(src):
        return {p: {t: {"success": s, "return": r} for t, (s, r) in tasks.items()}
                for p, tasks in src.items()}  # fmt: skip

    return {"real": table(REAL), "truncation": table(IMAG), "agreement": {"truncation": {}}}


def test_subset_correlations_equal_scipy_on_the_chosen_points(load_experiment):
    subset = load_experiment("policy_eval_subset")
    text = subset.subset_table(study(), ["expert", "random"], ["reach-v3"])
    agents = ["agent a", "agent b", "agent c"]
    x = [REAL[p]["reach-v3"][0] for p in agents]
    y = [IMAG[p]["reach-v3"][0] for p in agents]
    xr = [REAL[p]["reach-v3"][1] for p in agents]
    yr = [IMAG[p]["reach-v3"][1] for p in agents]
    row = next(line for line in text.splitlines() if line.startswith("| truncation | "))
    cells = [float(c) for c in row.strip("| ").split(" | ")[1:]]
    want = [pearsonr(x, y)[0], spearmanr(x, y)[0], pearsonr(xr, yr)[0], spearmanr(xr, yr)[0]]
    assert cells == pytest.approx(want, abs=5e-4)
    assert "3 policies x 1 tasks = 3 points" in text
    # agent a misses by 0.55; agent b (+0.10) and agent c (+0.10) sit exactly on the target
    assert "| truncation | agent a | reach-v3 | 0.60 | 0.05 | -0.55 |" in text
    assert "agent b |" not in text and "agent c |" not in text


def test_subset_whole_family_and_no_misses(load_experiment):
    subset = load_experiment("policy_eval_subset")
    text = subset.subset_table(study(), [], None, max_gap=0.6)
    assert "5 policies x 2 tasks = 10 points" in text
    assert "none: every point is within 0.6" in text


def test_subset_rejects_unknown_task_and_empty_family(load_experiment):
    subset = load_experiment("policy_eval_subset")
    with pytest.raises(ValueError, match=r"\['door-v3'\] are not in the study"):
        subset.subset_table(study(), [], ["door-v3"])
    with pytest.raises(ValueError, match="leaves no policy"):
        subset.subset_table(study(), ["expert", "random", "agent"])
