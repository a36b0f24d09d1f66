"""``data.oversample_pattern`` / ``oversample_share``: the trainer's episode bank draws a set
share of clips from the episodes whose file names match, and the rest from the others."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.training.config import config_from_dict
from freeaction_gym.training.data import EpisodeBank


def bank(n: int, n_new: int) -> EpisodeBank:
    """``n`` episodes of 5 frames; the last ``n_new`` are named like collected ones and have
    latents equal to 1 (the others 0), so a window tells where it came from."""
    latents = [torch.full((5, 1, 2, 2), float(i >= n - n_new)) for i in range(n)]
    b = EpisodeBank(latents, [torch.zeros(4, 4)] * n, ["reach-v3"] * n)
    b.names = [f"reach-v3_{i:05d}" for i in range(n - n_new)]
    b.names += [f"reach-v3_{100_000 + k}" for k in range(n_new)]
    return b


def share_new(b: EpisodeBank, draws: int = 4000) -> float:
    z, _ = b.sample(draws, 3, np.random.default_rng(0))
    return float(z[:, 0, 0, 0, 0].mean())


def test_oversampled_share_is_met_and_default_is_uniform():
    b = bank(100, 5)
    assert share_new(b) == pytest.approx(0.05, abs=0.02)  # uniform over episodes
    assert b.oversample(r".+_[1-9][0-9]{5,}", 0.5) == 5
    assert share_new(b) == pytest.approx(0.5, abs=0.03)
    assert b.oversample(r".+_[1-9][0-9]{5,}", 0.2) == 5
    assert share_new(b) == pytest.approx(0.2, abs=0.03)


def test_oversample_without_a_match_or_without_names_leaves_draws_uniform():
    b = bank(40, 4)
    before = b.sample(64, 3, np.random.default_rng(1))[0]
    assert b.oversample(r"push-v3_.*", 0.9) == 0
    torch.testing.assert_close(b.sample(64, 3, np.random.default_rng(1))[0], before)
    b.names = None
    with pytest.raises(ValueError, match="file names"):
        b.oversample(".*", 0.5)


@pytest.mark.parametrize(
    "data,match",
    [({"oversample_share": 1.0}, r"\[0, 1\)"), ({"oversample_pattern": "(["}, "regular expression"),
     ({"oversample_pattern": "x", "format": "irasim"}, "MetaWorld-format")],
)  # fmt: skip
def test_bad_oversample_options_are_clear_errors(data, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({"kind": "dit", "data": data})
