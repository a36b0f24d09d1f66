"""Open-loop replay: held-out episodes re-imagined from their first frames and real actions.

A user of the environment starts from a real frame and feeds actions; the imagined frames
they see are what this module scores. For each held-out episode the world model receives
the first ``n`` real frames (``n = world.num_context``) and the episode's real actions and
imagines ``horizon`` frames autoregressively
(:func:`~freeaction_gym.evaluation.rollout.rollout_autoregressive`, one seeded generator per
episode, :func:`~freeaction_gym.evaluation.rollout.clip_generators`). *Step k* is the k-th
imagined frame after the last context frame. At each scored step (default 1, 5, 10, 20,
40) :func:`score_replay` compares the imagined frame with the real one: probe errors (hand
cm, gripper, object cm; the same probe on the real frame gives the floor on these
frames), sharpness ratios (moving region, whole frame), blockiness, SSIM, MS-SSIM, PSNR,
moving-region PSNR, latent L2, and the copy baseline (the last real context frame shown
forever) by SSIM, MS-SSIM and PSNR. Values are per episode, so :func:`summarize` gives
95% t-intervals over episodes and paired differences to the copy baseline.

Models with different ``n`` are compared on the same frames: a :class:`ReplaySet` reserves
``num_context`` leading frames (the largest ``n`` of the models compared) and a model with
fewer context frames starts later in them (:meth:`ReplaySet.for_context`), so every model's
step k is the same real frame.

Prompt models (``WorldModel.takes_prompts``) also need every frame's visual action prompt:
:attr:`ReplaySet.prompts` and the ``prompts`` of :func:`imagine` and
:func:`short_clip_scores` (made by :mod:`~freeaction_gym.evaluation.prompt_source`), cut
and shuffled together with the frames and actions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from freeaction_gym.data.episodes import load_episode
from freeaction_gym.evaluation.fidelity import (
    blockiness,
    motion_mask,
    moving_sharpness_ratio,
    ms_ssim,
    sharpness_ratio,
)
from freeaction_gym.evaluation.metrics import latent_l2, moving_region_psnr, psnr_video, ssim_video
from freeaction_gym.evaluation.paired_stats import mean_ci, paired_diff_ci
from freeaction_gym.evaluation.probe import probe_errors
from freeaction_gym.evaluation.rollout import (
    Clips,
    SamplingArg,
    clip_generators,
    collect_clips,
    encode_frames,
    rollout_autoregressive,
)
from freeaction_gym.rewards.state_probe import StateProbe
from freeaction_gym.world_model.model import WorldModel

STEPS = (1, 5, 10, 20, 40)
PSNR_CAP = 100.0  # dB; identical frames give +inf
COPY_PAIRS = {
    "ssim": "copy_ssim",
    "ms_ssim": "copy_ms_ssim",
    "psnr": "copy_psnr",
    "ssim_rollout": "copy_ssim_rollout",
    "psnr_rollout": "copy_psnr_rollout",
}
"""Metric -> its copy-baseline column (paired differences in :func:`summarize`)."""


@dataclass(frozen=True)
class ReplaySet:
    """Held-out clips with their states; frames ``0 .. num_context - 1`` are the context."""

    clips: Clips
    """Frames uint8 (N, F, H, W, 3), actions (N, F - 1, A), source episodes."""
    states: np.ndarray | None
    """float32 (N, F, S) per-frame state, or None when the episodes have none."""
    num_context: int
    """Leading frames reserved for context (the largest ``num_context`` of the models)."""
    prompts: np.ndarray | None = None
    """uint8 (N, F, H, W, 3) visual action prompt of every frame, for prompt models; None
    for prompt-less ones."""

    def __post_init__(self) -> None:
        if self.prompts is not None:
            check_prompt_video(self.prompts, self.clips.frames.shape[:2])

    @property
    def horizon(self) -> int:
        return int(self.clips.frames.shape[1]) - self.num_context

    def for_context(self, n: int) -> ReplaySet:
        """The same clips for a model with ``n <= num_context`` context frames: the first
        ``num_context - n`` frames dropped, so step k is the same frame for every model."""
        if not 1 <= n <= self.num_context:
            raise ValueError(f"this set reserves {self.num_context} context frames; got n={n}")
        d = self.num_context - n
        c = self.clips
        clips = replace(c, frames=c.frames[:, d:], actions=c.actions[:, d:])
        states = None if self.states is None else self.states[:, d:]
        prompts = None if self.prompts is None else self.prompts[:, d:]
        return ReplaySet(clips, states, n, prompts)


def check_prompt_video(prompts: np.ndarray, frames: tuple[int, ...]) -> None:
    """``ValueError`` unless ``prompts`` is uint8 (N, F, H, W, 3) with the (N, F) ``frames``
    of the clips it belongs to."""
    p = prompts
    if p.dtype != np.uint8 or p.ndim != 5 or p.shape[-1] != 3 or p.shape[:2] != tuple(frames):
        raise ValueError(
            f"prompts must be uint8 (N, F, H, W, 3) with (N, F) = {tuple(frames)} as the "
            f"clips' frames, got {p.dtype} {p.shape}"
        )


def load_replay_set(
    root: str | Path,
    split: str = "test",
    num_context: int = 1,
    horizon: int = 40,
    num_clips: int | None = None,
    seed: int = 0,
) -> ReplaySet:
    """Windows of ``num_context + horizon`` frames starting at frame 0 of each episode
    (a fixed ``seed`` subset of ``num_clips``; :func:`collect_clips`) with their states."""
    clips = collect_clips(root, split, num_context + horizon, num_clips, seed)
    f = clips.frames.shape[1]
    states = []
    for name, start in zip(clips.episodes, clips.starts, strict=True):
        s = load_episode(Path(root) / split / name, load_depth=False, action_dim=None).state
        states.append(None if s is None else s[start : start + f])
    have = [s is not None for s in states]
    return ReplaySet(clips, np.stack(states) if all(have) else None, num_context)


@dataclass
class Imagined:
    """Context + imagined frames of N clips and the time it took."""

    frames: np.ndarray
    """uint8 (N, n + T, H, W, 3): the real context, then T imagined frames."""
    latents: torch.Tensor
    """(N, n + T, C, h, w) the same in the model's latent space."""
    seconds: float
    """Wall time of rollout + decode (context encoding excluded)."""
    num_context: int

    @property
    def ms_per_frame(self) -> float:
        """Milliseconds per imagined frame (at the batch size used)."""
        n_new = self.frames.shape[0] * (self.frames.shape[1] - self.num_context)
        return 1000.0 * self.seconds / max(1, n_new)


