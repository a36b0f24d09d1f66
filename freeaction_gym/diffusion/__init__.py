"""Diffusion process, schedulers, sampler and the FreeAction training-free techniques."""

from freeaction_gym.diffusion.action_norm import ActionNormSpec, action_norm, mean_action_norm
from freeaction_gym.diffusion.guidance import (
    ActionCFG,
    ActionGuidance,
    action_scaled_cfg,
    guidance_weight,
    guided,
)
from freeaction_gym.diffusion.loss import diffusion_loss, q_sample
from freeaction_gym.diffusion.sampler import sample_video
from freeaction_gym.diffusion.schedule import SCHEDULERS, alphas_cumprod, make_scheduler
from freeaction_gym.diffusion.truncation import (
    NoiseTruncation,
    truncated_initial_noise,
    truncated_normal_from_uniform,
    truncation_threshold,
)

__all__ = [
    "SCHEDULERS",
    "ActionCFG",
    "ActionNormSpec",
    "NoiseTruncation",
    "action_norm",
    "ActionGuidance",
    "action_scaled_cfg",
    "guided",
    "alphas_cumprod",
    "diffusion_loss",
    "guidance_weight",
    "make_scheduler",
    "mean_action_norm",
    "q_sample",
    "sample_video",
    "truncated_initial_noise",
    "truncated_normal_from_uniform",
    "truncation_threshold",
]
