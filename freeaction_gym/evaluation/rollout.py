"""Autoregressive world-model rollouts and held-out evaluation clips.

* :func:`rollout_autoregressive` turns context latents and an action sequence of any
  length into a latent video, one chunk of at most ``num_frames - num_context`` frames at a
  time. The last generated latents are the next chunk's context, never re-encoded
  (IRASim's long-trajectory setting, REFERENCE §1). A final partial chunk simply predicts
  fewer frames (the DiT accepts fewer frames than its temporal slots) instead of IRASim's
  padding by a repeated action. Prompt models also get each chunk's window of the clip's
  visual action prompts.
* :func:`collect_clips` takes deterministic, non-overlapping windows (or whole episodes)
  from a split of an episode dataset, as IRASim's val/test clips (stride = clip length);
  :func:`demo_clips` the same from a bundle's held-out demo episodes (no dataset needed).

The environment and the experiments share these, so "a rollout" means the same thing in
every number we report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from freeaction_gym.data.episodes import list_episodes, load_episode
from freeaction_gym.diffusion.truncation import truncated_normal_from_uniform
from freeaction_gym.world_model.model import SamplingConfig, WorldModel

SamplingArg = SamplingConfig | Callable[[int], SamplingConfig]


def max_chunk(world: WorldModel) -> int:
    """Frames one denoiser call can predict: ``num_frames - num_context``."""
    return world.dit.config.num_frames - world.num_context


def chunk_sizes(num_actions: int, chunk: int) -> list[int]:
    """Frames predicted per chunk: ``chunk`` while possible, then the remainder."""
    if num_actions < 1 or chunk < 1:
        raise ValueError(f"need num_actions >= 1 and chunk >= 1, got {num_actions}, {chunk}")
    full, rest = divmod(num_actions, chunk)
    return [chunk] * full + ([rest] if rest else [])


def paired_initial_noise(
    generators: Sequence[torch.Generator], shape: tuple[int, ...], tau: torch.Tensor
) -> torch.Tensor:
    """float32 (B, *shape) initial noise, clip b's uniforms drawn from ``generators[b]`` and
    mapped through the truncated-normal inverse CDF at ``tau[b]`` (inf: plain Gaussian)."""
    if len(generators) != len(tau):
        raise ValueError(f"{len(generators)} generators for {len(tau)} clips")
    u = torch.stack([torch.rand(shape, generator=g, dtype=torch.float64) for g in generators])
    return truncated_normal_from_uniform(u, tau).float()


def clip_generators(seed: int, clip_ids: Sequence[int]) -> list[torch.Generator]:
    """One generator per clip, seeded by (seed, clip id) only."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + int(c)) for c in clip_ids]


