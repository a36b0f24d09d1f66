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
