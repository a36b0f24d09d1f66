"""Training batches of (clip frames, actions).

* MetaWorld datasets are small: :class:`EpisodeBank` keeps every episode of a split in RAM
  (frames already encoded by the codec - the latent pre-encoding cache) and samples random
  windows without a DataLoader.
* IRASim-layout datasets are large: :func:`irasim_batches` streams windows through a
  DataLoader and encodes them per batch.

Prompt models (``DiTConfig.prompt``, seed 004) also get every clip frame's visual action
prompt: :func:`episode_prompts` renders each episode's skeleton video once from its stored
keypoints through the dataset camera (cached beside the pixel cache), and the bank cuts the
same windows from it (:class:`Clips`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class Clips:
    """A batch of training windows."""

    latents: torch.Tensor
    """(B, F, C, h, w)."""
    actions: torch.Tensor
    """(B, F-1, A)."""
    prompts: torch.Tensor | None = None
    """(B, F, 3, H, W) float in [-1, 1] (the pixels' range): every frame's visual action
    prompt, or None for a bank without prompts."""


def _to_float(frames: torch.Tensor) -> torch.Tensor:
    from freeaction_gym.models.autoencoder import VideoAutoencoder

    return VideoAutoencoder.to_float(frames)


def episode_prompts(
    root: str | Path, paths: list[Path], cache: str | Path | None = None
) -> list[torch.Tensor]:
    """Skeleton prompt videos uint8 (T+1, H, W, 3) of the episodes ``paths`` of the dataset
    ``root``, drawn from their stored keypoints through
    :func:`~freeaction_gym.prompts.camera.dataset_camera` with the
    default :class:`~freeaction_gym.prompts.skeleton.SkeletonStyle`. With ``cache`` they are
    saved/reused (keyed by the file list, the camera and the style)."""
    from dataclasses import asdict

    from freeaction_gym.data.episodes import load_episode
    from freeaction_gym.prompts.camera import dataset_camera
    from freeaction_gym.prompts.skeleton import SkeletonStyle, render_prompts

    camera, style = dataset_camera(root), SkeletonStyle()
    key = {"files": [p.name for p in paths], "camera": asdict(camera), "style": repr(style)}
    if cache is not None and Path(cache).is_file():
        blob = torch.load(cache, weights_only=False)
        if blob.get("key") == key:
            return blob["prompts"]
    out = []
    for p in tqdm(paths, desc="render prompts", leave=False):
        ep = load_episode(p, load_depth=False)
        if ep.keypoints is None:
            raise ValueError(
                f"episode {p} stores no keypoints, which prompts are drawn from: regenerate "
                "the dataset with the current generator (`freeaction data metaworld`)"
            )
        out.append(torch.from_numpy(render_prompts(ep.keypoints, camera, style=style)))
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cache) + ".tmp")
        torch.save({"key": key, "prompts": out}, tmp)
        tmp.replace(cache)
    return out


class EpisodeBank:
    """All episodes of one split, as latents (T+1, C, h, w) and actions (T, A), and (prompt
    models) prompt videos uint8 (T+1, H, W, 3).

    Pixel-space models keep the frames as uint8 (T+1, H, W, 3) instead (4x less memory than
    float latents: 1,500 episodes of 65 64x64 frames are 1.2 GB) and convert each sampled
    window with ``transform`` (:meth:`PixelCodec.encode`, exact)."""

    def __init__(
        self,
        latents: list[torch.Tensor],
        actions: list[torch.Tensor],
        tasks: list[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        prompts: list[torch.Tensor] | None = None,
    ):
        if not latents:
            raise ValueError("EpisodeBank is empty")
        self.latents, self.actions, self.tasks = latents, actions, tasks
        self.transform = transform
        self.lengths = np.array([a.shape[0] for a in actions])
        if prompts is not None and [len(p) for p in prompts] != [len(z) for z in latents]:
            raise ValueError("EpisodeBank prompts must have one frame per episode frame")
        self.prompts = prompts
        self.names: list[str] | None = None
        """File stems of the episodes (MetaWorld banks), for :meth:`oversample`."""
        self._emphasis: tuple[np.ndarray, float] | None = None

    def oversample(self, pattern: str, share: float) -> int:
        """Draw each clip from an episode whose file stem fully matches the regular
        expression ``pattern`` with probability ``share``, else from another one; returns
        the number of matching episodes. With no match, or nothing else, draws stay
        uniform."""
        from freeaction_gym.data.episodes import stems_matching

        if self.names is None:
            raise ValueError("oversample needs the episodes' file names (a MetaWorld bank)")
        match = stems_matching(self.names, pattern)
        self._emphasis = (
            (match, float(share)) if share > 0 and 0 < match.sum() < len(match) else None
        )
        return int(match.sum())

    @classmethod
    def from_metaworld(
        cls,
        root: str | Path,
        split: str,
        encode: Callable[[torch.Tensor], torch.Tensor] | None,
        tasks: list[str] | None = None,
        cache: str | Path | None = None,
        limit: int | None = None,
        prompts: bool = False,
        prompt_cache: str | Path | None = None,
        fraction: float = 1.0,
        fraction_seed: int = 0,
    ) -> EpisodeBank:
        """Load and encode a split; ``encode`` maps uint8 (1, F, H, W, 3) -> (1, F, C, h, w)
        (None: pixel space, frames kept as uint8 and converted per window).
        With ``cache`` the encoded bank is saved/reused (keyed by the file list). With
        ``prompts`` every episode's prompt video is rendered too (:func:`episode_prompts`,
        cached in ``prompt_cache``). ``fraction`` < 1 keeps that share of the episodes per
        task (:func:`~freeaction_gym.data.episodes.stratified_subset` with
        ``fraction_seed``), before ``limit``."""
        from freeaction_gym.data.episodes import list_episodes, stratified_subset

        paths = list_episodes(root, split, tasks)
        if fraction < 1.0:
            paths = stratified_subset(paths, fraction, fraction_seed)
        paths = paths[:limit]
        bank = cls._load(paths, split, encode, cache)
        bank.names = [p.stem for p in paths]
        if prompts:
            bank.prompts = episode_prompts(root, paths, prompt_cache)
        return bank

    @classmethod
    def _load(cls, paths, split, encode, cache) -> EpisodeBank:
        from freeaction_gym.data.episodes import load_episode
        from freeaction_gym.models.autoencoder import VideoAutoencoder

        transform = VideoAutoencoder.to_float if encode is None else None
        key = [str(p.name) for p in paths]
        if cache is not None and Path(cache).is_file():
            blob = torch.load(cache, weights_only=False)
            if blob.get("key") == key:
                return cls(blob["latents"], blob["actions"], blob["tasks"], transform)
        latents, actions, names = [], [], []
        for p in tqdm(paths, desc=f"encode {split}", leave=False):
            ep = load_episode(p, load_depth=False)
            frames = torch.from_numpy(np.array(ep.rgb))  # (T+1, H, W, 3) uint8
            if encode is None:
                latents.append(frames)
                actions.append(torch.from_numpy(np.array(ep.action, dtype=np.float32)))
                names.append(str(ep.task))
                continue
            with torch.inference_mode():
                z = encode(frames[None])[0]
            latents.append(z.clone())
            actions.append(torch.from_numpy(np.array(ep.action, dtype=np.float32)))
            names.append(str(ep.task))
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(cache) + ".tmp")
            torch.save({"key": key, "latents": latents, "actions": actions, "tasks": names}, tmp)
            tmp.replace(cache)
        return cls(latents, actions, names, transform)

    def __len__(self) -> int:
        return len(self.latents)

    def sample(
        self, batch: int, clip_frames: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: latents (B, F, C, h, w), actions (B, F-1, A)."""
        return self.windows(*self._draw(batch, clip_frames, rng), clip_frames)

    def sample_clips(self, batch: int, clip_frames: int, rng: np.random.Generator) -> Clips:
        """The windows of :meth:`sample` (same draws) with their prompts, if the bank has
        them."""
        return self.clips(*self._draw(batch, clip_frames, rng), clip_frames)

    def _draw(self, batch: int, clip_frames: int, rng: np.random.Generator):
        ok = np.flatnonzero(self.lengths >= clip_frames - 1)
        if ok.size == 0:
            raise ValueError(f"no episode has {clip_frames} frames")
        if self._emphasis is None:
            eps = rng.choice(ok, size=batch)
        else:  # two pools: the oversampled episodes with probability share, the rest
            match, share = self._emphasis
            hit, rest = ok[match[ok]], ok[~match[ok]]
            if hit.size == 0 or rest.size == 0:
                eps = rng.choice(ok, size=batch)
            else:
                pick = rng.random(batch) < share
                eps = np.where(pick, rng.choice(hit, size=batch), rng.choice(rest, size=batch))
        starts = [int(rng.integers(0, self.lengths[e] - (clip_frames - 1) + 1)) for e in eps]
        return eps, starts

    def windows(self, episodes, starts, clip_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.stack(
            [self.latents[e][s : s + clip_frames] for e, s in zip(episodes, starts, strict=True)]
        )
        if self.transform is not None:
            z = self.transform(z)
        a = torch.stack(
            [
                self.actions[e][s : s + clip_frames - 1]
                for e, s in zip(episodes, starts, strict=True)
            ]
        )
        return z, a

    def clips(self, episodes, starts, clip_frames: int) -> Clips:
        """:meth:`windows` plus the windows' prompts (float, the pixels' range) if any."""
        z, a = self.windows(episodes, starts, clip_frames)
        if self.prompts is None:
            return Clips(z, a)
        p = torch.stack(
            [self.prompts[e][s : s + clip_frames] for e, s in zip(episodes, starts, strict=True)]
        )  # (B, F, H, W, 3) uint8
        return Clips(z, a, _to_float(p))

    def fixed_windows(
        self, n: int, clip_frames: int, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same ``n`` windows every call (for validation)."""
        return self.sample(n, clip_frames, np.random.default_rng(seed))

    def fixed_clips(self, n: int, clip_frames: int, seed: int = 0) -> Clips:
        """:meth:`fixed_windows` with their prompts."""
        return self.sample_clips(n, clip_frames, np.random.default_rng(seed))


def irasim_batches(
    root: str | Path,
    split: str,
    dataset: str,
    clip_frames: int,
    batch: int,
    encode: Callable[[torch.Tensor], torch.Tensor],
    seed: int = 0,
    resolution: tuple[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (latents (B, F, C, h, w), actions (B, F-1, A)) from an IRASim-layout root."""
    from torch.utils.data import DataLoader

    from freeaction_gym.data.irasim_layout import IRASimClipDataset

    ds = IRASimClipDataset(
        root, split, dataset=dataset, clip_len=clip_frames, resolution=resolution
    )
    g = torch.Generator().manual_seed(seed)
    while True:
        for item in DataLoader(ds, batch_size=batch, shuffle=True, generator=g, drop_last=True):
            with torch.inference_mode():
                z = encode(item["frames"])
            yield z, item["actions"].float()


class StreamBank:
    """Training windows streamed from an iterator of (latents (B, F, ...), actions) batches,
    cut to the requested clip length (the EpisodeBank interface for large datasets)."""

    def __init__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches
        z, a = next(batches)
        self.latents, self.actions = [z[0]], [a[0]]  # shape probes
        self._pending = (z, a)

    def __len__(self) -> int:
        return 1

    def sample(self, batch: int, clip_frames: int, rng: np.random.Generator):
        z, a = self._pending if self._pending is not None else next(self.batches)
        self._pending = None
        if z.shape[0] != batch:
            raise ValueError(f"stream yields batches of {z.shape[0]}, asked for {batch}")
        return z[:, :clip_frames], a[:, : clip_frames - 1]

    def sample_clips(self, batch: int, clip_frames: int, rng: np.random.Generator) -> Clips:
        return Clips(*self.sample(batch, clip_frames, rng))


def irasim_val_bank(
    root: str | Path,
    split: str,
    dataset: str,
    clip_frames: int,
    n: int,
    encode: Callable[[torch.Tensor], torch.Tensor],
    resolution=None,
) -> EpisodeBank:
    """The first ``n`` evaluation windows (stride 16, as IRASim) of an IRASim-layout split,
    encoded once."""
    from freeaction_gym.data.irasim_layout import IRASimClipDataset

    ds = IRASimClipDataset(
        root, split, dataset=dataset, clip_len=clip_frames, resolution=resolution
    )
    latents, actions = [], []
    for i in range(min(n, len(ds))):
        item = ds[i]
        with torch.inference_mode():
            latents.append(encode(torch.as_tensor(item["frames"])[None])[0].clone())
        actions.append(torch.as_tensor(item["actions"]).float())
    return EpisodeBank(latents, actions, [dataset] * len(latents))


def irasim_action_stats(root: str | Path, split: str, dataset: str, chunks=(1, 4, 15)) -> dict:
    """Action mean/std and ``mu_act`` (every ActionNormSpec, non-overlapping chunks) of an
    IRASim-layout split, in the layout of MetaWorld's ``stats.json``."""
    from freeaction_gym.data.irasim_layout import IRASimClipDataset
    from freeaction_gym.diffusion.action_norm import ActionNormSpec, mean_action_norm

    ds = IRASimClipDataset(root, split, dataset=dataset, clip_len=2)
    acts = [ep.actions for ep in ds.episodes]
    flat = np.concatenate(acts)
    mean, std = flat.mean(0), flat.std(0) + 1e-8
    mu: dict = {}
    for kind in ("chunk_l2", "mean_step_l2"):
        for space in ("raw", "normalized"):
            spec = ActionNormSpec(kind, space)
            for c in chunks:
                vals = [mean_action_norm(a, c, spec, mean, std) for a in acts if len(a) >= c]
                mu.setdefault(kind, {}).setdefault(space, {})[str(c)] = (
                    float(np.mean(vals)) if vals else float("nan")
                )
    return {"action_mean": mean.tolist(), "action_std": std.tolist(), "mu_act": mu}
