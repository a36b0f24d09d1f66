"""Denoising training loss with clean context frames (IRASim).

Noise and loss apply only to the predicted frames; the context frame(s) enter the network
clean. One diffusion step t per sample for all frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch

from freeaction_gym.diffusion.schedule import alphas_cumprod

Denoiser = Callable[..., torch.Tensor]
PredictionType = Literal["epsilon", "sample", "v_prediction"]


class WithAuxiliary(NamedTuple):
    """A network output in training that carries a second prediction of the same target
    (e.g. an AVID adapter's own prediction next to the combined one). The losses add
    ``weight`` times the auxiliary's error to the output's."""

    output: torch.Tensor
    """(B, F, C, H, W), what sampling uses."""
    auxiliary: torch.Tensor
    """(B, F, C, H, W), trained toward the same goal."""
    weight: float


def prediction_loss(
    out: torch.Tensor | WithAuxiliary,
    goal: torch.Tensor,
    num_context: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted MSE of the network output's frames ``num_context..F`` (B, K, C, H, W)
    against ``goal`` (B, K, C, H, W); plus ``weight`` x the auxiliary's for a
    :class:`WithAuxiliary` output. ``weights`` (B, K, C|1, H, W) optional. Returns a scalar."""

    def mse(pred: torch.Tensor) -> torch.Tensor:
        err = (pred[:, num_context:] - goal) ** 2
        if weights is not None:
            return (err * weights).sum() / weights.expand_as(err).sum().clamp_min(1e-8)
        return err.mean()

    if isinstance(out, WithAuxiliary):
        return mse(out.output) + out.weight * mse(out.auxiliary)
    return mse(out)


def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor
) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. x0/noise (B, ...), t (B,) long."""
    a = abar.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def diffusion_loss(
    model: Denoiser,
    latents: torch.Tensor,
    actions: torch.Tensor,
    num_context: int = 1,
    null_action: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
    num_train_timesteps: int = 1000,
    prediction_type: PredictionType = "epsilon",
    timestep_power: float = 1.0,
    **model_kwargs,
) -> torch.Tensor:
    """Denoising MSE on frames ``num_context..F``.

    ``prediction_type`` is what the network outputs: ``epsilon`` (IRASim), ``sample`` (x0) or
    ``v_prediction`` (v = sqrt(abar) eps - sqrt(1 - abar) x0), as in diffusers.

    latents (B, F, C, H, W) clean; actions (B, F-1, A); null_action (B,) bool (classifier-free
    dropout); weights optional (B, F-num_context, C|1, H, W) per-element loss weights (e.g. a
    moving-region emphasis). ``timestep_power`` p > 1 draws t = T (1 - (1 - u)^p), u ~ U(0,1),
    favouring noisy steps, where the answer is not visible in x_t and the network must use
    its actions (p = 1: uniform, IRASim). ``model_kwargs`` go to the network (e.g.
    ``context_noise``); the network may return a :class:`WithAuxiliary`. Returns a scalar.
    """
    b = latents.shape[0]
    device = latents.device
    abar = alphas_cumprod(num_train_timesteps)
    if timestep_power == 1.0:
        t = torch.randint(0, num_train_timesteps, (b,), device=device, generator=generator)
    else:
        u = torch.rand(b, device=device, generator=generator)
        t = (num_train_timesteps * (1 - (1 - u) ** timestep_power)).long()
        t = t.clamp(0, num_train_timesteps - 1)
    target = latents[:, num_context:]
    noise = torch.randn(target.shape, device=device, generator=generator, dtype=latents.dtype)
    x_t = torch.cat([latents[:, :num_context], q_sample(target, t, noise, abar)], dim=1)
    out = model(x_t, t, actions, null_action, **model_kwargs)
    if prediction_type == "epsilon":
        goal = noise
    elif prediction_type == "sample":
        goal = target
    elif prediction_type == "v_prediction":
        a = abar.to(device)[t].to(latents.dtype).view(-1, *([1] * (target.ndim - 1)))
        goal = a.sqrt() * noise - (1 - a).sqrt() * target
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    return prediction_loss(out, goal, num_context, weights)
