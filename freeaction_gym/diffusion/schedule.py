"""IRASim's noise schedule and the diffusers schedulers used to sample with it.

Linear betas 1e-4..0.02 over T = 1000 steps, epsilon prediction (REFERENCE §2). Inference
uses diffusers scheduler objects (``set_timesteps(n)``, iterate ``timesteps``,
``step(eps, t, x).prev_sample``).
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EDMEulerScheduler,
    PNDMScheduler,
)

NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02

SchedulerName = Literal["pndm", "ddim", "ddpm", "dpmsolver++", "edm"]
SCHEDULERS: tuple[str, ...] = ("pndm", "ddim", "ddpm", "dpmsolver++", "edm")
"""Every sampler name; ``edm`` needs an EDM-trained model, the others a DDPM-trained one."""
EDM_SCHEDULERS: tuple[str, ...] = ("edm",)


def alphas_cumprod(num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """abar_t for t = 0..T-1 (float64)."""
    betas = torch.linspace(BETA_START, BETA_END, num_train_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def make_scheduler(
    name: SchedulerName = "ddim",
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
    prediction_type: str = "epsilon",
    sigma_min: float = 0.002,
    sigma_max: float = 5.0,
    sigma_data: float = 0.5,
    rho: float = 7.0,
):
    """A diffusers scheduler on IRASim's schedule, or EDM's Euler sampler.

    ``edm`` is deterministic Euler (``EDMEulerScheduler``, no churn) on the Karras rho
    schedule from ``sigma_max`` to ``sigma_min`` and a final step to 0, for models trained
    with EDM preconditioning (:mod:`freeaction_gym.diffusion.edm`); the model returns the
    raw network output F, the scheduler applies c_skip / c_out. The other arguments and
    ``prediction_type`` do not apply to it.

    ``pndm`` matches IRASim's inference (skip_prk_steps False, set_alpha_to_one False,
    linspace spacing; 50 steps = 59 model evaluations). ``ddim`` is deterministic (eta 0,
    trailing spacing from t = 999, final step to abar = 1 so no noise is left),
    ``ddpm`` ancestral, ``dpmsolver++`` a multistep few-step solver. ``prediction_type``
    is the network's output (``epsilon``, ``sample``, ``v_prediction``; PNDM has no
    ``sample``).
    """
    if name == "edm":
        return EDMEulerScheduler(
            sigma_min=sigma_min,
            sigma_max=sigma_max,
            sigma_data=sigma_data,
            rho=rho,
            sigma_schedule="karras",
            prediction_type="epsilon",  # diffusers' name for c_out = +sigma sd / sqrt(...)
            final_sigmas_type="zero",
        )
    if name == "pndm" and prediction_type == "sample":
        raise ValueError("PNDM does not support prediction_type='sample'; use ddim or ddpm")
    common = dict(
        num_train_timesteps=num_train_timesteps,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="linear",
        prediction_type=prediction_type,
    )
    if name == "pndm":
        return PNDMScheduler(
            **common, skip_prk_steps=False, set_alpha_to_one=False, timestep_spacing="linspace"
        )
    if name == "ddim":
        return DDIMScheduler(
            **common,
            clip_sample=False,
            set_alpha_to_one=True,  # the last step returns the x0 estimate, no residual noise
            timestep_spacing="trailing",
        )
    if name == "ddpm":
        return DDPMScheduler(
            **common,
            clip_sample=False,
            variance_type="fixed_small",
            timestep_spacing="trailing",
        )
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler(
            **common, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        )
    raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")


class AsEpsilon:
    """Wrap a denoiser that predicts x0 (``sample``) or ``v_prediction`` so it returns eps,
    for schedulers that only accept epsilon (PNDM). Same call signature as the DiT:
    ``(x (B, F, ...), t (B,), actions, null_action) -> eps (B, F, ...)``, with x the noisy
    input at step t (PNDM's model input is unscaled); keywords (e.g. ``prompts``) pass on."""

    def __init__(self, model, prediction_type: str, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS):
        if prediction_type not in ("sample", "v_prediction"):
            raise ValueError(f"nothing to convert for prediction_type={prediction_type!r}")
        self.model, self.prediction_type = model, prediction_type
        self.abar = alphas_cumprod(num_train_timesteps).float()

    def __call__(self, x, t, actions, null_action=None, **kwargs):
        out = self.model(x, t, actions, null_action, **kwargs)
        a = self.abar.to(x.device)[t.long()].view(-1, *([1] * (x.ndim - 1)))
        if self.prediction_type == "sample":  # x_t = sqrt(a) x0 + sqrt(1 - a) eps
            return (x - a.sqrt() * out) / (1 - a).sqrt()
        return a.sqrt() * out + (1 - a).sqrt() * x  # v = sqrt(a) eps - sqrt(1 - a) x0


def initial_noise_scale(scheduler) -> float:
    """What unit-variance initial noise is multiplied by (after ``set_timesteps``).

    EDM starts at exactly ``sigma_max`` (diffusers' ``init_noise_sigma`` for
    ``EDMEulerScheduler`` is sqrt(sigma_max^2 + 1), a variance-preserving convention)."""
    if isinstance(scheduler, EDMEulerScheduler):
        return float(scheduler.sigmas[0])
    return float(scheduler.init_noise_sigma)
