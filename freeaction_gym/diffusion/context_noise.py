"""Context-frame noise augmentation (GameNGen §3.2.1; DIAMOND's ``noise_previous_obs``).

An autoregressive world model feeds on its own imperfect frames. Training it with context
frames corrupted by Gaussian noise of a random level, and telling it the level, teaches it
to correct rather than copy those errors; at inference the context is passed with level 0.
"""

from __future__ import annotations

import torch


def augment_context(
    context: torch.Tensor, max_level: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(context + level * N(0, I), level / max_level)`` with ``level ~ U(0, max_level)``
    per sample. context (B, n, C, H, W) in latent units; returns the noisy context and the
    level as a fraction (B,) in [0, 1], what the network's level embedding receives."""
    b = context.shape[0]
    frac = torch.rand(b, generator=generator, device=context.device)
    noise = torch.randn(context.shape, generator=generator, device=context.device)
    level = (max_level * frac).to(context.dtype).view(b, *([1] * (context.ndim - 1)))
    return context + level * noise.to(context.dtype), frac
