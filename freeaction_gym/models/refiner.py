"""Full-resolution convolutional refiner for the DiT's per-frame output (our extension).

A DiT with large patches (8x8 pixels on 64x64 frames) predicts each patch with one linear
layer, which leaves block seams and smears the arm's edges. The refiner sees, per predicted
frame, the DiT output, the noisy input it denoised and the last clean context frame, and
adds a correction computed by a few 3x3 convolutions. Its last layer starts at zero, so a
refiner bolted onto a trained DiT starts as the identity and fine-tuning can only move away
from it through the loss.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class ConvRefiner(nn.Module):
    """Residual conv stack ``[pred, x_t, context] -> pred + delta``, conditioned on t.

    channels C of the latent/pixel frames; width W hidden channels; depth >= 2 convolutions;
    the timestep embedding (D) shifts every hidden layer's channels (FiLM bias).
    """

    def __init__(self, channels: int, width: int, depth: int, t_dim: int) -> None:
        super().__init__()
        if width < 1 or depth < 2:
            raise ValueError(f"refiner needs width >= 1 and depth >= 2, got {width}, {depth}")
        self.inp = nn.Conv2d(3 * channels, width, 3, padding=1)
        self.hidden = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth - 2))
        self.t_bias = nn.Linear(t_dim, width * (depth - 1))
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        self.act = nn.GELU()
        nn.init.zeros_(self.t_bias.weight)
        nn.init.zeros_(self.t_bias.bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, pred: torch.Tensor, x_t: torch.Tensor, context: torch.Tensor, t_emb: torch.Tensor
    ) -> torch.Tensor:
        """pred, x_t (B, K, C, H, W); context (B, C, H, W); t_emb (B, D) -> (B, K, C, H, W)."""
        b, k = pred.shape[:2]
        ctx = context[:, None].expand_as(pred)
        h = rearrange(torch.cat([pred, x_t, ctx], dim=2), "b k c h w -> (b k) c h w")
        bias = self.t_bias(t_emb).repeat_interleave(k, dim=0)  # (B K, W (depth-1))
        biases = bias.chunk(len(self.hidden) + 1, dim=1)
        h = self.act(self.inp(h) + biases[0][:, :, None, None])
        for conv, bb in zip(self.hidden, biases[1:], strict=True):
            h = h + self.act(conv(h) + bb[:, :, None, None])
        delta = rearrange(self.out(h), "(b k) c h w -> b k c h w", b=b)
        return pred + delta
