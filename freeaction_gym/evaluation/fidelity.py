"""Frame-fidelity metrics that see what PSNR does not: blur, block artefacts, structure.

Every function takes uint8 RGB frames ``(N, H, W, 3)`` (imagined and real frames of the
same N clips at one rollout step) and returns one float64 value per frame ``(N,)``, so 95%
intervals over clips come from :func:`freeaction_gym.evaluation.paired_stats.mean_ci`.

* **Sharpness** (:func:`sharpness_ratio`): gradient energy of the imagined frame over that
  of the real frame. Gradient energy is the mean of ``Gx^2 + Gy^2`` (3x3 Sobel, as
  ``scipy.ndimage.sobel``, on intensities in [0, 1], averaged over the RGB channels) over
  the interior pixels of a region. 1.0: as much edge energy as the real frame; a blurred
  frame scores < 1, noise > 1.
* **Moving region** (:func:`motion_mask`): the pixels where the real frame *or* the
  imagined frame differs from the context frame by more than ``threshold`` (uint8 units,
  any channel), dilated by ``dilate`` pixels. The union, not the real motion alone: an arm
  drawn sharp but a few pixels off must not count as blurred (its edges would fall
  outside a real-motion mask), and a smear where nothing moved must count. The dilation
  takes in the edges that bound the moving pixels.
* **Blockiness** (:func:`blockiness`): mean absolute intensity step between neighbouring
  pixels across ``patch`` x ``patch`` patch boundaries (the DiT's patch grid, anchored at
  the top-left pixel) over the mean step between neighbours inside a patch. 1.0: no block
  structure (natural and real frames, whose edges fall on the grid by chance); a frame
  assembled from flat patches scores >> 1.
* **MS-SSIM** (:func:`ms_ssim`): Wang et al. (2003) multi-scale SSIM via torchmetrics,
  with a small window that fits 64x64 frames: a 7x7 uniform window (scikit-image's default,
  so the single-scale value is the SSIM of ``metrics.ssim_video``) at 3 scales (64, 32,
  16 px) weighted by Wang et al.'s first three exponents renormalised to sum 1; negative
  contrast terms are clipped at 0 (torchmetrics' ``normalize="relu"``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001)
"""Wang et al.'s exponents of the three finest scales (renormalised in :func:`ms_ssim`)."""
SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
"""d/dx with smoothing along y (scipy.ndimage.sobel(axis=1) up to sign)."""


def _frames(x: np.ndarray | torch.Tensor, name: str = "frames") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    t = torch.as_tensor(np.asarray(x.cpu() if torch.is_tensor(x) else x))
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"{name} must be uint8 (N, H, W, 3), got {t.dtype} {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2).float() / 255.0


