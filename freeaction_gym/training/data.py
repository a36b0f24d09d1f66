"""Training batches of (clip frames, actions).

* MetaWorld datasets are small: :class:`EpisodeBank` keeps every episode of a split in RAM
  (frames already encoded by the codec - the latent pre-encoding cache) and samples random
  windows without a DataLoader.
* IRASim-layout datasets are large: :func:`irasim_batches` streams windows through a
  DataLoader and encodes them per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


class EpisodeBank:
    """All episodes of one split, as latents (T+1, C, h, w) and actions (T, A).

    Pixel-space models keep the frames as uint8 (T+1, H, W, 3) instead (4x less memory than
    float latents: 1,500 episodes of 65 64x64 frames are 1.2 GB) and convert each sampled
    window with ``transform`` (:meth:`PixelCodec.encode`, exact)."""

    def __init__(
        self,
        latents: list[torch.Tensor],
        actions: list[torch.Tensor],
        tasks: list[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if not latents:
            raise ValueError("EpisodeBank is empty")
        self.latents, self.actions, self.tasks = latents, actions, tasks
        self.transform = transform
        self.lengths = np.array([a.shape[0] for a in actions])

    @classmethod
    def from_metaworld(
        cls,
        root: str | Path,
        split: str,
        encode: Callable[[torch.Tensor], torch.Tensor] | None,
        tasks: list[str] | None = None,
        cache: str | Path | None = None,
        limit: int | None = None,
    ) -> EpisodeBank:
        """Load and encode a split; ``encode`` maps uint8 (1, F, H, W, 3) -> (1, F, C, h, w)
        (None: pixel space, frames kept as uint8 and converted per window).
        With ``cache`` the encoded bank is saved/reused (keyed by the file list)."""
        from freeaction_gym.data.episodes import list_episodes, load_episode
        from freeaction_gym.models.autoencoder import VideoAutoencoder

        transform = VideoAutoencoder.to_float if encode is None else None
        paths = list_episodes(root, split, tasks)[:limit]
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
        ok = np.flatnonzero(self.lengths >= clip_frames - 1)
        if ok.size == 0:
            raise ValueError(f"no episode has {clip_frames} frames")
        eps = rng.choice(ok, size=batch)
        starts = [int(rng.integers(0, self.lengths[e] - (clip_frames - 1) + 1)) for e in eps]
        return self.windows(eps, starts, clip_frames)

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

    def fixed_windows(
        self, n: int, clip_frames: int, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same ``n`` windows every call (for validation)."""
        return self.sample(n, clip_frames, np.random.default_rng(seed))


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
