"""Modality-selective truncated initial noise and the deterministic joint sampler.

Each modality's initial noise is N(0, I) or N(0, I) truncated to |z| <= tau (exact inverse
CDF, :func:`~freeaction_gym.diffusion.truncation.truncated_normal_from_uniform`), chosen per
modality. The uniforms are drawn in a fixed modality order from one generator whatever is
truncated, so two configurations with the same seed start from paired noise.

The sampler is DDIM with eta = 0: deterministic after initialisation, so truncating the
*initial* noise is the whole intervention (PAD's ancestral DDPM would add fresh, untruncated
noise at every step and wash it out).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from freeaction_gym.diffusion.schedule import make_scheduler
from freeaction_gym.diffusion.truncation import truncated_normal_from_uniform
from freeaction_gym.pad.model import MODALITIES, PADDiT


def check_modalities(names: Iterable[str]) -> set[str]:
    """The set of ``names``; ValueError naming any that is not a modality."""
    names = set(names)
    unknown = names - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
    return names


def initial_noise(
    shapes: dict[str, tuple[int, ...]],
    truncate: Iterable[str] = (),
    tau: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """float32 initial noise per modality; those in ``truncate`` are truncated at ``tau``."""
    truncate = check_modalities(truncate)
    out = {}
    for m in MODALITIES:  # fixed order: pairing across configurations
        u = torch.rand(shapes[m], generator=generator, dtype=torch.float64)
        out[m] = truncated_normal_from_uniform(u, tau if m in truncate else float("inf")).float()
    return out


@torch.inference_mode()
def sample_joint(
    model: PADDiT,
    obs_rgb: torch.Tensor,
    obs_depth: torch.Tensor,
    task: torch.Tensor,
    noise: dict[str, torch.Tensor],
    num_steps: int = 10,
) -> dict[str, torch.Tensor]:
    """Denoise every modality jointly with DDIM (eta 0, one shared timestep).

    Inputs as :meth:`PADDiT.forward`; ``noise`` from :func:`initial_noise`. Returns the
    clean estimates: image (B, 3k, S, S) and depth (B, k, S, S) in the model's normalised
    units, action (B, H, A).
    """
    scheduler = make_scheduler("ddim", prediction_type=model.config.prediction_type)
    scheduler.set_timesteps(num_steps)
    x = {m: noise[m].clone() for m in MODALITIES}
    b = obs_rgb.shape[0]
    for t in scheduler.timesteps:
        out = model(obs_rgb, obs_depth, x, t.expand(b), task)
        x = {m: scheduler.step(out[m], t, x[m]).prev_sample for m in MODALITIES}
    return x
