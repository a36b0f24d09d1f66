"""The sampling loop: a diffusers scheduler over the predicted frames, the clean context
re-imposed at every model call.

The sampler receives the network as a callable ``model(x, t, actions, null_action) -> out``
(the scheduler's model output: eps, x0, v or EDM's raw F) and an explicit initial ``noise``
tensor (draw it with :func:`freeaction_gym.diffusion.truncation.truncated_initial_noise`
for FreeAction's truncation). Techniques that change the model's output - action-scaled
CFG (:func:`freeaction_gym.diffusion.guidance.guided`), epsilon conversion
(:class:`~freeaction_gym.diffusion.schedule.AsEpsilon`), EDM time mapping
(:class:`~freeaction_gym.diffusion.edm.EDMNetwork`) - wrap the model; the loop stays plain.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from freeaction_gym.diffusion.schedule import initial_noise_scale

Denoiser = Callable[..., torch.Tensor]


@torch.inference_mode()
def sample_video(
    model: Denoiser,
    context: torch.Tensor,
    actions: torch.Tensor,
    noise: torch.Tensor,
    scheduler,
    num_steps: int,
    generator: torch.Generator | None = None,
    null_action: torch.Tensor | None = None,
    model_kwargs: dict | None = None,
) -> torch.Tensor:
    """Denoise ``noise`` into the frames that follow ``context``.

    context (B, n, C, H, W) clean latents; actions (B, n + K - 1, A) covering every frame
    transition of the clip; noise (B, K, C, H, W) unit-variance initial noise of the K
    predicted frames (scaled here to the scheduler's first noise level). One model call per
    entry of ``scheduler.timesteps``, given ``model_kwargs`` unchanged (per-sample inputs
    that do not change with the noise, e.g. ``prompts`` (B, n + K, C_p, H, W), the visual
    action prompts of every frame). Returns (B, K, C, H, W).
    """
    b, n = context.shape[:2]
    k = noise.shape[1]
    if actions.shape[:2] != (b, n + k - 1):
        raise ValueError(
            f"actions {tuple(actions.shape)} do not match {n} context + {k} predicted frames"
        )
    scheduler.set_timesteps(num_steps)
    step_kwargs = {}
    if generator is not None and "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = generator
    model_kwargs = model_kwargs or {}
    x = noise * initial_noise_scale(scheduler)
    for t in scheduler.timesteps:
        video = torch.cat([context, scheduler.scale_model_input(x, t)], dim=1)  # (B, F, ...)
        out = model(video, t.expand(b).to(x.device), actions, null_action, **model_kwargs)[:, n:]
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
    return x