@torch.inference_mode()
def rollout_autoregressive(
    world: WorldModel,
    context_latent: torch.Tensor,
    actions: torch.Tensor,
    sampling: SamplingArg | None = None,
    chunk: int | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    prompts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate every frame that follows ``context_latent`` under ``actions``.

    context_latent (B, n, C, h, w) clean latents, n = ``world.num_context``; actions
    (B, n - 1 + T, A) in model units, covering every transition after the first context
    frame (the ``WorldModel.predict`` convention). ``chunk`` (default and maximum:
    :func:`max_chunk`) is the number of frames per denoiser call. ``sampling`` is one
    :class:`SamplingConfig` for every chunk, or a function of the chunk length returning
    one (e.g. ``world.default_sampling``; FreeAction's ``mu_act`` depends on the chunk length
    under the ``chunk_l2`` norm). Initial noise is drawn from ``generator`` chunk by chunk;
    a sequence of generators (one per clip) makes every clip's noise independent of the
    batch it runs in, and of the method: each clip draws the same uniforms whatever its
    truncation threshold (see :func:`paired_initial_noise`) - the paired design.

    ``prompts``: uint8 (B, n + T, H, W, 3) visual action prompt of every frame, context
    then new; each chunk hands its window (its n context frames and k new ones) to
    ``WorldModel.predict``, which requires them of prompt models and refuses them otherwise.

    Returns latents (B, n + T, C, h, w): the context followed by the T generated frames.
    """
    n = world.num_context
    if context_latent.ndim != 5 or context_latent.shape[1] != n:
        raise ValueError(
            f"context_latent must be (B, {n}, C, h, w), got {tuple(context_latent.shape)}"
        )
    if actions.ndim != 3 or actions.shape[0] != context_latent.shape[0]:
        raise ValueError(f"actions must be (B, n - 1 + T, A), got {tuple(actions.shape)}")
    num_new = actions.shape[1] - (n - 1)
    if prompts is not None:
        b, want = context_latent.shape[0], n + num_new
        if prompts.dtype != torch.uint8 or prompts.ndim != 5 or prompts.shape[-1] != 3:
            raise ValueError(
                f"prompts must be uint8 (B, n + T, H, W, 3), got {prompts.dtype} "
                f"{tuple(prompts.shape)}"
            )
        if tuple(prompts.shape[:2]) != (b, want):
            raise ValueError(
                f"prompts must cover every frame, (B, n + T) = ({b}, {want}) for {n} context "
                f"frame(s) and {num_new} action(s), got {tuple(prompts.shape[:2])}"
            )
    limit = max_chunk(world)
    chunk = limit if chunk is None else chunk
    if not 1 <= chunk <= limit:
        raise ValueError(f"chunk must be in [1, {limit}] for this model, got {chunk}")
    frames = [context_latent[:, i] for i in range(n)]  # list of (B, C, h, w)
    done = 0
    for k in chunk_sizes(num_new, chunk):
        ctx = torch.stack(frames[-n:], dim=1)  # (B, n, C, h, w): generated latents, as is
        acts = actions[:, done : done + n - 1 + k]  # (B, n - 1 + k, A)
        cfg = sampling(k) if callable(sampling) else sampling
        # (B, n + k, H, W, 3): the window's prompts; prompt-less calls stay as they were
        window = {} if prompts is None else {"prompts": prompts[:, done : done + n + k]}
        if generator is None or isinstance(generator, torch.Generator):
            z, _ = world.predict(ctx, acts, cfg, generator=generator, **window)  # (B, k, C, h, w)
        else:
            cfg = cfg or world.default_sampling(k)
            norm = world.action_norm(acts[:, n - 1 :], cfg.norm)  # (B,): computed once, passed on
            noise = paired_initial_noise(generator, (k, *ctx.shape[2:]), cfg.truncation.tau(norm))
            z, _ = world.predict(ctx, acts, cfg, noise=noise.to(ctx), action_norm=norm, **window)
        frames.extend(z.unbind(dim=1))
        done += k
    return torch.stack(frames, dim=1)


@dataclass(frozen=True)
class Clips:
    """Evaluation clips from one split; frame 0 of each clip is the context frame."""

    frames: np.ndarray
    """uint8 (N, F, H, W, 3) ground-truth video."""
    actions: torch.Tensor
    """float32 (N, F - 1, A) raw dataset actions (the model's units)."""
    episodes: list[str]
    """Source episode file name of each clip."""
    starts: list[int]
    """First frame of each clip in its episode."""

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def tasks(self) -> list[str]:
        return [name.rsplit("_", 1)[0] for name in self.episodes]


def collect_clips(
    root: str | Path,
    split: str = "test",
    num_frames: int | None = None,
    num_clips: int | None = None,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
) -> Clips:
    """Deterministic evaluation clips of ``num_frames`` frames from ``split``.

    Windows start at 0, F, 2F, ... in every episode (non-overlapping, IRASim's val/test
    stride). ``num_frames=None`` takes whole episodes, cut to the shortest one. With
    ``num_clips`` a fixed random subset (``seed``) is kept, in dataset order.
    """
    paths = list_episodes(root, split, tasks)
    episodes = [load_episode(p, load_depth=False) for p in paths]
    videos = [(p.name, ep.rgb, ep.action) for p, ep in zip(paths, episodes, strict=True)]
    return _windows(videos, num_frames, num_clips, seed, f"{split} episode")


def demo_clips(
    path: str | Path = "bundled:metaworld_default/demo_episodes.npz",
    num_frames: int | None = None,
    num_clips: int | None = None,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
) -> Clips:
    """:func:`collect_clips` on a bundle's held-out demo episodes instead of a dataset.

    ``path``: a ``demo_episodes.npz`` (``freeaction bundle`` writes one: ``rgb`` uint8
    (E, T+1, H, W, 3), ``action`` (E, T, A), ``task`` (E,)), as a file path or
    ``bundled:<name>/demo_episodes.npz``; the default ships with the package (6 test-split
    episodes of 41 frames, 2 per task), so evaluation code runs without generated data.
    """
    from freeaction_gym.assets import resolve_asset_path

    with np.load(resolve_asset_path(path)) as demo:
        rgb, action, task = demo["rgb"], demo["action"], [str(t) for t in demo["task"]]
    videos = [
        (f"{t}_{i:05d}.npz", rgb[i], action[i])
        for i, t in enumerate(task)
        if tasks is None or t in tasks
    ]
    if not videos:
        raise ValueError(f"{path}: no demo episode of tasks {list(tasks or [])} (it has {task})")
    return _windows(videos, num_frames, num_clips, seed, "demo episode")


def _windows(
    videos: list[tuple[str, np.ndarray, np.ndarray]],
    num_frames: int | None,
    num_clips: int | None,
    seed: int,
    what: str,
) -> Clips:
    """Clips of ``(name, rgb (T+1, H, W, 3), action (T, A))`` episodes: windows at stride
    ``num_frames`` (whole episodes cut to the shortest when None), a seeded subset of
    ``num_clips``."""
    lengths = [len(rgb) for _, rgb, _ in videos]
    if num_frames is None:
        num_frames = min(lengths)
    if num_frames < 2:
        raise ValueError(f"clips need at least 2 frames, got {num_frames}")
    index = [
        (e, s) for e, n in enumerate(lengths) for s in range(0, n - num_frames + 1, num_frames)
    ]
    if not index:
        raise ValueError(f"no {what} has {num_frames} frames (longest: {max(lengths)})")
    if num_clips is not None and num_clips < len(index):
        keep = np.sort(np.random.default_rng(seed).choice(len(index), num_clips, replace=False))
        index = [index[i] for i in keep]
    frames = np.stack([videos[e][1][s : s + num_frames] for e, s in index])
    actions = np.stack([videos[e][2][s : s + num_frames - 1] for e, s in index])
    return Clips(
        frames=frames,
        actions=torch.from_numpy(actions.astype(np.float32)),
        episodes=[videos[e][0] for e, _ in index],
        starts=[s for _, s in index],
    )


@torch.inference_mode()
def encode_frames(world: WorldModel, frames: np.ndarray, batch: int = 16) -> torch.Tensor:
    """uint8 (N, F, H, W, 3) -> latents (N, F, C, h, w), ``batch`` clips at a time."""
    video = torch.from_numpy(np.ascontiguousarray(frames))
    return torch.cat([world.encode(video[i : i + batch]) for i in range(0, len(video), batch)])
