"""Comparison videos: grid layout checked pixel by pixel, and an mp4 round trip."""

from __future__ import annotations

import numpy as np
import pytest

from freeaction_gym.utils.video import comparison_grid, write_comparison


def test_grid_places_episodes_in_rows_and_sources_in_columns():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8) for _ in range(2))
    g = comparison_grid([a, b], scale=2)
    assert g.shape == (3, 2 * 4 * 2, 2 * 5 * 2, 3) and g.dtype == np.uint8
    for n in range(2):
        for c, src in enumerate((a, b)):
            block = g[:, n * 8 : (n + 1) * 8, c * 10 : (c + 1) * 10]
            np.testing.assert_array_equal(block[:, ::2, ::2], src[n])
            np.testing.assert_array_equal(block[:, 1::2, 1::2], src[n])
    with pytest.raises(ValueError, match="share one"):
        comparison_grid([a, b[:1]])
    with pytest.raises(ValueError, match="at least one"):
        comparison_grid([])


def test_write_comparison_mp4(tmp_path):
    import imageio.v2 as imageio

    frames = np.full((1, 4, 8, 8, 3), 200, np.uint8)
    write_comparison(tmp_path / "v.mp4", [frames, frames // 2], scale=2)
    video = np.stack(imageio.mimread(tmp_path / "v.mp4"))
    assert video.shape == (4, 16, 32, 3)
    assert (
        abs(float(video[:, :, :16].mean()) - 200) < 4
        and abs(float(video[:, :, 16:].mean()) - 100) < 4
    )
