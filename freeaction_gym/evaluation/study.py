"""Paired comparison of sampling methods: same clips, same initial-noise uniforms, several seeds.

A *method* is a set of :class:`~freeaction_gym.world_model.SamplingConfig` overrides (e.g.
action-scaled CFG on, truncation fixed at tau = 1). :func:`run_methods` rolls every method
out on the same clips with per-clip generators seeded by (seed, clip id) only, so a clip's
initial noise under two methods comes from the same uniforms (mapped through each method's
truncation threshold) and its difference between methods is a paired difference.
:func:`summarize` turns per-clip scores into means with 95% intervals and paired
differences against a baseline row.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from freeaction_gym.evaluation.metrics import (
    latent_l2,
    moving_region_psnr,
    psnr_video,
    ssim_video,
)
from freeaction_gym.evaluation.paired_stats import mean_ci, paired_diff_ci
from freeaction_gym.evaluation.rollout import Clips, clip_generators, rollout_autoregressive
from freeaction_gym.world_model.model import WorldModel

PSNR_CAP = 100.0  # dB; identical frames give +inf (e.g. a static clip predicted exactly)
METRICS = ("psnr", "psnr_gray", "ssim", "ssim_gray", "latent_l2", "moving_psnr")
HIGHER_IS_BETTER = {"latent_l2": False}


@dataclass(frozen=True)
class Method:
    """One row of a table: a name and nested ``SamplingConfig`` overrides over the base."""

    name: str
    overrides: dict = field(default_factory=dict)


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (nested dicts merge, values replace)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def sampling_fn(world: WorldModel, base: dict, method: Method):
    """chunk -> SamplingConfig for ``method`` (``mu_act`` from the model's statistics)."""
    spec = merge(base, method.overrides)
    return lambda k: world.default_sampling(k, **spec)


@dataclass
class MethodResult:
    """Scores of one method over S seeds and N clips whose first ``n`` frames are context:
    ``scores[metric]`` (S, N); ``per_frame_psnr`` (S, N, F-n) colour PSNR per generated
    frame (capped at :data:`PSNR_CAP`); ``per_frame_drift`` (S, N, F-n) mean pixel of the
    prediction minus the truth's (uint8 units); ``frames`` uint8 (N, F, H, W, 3) of seed 0;
    ``health``: count of non-finite generated latents and their largest magnitude."""

    scores: dict[str, np.ndarray]
    per_frame_psnr: np.ndarray
    frames: np.ndarray | None
    sampling: dict
    per_frame_drift: np.ndarray | None = None
    health: dict[str, float] = field(default_factory=dict)


def score_clips(
    pred: np.ndarray,
    truth: np.ndarray,
    pred_lat: torch.Tensor,
    true_lat: torch.Tensor,
    num_context: int = 1,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-clip metrics over the frames after the ``num_context`` context frames (IRASim:
    frames 2..F) and per-frame colour PSNR; every PSNR capped per frame at PSNR_CAP."""
    n = num_context
    pf = np.minimum(psnr_video(pred, truth, skip_first=n, per_frame=True), PSNR_CAP)
    gray = psnr_video(pred, truth, color=False, skip_first=n, per_frame=True)
    scores = {
        "psnr": pf.mean(axis=1),
        "psnr_gray": np.minimum(gray, PSNR_CAP).mean(axis=1),
        "ssim": ssim_video(pred, truth, skip_first=n),
        "ssim_gray": ssim_video(pred, truth, color=False, skip_first=n),
        "latent_l2": latent_l2(pred_lat, true_lat, skip_first=n),
        "moving_psnr": np.minimum(
            moving_region_psnr(pred, truth, truth[:, n - 1], skip_first=n), PSNR_CAP
        ),
    }
    return scores, pf


def pixel_drift(pred: np.ndarray, truth: np.ndarray, num_context: int = 1) -> np.ndarray:
    """(N, F-n) mean pixel of each generated frame minus the true frame's (uint8 units)."""
    n = num_context
    return pred[:, n:].mean(axis=(2, 3, 4)) - truth[:, n:].mean(axis=(2, 3, 4))


@torch.inference_mode()
def run_methods(
    world: WorldModel,
    clips: Clips,
    latents: torch.Tensor,
    methods: Sequence[Method],
    base: dict,
    seeds: Sequence[int] = (0,),
    chunk: int | None = None,
    batch: int = 32,
    keep_frames: bool = True,
    desc: str = "",
) -> dict[str, MethodResult]:
    """Roll every method out on every clip for every seed.

    clips: ground truth (N, F, H, W, 3) + actions (N, F-1, A); latents (N, F, C, h, w) the
    encoded ground truth (context = the first ``world.num_context`` frames). Clip ``i``'s
    noise comes from a generator seeded by (seed, i) only, so results do not depend on
    ``batch`` beyond float rounding. Returns {method name: MethodResult}.
    """
    n, (num, f) = world.num_context, latents.shape[:2]
    out: dict[str, MethodResult] = {}
    total = len(methods) * len(seeds) * -(-num // batch)
    bar = tqdm(total=total, desc=desc or "methods", mininterval=2)
    for m in methods:
        make = sampling_fn(world, base, m)
        scores = {k: np.empty((len(seeds), num)) for k in METRICS}
        per_frame, drift = np.empty((2, len(seeds), num, f - n))
        frames = np.empty_like(clips.frames) if keep_frames else None
        health = {"nonfinite_latents": 0, "max_abs_latent": 0.0}
        for s_i, seed in enumerate(seeds):
            for lo in range(0, num, batch):
                hi = min(num, lo + batch)
                gens = clip_generators(seed, range(lo, hi))
                acts = clips.actions[lo:hi, : f - 1]
                z = rollout_autoregressive(world, latents[lo:hi, :n], acts, make, chunk, gens)
                pred = world.decode(z).numpy()
                sc, pf = score_clips(pred, clips.frames[lo:hi], z, latents[lo:hi], n)
                for k in METRICS:
                    scores[k][s_i, lo:hi] = sc[k]
                per_frame[s_i, lo:hi] = pf
                drift[s_i, lo:hi] = pixel_drift(pred, clips.frames[lo:hi], n)
                health["nonfinite_latents"] += int((~torch.isfinite(z)).sum())
                biggest = float(z.abs().nan_to_num(posinf=0.0).max())
                health["max_abs_latent"] = max(health["max_abs_latent"], biggest)
                if keep_frames and s_i == 0:
                    frames[lo:hi] = pred
                bar.update(1)
        out[m.name] = MethodResult(
            scores, per_frame, frames, make(chunk or 1).to_dict(), drift, health
        )
    bar.close()
    return out


def copy_baseline(clips: Clips, latents: torch.Tensor, num_context: int = 1) -> MethodResult:
    """Repeat the last context frame into every later frame (the static-camera minimum)."""
    n, f = num_context, clips.frames.shape[1]
    pred = np.concatenate([clips.frames[:, :n], np.repeat(clips.frames[:, n - 1 : n], f - n, 1)], 1)
    z = torch.cat([latents[:, :n], latents[:, n - 1 : n].expand_as(latents[:, n:])], dim=1)
    sc, pf = score_clips(pred, clips.frames, z, latents, n)
    drift = pixel_drift(pred, clips.frames, n)[None]
    return MethodResult({k: v[None] for k, v in sc.items()}, pf[None], pred, {}, drift)


def summarize(
    results: dict[str, MethodResult], baseline: str, metrics: Sequence[str] = METRICS
) -> dict[str, dict[str, dict[str, float]]]:
    """{row: {metric: {mean, lo, hi, diff, diff_lo, diff_hi, p}}}.

    Per clip, scores are first averaged over seeds (the clip is the unit of replication);
    intervals are 95% t-intervals over clips; ``diff*`` is the paired difference row -
    baseline with its interval and two-sided paired t-test p-value (absent for the
    baseline itself). Clips whose score is NaN for either row (e.g. moving-region PSNR of
    a clip with no motion) are dropped from that metric.
    """
    table: dict[str, dict[str, dict[str, float]]] = {}
    base = results[baseline]
    for name, res in results.items():
        row = {}
        for k in metrics:
            x = res.scores[k].mean(axis=0)
            cell = dict(zip(("mean", "lo", "hi"), mean_ci(x), strict=True))
            if name != baseline:
                b = base.scores[k].mean(axis=0)
                cell |= dict(
                    zip(("diff", "diff_lo", "diff_hi", "p"), paired_diff_ci(x, b), strict=True)
                )
            row[k] = cell
        table[name] = row
    return table


def markdown_table(
    table: dict, metrics: Sequence[str], baseline: str, digits: dict[str, int] | None = None
) -> str:
    """Rows = methods; each cell ``mean [lo, hi]`` plus ``(+diff [lo, hi])`` vs baseline,
    the difference in bold when its interval excludes 0."""
    digits = digits or {}
    head = "| method | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 1)]
    for name, row in table.items():
        cells = []
        for k in metrics:
            c, d = row[k], digits.get(k, 2 if "psnr" in k else 4)
            txt = f"{c['mean']:.{d}f} [{c['lo']:.{d}f}, {c['hi']:.{d}f}]"
            if name != baseline and "diff" in c and np.isfinite(c["diff"]):
                diff = f"{c['diff']:+.{d}f} [{c['diff_lo']:+.{d}f}, {c['diff_hi']:+.{d}f}]"
                significant = c["diff_lo"] > 0 or c["diff_hi"] < 0
                txt += f"<br>{'**' + diff + '**' if significant else diff}"
            cells.append(txt)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
