"""Action-scaled noise truncation (FreeAction, seed 000 §2.2, eq. 3).

The initial latent of the sampler is drawn from N(0, 1) conditioned on |z| <= tau, with a
threshold that grows with the action magnitude:

    tau(a) = tau_min + (tau_max - tau_min) * sigmoid(||a||_2 - mu_act)

Small actions get tightly truncated noise (less spurious motion), large actions keep more
of the Gaussian tails. Draws are exact (inverse CDF), never clipping or rejection loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


def truncation_threshold(
    action_norm: torch.Tensor | float,
    mu_act: float,
    tau_min: float = 0.5,
    tau_max: float = 1.5,
) -> torch.Tensor:
    """tau per sample (eq. 3). ``action_norm`` (B,) or scalar -> tensor of the same shape."""
    if not tau_min <= tau_max:
        raise ValueError(f"need tau_min <= tau_max, got {tau_min} > {tau_max}")
    a = torch.as_tensor(action_norm, dtype=torch.float32)
    return tau_min + (tau_max - tau_min) * torch.sigmoid(a - mu_act)


def _per_sample(tau: float | torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """tau as float64, broadcastable to ``shape`` (per-sample taus view as (B, 1, ...))."""
    tau_t = torch.as_tensor(tau, dtype=torch.float64)
    if torch.isnan(tau_t).any() or (tau_t <= 0).any():
        raise ValueError(f"truncation threshold must be positive, got {tau}")
    if tau_t.ndim == 1:
        if tau_t.shape[0] != shape[0]:
            raise ValueError(f"per-sample tau has {tau_t.shape[0]} entries for batch {shape[0]}")
        tau_t = tau_t.view(-1, *([1] * (len(shape) - 1)))
    elif tau_t.ndim > 1:
        raise ValueError("tau must be a float or a (batch,) tensor")
    return tau_t


def truncated_normal_from_uniform(u: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """Map uniforms ``u`` in (0, 1) to N(0, 1) truncated to [-tau, tau] (inverse CDF).

    z = Phi^-1(1/2 + (u - 1/2) m), m = 2 Phi(tau) - 1 the mass inside the interval; monotone
    in u, so the same uniforms under different taus give paired draws (same signs and
    ranks). ``tau`` is a float or per-sample (B,); ``inf`` gives plain Gaussian noise.
    Returns float64 of u's shape.
    """
    tau_t = _per_sample(tau, tuple(u.shape)).to(u.device)
    mass = torch.special.erf(tau_t / 2**0.5)  # 2 Phi(tau) - 1
    z = torch.special.ndtri(0.5 + (u.double() - 0.5) * mass)
    return torch.minimum(torch.maximum(z, -tau_t), tau_t)  # float rounding


def truncated_initial_noise(
    shape: tuple[int, ...] | torch.Size,
    tau: float | torch.Tensor,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Exact draws from N(0, 1) truncated to [-tau, tau], of the given ``shape``.

    ``tau`` is a float or a per-sample tensor (B,) broadcast over dim 0; ``inf`` gives plain
    Gaussian noise. Draws u ~ U(0, 1) (float64) and maps them with
    :func:`truncated_normal_from_uniform`.
    """
    shape = tuple(shape)
    _per_sample(tau, shape)  # validate before drawing
    u = torch.rand(
        shape,
        generator=generator,
        dtype=torch.float64,
        device=generator.device if generator is not None else None,
    )
    z = truncated_normal_from_uniform(u, tau)
    return z.to(device=device or z.device, dtype=dtype)


@dataclass(frozen=True)
class NoiseTruncation:
    """Initial-noise policy for the sampler.

    mode: ``"action_scaled"`` (eq. 3), ``"fixed"`` (one tau for every sample, the ablation)
        or ``"none"`` (plain Gaussian).
    """

    mode: Literal["action_scaled", "fixed", "none"] = "action_scaled"
    tau_min: float = 0.5
    """Threshold of the smallest actions (noise units), 0 < tau_min <= tau_max; paper 0.5."""
    tau_max: float = 1.5
    """Threshold of the largest actions (noise units); paper 1.5."""
    fixed_tau: float = 1.0
    """``fixed`` mode's threshold (noise units), > 0; the ablation uses 1.0 and 1.5."""
    mu_act: float = 0.0
    """Train-set mean of ||a|| under the same :class:`ActionNormSpec` used at sampling (the
    action units of that spec), >= 0; 0 means "not given":
    ``WorldModel.default_sampling`` fills it from the model's dataset statistics (a norm's
    mean is > 0, so an env option that gives it needs > 0)."""

    def __post_init__(self) -> None:
        if self.mode not in ("action_scaled", "fixed", "none"):
            raise ValueError(f"unknown truncation mode {self.mode!r}")
        if not self.mu_act >= 0.0:  # also NaN
            raise ValueError(
                f"mu_act must be >= 0 (the dataset's mean ||a||; 0 = take it from the "
                f"model's statistics), got {self.mu_act}"
            )

    def tau(self, action_norm: torch.Tensor) -> torch.Tensor:
        """tau per sample (B,); ``inf`` when disabled."""
        n = torch.as_tensor(action_norm, dtype=torch.float32)
        if self.mode == "none":
            return torch.full_like(n, float("inf"))
        if self.mode == "fixed":
            return torch.full_like(n, self.fixed_tau)
        return truncation_threshold(n, self.mu_act, self.tau_min, self.tau_max)

    def sample(
        self,
        shape: tuple[int, ...],
        action_norm: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(initial noise of ``shape``, tau (B,))."""
        tau = self.tau(action_norm)
        return truncated_initial_noise(shape, tau, generator), tau
