"""AVID mask statistics against a pixel-by-pixel recomputation, and collect_masks on a tiny
adapter world model (one mask per chunk and sampling step, filed in rollout order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.evaluation.avid_masks import (
    MaskTrace,
    collect_masks,
    mask_statistics,
    moving_regions,
    plot_mask_per_step,
    save_mask_rollout,
)
from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.models.avid import AVIDConfig, AVIDModel
from freeaction_gym.world_model import DiffusionConfig, PixelCodec, WorldModel

HW = 32


def test_statistics_match_a_pixelwise_recomputation(tmp_path):
    rng = np.random.default_rng(0)
    b, n, t, s = 2, 2, 3, 4
    real = np.full((b, n + t, HW, HW, 3), 80, np.uint8)
    for f in range(n + t):  # a 4x4 block moving right by 3 px per frame
        real[:, f, 10:14, 3 * f : 3 * f + 4] = 250
    masks = rng.uniform(0, 1, (s, b, t, HW, HW)).astype(np.float32)
    trace = MaskTrace(masks, real.copy(), n)
    stats = mask_statistics(trace, real, threshold=10)
    moving = np.zeros((b, t, HW, HW), bool)  # predicted frame j vs the frame before it
    for j in range(t):
        f = n + j
        changed = np.any(real[:, f] != real[:, f - 1], axis=-1)  # (B, H, W)
        for dy in (-1, 0, 1):  # dilated by one pixel (a 3x3 square)
            for dx in (-1, 0, 1):
                shifted = np.zeros_like(changed)
                ys, xs = slice(max(dy, 0), HW + min(dy, 0)), slice(max(dx, 0), HW + min(dx, 0))
                yd, xd = slice(max(-dy, 0), HW + min(-dy, 0)), slice(max(-dx, 0), HW + min(-dx, 0))
                shifted[:, yd, xd] = changed[:, ys, xs]
                moving[:, j] |= shifted
    np.testing.assert_array_equal(moving_regions(real)[:, n - 1 :], moving)
    for i in range(b):
        np.testing.assert_allclose(stats["moving"][i], masks[-1, i][moving[i]].mean(), rtol=1e-5)
        np.testing.assert_allclose(stats["static"][i], masks[-1, i][~moving[i]].mean(), rtol=1e-5)
    for k in range(s):
        np.testing.assert_allclose(stats["per_step"][k], masks[k].mean(), rtol=1e-5)
        np.testing.assert_allclose(stats["per_step_moving"][k], masks[k][moving].mean(), rtol=1e-5)
        np.testing.assert_allclose(stats["per_step_static"][k], masks[k][~moving].mean(), rtol=1e-5)
    assert save_mask_rollout(tmp_path / "r.png", trace, real).stat().st_size > 0
    assert plot_mask_per_step(tmp_path / "s.png", {"a": stats}).stat().st_size > 0
    with pytest.raises(ValueError, match="differ"):
        mask_statistics(trace, real[:, 1:])


def tiny_world(mode: str = "avid") -> WorldModel:
    torch.manual_seed(0)
    kw = dict(input_size=(HW, HW), in_channels=3, patch_size=8, num_frames=3, action_dim=4)
    frozen = VideoDiT(dit_config("tiny", **kw))
    model = AVIDModel(AVIDConfig(dit_config("tiny", depth=2, hidden_size=32, **kw), mode), frozen)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # adaLN-Zero: perturb so the mask varies
        for name, p in model.adapter.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    diffusion = DiffusionConfig(prediction_type="sample", target="delta", delta_scale=1.0)
    return WorldModel(model.eval(), PixelCodec(), diffusion, {}).eval()


def test_collect_masks_files_one_mask_per_chunk_and_step():
    world = tiny_world()
    g = torch.Generator().manual_seed(2)
    frames = torch.randint(0, 256, (2, 6, HW, HW, 3), generator=g, dtype=torch.uint8).numpy()
    actions = torch.randn(2, 5, 4, generator=g)
    spec = {"guidance": {"mode": "none"}, "truncation": {"mode": "none"}}
    sampling = world.default_sampling(2, scheduler="ddim", num_steps=3, **spec)
    trace = collect_masks(world, frames, actions, sampling, seed=0)
    assert trace.masks.shape == (3, 2, 5, HW, HW)  # 5 new frames in chunks of 2, 2, 1
    assert trace.frames.shape == frames.shape and np.array_equal(trace.frames[:, 0], frames[:, 0])
    assert 0 <= trace.masks.min() and trace.masks.max() <= 1 and trace.masks.std() > 0
    assert world.dit.mask_history is None  # switched off again
    # the last call of the rollout is the last chunk's last step: its mask is last_mask
    last = world.dit.last_mask[:, 1:, 0].numpy()  # (B, 1, H, W)
    np.testing.assert_array_equal(trace.masks[-1, :, 4:], last)
    # steps differ (the mask depends on the noise level)
    assert not np.allclose(trace.masks[0], trace.masks[-1])
    with pytest.raises(ValueError, match="guidance mode 'none'"):
        collect_masks(world, frames, actions, world.default_sampling(2))
    plain = WorldModel(world.dit.frozen, PixelCodec(), world.diffusion, {})
    with pytest.raises(ValueError, match="needs an AVIDModel"):
        collect_masks(plain, frames, actions, sampling)
    no_mask = tiny_world("no_mask")
    with pytest.raises(ValueError, match="not one mask per sampling step"):
        collect_masks(no_mask, frames, actions, sampling)
