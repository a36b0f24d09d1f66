"""Action-scaled classifier-free guidance (FreeAction, seed 000 §2.1, eq. 2).

    eps_hat = eps(x_t, a) + w * (eps(x_t, a) - eps(x_t, a_neg)),   a_neg = -a
    w = lambda * ||a||_2 * 1{t > T/2}

Guidance acts only in the noisiest ``cutoff`` fraction of the sampling steps (motion is
decided early; late steps refine texture, which the negative action should not touch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

Denoiser = Callable[..., torch.Tensor]

LAM_RANGE = (0.0, 10.0)
"""Allowed ``ActionCFG.lam`` (lambda of eq. 2): 0 (off) to 10x the paper's 1."""
SCALE_RANGE = (1.0, 20.0)
"""Allowed ``ActionCFG.scale`` (fixed mode): 1 (no guidance) to 20, beyond any CFG use."""


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

    Ranges (checked whatever the mode, so a config stays valid when the mode is switched):
    ``lam`` in :data:`LAM_RANGE`, ``scale`` in :data:`SCALE_RANGE`, ``cutoff`` in [0, 1].
    """

    mode: Literal["action_scaled", "fixed", "none"] = "action_scaled"
    lam: float = 1.0
    """lambda of eq. 2, the guidance weight per unit ||a|| (dimensionless), in [0, 10]; the
    paper uses 1 (0: no guidance). Above ~10 the guided noise leaves the model's range."""
    scale: float = 3.0
    """``fixed`` mode's conventional CFG scale s, in [1, 20]: 1 is no guidance, the paper's
    ablation uses 3; s < 1 would push the sample toward the negated action."""
    cutoff: float = 0.5
    """Fraction of the sampling steps (from the noisiest) that are guided, in [0, 1]."""
    negative: Literal["negated", "null"] = "negated"

    def __post_init__(self) -> None:
        if self.mode not in ("action_scaled", "fixed", "none"):
            raise ValueError(f"unknown guidance mode {self.mode!r}")
        if self.negative not in ("negated", "null"):
            raise ValueError(f"unknown negative condition {self.negative!r}")
        if not 0.0 <= self.cutoff <= 1.0:
            raise ValueError(f"cutoff must be a fraction in [0, 1], got {self.cutoff}")
        for name, (lo, hi), what in (
            ("lam", LAM_RANGE, "the weight per unit ||a|| of eq. 2; the paper uses 1"),
            ("scale", SCALE_RANGE, "the fixed CFG scale; 1 = no guidance, the ablation's 3"),
        ):
            value = getattr(self, name)
            if not lo <= value <= hi:  # also NaN
                raise ValueError(f"{name} must be in [{lo:g}, {hi:g}] ({what}), got {value}")

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


class ActionGuidance:
    """A denoiser with action-scaled CFG (eq. 2) folded in: the sampler stays a plain loop.

    Wraps ``model(x (B, F, ...), t (B,), actions (B, F-1, A), null_action) -> out`` and has
    the same signature. It is called once per entry of ``scheduler.timesteps``, in order (a
    fresh wrapper per sampling run), and counts its calls to know the step index. On guided
    steps the positive and negative conditions run as one batch of 2B (``batch=False``: two
    calls of B, the naive path kept for benchmarks) and are combined by
    :func:`action_scaled_cfg`; the output is linear in the network's, so it works for eps,
    x0, v or EDM's raw F alike. action_norm (B,) is the per-sample ||a||. Keywords of the
    call (e.g. ``prompts``, the visual action prompts) go unchanged to both conditions: the
    negative one changes the actions only (a batched call repeats tensors along the batch).
    """

    def __init__(
        self,
        model: Denoiser,
        guidance: ActionCFG,
        action_norm: torch.Tensor,
        scheduler,
        batch: bool = True,
    ) -> None:
        self.model, self.guidance, self.scheduler, self.batch = model, guidance, scheduler, batch
        n = torch.as_tensor(action_norm, dtype=torch.float32)
        # fixed mode is eq. 2 with ||a|| = 1 and lam = s - 1 (s = 1: no guidance)
        self.norm, self.lam = (
            (torch.ones_like(n), guidance.scale - 1.0)
            if guidance.mode == "fixed"
            else (n, guidance.lam)
        )
        self.step = 0

    def __call__(self, x, t, actions, null_action=None, **kwargs):
        i, self.step = self.step, self.step + 1
        num_steps = len(self.scheduler.timesteps)
        w = guidance_weight(self.norm, i, num_steps, self.lam, self.guidance.cutoff)
        if not bool((w != 0).any()):
            return self.model(x, t, actions, null_action, **kwargs)
        b = x.shape[0]
        neg_actions, neg_null = self.guidance.negative_actions(actions)
        pos_null = null_action if null_action is not None else torch.zeros(b, dtype=torch.bool)
        neg_null = neg_null if neg_null is not None else pos_null
        if self.batch:
            pair = self.model(
                x.repeat(2, 1, 1, 1, 1),
                t.repeat(2),
                torch.cat([actions, neg_actions]),
                torch.cat([pos_null.to(x.device), neg_null.to(x.device)]),
                **{k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in kwargs.items()},
            )
            out_pos, out_neg = pair[:b], pair[b:]
        else:
            out_pos = self.model(x, t, actions, pos_null.to(x.device), **kwargs)
            out_neg = self.model(x, t, neg_actions, neg_null.to(x.device), **kwargs)
        return action_scaled_cfg(
            out_pos, out_neg, self.norm, i, num_steps, self.lam, self.guidance.cutoff
        )


def guided(
    model: Denoiser,
    guidance: ActionCFG | None,
    action_norm: torch.Tensor | None,
    scheduler,
    batch: bool = True,
) -> Denoiser:
    """``model`` wrapped in :class:`ActionGuidance`, or unchanged without guidance."""
    if guidance is None or guidance.mode == "none":
        return model
    if action_norm is None:
        raise ValueError("guidance needs the per-sample action_norm")
    return ActionGuidance(model, guidance, action_norm, scheduler, batch)
