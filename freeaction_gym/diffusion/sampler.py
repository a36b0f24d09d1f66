"""The sampling loop: a diffusers scheduler over the predicted frames, the clean context
re-imposed at every model call, optional action-scaled CFG batched into one forward.

The sampler receives the network as a callable ``model(x, t, actions, null_action) -> eps``
and an explicit initial ``noise`` tensor (draw it with
:func:`freeaction_gym.diffusion.truncation.truncated_initial_noise` for FreeAction's
truncation).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from freeaction_gym.diffusion.guidance import ActionCFG

Denoiser = Callable[..., torch.Tensor]


@torch.inference_mode()
def sample_video(
    model: Denoiser,
    context: torch.Tensor,
    actions: torch.Tensor,
    noise: torch.Tensor,
    scheduler,
    num_steps: int,
    guidance: ActionCFG | None = None,
    action_norm: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    null_action: torch.Tensor | None = None,
    batch_cfg: bool = True,
) -> torch.Tensor:
    """Denoise ``noise`` into the frames that follow ``context``.

    context (B, n, C, H, W) clean latents; actions (B, n + K - 1, A) covering every frame
    transition of the clip; noise (B, K, C, H, W) initial latent of the K predicted frames;
    guidance with per-sample ``action_norm`` (B,). Returns (B, K, C, H, W).
    The positive and negative passes of guided steps run as one batch of 2B
    (``batch_cfg=False``: two separate calls, the naive path kept for benchmarks).
    """
    b, n = context.shape[:2]
    k = noise.shape[1]
    if actions.shape[:2] != (b, n + k - 1):
        raise ValueError(
            f"actions {tuple(actions.shape)} do not match {n} context + {k} predicted frames"
        )
    use_cfg = guidance is not None and guidance.mode != "none"
    if use_cfg:
        if action_norm is None:
            raise ValueError("guidance needs the per-sample action_norm")
        neg_actions, neg_null = guidance.negative_actions(actions)
        pos_null = null_action if null_action is not None else torch.zeros(b, dtype=torch.bool)
        neg_null = neg_null if neg_null is not None else pos_null
        pair_actions = torch.cat([actions, neg_actions])  # (2B, F-1, A)
        pair_null = torch.cat([pos_null.to(actions.device), neg_null.to(actions.device)])
    scheduler.set_timesteps(num_steps)
    timesteps = scheduler.timesteps
    n_evals = len(timesteps)
    step_kwargs = {}
    if generator is not None and "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = generator
    x = noise * scheduler.init_noise_sigma
    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t)
        w = guidance.weight(action_norm, i, n_evals) if use_cfg else None
        if use_cfg and bool((w != 0).any()):
            if batch_cfg:
                video = torch.cat([context, x_in], dim=1).repeat(2, 1, 1, 1, 1)  # (2B, F, ...)
                tt = t.expand(2 * b).to(x.device)
                eps_pair = model(video, tt, pair_actions, pair_null)[:, n:]
                eps_pos, eps_neg = eps_pair[:b], eps_pair[b:]
            else:
                video = torch.cat([context, x_in], dim=1)
                tt = t.expand(b).to(x.device)
                eps_pos = model(video, tt, actions, pair_null[:b])[:, n:]
                eps_neg = model(video, tt, pair_actions[b:], pair_null[b:])[:, n:]
            eps = eps_pos + w.to(eps_pos).view(-1, 1, 1, 1, 1) * (eps_pos - eps_neg)
        else:
            video = torch.cat([context, x_in], dim=1)  # (B, F, C, H, W)
            eps = model(video, t.expand(b).to(x.device), actions, null_action)[:, n:]
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
    return x
