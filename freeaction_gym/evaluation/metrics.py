"""Video prediction metrics as in IRASim's evaluation, plus Frechet distances.

Conventions (REFERENCE §2 "Evaluation"):

* Videos are uint8 RGB ``(B, F, H, W, 3)`` (or one video ``(F, H, W, 3)``), frame 1 being
  the context frame. Scores use frames ``skip_first + 1 .. F`` only (``skip_first=1``).
* Per-frame scores are averaged over frames per sample (IRASim averages per video, then
  over videos). ``per_frame=True`` returns the (B, F - skip_first) array instead.
* ``color=True``: RGB with ``data_range=255`` (IRASim's long-trajectory setting).
  ``color=False``: ``skimage.color.rgb2gray`` (float64 in [0, 1], weights
  0.2125/0.7154/0.0721) with ``data_range=1.0`` (the short setting). IRASim itself used
  OpenCV's uint8 BT.601 gray (0.299/0.587/0.114, rounded), so its absolute numbers can
  differ slightly from ours; compare methods with one implementation.
* PSNR of identical frames is ``+inf`` (scikit-image returns inf too, with a warning);
  a single identical frame makes the sample mean inf. Filter with ``np.isfinite`` or
  clip (e.g. ``np.minimum(psnr, 100.0)``) before averaging over a dataset if that can
  happen (e.g. a copy-the-context baseline on a static scene).
* SSIM: ``skimage.metrics.structural_similarity`` per frame with its defaults (7x7
  uniform window), as IRASim.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from scipy import linalg
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

ArrayLike = np.ndarray | torch.Tensor


def _videos(pred: ArrayLike, target: ArrayLike, skip_first: int):
    """Validate and return uint8 numpy (B, F', H, W, 3) pairs and whether input was 4-D."""
    p, t = (np.asarray(x.detach().cpu() if torch.is_tensor(x) else x) for x in (pred, target))
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    if p.dtype != np.uint8 or t.dtype != np.uint8:
        raise TypeError(f"videos must be uint8 in [0, 255], got {p.dtype} and {t.dtype}")
    if p.ndim not in (4, 5) or p.shape[-1] != 3:
        raise ValueError(f"videos must be (B, F, H, W, 3) or (F, H, W, 3), got {p.shape}")
    single = p.ndim == 4
    if single:
        p, t = p[None], t[None]
    if not 0 <= skip_first < p.shape[1]:
        raise ValueError(f"skip_first={skip_first} leaves no frame of {p.shape[1]}")
    return p[:, skip_first:], t[:, skip_first:], single


def _reduce(scores: np.ndarray, per_frame: bool, single: bool) -> np.ndarray:
    out = scores if per_frame else scores.mean(axis=1)  # (B, F') or (B,)
    return out[0] if single else out


def _psnr_from_mse(mse: np.ndarray, data_range: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)  # mse == 0 -> +inf


def psnr_video(
    pred: ArrayLike,
    target: ArrayLike,
    skip_first: int = 1,
    color: bool = True,
    per_frame: bool = False,
) -> np.ndarray:
    """PSNR (dB) per sample (B,) or per frame (B, F - skip_first); float64.

    Equals ``skimage.metrics.peak_signal_noise_ratio`` frame by frame (RGB with
    data_range 255, or rgb2gray with data_range 1.0), vectorised over frames.
    """
    p, t, single = _videos(pred, target, skip_first)
    scores = np.empty(p.shape[:2])
    for b in range(p.shape[0]):  # one sample at a time bounds memory
        if color:
            d = p[b].astype(np.int32) - t[b]  # (F', H, W, 3)
            d *= d
            sse = d.reshape(d.shape[0], -1).sum(axis=1, dtype=np.int64)  # exact integer sums
            scores[b] = _psnr_from_mse(sse / d[0].size, 255.0)
        else:
            d = rgb2gray(p[b]) - rgb2gray(t[b])  # (F', H, W) float64
            scores[b] = _psnr_from_mse(np.mean(d * d, axis=(1, 2)), 1.0)
    return _reduce(scores, per_frame, single)


def ssim_video(
    pred: ArrayLike,
    target: ArrayLike,
    skip_first: int = 1,
    color: bool = True,
    per_frame: bool = False,
) -> np.ndarray:
    """SSIM per sample (B,) or per frame (B, F - skip_first), via scikit-image per frame.

    color: RGB with ``channel_axis=-1`` and data_range 255; else rgb2gray, data_range 1.0.
    """
    p, t, single = _videos(pred, target, skip_first)
    scores = np.empty(p.shape[:2])
    for b in range(p.shape[0]):
        pb, tb = (p[b], t[b]) if color else (rgb2gray(p[b]), rgb2gray(t[b]))
        for f in range(p.shape[1]):
            if color:
                scores[b, f] = structural_similarity(tb[f], pb[f], data_range=255, channel_axis=-1)
            else:
                scores[b, f] = structural_similarity(tb[f], pb[f], data_range=1.0)
    return _reduce(scores, per_frame, single)


def latent_l2(pred_latents: ArrayLike, target_latents: ArrayLike, skip_first: int = 1):
    """Mean squared error over latent frames ``skip_first..`` per sample, float64.

    (B, F, C, h, w) -> (B,); a single (F, C, h, w) -> scalar. IRASim's "Latent L2" is
    ``mse_loss(pred[1:], true[1:])`` per video, averaged over videos.
    """
    p, t = (torch.as_tensor(x).detach().cpu().double() for x in (pred_latents, target_latents))
    if p.shape != t.shape:
        raise ValueError(f"latent shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    single = p.ndim == 4
    if single:
        p, t = p[None], t[None]
    if p.ndim != 5 or not 0 <= skip_first < p.shape[1]:
        raise ValueError(f"latents must be (B, F, C, h, w) with F > skip_first, got {p.shape}")
    err = ((p[:, skip_first:] - t[:, skip_first:]) ** 2).flatten(1).mean(1).numpy()
    return err[0] if single else err


def moving_region_psnr(
    pred: ArrayLike,
    target: ArrayLike,
    context: ArrayLike | None = None,
    threshold: float = 10,
    skip_first: int = 1,
) -> np.ndarray:
    """RGB PSNR (dB) restricted to pixels that move, per sample (B,) (scalar for 4-D).

    A pixel of frame f counts if the true frame differs from the context frame by more
    than ``threshold`` (uint8 units) in any channel. ``context`` (B, H, W, 3) defaults to
    ``target[:, 0]``. The squared error is pooled over all selected pixels of all scored
    frames (data_range 255). Samples with no moving pixel get ``nan``; a perfect
    prediction of the moving pixels gets ``+inf``.
    """
    p, t, single = _videos(pred, target, skip_first)
    if context is None:
        c = np.asarray(target.detach().cpu() if torch.is_tensor(target) else target)
        c = c[None, 0] if single else c[:, 0]
    else:
        c = np.asarray(context.detach().cpu() if torch.is_tensor(context) else context)
        c = c[None] if single else c
    if c.shape != (p.shape[0], *p.shape[2:]) or c.dtype != np.uint8:
        raise ValueError(f"context must be uint8 {(p.shape[0], *p.shape[2:])}, got {c.shape}")
    out = np.empty(p.shape[0])
    for b in range(p.shape[0]):
        ti = t[b].astype(np.int32)  # (F', H, W, 3)
        mask = np.abs(ti - c[b].astype(np.int32)).max(axis=-1) > threshold  # (F', H, W)
        n = int(mask.sum()) * 3
        if n == 0:
            out[b] = np.nan
            continue
        d = (p[b].astype(np.int32) - ti)[mask]  # (n / 3, 3)
        out[b] = _psnr_from_mse(np.sum(d * d, dtype=np.int64) / n, 255.0)
    return out[0] if single else out


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    Uses ``scipy.linalg.sqrtm``; if the product is singular (non-finite root) both
    covariances get ``eps * I``. Small imaginary parts from round-off are dropped; large
    ones raise.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    s1, s2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size,) * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(s1.shape[0])
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary part {np.abs(covmean.imag).max()}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def feature_statistics(feats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D)."""
    f = torch.as_tensor(feats).detach().cpu().double().numpy()
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Frechet distance between two feature sets (N, D), (M, D).

    FID with Inception pool features of frames; FVD with I3D features of clips (the
    same formula; IRASim's FVD follows stylegan-v's I3D TorchScript)."""
    return frechet_distance(*feature_statistics(feats_a), *feature_statistics(feats_b))


fvd_from_features = fid_from_features


def load_feature_extractor(path: str | os.PathLike, device: str = "cpu") -> torch.jit.ScriptModule:
    """Load a user-supplied TorchScript feature extractor (e.g. I3D for FVD, Inception for
    FID) from a local file, in eval mode. Nothing is ever downloaded."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"feature extractor {path} not found. Supply a TorchScript file you exported or "
            "obtained yourself (e.g. IRASim's evaluation_model/i3d_torchscript.pt for FVD); "
            "freeaction_gym does not download weights."
        )
    try:
        with warnings.catch_warnings():
            # torch >= 2.10 flags TorchScript as deprecated; the released I3D/Inception
            # evaluators are TorchScript files, so loading them is still the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(path, map_location=device)
    except RuntimeError as err:
        raise ValueError(
            f"{path} is not a TorchScript archive (torch.jit.load failed: {err}). "
            "Export the network with torch.jit.script/trace and torch.jit.save; plain "
            "state dicts (e.g. pytorch-fid's .pth) need their model code."
        ) from err
    return model.eval()
