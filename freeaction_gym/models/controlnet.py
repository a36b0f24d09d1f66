"""ControlNet-style prompt branch of the video DiT (visual action prompts, seed 004).

Seed 004 conditions a trained video DiT on skeleton images of the agent ("visual action
prompts") through a ControlNet branch: a trainable copy of the base model's first K blocks
reads the base model's input tokens plus an embedding of the prompt, and the output of its
block i is added to the base model's hidden state after block i through a projection that
starts at zero (ControlNet's "zero convolution", Zhang et al. 2023, eq. 2-4; PixArt-delta's
transformer variant). The prompt embedding starts at zero as well. So a branch bolted onto a
trained action model leaves its output exactly unchanged at initialisation, and training
moves away from it only through the loss.

Shapes: B batch, F frames in the token sequence, P tokens per frame, D hidden size,
C_p prompt channels, H x W the latent grid.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from freeaction_gym.models.layers import DiTBlock, PatchEmbed

RunBlock = Callable[[DiTBlock, int, torch.Tensor], torch.Tensor]
"""``run_block(block, i, tokens (B F, P, D)) -> (B F, P, D)``: ``block`` applied as the base
model applies its block ``i`` (spatial for even ``i``, temporal for odd ``i``, with the
base's conditioning)."""


def check_prompts(
    mode: str, channels: int, x_shape: torch.Size, prompts: torch.Tensor | None
) -> None:
    """``ValueError`` unless ``prompts`` fit a DiT with ``prompt=mode``: None for ``none``,
    else (B, F, ``channels``, H, W) beside the input x (B, F, C, H, W)."""
    if (prompts is None) != (mode == "none"):
        need = "takes no prompts" if prompts is not None else "needs prompts=(B, F, C_p, H, W)"
        raise ValueError(f"this model has prompt={mode!r}: it {need}")
    if prompts is not None and prompts.shape != (*x_shape[:2], channels, *x_shape[3:]):
        raise ValueError(
            f"prompts must be (B, F, {channels}, H, W) beside x {tuple(x_shape)}, "
            f"got {tuple(prompts.shape)}"
        )


class PromptControlNet(nn.Module):
    """Copies of the first ``depth`` blocks + zero-initialised prompt embedding and output
    projections; returns one residual per copied block."""

    def __init__(
        self,
        base_blocks: nn.ModuleList,
        depth: int,
        patch_size: int,
        prompt_channels: int,
        hidden_size: int,
    ) -> None:
        super().__init__()
        if not 1 <= depth <= len(base_blocks):
            raise ValueError(f"controlnet depth must be in [1, {len(base_blocks)}], got {depth}")
        self.prompt_embed = PatchEmbed(patch_size, prompt_channels, hidden_size)
        self.blocks = nn.ModuleList(copy.deepcopy(base_blocks[i]) for i in range(depth))
        self.proj = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(depth))
        for layer in (self.prompt_embed.proj, *self.proj):  # zero in, zero out
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @torch.no_grad()
    def copy_base_blocks(self, base_blocks: nn.ModuleList) -> None:
        """Re-initialise the copies from ``base_blocks`` (after loading trained base weights
        into a model whose branch was never trained: the ControlNet warm start)."""
        for own, src in zip(self.blocks, base_blocks, strict=False):
            own.load_state_dict(src.state_dict())

    def forward(
        self, tokens: torch.Tensor, prompts: torch.Tensor, run_block: RunBlock
    ) -> list[torch.Tensor]:
        """tokens (B F, P, D): the base model's embedded input (after positions); prompts
        (B F, C_p, H, W) each token frame's prompt. Returns ``depth`` residuals (B F, P, D);
        residual i is added to the base model's hidden state after its block i."""
        h = tokens + self.prompt_embed(prompts)  # (B F, P, D)
        out = []
        for i, (block, proj) in enumerate(zip(self.blocks, self.proj, strict=True)):
            h = run_block(block, i, h)
            out.append(proj(h))  # (B F, P, D)
        return out