def _pair(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _frames(pred, "pred"), _frames(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    return p, t


def gradient_energy_map(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 (N, H-2, W-2): ``Gx^2 + Gy^2`` of the 3x3 Sobel filter on intensities in
    [0, 1], mean over RGB, at interior pixels (valid convolution: no border rule)."""
    x = _frames(frames)
    n, c, h, w = x.shape
    kernels = torch.stack([SOBEL, SOBEL.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    g = F.conv2d(x.reshape(n * c, 1, h, w), kernels)  # (N*3, 2, H-2, W-2)
    return (g**2).sum(1).reshape(n, c, h - 2, w - 2).mean(1)


def motion_mask(
    frames: np.ndarray | torch.Tensor,
    context: np.ndarray | torch.Tensor,
    threshold: float = 10,
    dilate: int = 2,
) -> np.ndarray:
    """bool (N, H, W): pixels where any frame of ``frames`` (a sequence of uint8
    (N, H, W, 3) arrays, or one) differs from ``context`` (N, H, W, 3) by more than
    ``threshold`` in some channel, dilated by a (2 dilate + 1)^2 square."""
    c = _frames(context, "context")
    seq = frames if isinstance(frames, list | tuple) else [frames]
    moved = torch.zeros(c.shape[0], 1, *c.shape[2:], dtype=torch.bool)
    for f in seq:
        x = _frames(f)
        if x.shape != c.shape:
            raise ValueError(f"frames {tuple(x.shape)} and context {tuple(c.shape)} differ")
        moved |= ((x - c).abs() * 255.0 > threshold).any(1, keepdim=True)
    if dilate > 0:
        moved = F.max_pool2d(moved.float(), 2 * dilate + 1, stride=1, padding=dilate) > 0
    return moved[:, 0].numpy()


def sharpness_ratio(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """float64 (N,): gradient energy of ``pred`` over that of ``target`` on the whole frame
    or on ``mask`` (bool (N, H, W); its border pixels are ignored, as the Sobel map has
    none). NaN where the region is empty or the target has no gradient there."""
    p, t = _pair(pred, target)
    ep, et = gradient_energy_map(pred).double(), gradient_energy_map(target).double()
    if mask is None:
        region = torch.ones_like(ep)
    else:
        m = torch.as_tensor(np.asarray(mask))
        if m.shape != (p.shape[0], *p.shape[2:]):
            raise ValueError(f"mask must be (N, H, W) = {(p.shape[0], *p.shape[2:])}")
        region = m[:, 1:-1, 1:-1].double()
    num, den = (ep * region).sum((1, 2)), (et * region).sum((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (num / den).numpy()
    out[(den <= 0).numpy()] = np.nan
    return out


def moving_sharpness_ratio(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    context: np.ndarray | torch.Tensor,
    threshold: float = 10,
    dilate: int = 2,
) -> np.ndarray:
    """:func:`sharpness_ratio` on the moving region: the dilated union of the pixels where
    ``target`` or ``pred`` differs from ``context`` (the last real context frame)."""
    return sharpness_ratio(pred, target, motion_mask([target, pred], context, threshold, dilate))


def blockiness(
    frames: np.ndarray | torch.Tensor, patch: int = 8, mask: np.ndarray | None = None
) -> np.ndarray:
    """float64 (N,): mean |intensity step| between horizontal and vertical neighbours that
    straddle a ``patch`` boundary over the mean step between neighbours inside a patch
    (uint8 units, mean over RGB). With ``mask`` (bool (N, H, W)) only neighbour pairs
    whose two pixels are both in the mask count. NaN if a frame has no step at all (or
    no pair of a kind), inf if its only steps are on boundaries."""
    x = _frames(frames).double() * 255.0  # (N, 3, H, W)
    n, _, h, w = x.shape
    if patch < 2 or (h <= patch and w <= patch):
        raise ValueError(f"patch must be >= 2 and smaller than the frame, got {patch}")
    m = torch.ones(n, h, w, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    if m.shape != (n, h, w):
        raise ValueError(f"mask must be (N, H, W) = {(n, h, w)}, got {tuple(m.shape)}")
    sums = {True: torch.zeros(n, dtype=torch.float64), False: torch.zeros(n, dtype=torch.float64)}
    counts = {k: torch.zeros(n, dtype=torch.float64) for k in sums}
    for axis, size in ((3, w), (2, h)):  # steps along x, then along y
        step = (x.narrow(axis, 1, size - 1) - x.narrow(axis, 0, size - 1)).abs().mean(1)
        pair = m.narrow(axis - 1, 1, size - 1) & m.narrow(axis - 1, 0, size - 1)
        crosses = (torch.arange(size - 1) + 1) % patch == 0  # step j -> j+1 crosses a boundary
        shape = (1, 1, size - 1) if axis == 3 else (1, size - 1, 1)
        on_boundary = crosses.reshape(shape).expand_as(pair)
        for kind in (True, False):
            sel = (pair & (on_boundary == kind)).double()  # (N, H', W')
            sums[kind] += (step * sel).sum((1, 2))
            counts[kind] += sel.sum((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        boundary = (sums[True] / counts[True]).numpy()
        inside = (sums[False] / counts[False]).numpy()
        out = boundary / inside
    out[(boundary == 0) & (inside == 0)] = np.nan
    return out


def ms_ssim(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    betas: tuple[float, ...] = MS_SSIM_BETAS,
    window: int = 7,
) -> np.ndarray:
    """float64 (N,): multi-scale SSIM (torchmetrics) of uint8 RGB frames with a
    ``window`` x ``window`` uniform window at ``len(betas)`` scales, the exponents
    renormalised to sum 1 (data range 255). ``betas=(1.0,)`` is single-scale SSIM."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    p, t = _pair(pred, target)
    b = tuple(float(v) / sum(betas) for v in betas)
    with torch.no_grad():
        out = multiscale_structural_similarity_index_measure(
            p.double() * 255.0,
            t.double() * 255.0,
            gaussian_kernel=False,
            kernel_size=window,
            data_range=255.0,
            betas=b,
            normalize="relu",
            reduction="none",
        )
    return out.numpy()