def imagine(
    world: WorldModel,
    frames: np.ndarray,
    actions: torch.Tensor,
    sampling: SamplingArg | None = None,
    chunk: int | None = None,
    seed: int = 0,
    batch: int = 8,
    desc: str = "imagine",
    prompts: np.ndarray | None = None,
) -> Imagined:
    """Roll out clips uint8 (N, F, H, W, 3) from their first ``world.num_context`` frames
    under ``actions`` (N, F - 1, A), ``batch`` clips at a time; clip i draws its noise from
    ``clip_generators(seed, [i])`` whatever the batch (paired across models and actions).
    ``prompts``: uint8 (N, F, H, W, 3), every frame's visual action prompt (prompt models)."""
    if prompts is not None:
        check_prompt_video(prompts, frames.shape[:2])
    n = world.num_context
    ctx = encode_frames(world, frames[:, :n], batch)  # (N, n, C, h, w)
    videos, latents, seconds = [], [], 0.0
    for lo in tqdm(range(0, len(frames), batch), desc=desc, leave=False, mininterval=5):
        hi = min(len(frames), lo + batch)
        t0 = time.perf_counter()
        gens = clip_generators(seed, range(lo, hi))
        p = None if prompts is None else torch.from_numpy(np.ascontiguousarray(prompts[lo:hi]))
        z = rollout_autoregressive(world, ctx[lo:hi], actions[lo:hi], sampling, chunk, gens, p)
        video = world.decode(z).numpy()  # (B, F, H, W, 3)
        seconds += time.perf_counter() - t0
        videos.append(video)
        latents.append(z)
    return Imagined(np.concatenate(videos), torch.cat(latents), seconds, n)


def _frame_pair(pred: np.ndarray, real: np.ndarray) -> dict[str, np.ndarray]:
    """PSNR (capped), SSIM (scikit-image, ``metrics.ssim_video``) and MS-SSIM of single
    frames (N, H, W, 3) -> each (N,)."""
    p, r = pred[:, None], real[:, None]
    return {
        "psnr": np.minimum(psnr_video(p, r, skip_first=0), PSNR_CAP),
        "ssim": ssim_video(p, r, skip_first=0),
        "ms_ssim": ms_ssim(pred, real),
    }


