"""Fidelity and action-sensitivity of short rollouts: the training-time metric.

For clips (context + K true frames, K actions) we generate K frames and compare against the
ground truth and against copying the context frame, on the whole frame and on the moving
region (pixels where the truth differs from the context). The same initial noise is reused
with the actions shuffled across clips: a model that follows its actions loses fidelity
there; one that ignores them does not (REFERENCE §7).
"""

from __future__ import annotations

import numpy as np
import torch

from freeaction_gym.evaluation.metrics import moving_region_psnr, psnr_video, ssim_video
from freeaction_gym.world_model.model import SamplingConfig, WorldModel


def _finite_mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


@torch.inference_mode()
def rollout_metrics(
    world: WorldModel,
    latents: torch.Tensor,
    actions: torch.Tensor,
    sampling: SamplingConfig,
    seed: int = 0,
    shuffle_check: bool = True,
    batch: int = 32,
    prompts: torch.Tensor | None = None,
) -> dict[str, float]:
    """latents (N, n+K, C, h, w) true clips; actions (N, n+K-1, A); prompts (N, n+K, 3, H, W)
    the clips' visual action prompts (prompt models; shuffled with the actions in the
    shuffle check). Returns mean metrics."""
    n = world.num_context
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((latents.shape[0], latents.shape[1] - n, *latents.shape[2:]), generator=g)
    noise = sampling.truncation.sample(
        noise.shape, world.action_norm(actions[:, n - 1 :], sampling.norm), g
    )[0]

    def _predict(acts: torch.Tensor, prompts: torch.Tensor | None) -> torch.Tensor:
        outs = []
        for i in range(0, latents.shape[0], batch):
            z, _ = world.predict(
                latents[i : i + batch, :n],
                acts[i : i + batch],
                sampling,
                noise=noise[i : i + batch],
                generator=torch.Generator().manual_seed(seed + i),
                prompts=None if prompts is None else prompts[i : i + batch],
            )
            outs.append(z)
        return torch.cat(outs)

    true = world.decode(latents).numpy()  # (N, F, H, W, 3) uint8
    ctx = true[:, n - 1 : n]
    pred = np.concatenate([true[:, :n], world.decode(_predict(actions, prompts)).numpy()], axis=1)
    copy = np.concatenate([true[:, :n], np.repeat(ctx, true.shape[1] - n, axis=1)], axis=1)
    out = {
        "psnr": _finite_mean(psnr_video(pred, true, skip_first=n)),
        "psnr_copy": _finite_mean(psnr_video(copy, true, skip_first=n)),
        "ssim": _finite_mean(ssim_video(pred, true, skip_first=n)),
        "ssim_copy": _finite_mean(ssim_video(copy, true, skip_first=n)),
        "moving_psnr": _finite_mean(moving_region_psnr(pred, true, ctx[:, 0], skip_first=n)),
        "moving_psnr_copy": _finite_mean(moving_region_psnr(copy, true, ctx[:, 0], skip_first=n)),
    }
    if shuffle_check:
        perm = torch.roll(torch.arange(latents.shape[0]), 1)
        shuf_prompts = None if prompts is None else prompts[perm]
        shuf = world.decode(_predict(actions[perm], shuf_prompts)).numpy()
        shuf = np.concatenate([true[:, :n], shuf], axis=1)
        out["psnr_shuffled"] = _finite_mean(psnr_video(shuf, true, skip_first=n))
        out["moving_psnr_shuffled"] = _finite_mean(
            moving_region_psnr(shuf, true, ctx[:, 0], skip_first=n)
        )
    return out
