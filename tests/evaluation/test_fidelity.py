"""Fidelity metrics against independent references (scipy.ndimage, scikit-image, loops)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import structural_similarity
from skimage.transform import resize

from freeaction_gym.evaluation.fidelity import (
    blockiness,
    gradient_energy_map,
    motion_mask,
    moving_sharpness_ratio,
    ms_ssim,
    sharpness_ratio,
)
from freeaction_gym.evaluation.metrics import ssim_video


def natural(size: int = 64, n: int = 4, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3): random crops of scikit-image's astronaut, downscaled."""
    img = skdata.astronaut()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y, x = rng.integers(0, 512 - 256, 2)
        crop = resize(img[y : y + 256, x : x + 256], (size, size), anti_aliasing=True)
        out.append((crop * 255).round().astype(np.uint8))
    return np.stack(out)


def gaussian_blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    f = frames.astype(np.float64)
    return ndimage.gaussian_filter(f, (0, sigma, sigma, 0)).round().astype(np.uint8)


def energy_reference(frames: np.ndarray) -> np.ndarray:
    """scipy.ndimage.sobel on [0, 1] intensities: Gx^2 + Gy^2, mean over RGB, interior."""
    f = frames.astype(np.float64) / 255.0
    out = np.zeros(f.shape[:3])
    for i in range(f.shape[0]):
        for c in range(3):  # 2-D Sobel per frame and channel (sobel smooths every other axis)
            out[i] += (
                ndimage.sobel(f[i, ..., c], axis=1) ** 2 + ndimage.sobel(f[i, ..., c], axis=0) ** 2
            )
    return out[:, 1:-1, 1:-1] / 3