def score_replay(
    real: np.ndarray,
    imagined: np.ndarray,
    num_context: int,
    steps: Sequence[int] = STEPS,
    states: np.ndarray | None = None,
    probe: StateProbe | None = None,
    latents: tuple[torch.Tensor, torch.Tensor] | None = None,
    threshold: float = 10,
    dilate: int = 2,
    patch: int = 8,
) -> dict[str, dict[int, np.ndarray]]:
    """Per-clip scores ``{metric: {step: (N,)}}`` of imagined vs real videos uint8
    (N, F, H, W, 3) (frames ``0 .. num_context - 1`` are the context; step k is frame
    ``num_context - 1 + k``). Probe errors (and their ``floor_*`` on the real frames) need
    ``states`` (N, F, S) and ``probe``; ``latent_l2`` needs ``latents`` = (imagined, real)
    latents (N, len(steps), C, h, w) of the scored frames. ``threshold`` / ``dilate``: the
    moving region (:func:`~freeaction_gym.evaluation.fidelity.motion_mask`); ``patch``: the
    blockiness grid. ``ssim_rollout`` / ``psnr_rollout`` (and their copy columns) are the
    per-clip means over *every* imagined frame, filed under the last step (the horizon)."""
    if real.shape != imagined.shape:
        raise ValueError(f"real {real.shape} and imagined {imagined.shape} differ")
    last = num_context - 1
    if max(steps) > real.shape[1] - num_context or min(steps) < 1:
        raise ValueError(f"steps {tuple(steps)} outside 1..{real.shape[1] - num_context}")
    context = real[:, last]  # (N, H, W, 3)
    out: dict[str, dict[int, np.ndarray]] = {}

    def put(step: int, values: dict[str, np.ndarray]) -> None:
        for k, v in values.items():
            out.setdefault(k, {})[step] = np.asarray(v, np.float64)

    horizon = real.shape[1] - num_context  # whole rollout: mean over steps 1..horizon
    copy = np.repeat(context[:, None], real.shape[1], axis=1)
    for tag, video in (("", imagined), ("copy_", copy)):
        put(horizon, {
            f"{tag}ssim_rollout": ssim_video(video, real, skip_first=num_context),
            f"{tag}psnr_rollout": np.minimum(psnr_video(video, real, num_context), PSNR_CAP),
        })  # fmt: skip
    for j, k in enumerate(steps):
        p, r = imagined[:, last + k], real[:, last + k]  # (N, H, W, 3)
        put(k, _frame_pair(p, r))
        put(k, {f"copy_{m}": v for m, v in _frame_pair(context, r).items()})
        moving = motion_mask([r, p], context, threshold, dilate)
        pairs = np.stack([context, p], 1), np.stack([context, r], 1)  # (N, 2, H, W, 3)
        psnr_moving = moving_region_psnr(*pairs, context, threshold=threshold)
        put(
            k,
            {
                "moving_psnr": np.minimum(psnr_moving, PSNR_CAP),
                "sharpness_moving": moving_sharpness_ratio(p, r, context, threshold, dilate),
                "sharpness_whole": sharpness_ratio(p, r),
                "blockiness": blockiness(p, patch),
                "blockiness_moving": blockiness(p, patch, moving),
                "blockiness_real": blockiness(r, patch),
            },
        )
        if latents is not None:
            put(k, {"latent_l2": latent_l2(latents[0][:, j : j + 1], latents[1][:, j : j + 1], 0)})
        if probe is not None and states is not None:
            s = states[:, last + k]
            put(k, probe_errors(probe, p, s))
            put(k, {f"floor_{m}": v for m, v in probe_errors(probe, r, s).items()})
    return out


def ci_cell(x: np.ndarray) -> dict[str, float]:
    """``{mean, lo, hi, n}``: 95% t-interval over the finite entries of ``x``."""
    m, lo, hi = mean_ci(x)
    return {"mean": m, "lo": lo, "hi": hi, "n": int(np.isfinite(np.asarray(x, float)).sum())}


def diff_cell(x: np.ndarray, base: np.ndarray) -> dict[str, float]:
    """``{mean, lo, hi, p}`` of the paired difference ``x - base`` (paired t-test p)."""
    return dict(zip(("mean", "lo", "hi", "p"), paired_diff_ci(x, base), strict=True))


def summarize(scores: dict[str, dict], pairs: dict[str, str] = COPY_PAIRS) -> dict[str, dict]:
    """``{metric: {step: ci_cell}}`` (non-finite clips dropped) plus ``"<metric> - copy"``:
    ``{step: diff_cell}`` against the copy column of each pair."""
    out = {m: {k: ci_cell(x) for k, x in by_step.items()} for m, by_step in scores.items()}
    for metric, base in pairs.items():
        if metric in scores and base in scores:
            out[f"{metric} - copy"] = {
                k: diff_cell(x, scores[base][k]) for k, x in scores[metric].items()
            }
    return out


