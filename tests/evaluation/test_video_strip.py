"""experiments/video_strip.py: a comparison video cut back into its columns, and the strip."""

from __future__ import annotations

import numpy as np
import pytest

from freeaction_gym.utils.video import comparison_grid, write_comparison


def episodes(seed: int) -> np.ndarray:
    """uint8 (1, 6, 16, 16, 3): one episode of 6 random frames."""
    return np.random.default_rng(seed).integers(0, 256, (1, 6, 16, 16, 3), dtype=np.uint8)


def test_video_columns_invert_comparison_grid(load_experiment):
    strip = load_experiment("video_strip")
    real, imag = episodes(0), episodes(1)
    grid = comparison_grid([real, imag], scale=3)  # (6, 48, 96, 3)
    cols = strip.video_columns(grid, 2, 3)
    assert len(cols) == 2
    np.testing.assert_array_equal(cols[0], real[0])
    np.testing.assert_array_equal(cols[1], imag[0])
    with pytest.raises(ValueError, match="does not split into 3 columns"):
        strip.video_columns(grid, 3, 3)


def test_main_writes_the_strip_of_an_mp4(load_experiment, tmp_path):
    import imageio.v3 as iio

    strip = load_experiment("video_strip")
    flat = np.full((1, 6, 16, 16, 3), 40, np.uint8)
    bright = np.full((1, 6, 16, 16, 3), 220, np.uint8)
    video = tmp_path / "v.mp4"
    write_comparison(video, [flat, bright], scale=3)
    args = strip.Args(video=str(video), out=str(tmp_path / "s.png"), steps=[0, 2, 5])
    path = strip.main(args)
    png = iio.imread(path)
    assert png.ndim == 3 and png.shape[0] > 50 and png.shape[1] > 100
    # both grey levels made it into the figure (the rows are the two columns)
    grey = png[..., :3].astype(int)
    assert (np.abs(grey - 40).max(axis=-1) < 12).sum() > 500
    assert (np.abs(grey - 220).max(axis=-1) < 12).sum() > 500
    with pytest.raises(ValueError, match=r"steps \[6\] are past the video's last frame \(5\)"):
        strip.main(strip.Args(video=str(video), out=str(tmp_path / "t.png"), steps=[0, 6]))
