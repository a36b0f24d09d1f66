"""The studies' table cells, against strings written out by hand."""

import math

from freeaction_gym.evaluation.cell_format import (
    format_half_width,
    format_half_width_p,
    format_interval,
    format_paired,
    format_ratio,
)

CI = {"mean": 1.25, "lo": 1.0, "hi": 1.5, "n": 10}
DIFF = {"mean": 0.5, "lo": 0.25, "hi": 0.75, "p": 0.0123}
NAN = {"mean": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan}


def test_half_width():
    assert format_half_width(CI, 2) == "1.25 ± 0.25"
    assert format_half_width(DIFF, 1) == "+0.5 ± 0.2"  # a paired difference is signed
    assert format_half_width(DIFF | {"mean": -0.5}, 1) == "-0.5 ± 0.2"
    assert format_half_width(CI | {"lo": 1.25, "hi": 1.25}, 2) == "1.25"  # one episode
    assert format_half_width(CI | {"lo": math.nan}, 2) == "1.25"
    assert format_half_width(NAN, 2) == "-"
    assert format_half_width_p(DIFF, 2) == "+0.50 ± 0.25 (p=0.012)"
    assert format_half_width_p(CI, 2) == "1.25 ± 0.25"
    assert format_half_width_p(DIFF | {"p": math.nan}, 2) == "+0.50 ± 0.25"


def test_intervals_and_ratios():
    assert format_interval(CI) == "1.25 [1.00, 1.50]"
    assert format_interval(CI, 3) == "1.250 [1.000, 1.500]"
    assert format_interval(NAN) == "-"
    assert format_paired(DIFF) == "+0.50 [+0.25, +0.75] (p=0.012)"
    assert format_paired(None) == format_paired(NAN) == "-"
    assert format_ratio({"mean": 0.5, "lo": 0.25, "hi": 0.755}) == "0.50x [0.25, 0.76]"
    assert format_ratio(NAN) == "-"
