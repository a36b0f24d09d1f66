"""The loop's plot draws exactly the logged numbers, and the head's line only when logged."""

import numpy as np
import pytest

from freeaction_gym.dyna.report import plot_metrics


def _rows(head: bool) -> list[dict]:
    rows = []
    for it, (real, imag) in enumerate([(0.0, 0.05), (0.1, 0.95), (0.05, 0.4)]):
        row = {
            "iteration": it,
            "real_env_steps": 1000 * (it + 1),
            "real_success": real,
            "real_success_ci": [max(real - 0.1, 0.0), real + 0.1],
            "real_return": 10.0 * it,
            "real_return_ci": [10.0 * it - 1, 10.0 * it + 1],
            "imagined_success": imag,
            "imagined_success_ci": [imag - 0.05, min(imag + 0.05, 1.0)],
            "imagined_return": 100.0 + it,
            "imagined_return_ci": [99.0 + it, 101.0 + it],
            "gap_success": imag - real,
            "gap_return": 100.0 - 9.0 * it,
        }
        if head:
            row["head_on_real_success"] = [0.0, 0.7, 0.25][it]
            row["head_on_real_return"] = [51.0, 300.0, 120.0][it]
        rows.append(row)
    return rows


@pytest.mark.parametrize("head", [False, True])
def test_plot_metrics_draws_the_rows(tmp_path, head):
    rows = _rows(head)
    fig = plot_metrics(rows, tmp_path / "dyna.png")
    assert (tmp_path / "dyna.png").stat().st_size > 1000
    success_ax, return_ax = fig.axes[0], fig.axes[1]
    for ax, key in ((success_ax, "success"), (return_ax, "return")):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        expected = {"real", "imagined"} | ({"head on real frames"} if head else set())
        assert set(lines) == expected
        for label, prefix in (("real", "real"), ("imagined", "imagined")):
            np.testing.assert_allclose(lines[label].get_xdata(), [1000, 2000, 3000])
            np.testing.assert_allclose(
                lines[label].get_ydata(), [r[f"{prefix}_{key}"] for r in rows]
            )
        if head:
            np.testing.assert_allclose(
                lines["head on real frames"].get_ydata(), [r[f"head_on_real_{key}"] for r in rows]
            )


def test_trace_table_averages_the_seeds_per_iteration(tmp_path):
    from freeaction_gym.dyna.report import read_metrics, trace_table, write_metrics

    with_head, without = _rows(True), _rows(False)[:2]  # seed 1 stopped after iteration 1
    without[1]["real_success"] = 0.3
    write_metrics(with_head, tmp_path / "m.jsonl")
    assert read_metrics(tmp_path / "m.jsonl") == with_head
    lines = trace_table({0: with_head, 1: without}).splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| iteration (real steps) | seeds | real success |")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    # iteration 1: real 0.1 and 0.3, the head logged by seed 0 only (0.7), returns 10
    # and 101 in both seeds; no row logs agreement, so it has no column
    assert "agreement" not in lines[0]
    assert cells == ["1 (2000)", "0,1", "0.20", "0.70", "0.95", "10", "101"]
    last = [c.strip() for c in lines[4].strip("|").split("|")]
    assert last[:5] == ["2 (3000)", "0", "0.05", "0.25", "0.40"]
    # a seed without the head's numbers shows "-" where the other seed has none either
    without[1]["head_on_real_success"] = None
    alone = trace_table({3: without, 4: [{**with_head[0], "head_on_real_success": 0.5}]})
    assert [c.strip() for c in alone.splitlines()[3].strip("|").split("|")][3] == "-"
    assert "head's credit" not in trace_table({3: without})
