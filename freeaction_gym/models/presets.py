"""Size presets (a registry of tiny factories, as in DiT) and IRASim dataset layouts."""

from __future__ import annotations

from typing import Literal

from freeaction_gym.models.dit import DiTConfig, VideoDiT

# name -> (depth, hidden size, heads)
SIZES: dict[str, tuple[int, int, int]] = {
    "XL": (28, 1152, 16),
    "L": (24, 1024, 16),
    "B": (12, 768, 12),
    "S": (12, 384, 6),
    "tiny": (4, 64, 4),  # CPU tests
}

# dataset -> (latent grid, action dim, action embedder); 8x SDXL VAE over the frame size
IRASIM_DATASETS: dict[str, dict] = {
    "rt1": {"input_size": (32, 40), "action_dim": 7, "action_embedder": "mlp"},  # 256x320
    "bridge": {"input_size": (32, 40), "action_dim": 7, "action_embedder": "mlp"},  # 256x320
    "languagetable": {"input_size": (36, 64), "action_dim": 2, "action_embedder": "linear2"},
}


def dit_config(size: str = "XL", **overrides) -> DiTConfig:
    """A :class:`DiTConfig` of a registered size with field overrides."""
    if size not in SIZES:
        raise ValueError(f"unknown DiT size {size!r}; choose one of {sorted(SIZES)}")
    depth, hidden, heads = SIZES[size]
    kwargs = {"depth": depth, "hidden_size": hidden, "num_heads": heads}
    kwargs.update(overrides)
    return DiTConfig(**kwargs)


def irasim_config(
    size: str = "XL",
    dataset: str = "rt1",
    conditioning: Literal["frame", "video"] = "frame",
    **overrides,
) -> DiTConfig:
    """Configuration of a released IRASim model (16 frames, patch 2, 4 latent channels)."""
    if dataset not in IRASIM_DATASETS:
        raise ValueError(
            f"unknown IRASim dataset {dataset!r}; choose one of {sorted(IRASIM_DATASETS)}"
        )
    kwargs = dict(IRASIM_DATASETS[dataset])
    kwargs.update(patch_size=2, in_channels=4, num_frames=16, conditioning=conditioning)
    kwargs.update(overrides)
    return dit_config(size, **kwargs)


def irasim_dit(
    size: str = "XL",
    dataset: str = "rt1",
    conditioning: Literal["frame", "video"] = "frame",
    **overrides,
) -> VideoDiT:
    """The IRASim-layout model; ``dataset`` picks latent grid and action embedding.

    >>> from freeaction_gym.models import irasim_dit, count_parameters
    >>> count_parameters(irasim_dit("XL", "rt1", "frame"))  # doctest: +SKIP
    679397776
    """
    return VideoDiT(irasim_config(size, dataset, conditioning, **overrides))
