"""Frame autoencoder: diffusers ``AutoencoderKL`` applied frame by frame to videos.

Either a user's SDXL-layout VAE directory (IRASim's latent space, scale 0.13025 read from its
config) or a small config we train ourselves on MetaWorld frames. Latents are always
returned multiplied by ``config.scaling_factor`` (never a literal).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from einops import rearrange
from torch import nn


@dataclass
class AutoencoderConfig:
    """A small ``AutoencoderKL`` for low-resolution robot frames."""

    block_out_channels: tuple[int, ...] = (64, 128, 128)
    """One entry per resolution; ``len - 1`` factor-2 downsamplings (3 -> 4x down)."""
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 32
    mid_block_add_attention: bool = False
    sample_size: int = 64
    scaling_factor: float = 1.0
    """Set after training to 1 / std of the training latents."""

    def to_diffusers(self) -> dict:
        n = len(self.block_out_channels)
        return dict(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(self.block_out_channels),
            layers_per_block=self.layers_per_block,
            latent_channels=self.latent_channels,
            norm_num_groups=self.norm_num_groups,
            sample_size=self.sample_size,
            scaling_factor=self.scaling_factor,
            mid_block_add_attention=self.mid_block_add_attention,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["block_out_channels"] = list(self.block_out_channels)
        return d


class VideoAutoencoder(nn.Module):
    """Encode/decode videos (B, F, ...) through a per-frame ``AutoencoderKL``.

    Pixels: uint8 (B, F, H, W, 3) or float in [-1, 1] (B, F, 3, H, W).
    Latents: (B, F, C, H/r, W/r), already multiplied by the scaling factor.
    """

    def __init__(self, vae: AutoencoderKL, sample_posterior: bool = False, chunk: int = 64) -> None:
        super().__init__()
        self.vae = vae
        self.sample_posterior = sample_posterior
        self.chunk = chunk

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: AutoencoderConfig, **kwargs) -> VideoAutoencoder:
        return cls(AutoencoderKL(**config.to_diffusers()), **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> VideoAutoencoder:
        """Load a local diffusers VAE directory (``config.json`` + weights), e.g. the SDXL
        VAE IRASim uses (``sd-vae-ft-mse``-style layout, or a pipeline's ``vae/``
        subfolder). Nothing is downloaded. Weights stored in float16 (a bundle's ``vae/``)
        are upcast: the module is float32, as the frames it is given."""
        directory = Path(directory)
        if (directory / "vae" / "config.json").is_file():
            directory = directory / "vae"
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"no VAE found at {directory}: expected a diffusers AutoencoderKL directory with "
                "config.json and diffusion_pytorch_model.safetensors (e.g. the SDXL VAE, "
                "downloaded by you beforehand with huggingface-cli to a local folder)."
            )
        vae = AutoencoderKL.from_pretrained(
            str(directory), local_files_only=True, torch_dtype=torch.float32
        )
        return cls(vae, **kwargs)

    def save_pretrained(self, directory: str | Path) -> None:
        self.vae.save_pretrained(str(directory), safe_serialization=True)

    # -- properties ----------------------------------------------------------------------
    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- video I/O -----------------------------------------------------------------------
    @staticmethod
    def to_float(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]; float passes through."""
        if frames.dtype == torch.uint8:
            return frames.movedim(-1, -3).float() / 127.5 - 1.0
        return frames

    @staticmethod
    def to_uint8(frames: torch.Tensor) -> torch.Tensor:
        """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
        return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)

    def encode_frames(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> scaled latents (N, C, h, w), batched in chunks."""
        outs = []
        for i in range(0, x.shape[0], self.chunk):
            dist = self.vae.encode(x[i : i + self.chunk]).latent_dist
            z = dist.sample(generator) if self.sample_posterior else dist.mode()
            outs.append(z * self.scaling_factor)
        return torch.cat(outs)

    def decode_frames(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, h, w) -> pixels (N, 3, H, W) in [-1, 1]."""
        outs = [
            self.vae.decode(z[i : i + self.chunk] / self.scaling_factor).sample
            for i in range(0, z.shape[0], self.chunk)
        ]
        return torch.cat(outs)

    def encode(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Video (B, F, H, W, 3) uint8 or (B, F, 3, H, W) float -> latents (B, F, C, h, w)."""
        x = self.to_float(video)
        b = x.shape[0]
        z = self.encode_frames(rearrange(x, "b f c h w -> (b f) c h w"), generator)
        return rearrange(z, "(b f) c h w -> b f c h w", b=b)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, F, C, h, w) -> float pixels (B, F, 3, H, W) in [-1, 1]."""
        b = latents.shape[0]
        x = self.decode_frames(rearrange(latents, "b f c h w -> (b f) c h w"))
        return rearrange(x, "(b f) c h w -> b f c h w", b=b)