SHORT_PAIRS = {
    "psnr - copy": ("psnr", "copy_psnr"),
    "ssim - copy": ("ssim", "copy_ssim"),
    "ms_ssim - copy": ("ms_ssim", "copy_ms_ssim"),
    "moving_psnr - copy": ("moving_psnr", "copy_moving_psnr"),
    "action sensitivity": ("moving_psnr", "moving_psnr_shuffled"),
}
"""Paired differences of :func:`summarize_short`; the action sensitivity is the drop of
moving-region PSNR when the clips' actions are shuffled."""


def summarize_short(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{metric: ci_cell}`` of :func:`short_clip_scores` plus the :data:`SHORT_PAIRS`
    paired differences (``diff_cell``)."""
    out = {m: ci_cell(x) for m, x in scores.items()}
    out |= {name: diff_cell(scores[a], scores[b]) for name, (a, b) in SHORT_PAIRS.items()}
    return out


@dataclass
class ReplayResult:
    """Per-clip scores, their summary, the imagined video and the model's speed."""

    scores: dict[str, dict[int, np.ndarray]]
    summary: dict[str, dict]
    imagined: np.ndarray
    """uint8 (N, n + T, H, W, 3) context + imagined frames."""
    ms_per_frame: float


def evaluate_replay(
    world: WorldModel,
    data: ReplaySet,
    sampling: SamplingArg | None = None,
    probe: StateProbe | None = None,
    steps: Sequence[int] = STEPS,
    chunk: int | None = None,
    seed: int = 0,
    batch: int = 8,
    **score_kw,
) -> ReplayResult:
    """Imagine every clip of ``data`` (trimmed to the model's context; a prompt model gets
    ``data.prompts``) and score it at ``steps`` (:func:`score_replay`; ``score_kw``:
    threshold, dilate, patch)."""
    n = world.num_context
    own = data.for_context(n)
    clips = own.clips
    run = imagine(
        world, clips.frames, clips.actions, sampling, chunk, seed, batch, "replay", own.prompts
    )
    idx = [n - 1 + k for k in steps]
    true_z = encode_frames(world, clips.frames[:, idx], batch)
    scores = score_replay(
        clips.frames, run.frames, n, steps, own.states, probe, (run.latents[:, idx], true_z),
        **score_kw,
    )  # fmt: skip
    return ReplayResult(scores, summarize(scores), run.frames, run.ms_per_frame)


def short_clip_scores(
    world: WorldModel,
    clips: Clips,
    num_context: int,
    sampling: SamplingArg | None = None,
    chunk: int | None = None,
    seed: int = 0,
    batch: int = 8,
    threshold: float = 10,
    prompts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-clip scores (N,) of short clips (``num_context`` reserved context frames + K
    actions, e.g. 1 + 4): PSNR, SSIM, MS-SSIM and moving-region PSNR over the K imagined
    frames, the copy baseline's, and the same rollouts with the clips' new actions rolled
    by one clip (``*_shuffled``: same noise, another clip's actions; the moving-PSNR drop
    is the action sensitivity). ``prompts``: uint8 (N, F, H, W, 3), every frame's visual
    action prompt (prompt models); the new frames' prompts are rolled with the actions."""
    data = ReplaySet(clips, None, num_context, prompts).for_context(world.num_context)
    own, n = data.clips, world.num_context
    true = own.frames
    shuffled = own.actions.clone()
    shuffled[:, n - 1 :] = shuffled[:, n - 1 :].roll(1, dims=0)  # context transitions stay
    shuffled_prompts = None
    if data.prompts is not None:  # frame f follows action f - 1: its prompt rolls alike
        shuffled_prompts = data.prompts.copy()
        shuffled_prompts[:, n:] = np.roll(data.prompts[:, n:], 1, axis=0)
    run = {"{}": (own.actions, data.prompts), "{}_shuffled": (shuffled, shuffled_prompts)}
    copy = np.concatenate([true[:, :n], np.repeat(true[:, n - 1 : n], true.shape[1] - n, 1)], 1)
    videos = {"copy_{}": copy} | {
        name: imagine(world, true, acts, sampling, chunk, seed, batch, "short", p).frames
        for name, (acts, p) in run.items()
    }
    out = {}
    frame_shape = true.shape[2:]
    for name, video in videos.items():
        ms = ms_ssim(video[:, n:].reshape(-1, *frame_shape), true[:, n:].reshape(-1, *frame_shape))
        moving = moving_region_psnr(video, true, true[:, n - 1], threshold, skip_first=n)
        out[name.format("psnr")] = np.minimum(psnr_video(video, true, skip_first=n), PSNR_CAP)
        out[name.format("ssim")] = ssim_video(video, true, skip_first=n)
        out[name.format("ms_ssim")] = ms.reshape(len(true), -1).mean(1)  # mean over K frames
        out[name.format("moving_psnr")] = np.minimum(moving, PSNR_CAP)
    return out
