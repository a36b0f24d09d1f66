"""Conv stem/head with U-Net skips around the DiT: zero start, skip path, config errors,
round trip through our checkpoint format."""

from __future__ import annotations

import pytest
import torch

from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.models.checkpoint import save_pretrained_dit
from freeaction_gym.models.hourglass import ConvHead, ConvStem
from freeaction_gym.models.pretrained import load_pretrained_dit


def _model(seed=0, randomize=True, **overrides):
    torch.manual_seed(seed)
    kw = dict(input_size=(16, 16), in_channels=3, patch_size=4, num_frames=4, action_dim=4,
              num_context_frames=2, context_mode="channels", stem_channels=(4, 8))  # fmt: skip
    kw.update(overrides)
    dit = VideoDiT(dit_config("tiny", **kw)).eval()
    if randomize:  # the zero-initialised output conv and FiLM would hide everything
        with torch.no_grad():
            for name, p in dit.named_parameters():
                if name.startswith(("head.out", "head.film", "blocks.")) and "adaLN" not in name:
                    p.normal_(0, 0.1)
                if "adaLN" in name:
                    p.normal_(0, 0.05)
    return dit


def _inputs(b=2, f=4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, f, 3, 16, 16, generator=g)
    return x, torch.tensor([10, 900])[:b], torch.randn(b, f - 1, 4, generator=g)


def test_stem_and_head_shapes():
    stem, head = ConvStem(9, (4, 8, 16), 32), ConvHead((4, 8, 16), 32, 3)
    tokens, skips = stem(torch.randn(5, 9, 32, 32))
    assert tokens.shape == (5, 16, 32)  # 32 / 2^3 = 4 -> 4x4 tokens of width 32
    assert [s.shape[1:] for s in skips] == [(4, 32, 32), (8, 16, 16), (16, 8, 8)]
    out = head(tokens, skips, torch.randn(5, 32), (4, 4))
    assert out.shape == (5, 3, 32, 32)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output conv


def test_new_model_predicts_zero_and_passes_context_through():
    dit = _model(randomize=False)
    x, t, a = _inputs()
    out = dit(x, t, a)
    assert out.shape == x.shape
    assert torch.equal(out[:, :2], x[:, :2])
    assert torch.equal(out[:, 2:], torch.zeros_like(out[:, 2:]))
    assert not hasattr(dit, "x_embedder") and not hasattr(dit, "final_layer")


def test_skip_path_reaches_the_same_pixel_and_actions_matter():
    dit = _model()
    x, t, a = _inputs()
    x.requires_grad_(True)
    out = dit(x, t, a)
    out[0, 2, :, 5, 6].sum().backward()
    grad = x.grad[0, 2].abs().sum(0)  # (H, W) influence of the noisy frame's pixels
    assert grad[5, 6] > 0
    assert x.grad[1].abs().sum() == 0  # samples stay independent
    with torch.no_grad():
        a2 = a.clone()
        a2[0, 2] += 1.0  # the first predicted frame's action
        diff = (dit(x, t, a2) - out).abs().amax(dim=(2, 3, 4))
    assert diff[0, 2] > 1e-4 and diff[1].max() == 0


def test_levels_must_match_patch_size():
    with pytest.raises(ValueError, match="patch_size must be 8"):
        _model(stem_channels=(4, 8, 8), patch_size=4)


def test_round_trip(tmp_path):
    dit = _model()
    save_pretrained_dit(dit, tmp_path / "m")
    back = load_pretrained_dit(tmp_path / "m").eval()
    assert back.config.stem_channels == (4, 8)
    x, t, a = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(back(x, t, a), dit(x, t, a), rtol=0, atol=0)
