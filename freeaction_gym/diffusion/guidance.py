"""Action-scaled classifier-free guidance (FreeAction, seed 000 §2.1, eq. 2).

    eps_hat = eps(x_t, a) + w * (eps(x_t, a) - eps(x_t, a_neg)),   a_neg = -a
    w = lambda * ||a||_2 * 1{t > T/2}

Guidance acts only in the noisiest ``cutoff`` fraction of the sampling steps (motion is
decided early; late steps refine texture, which the negative action should not touch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


def guidance_weight(
    action_norm: torch.Tensor,
    step_index: int,
    num_steps: int,
    lam: float = 1.0,
    cutoff: float = 0.5,
) -> torch.Tensor:
    """w per sample (B,): ``lam * ||a||`` while ``step_index < cutoff * num_steps`` else 0.

    step_index 0 is the noisiest step."""
    n = torch.as_tensor(action_norm, dtype=torch.float32)
    active = step_index < cutoff * num_steps
    return lam * n if active else torch.zeros_like(n)


def action_scaled_cfg(
    eps_pos: torch.Tensor,
    eps_neg: torch.Tensor,
    action_norm: torch.Tensor | float,
    step_index: int,
    num_steps: int,
    lam: float = 1.0,
    cutoff: float = 0.5,
) -> torch.Tensor:
    """Guided noise (eq. 2). eps_pos/eps_neg (B, ...), action_norm (B,) or scalar."""
    w = guidance_weight(torch.as_tensor(action_norm), step_index, num_steps, lam, cutoff)
    w = w.to(eps_pos.dtype).reshape(-1, *([1] * (eps_pos.ndim - 1))) if w.ndim else w
    return eps_pos + w * (eps_pos - eps_neg)


@dataclass(frozen=True)
class ActionCFG:
    """Guidance policy for the sampler.

    mode: ``"action_scaled"`` (w = lam ||a||), ``"fixed"`` (the ablation: the conventional
        scale s with ``eps_neg + s (eps_pos - eps_neg)``, i.e. w = s - 1, so s = 1 is no
        guidance) or ``"none"``.
    negative: ``"negated"`` (-a, FreeAction) or ``"null"`` (IRASim's learned null action).
    cutoff: fraction of sampling steps (from the noisiest) that are guided.
    """

    mode: Literal["action_scaled", "fixed", "none"] = "action_scaled"
    lam: float = 1.0
    scale: float = 3.0
    cutoff: float = 0.5
    negative: Literal["negated", "null"] = "negated"

    def __post_init__(self) -> None:
        if self.mode not in ("action_scaled", "fixed", "none"):
            raise ValueError(f"unknown guidance mode {self.mode!r}")
        if self.negative not in ("negated", "null"):
            raise ValueError(f"unknown negative condition {self.negative!r}")
        if not 0.0 <= self.cutoff <= 1.0:
            raise ValueError(f"cutoff must be a fraction in [0, 1], got {self.cutoff}")

    def weight(self, action_norm: torch.Tensor, step_index: int, num_steps: int) -> torch.Tensor:
        """w per sample (B,) at this step."""
        n = torch.as_tensor(action_norm, dtype=torch.float32)
        if self.mode == "none":
            return torch.zeros_like(n)
        if self.mode == "fixed":
            return guidance_weight(
                torch.ones_like(n), step_index, num_steps, self.scale - 1.0, self.cutoff
            )
        return guidance_weight(n, step_index, num_steps, self.lam, self.cutoff)

    def negative_actions(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(actions, null mask) of the negative condition for actions (B, K, A)."""
        if self.negative == "negated":
            return -actions, None
        return actions, torch.ones(actions.shape[0], dtype=torch.bool, device=actions.device)
