"""Metrics against scikit-image / scipy / torch references and hand-computed values."""

import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2gray
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from freeaction_gym.evaluation import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    latent_l2,
    load_feature_extractor,
    moving_region_psnr,
    psnr_video,
    ssim_video,
)


def random_pair(seed=0, shape=(2, 5, 24, 32, 3)):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, shape, dtype=np.uint8),
        rng.integers(0, 256, shape, dtype=np.uint8),
    )


def structured_pair(seed=1, shape=(2, 5, 24, 32, 3)):
    """Smooth gradients + moving square as target; a noisy, shifted copy as prediction."""
    b, f, h, w, _ = shape
    yy, xx = np.mgrid[0:h, 0:w]
    target = np.zeros(shape, np.uint8)
    for i in range(b):
        for k in range(f):
            target[i, k, ..., 0] = (xx * 255 // (w - 1)).astype(np.uint8)
            target[i, k, ..., 1] = (yy * 255 // (h - 1)).astype(np.uint8)
            target[i, k, ..., 2] = 40 * i
            target[i, k, 4:12, 2 + 3 * k : 10 + 3 * k] = 250
    noise = np.random.default_rng(seed).integers(-20, 21, shape)
    pred = np.clip(np.roll(target.astype(int), 1, axis=3) + noise, 0, 255).astype(np.uint8)
    return pred, target


PAIRS = [random_pair(), structured_pair()]


def skimage_frames(pred, target, metric, color, skip_first=1):
    out = np.empty((pred.shape[0], pred.shape[1] - skip_first))
    for b in range(pred.shape[0]):
        for f in range(skip_first, pred.shape[1]):
            p, t = pred[b, f], target[b, f]
            if metric == "psnr":
                out[b, f - skip_first] = (
                    peak_signal_noise_ratio(t, p, data_range=255)
                    if color
                    else peak_signal_noise_ratio(rgb2gray(t), rgb2gray(p), data_range=1.0)
                )
            else:
                out[b, f - skip_first] = (
                    structural_similarity(t, p, data_range=255, channel_axis=-1)
                    if color
                    else structural_similarity(rgb2gray(t), rgb2gray(p), data_range=1.0)
                )
    return out


@pytest.mark.parametrize("pair", PAIRS, ids=["random", "structured"])
@pytest.mark.parametrize("color", [True, False], ids=["rgb", "gray"])
@pytest.mark.parametrize("metric", ["psnr", "ssim"])
def test_matches_skimage(pair, color, metric):
    pred, target = pair
    fn = psnr_video if metric == "psnr" else ssim_video
    ref = skimage_frames(pred, target, metric, color)
    np.testing.assert_allclose(
        fn(pred, target, color=color, per_frame=True), ref, rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(fn(pred, target, color=color), ref.mean(axis=1), rtol=0, atol=1e-6)


def test_skip_first_and_single_video():
    pred, target = structured_pair()
    pred[:, 0] = 255 - target[:, 0]  # a terrible context frame must not count
    per_frame = psnr_video(pred, target, per_frame=True)
    assert per_frame.shape == (2, 4)
    with_context = psnr_video(pred, target, skip_first=0, per_frame=True)
    assert with_context.shape == (2, 5) and with_context[:, 0].max() < 6.0
    np.testing.assert_array_equal(with_context[:, 1:], per_frame)
    assert psnr_video(pred, target).min() > 15.0
    one = psnr_video(pred[1], target[1])
    assert np.ndim(one) == 0 and one == pytest.approx(per_frame[1].mean(), abs=1e-12)
    torch_in = psnr_video(torch.from_numpy(pred), torch.from_numpy(target))
    np.testing.assert_allclose(torch_in, per_frame.mean(axis=1), atol=1e-12)


def test_identical_frames_give_inf():
    _, target = random_pair()
    with np.errstate(divide="ignore"):
        assert np.isinf(peak_signal_noise_ratio(target[0, 1], target[0, 1]))  # the reference
    assert np.all(np.isposinf(psnr_video(target, target)))
    assert np.all(np.isposinf(psnr_video(target, target, color=False)))
    np.testing.assert_allclose(ssim_video(target, target), 1.0)


def test_input_validation():
    pred, target = random_pair()
    with pytest.raises(TypeError, match="uint8"):
        psnr_video(pred / 255.0, target / 255.0)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_video(pred[:, :3], target)
    with pytest.raises(ValueError, match="skip_first"):
        ssim_video(pred, target, skip_first=5)


def test_latent_l2_matches_torch_mse():
    g = torch.Generator().manual_seed(0)
    pred, target = (
        torch.randn(3, 16, 4, 4, 5, generator=g),
        torch.randn(3, 16, 4, 4, 5, generator=g),
    )
    want = [torch.nn.functional.mse_loss(pred[b, 1:], target[b, 1:]).item() for b in range(3)]
    np.testing.assert_allclose(latent_l2(pred, target), want, rtol=1e-6)
    assert latent_l2(pred[0].numpy(), target[0].numpy()) == pytest.approx(want[0], rel=1e-6)
    same = pred.clone()
    same[:, 0] += 100.0  # the context latent is not scored
    np.testing.assert_array_equal(latent_l2(same, pred), np.zeros(3))


def test_moving_region_psnr_hand_case():
    f, h, w = 3, 8, 10
    target = np.zeros((1, f, h, w, 3), np.uint8)
    target[0, 1:, 2:4, 3:7, 1] = 100  # 2x4 moving block in frames 2, 3 (green channel)
    target[0, 1:, 6, 0, 0] = 10  # differs by exactly the threshold: not moving
    pred = target.copy()
    pred[0, 1:, 2:4, 3:7, :] += 5  # error 5 in every channel of moving pixels
    pred[0, 1:, 6:, :] = 200  # large errors on static pixels are ignored
    want = 10 * math.log10(255**2 / 25)
    assert moving_region_psnr(pred, target)[0] == pytest.approx(want, abs=1e-9)
    assert moving_region_psnr(pred[0], target[0], context=target[0, 0]) == pytest.approx(want)
    assert np.isnan(moving_region_psnr(target[:, :1].repeat(3, 1), target[:, :1].repeat(3, 1)))[0]
    assert np.isposinf(moving_region_psnr(target, target))[0]


def test_moving_region_psnr_matches_masked_skimage():
    pred, target = structured_pair()
    got = moving_region_psnr(pred, target, threshold=30)
    for b in range(2):
        moving = np.abs(target[b, 1:].astype(int) - target[b, 0].astype(int)).max(-1) > 30
        ref = peak_signal_noise_ratio(target[b, 1:][moving], pred[b, 1:][moving], data_range=255)
        assert got[b] == pytest.approx(ref, abs=1e-6)


def test_frechet_distance_diagonal_closed_form():
    # ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2 = 25 + (1-2)^2 + (2-3)^2 = 27
    d = frechet_distance([0, 0], np.diag([1.0, 4.0]), [3, 4], np.diag([4.0, 9.0]))
    assert d == pytest.approx(27.0, abs=1e-9)
    assert frechet_distance(1.0, 4.0, 0.0, 1.0) == pytest.approx(1 + 1, abs=1e-9)  # 1-D


def test_fid_shifted_features_and_singular_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    shift = np.arange(8) / 4.0
    assert fid_from_features(a, a + shift) == pytest.approx(float(shift @ shift), abs=1e-6)
    mu, sigma = feature_statistics(torch.from_numpy(a))
    np.testing.assert_allclose(sigma, np.cov(a.T), atol=1e-12)
    few = rng.normal(size=(5, 16))  # N < D: singular covariances
    d = fid_from_features(few, few + 1.0)
    assert np.isfinite(d) and d == pytest.approx(16.0, abs=1e-2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script / save
def test_load_feature_extractor(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(6, 3), torch.nn.ReLU())
    path = tmp_path / "extractor.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    loaded = load_feature_extractor(path)
    x = torch.randn(4, 6)
    torch.testing.assert_close(loaded(x), net(x))
    assert not loaded.training
    with pytest.raises(FileNotFoundError, match="does not download"):
        load_feature_extractor(tmp_path / "i3d_torchscript.pt")
    (tmp_path / "state_dict.pth").write_bytes(b"not a torchscript archive")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        load_feature_extractor(tmp_path / "state_dict.pth")
