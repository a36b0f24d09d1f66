"""Visual-action-prompt inputs of the DiT (seed 004): the zero-initialised ControlNet branch
leaves the base model's output bit-identical until trained, prompt channels on the patch
embedding / conv stem, warm starts from prompt-less checkpoints, errors, and old configs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from freeaction_gym.models import DiTConfig, VideoDiT, dit_config
from freeaction_gym.models.checkpoint import (
    CheckpointError,
    load_state_dict_strict,
    save_pretrained_dit,
    warm_start_dit,
)
from freeaction_gym.models.pretrained import load_pretrained_dit

HW, C, F, A = 16, 3, 3, 4
HAS_STEM = "stem_channels" in DiTConfig.__dataclass_fields__  # the conv stem (hourglass.py)
STEMS = [(), pytest.param((4, 4, 4), marks=pytest.mark.skipif(not HAS_STEM, reason="no stem"))]


def _config(**overrides):
    kw = dict(input_size=(HW, HW), in_channels=C, patch_size=8, num_frames=F, action_dim=A)
    return dit_config("tiny", **(kw | overrides))


def _randomise(model: torch.nn.Module, seed: int, prefix: str = "", std: float = 0.05) -> None:
    """Move every trainable weight under ``prefix`` away from its (zero) init: a "trained"
    model whose output depends on all its inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and name.startswith(prefix):
                p.add_(torch.randn(p.shape, generator=g) * std)


def _inputs(b: int = 2, f: int = F, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, f, C, HW, HW, generator=g)
    t = torch.tensor([10, 900, 400][:b])
    a = torch.randn(b, f - 1, A, generator=g)
    prompts = torch.rand(b, f, 3, HW, HW, generator=g) * 2 - 1  # the pixels' range
    return x, t, a, prompts


def _trained_base(seed: int = 0, **overrides) -> VideoDiT:
    torch.manual_seed(seed)
    base = VideoDiT(_config(**overrides))
    _randomise(base, seed + 100)
    return base


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize(
    "overrides", [{}, {"action_in_temporal": True}, {"context_mode": "channels"}]
)
def test_zero_initialised_branch_leaves_the_base_output_bit_identical(depth, overrides):
    base = _trained_base(**overrides)
    prompted = VideoDiT(replace(base.config, prompt="controlnet", controlnet_depth=depth))
    warm_start_dit(prompted, base.state_dict(), "base")
    x, t, a, prompts = _inputs()
    with torch.no_grad():
        ref = base(x, t, a)
        assert torch.equal(prompted(x, t, a, prompts=prompts), ref)
        assert torch.equal(prompted(x, t, a, prompts=-prompts), ref)  # prompts do not matter yet


def test_fresh_branch_copies_the_blocks_and_starts_at_zero():
    torch.manual_seed(0)
    model = VideoDiT(_config(prompt="controlnet", controlnet_depth=3))
    branch = model.controlnet
    assert len(branch.blocks) == len(branch.proj) == 3
    for own, src in zip(branch.blocks, model.blocks, strict=False):
        for (k, v), (k2, v2) in zip(
            own.state_dict().items(), src.state_dict().items(), strict=True
        ):
            assert k == k2 and torch.equal(v, v2)
        assert own is not src and own.attn.qkv.weight is not src.attn.qkv.weight  # a copy
    zero = [branch.prompt_embed.proj.weight, branch.prompt_embed.proj.bias]
    zero += [p for proj in branch.proj for p in proj.parameters()]
    assert all(torch.count_nonzero(p) == 0 for p in zero)


def test_perturbed_projections_make_the_prompts_change_the_output():
    base = _trained_base()
    model = VideoDiT(replace(base.config, prompt="controlnet", controlnet_depth=2))
    warm_start_dit(model, base.state_dict(), "base")
    _randomise(model, 7, prefix="controlnet.proj")
    _randomise(model, 8, prefix="controlnet.prompt_embed")
    x, t, a, prompts = _inputs()
    with torch.no_grad():
        out = model(x, t, a, prompts=prompts)
        other = model(x, t, a, prompts=torch.roll(prompts, 1, dims=0))
        ref = base(x, t, a)
    assert not torch.allclose(out[:, 1:], ref[:, 1:])
    assert not torch.allclose(out[:, 1:], other[:, 1:])
    with torch.no_grad():  # each sample sees its own prompts (up to batched rounding)
        alone = model(x[:1], t[:1], a[:1], prompts=prompts[:1])
    torch.testing.assert_close(out[:1], alone, atol=1e-5, rtol=1e-5)


