"""Convolutional stem and head with skip connections around the DiT (our extension).

The IRASim DiT embeds each p x p patch with one linear map and draws it back with another,
so every pixel of a predicted patch comes from one token: block seams, and an arm that the
model must redraw from a 192-d vector every step. U-ViT and DIAMOND's U-Net keep the
full-resolution signal on a path that bypasses the bottleneck. Here a small conv encoder
brings the (noisy frame + context) input down by 2 per level to the token grid, the
transformer works on those tokens, and a conv decoder goes back up, concatenating the
encoder's feature map of each level (U-Net skips). The static background and the arm's
sharp edges can then travel the skips; the tokens carry where things move.

Shapes: N = batch x frames, C_in input channels (the noisy frame and any channel-stacked
context), C out channels, H x W frame, w_i channels of level i (resolution H / 2^i), D the
DiT hidden size, P = (H / 2^L)(W / 2^L) tokens with L = len(channels) levels.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ConvStem(nn.Module):
    """(N, C_in, H, W) -> tokens (N, P, D) and the skip maps [(N, w_i, H/2^i, W/2^i)]."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.levels = nn.ModuleList(
            nn.Sequential(_norm(w), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1)) for w in channels
        )
        outs = (*channels[1:], hidden_size)
        self.down = nn.ModuleList(
            nn.Conv2d(w, o, 3, stride=2, padding=1) for w, o in zip(channels, outs, strict=True)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.inp(x)  # (N, w_0, H, W)
        skips = []
        for level, down in zip(self.levels, self.down, strict=True):
            h = h + level(h)
            skips.append(h)
            h = down(h)  # (N, w_{i+1} or D, H/2^{i+1}, W/2^{i+1})
        return h.flatten(2).transpose(1, 2), skips  # (N, P, D)


class ConvHead(nn.Module):
    """Tokens (N, P, D) + skip maps + conditioning c (N, D) -> frames (N, C, H, W).

    Each level upsamples by 2 (1x1 conv + pixel shuffle), concatenates the encoder's map
    of that resolution and mixes them with a 3x3 conv whose channels are shifted by a
    projection of c (FiLM bias: the head knows the noise level and the action). The last
    3x3 conv starts at zero, so a new model predicts 0 like the DiT's zero final layer.
    """

    def __init__(self, channels: tuple[int, ...], hidden_size: int, out_channels: int) -> None:
        super().__init__()
        ins = (*channels[1:], hidden_size)
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, 4 * w, 1), nn.PixelShuffle(2))
            for w, i in zip(channels, ins, strict=True)
        )
        self.mix = nn.ModuleList(nn.Conv2d(2 * w, w, 3, padding=1) for w in channels)
        self.norms = nn.ModuleList(_norm(w) for w in channels)
        self.film = nn.Linear(hidden_size, sum(channels))
        self.out = nn.Conv2d(channels[0], out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.channels = channels
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, tokens: torch.Tensor, skips: list[torch.Tensor], c: torch.Tensor, grid: tuple
    ) -> torch.Tensor:
        n, _, d = tokens.shape
        h = tokens.transpose(1, 2).reshape(n, d, *grid)  # (N, D, H/2^L, W/2^L)
        biases = self.film(self.act(c)).split(list(self.channels), dim=1)
        for i in reversed(range(len(self.channels))):
            h = self.up[i](h)  # (N, w_i, H/2^i, W/2^i)
            h = self.mix[i](torch.cat([h, skips[i]], dim=1)) + biases[i][:, :, None, None]
            h = self.act(self.norms[i](h))
        return self.out(h)  # (N, C, H, W)
