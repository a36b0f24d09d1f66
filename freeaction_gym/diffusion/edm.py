"""EDM preconditioning (Karras et al. 2022, Table 1; as DIAMOND's denoiser uses it).

The network F never sees raw noisy inputs or raw targets: for noise level sigma

    c_in   = 1 / sqrt(sigma^2 + sigma_data^2)          input scale
    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)   skip weight
    c_out  = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4                             what F is told about sigma
    D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)   the denoised estimate

Training draws ln(sigma) ~ N(loc, scale^2) and regresses F onto (y - c_skip x) / c_out,
which is the EDM loss lambda(sigma) ||D - y||^2 with lambda = 1 / c_out^2. Sampling is
deterministic Euler on a Karras rho-schedule (diffusers ``EDMEulerScheduler``,
:func:`~freeaction_gym.diffusion.schedule.make_scheduler` ``"edm"``): few steps whose last
model call is at low noise, so the output is one sharp future rather than the mean of all.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from freeaction_gym.diffusion.loss import prediction_loss

Denoiser = Callable[..., torch.Tensor]

# The DiT embeds a diffusion step in [0, 1000) with sinusoids; EDM's c_noise = ln(sigma)/4
# is mapped affinely onto that range: sigma in [e^-7, e^3] ~ [0.0009, 20] -> t in [0, 1000].
LOG_SIGMA_OFFSET, T_PER_LOG_SIGMA = 7.0, 100.0


def edm_scalings(
    sigma: torch.Tensor, sigma_data: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c_in, c_skip, c_out, c_noise)`` for noise levels ``sigma`` (any shape, > 0)."""
    s2, d2 = sigma**2, sigma_data**2
    c_in = 1.0 / torch.sqrt(s2 + d2)
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / torch.sqrt(s2 + d2)
    return c_in, c_skip, c_out, 0.25 * torch.log(sigma)


def network_time(c_noise: torch.Tensor) -> torch.Tensor:
    """c_noise = ln(sigma)/4 (B,) -> the DiT's diffusion-step input (B,) in ~[0, 1000)."""
    return T_PER_LOG_SIGMA * (4.0 * c_noise + LOG_SIGMA_OFFSET)


def training_sigmas(
    batch: int,
    loc: float = -0.4,
    scale: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """ln(sigma) ~ N(loc, scale^2) per sample (B,) (EDM's P_mean / P_std)."""
    z = torch.randn(batch, generator=generator, device=device)
    return torch.exp(loc + scale * z)


class EDMNetwork:
    """The DiT as the raw network F of EDM, called by the sampler.

    The sampler passes the c_in-scaled noisy frames after the clean context and
    ``t = c_noise`` (diffusers ``EDMEulerScheduler.timesteps``); this maps c_noise to the
    DiT's time input and forwards any extra keywords (e.g. ``context_noise``). Same call
    signature as the DiT: ``(x (B, F, ...), t (B,), actions, null_action) -> F (B, F, ...)``;
    keywords of the call (e.g. ``prompts``) are passed on too.
    """

    def __init__(self, model: Denoiser, **kwargs) -> None:
        self.model, self.kwargs = model, kwargs

    def __call__(self, x, t, actions, null_action=None, **kwargs):
        return self.model(x, network_time(t), actions, null_action, **self.kwargs, **kwargs)


def edm_loss(
    model: Denoiser,
    latents: torch.Tensor,
    actions: torch.Tensor,
    num_context: int = 1,
    null_action: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
    sigma_data: float = 0.5,
    loc: float = -0.4,
    scale: float = 1.2,
    **model_kwargs,
) -> torch.Tensor:
    """EDM denoising loss on frames ``num_context..F`` (context frames enter clean).

    latents (B, F, C, H, W): context frames then the targets y (already in the space the
    network denoises); actions (B, F-1, A); weights optional per-element (B, K, C|1, H, W).
    Returns a scalar: mean of ``weights * (F - (y - c_skip x) / c_out)^2`` (plus the
    auxiliary's term when the network returns a :class:`~.loss.WithAuxiliary`).
    """
    b = latents.shape[0]
    target = latents[:, num_context:]
    sigma = training_sigmas(b, loc, scale, generator, latents.device).to(latents.dtype)
    c_in, c_skip, c_out, c_noise = (
        c.view(b, 1, 1, 1, 1) if i < 3 else c for i, c in enumerate(edm_scalings(sigma, sigma_data))
    )
    noise = torch.randn(target.shape, generator=generator, device=latents.device)
    x = target + sigma.view(b, 1, 1, 1, 1) * noise.to(latents.dtype)
    video = torch.cat([latents[:, :num_context], c_in * x], dim=1)
    out = model(video, network_time(c_noise), actions, null_action, **model_kwargs)
    return prediction_loss(out, (target - c_skip * x) / c_out, num_context, weights)


def karras_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0):
    """The Karras schedule (num_steps,), from sigma_max down to sigma_min (for reports)."""
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


__all__ = [
    "EDMNetwork",
    "edm_loss",
    "edm_scalings",
    "karras_sigmas",
    "network_time",
    "training_sigmas",
]
