"""Frame codecs: what the diffusion model's "latent" is.

* :class:`PixelCodec` - no autoencoder: frames scaled to [-1, 1] (lossless up to uint8
  rounding), used with a large DiT patch (e.g. 8x8 pixels per token) on 64x64 frames.
* :class:`freeaction_gym.models.autoencoder.VideoAutoencoder` - an ``AutoencoderKL``
  (the user's SDXL VAE for IRASim checkpoints, or a small one trained here).

Both map uint8 video (B, F, H, W, 3) <-> latents (B, F, C, h, w).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from freeaction_gym.models.autoencoder import VideoAutoencoder


class PixelCodec(nn.Module):
    """Identity "autoencoder": latents are pixels in [-1, 1], (B, F, 3, H, W)."""

    latent_channels = 3
    downsample = 1
    scaling_factor = 1.0

    def encode(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return VideoAutoencoder.to_float(video)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.clamp(-1, 1)

    to_float = staticmethod(VideoAutoencoder.to_float)
    to_uint8 = staticmethod(VideoAutoencoder.to_uint8)


Codec = PixelCodec | VideoAutoencoder


def load_codec(kind: str, directory: str | Path | None = None) -> Codec:
    """``"pixel"`` or ``"autoencoder"`` (a diffusers VAE directory)."""
    if kind == "pixel":
        return PixelCodec()
    if kind == "autoencoder":
        if directory is None:
            raise ValueError("codec 'autoencoder' needs the VAE directory")
        return VideoAutoencoder.from_pretrained(directory)
    raise ValueError(f"unknown codec {kind!r}; use 'pixel' or 'autoencoder'")
