"""Rollout validation metrics: the zero-delta model is the copy baseline; references from
scikit-image and a hand-written moving-region PSNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.training.validate import rollout_metrics
from freeaction_gym.world_model import DiffusionConfig, PixelCodec, SamplingConfig, WorldModel

N, F, HW, A = 3, 3, 8, 4  # clips, frames (1 context + 2), size, action dim
KEYS = {
    "psnr",
    "psnr_copy",
    "ssim",
    "ssim_copy",
    "moving_psnr",
    "moving_psnr_copy",
    "psnr_shuffled",
    "moving_psnr_shuffled",
}


def world(randomize: bool) -> WorldModel:
    torch.manual_seed(0)
    dit = VideoDiT(
        dit_config(
            "tiny", input_size=(HW, HW), patch_size=4, in_channels=3, num_frames=F, action_dim=A
        )
    )
    if randomize:  # replace the zero init so the network predicts a non-zero delta
        with torch.no_grad():
            for name, p in dit.named_parameters():
                if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                    p.normal_(0.0, 0.3)
    diffusion = DiffusionConfig(prediction_type="sample", target="delta", delta_scale=2.0)
    return WorldModel(dit.eval(), PixelCodec(), diffusion, {})


def clips() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """latents (N, F, 3, H, W), actions (N, F-1, A), uint8 video (N, F, H, W, 3); the true
    frames are the context with a bright moving square and small texture noise."""
    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 200, (N, 1, HW, HW, 3)), F, axis=1)
    for i in range(N):
        for f in range(1, F):
            video[i, f, f : f + 3, i + f : i + f + 3] = 255
    video = np.clip(video + rng.integers(-3, 4, video.shape), 0, 255).astype(np.uint8)
    latents = PixelCodec().encode(torch.from_numpy(video))
    actions = torch.from_numpy(rng.normal(size=(N, F - 1, A)).astype(np.float32))
    return latents, actions, video


def reference_copy_metrics(video: np.ndarray) -> tuple[float, float]:
    """(PSNR, moving-region PSNR) of repeating the context frame, by hand / scikit-image."""
    ctx = video[:, 0]
    psnr = np.mean(
        [
            np.mean(
                [peak_signal_noise_ratio(video[i, f], ctx[i], data_range=255) for f in range(1, F)]
            )
            for i in range(N)
        ]
    )
    moving = []
    for i in range(N):
        t = video[i, 1:].astype(np.int64)
        mask = np.abs(t - ctx[i].astype(np.int64)).max(axis=-1) > 10  # (F-1, H, W)
        err = (t - ctx[i].astype(np.int64))[mask]  # (pixels, 3)
        moving.append(10 * np.log10(255.0**2 / np.mean(err.astype(np.float64) ** 2)))
    return float(psnr), float(np.mean(moving))


def test_untrained_delta_model_equals_the_copy_baseline():
    latents, actions, video = clips()
    # DDPM's last step keeps no noise, so a zero x0-prediction decodes to the context exactly.
    sampling = SamplingConfig.from_dict({"scheduler": "ddpm", "num_steps": 3})
    m = rollout_metrics(world(randomize=False), latents, actions, sampling, seed=0)
    assert set(m) == KEYS
    assert all(np.isfinite(v) for v in m.values())
    assert m["psnr"] == m["psnr_copy"] == m["psnr_shuffled"]
    assert m["ssim"] == m["ssim_copy"]
    assert m["moving_psnr"] == m["moving_psnr_copy"] == m["moving_psnr_shuffled"]
    psnr, moving = reference_copy_metrics(video)
    assert m["psnr_copy"] == pytest.approx(psnr, rel=1e-9)
    assert m["moving_psnr_copy"] == pytest.approx(moving, rel=1e-9)
    assert m["moving_psnr_copy"] < m["psnr_copy"]  # the square is where copying fails


def test_a_model_that_moves_differs_from_copy_and_batching_is_irrelevant():
    latents, actions, _ = clips()
    sampling = SamplingConfig.from_dict(
        {"num_steps": 2, "guidance": {"mode": "none"}, "truncation": {"mode": "none"}}
    )
    model = world(randomize=True)
    m = rollout_metrics(model, latents, actions, sampling, seed=1)
    assert m["psnr"] != m["psnr_copy"] and m["moving_psnr"] != m["moving_psnr_copy"]
    assert m["psnr_shuffled"] != m["psnr"]  # the random network does depend on its actions
    # DDIM is deterministic given the shared initial noise: batch size changes nothing
    m1 = rollout_metrics(model, latents, actions, sampling, seed=1, batch=1)
    assert m1 == pytest.approx(m, rel=1e-6)
    m2 = rollout_metrics(model, latents, actions, sampling, seed=1, shuffle_check=False)
    assert set(m2) == KEYS - {"psnr_shuffled", "moving_psnr_shuffled"}