def test_zero_projections_still_receive_gradient():
    base = _trained_base()
    model = VideoDiT(replace(base.config, prompt="controlnet", controlnet_depth=2))
    warm_start_dit(model, base.state_dict(), "base")
    x, t, a, prompts = _inputs()
    model(x, t, a, prompts=prompts)[:, 1:].pow(2).mean().backward()
    assert model.controlnet.proj[0].weight.grad.abs().sum() > 0
    assert model.controlnet.prompt_embed.proj.weight.grad.abs().sum() == 0  # behind zero proj


@pytest.mark.parametrize("mode", ["channels", "both"])
@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("context_mode", ["frames", "channels"])
def test_prompt_channels_shapes(mode, stem, context_mode):
    stem_kw = {"stem_channels": stem} if stem else {}
    cfg = _config(prompt=mode, context_mode=context_mode, **stem_kw)
    n_ctx = 1 if context_mode == "channels" else 0
    assert cfg.embed_channels == C * (1 + n_ctx) + 3
    model = VideoDiT(cfg)
    embed = model.stem.inp if stem else model.x_embedder.proj
    assert embed.in_channels == cfg.embed_channels
    x, t, a, prompts = _inputs()
    assert model(x, t, a, prompts=prompts).shape == x.shape
    x2, t2, a2, p2 = _inputs(f=2)  # fewer frames than the model's window
    assert model(x2, t2, a2, prompts=p2).shape == x2.shape


@pytest.mark.parametrize("mode", ["channels", "both"])
@pytest.mark.parametrize("stem", STEMS)
def test_warm_start_pads_the_prompt_channels_with_zeros(mode, stem):
    base = _trained_base(**({"stem_channels": stem} if stem else {}))
    model = VideoDiT(replace(base.config, prompt=mode))
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_state_dict_strict(model, base.state_dict(), "base", new_modules=("controlnet.",))
    warm_start_dit(model, base.state_dict(), "base")
    key = "stem.inp.weight" if stem else "x_embedder.proj.weight"
    w = model.state_dict()[key]
    assert torch.equal(w[:, :C], base.state_dict()[key])
    assert torch.count_nonzero(w[:, C:]) == 0
    x, t, a, prompts = _inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t, a, prompts=prompts), base(x, t, a))


def test_warm_started_branch_copies_the_trained_blocks_and_round_trips(tmp_path):
    base = _trained_base()
    model = VideoDiT(replace(base.config, prompt="both", controlnet_depth=2))
    warm_start_dit(model, base.state_dict(), "base")
    for i, block in enumerate(model.controlnet.blocks):
        for k, v in block.state_dict().items():
            assert torch.equal(v, base.blocks[i].state_dict()[k]), k
    _randomise(model, 9, prefix="controlnet.")  # a trained branch: kept, not re-copied
    path = save_pretrained_dit(model, tmp_path / "m")
    back = load_pretrained_dit(path)
    assert (back.config.prompt, back.config.controlnet_depth) == ("both", 2)
    x, t, a, prompts = _inputs()
    with torch.no_grad():
        assert torch.equal(back(x, t, a, prompts=prompts), model(x, t, a, prompts=prompts))
    again = VideoDiT(model.config)
    warm_start_dit(again, model.state_dict(), "prompted")
    assert torch.equal(
        again.controlnet.blocks[0].attn.qkv.weight, model.controlnet.blocks[0].attn.qkv.weight
    )


def test_prompt_errors():
    x, t, a, prompts = _inputs()
    plain = VideoDiT(_config())
    with pytest.raises(ValueError, match="takes no prompts"):
        plain(x, t, a, prompts=prompts)
    prompted = VideoDiT(_config(prompt="controlnet"))
    with pytest.raises(ValueError, match="needs prompts"):
        prompted(x, t, a)
    with pytest.raises(ValueError, match=r"prompts must be \(B, F, 3, H, W\)"):
        prompted(x, t, a, prompts=prompts[:, :2])
    with pytest.raises(ValueError, match="prompt must be"):
        _config(prompt="skeleton")
    with pytest.raises(ValueError, match="controlnet_depth"):
        _config(prompt="controlnet", controlnet_depth=5)


def test_configs_without_prompt_fields_load_as_prompt_free(tmp_path):
    torch.manual_seed(0)
    model = VideoDiT(_config())
    d = model.config.to_dict()
    for key in ("prompt", "prompt_channels", "controlnet_depth"):
        d.pop(key)
    old = type(model.config)(**d)  # a config.json written before prompts existed
    assert old.prompt == "none" and old.embed_channels == C
    assert not any(k.startswith("controlnet.") for k in VideoDiT(old).state_dict())