def test_gradient_energy_matches_scipy_sobel():
    frames = natural()
    np.testing.assert_allclose(gradient_energy_map(frames).numpy(), energy_reference(frames),
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_sharpness_is_one_for_itself_and_below_one_when_blurred():
    real = natural()
    np.testing.assert_allclose(sharpness_ratio(real, real), 1.0)
    blurred = gaussian_blur(real, 1.0)
    ratio = sharpness_ratio(blurred, real)
    ref = energy_reference(blurred).mean((1, 2)) / energy_reference(real).mean((1, 2))
    np.testing.assert_allclose(ratio, ref, rtol=1e-4)
    assert (ratio < 0.8).all()
    assert (sharpness_ratio(gaussian_blur(real, 2.0), real) < ratio).all()  # monotone in blur


def test_moving_sharpness_uses_the_dilated_union_of_motions():
    rng = np.random.default_rng(1)
    context = np.full((2, 32, 32, 3), 100, np.uint8)
    real, pred = context.copy(), context.copy()
    real[:, 4:10, 4:10] = rng.integers(0, 256, (2, 6, 6, 3))  # a textured object appears ...
    pred[:, 20:26, 20:26] = real[:, 4:10, 4:10]  # ... and the model draws it elsewhere, sharp
    # reference: union of |frame - context| > 10 in any channel, dilated by a 5x5 square
    moved = (np.abs(real.astype(int) - context).max(-1) > 10) | (
        np.abs(pred.astype(int) - context).max(-1) > 10
    )
    mask = np.stack([ndimage.binary_dilation(m, np.ones((5, 5), bool)) for m in moved])
    np.testing.assert_array_equal(motion_mask([real, pred], context, 10, 2), mask)
    ep, er = energy_reference(pred), energy_reference(real)
    ref = (ep * mask[:, 1:-1, 1:-1]).sum((1, 2)) / (er * mask[:, 1:-1, 1:-1]).sum((1, 2))
    got = moving_sharpness_ratio(pred, real, context)
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    assert np.all(np.abs(got - 1.0) < 0.2)  # displaced but sharp is not "blurred"
    smear = context.copy()
    smear[:, 4:10, 4:10] = gaussian_blur(real, 2.0)[:, 4:10, 4:10]
    assert (moving_sharpness_ratio(smear, real, context) < 0.5).all()
    # no motion anywhere: undefined, not 1
    assert np.isnan(moving_sharpness_ratio(context, context, context)).all()


def blockiness_reference(frame: np.ndarray, p: int) -> float:
    """Straightforward loops over neighbour pairs (uint8 units, mean over RGB)."""
    f = frame.astype(np.float64)
    h, w, _ = f.shape
    edge, inner = [], []
    for y in range(h):
        for x in range(w - 1):
            (edge if (x + 1) % p == 0 else inner).append(np.abs(f[y, x + 1] - f[y, x]).mean())
    for y in range(h - 1):
        for x in range(w):
            (edge if (y + 1) % p == 0 else inner).append(np.abs(f[y + 1, x] - f[y, x]).mean())
    return float(np.mean(edge) / np.mean(inner))


def test_blockiness_is_one_on_natural_images_and_large_on_blocks():
    frames = natural(n=6)
    b = blockiness(frames)
    np.testing.assert_allclose(b[:2], [blockiness_reference(f, 8) for f in frames[:2]])
    assert np.all(np.abs(b - 1.0) < 0.2)
    smooth = gaussian_blur(natural(n=2, seed=3), 2.0)
    assert np.all(np.abs(blockiness(smooth) - 1.0) < 0.2)
    # constant 8x8 blocks (+ a little noise so that inside steps are not all zero)
    rng = np.random.default_rng(0)
    blocks = np.repeat(np.repeat(frames[:, ::8, ::8], 8, 1), 8, 2).astype(int)
    noisy = np.clip(blocks + rng.integers(-2, 3, blocks.shape), 0, 255).astype(np.uint8)
    assert (blockiness(noisy) > 5.0).all()
    assert np.isinf(blockiness(blocks.astype(np.uint8))).all()  # no step inside a patch
    assert (blockiness(noisy, patch=5) < 1.5).all()  # the wrong grid sees no blocks
    np.testing.assert_allclose(blockiness(noisy[:1], 4), blockiness_reference(noisy[0], 4))


def test_blockiness_mask_keeps_only_pairs_inside_it():
    frames = natural(n=1)
    mask = np.zeros((1, 64, 64), bool)
    mask[:, 8:40, 8:40] = True
    crop = frames[:, 8:40, 8:40]  # the same pixels, grid still anchored at multiples of 8
    np.testing.assert_allclose(blockiness(frames, 8, mask), blockiness(crop, 8))


def test_ms_ssim_of_identical_frames_is_one_and_drops_with_noise():
    frames = natural()
    np.testing.assert_allclose(ms_ssim(frames, frames), 1.0, atol=1e-6)
    rng = np.random.default_rng(0)
    noisy = [np.clip(frames + rng.normal(0, s, frames.shape), 0, 255).astype(np.uint8)
             for s in (5, 20)]  # fmt: skip
    a, b = ms_ssim(noisy[0], frames), ms_ssim(noisy[1], frames)
    assert (a < 1).all() and (b < a).all()


@pytest.mark.parametrize("size, tol", [(64, 0.02), (192, 0.004)])
def test_single_scale_matches_skimage_ssim(size, tol):
    """One scale, 7x7 uniform window = scikit-image's SSIM (population covariance); the two
    differ only in border handling, which matters less on larger frames."""
    real = natural(size, n=3)
    pred = gaussian_blur(real, 1.0)
    ours = ms_ssim(pred, real, betas=(1.0,))
    ref = [
        structural_similarity(r, p, channel_axis=-1, data_range=255, use_sample_covariance=False)
        for r, p in zip(real, pred, strict=True)
    ]
    np.testing.assert_allclose(ours, ref, atol=tol)
    # and close to the house SSIM (scikit-image defaults) used in every other table
    np.testing.assert_allclose(ours, ssim_video(pred[:, None], real[:, None], 0), atol=tol + 0.002)
