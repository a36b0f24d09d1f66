"""Visual action prompts through the world model: ``training_loss`` and ``predict`` hand the
prompts to the network, every sampler step and both conditions of FreeAction's guidance see
them unchanged (the negative branch changes the actions only), and prompt frames are brought
to the latent grid in the pixels' range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.diffusion import ActionCFG
from freeaction_gym.models import VideoDiT, dit_config
from freeaction_gym.world_model import DiffusionConfig, PixelCodec, SamplingConfig, WorldModel

A, HW, F = 4, 8, 3


def prompt_world(prompt: str = "both", parameterization: str = "ddpm") -> WorldModel:
    torch.manual_seed(0)
    cfg = dit_config(
        "tiny", input_size=(HW, HW), patch_size=4, in_channels=3, num_frames=F, action_dim=A,
        prompt=prompt,
    )  # fmt: skip
    dit = VideoDiT(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a "trained" model: every weight, the branch's too, matters
        for p in dit.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    stats = {"mu_act": {"mean_step_l2": {"raw": {"2": 0.9}}}}
    return WorldModel(dit, PixelCodec(), DiffusionConfig(parameterization=parameterization), stats)


def inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (b, F, HW, HW, 3), dtype=torch.uint8, generator=g)
    actions = torch.randn(b, F - 1, A, generator=g)
    prompts = torch.randint(0, 256, (b, F, HW, HW, 3), dtype=torch.uint8, generator=g)
    return video, actions, prompts


class Spy(torch.nn.Module):
    """Records the (actions, prompts) of every network call, then runs the network."""

    def __init__(self, dit: VideoDiT) -> None:
        super().__init__()
        self.dit, self.calls = dit, []
        self.config = dit.config

    def forward(self, x, t, actions, null_action=None, **kwargs):
        self.calls.append((actions.clone(), kwargs["prompts"].clone()))
        return self.dit(x, t, actions, null_action, **kwargs)


def test_prompt_input_is_the_pixel_range_on_the_latent_grid():
    world = prompt_world()
    _, _, prompts = inputs()
    p = world.prompt_input(prompts)
    ref = prompts.permute(0, 1, 4, 2, 3).double() / 127.5 - 1  # (B, F, 3, H, W)
    torch.testing.assert_close(p.double(), ref)
    big = prompts.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 2x the grid
    torch.testing.assert_close(world.prompt_input(big).double(), ref)  # area average
    assert world.takes_prompts


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_guidance_passes_the_same_prompts_to_both_conditions(batch_cfg):
    world = prompt_world()
    video, actions, prompts = inputs()
    spy = Spy(world.dit)
    world.dit = spy
    sampling = SamplingConfig(num_steps=2, guidance=ActionCFG(cutoff=1.0), batch_cfg=batch_cfg)
    z, _ = world.predict(world.encode(video[:, :1]), actions, sampling, prompts=prompts,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert z.shape == (2, F - 1, 3, HW, HW)
    want = world.prompt_input(prompts)
    assert len(spy.calls) == (2 if batch_cfg else 4)
    for acts, p in spy.calls:
        if batch_cfg:  # one call of 2B: positive then negated actions, prompts repeated
            assert torch.equal(acts, torch.cat([actions, -actions]))
            assert torch.equal(p, torch.cat([want, want]))
        else:
            assert torch.equal(p, want)


@pytest.mark.parametrize("parameterization", ["ddpm", "edm"])
def test_predict_depends_on_the_prompts_and_is_batch_mode_independent(parameterization):
    world = prompt_world(parameterization=parameterization)
    video, actions, prompts = inputs()
    ctx = world.encode(video[:, :1])
    noise = torch.randn(2, F - 1, 3, HW, HW, generator=torch.Generator().manual_seed(3))

    def run(p, batch_cfg=True):
        s = world.default_sampling(F - 1, num_steps=2, batch_cfg=batch_cfg)
        s.guidance = ActionCFG(cutoff=1.0)
        return world.predict(ctx, actions, s, noise=noise, prompts=p)[0]

    out = run(prompts)
    torch.testing.assert_close(out, run(prompts, batch_cfg=False), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, run(255 - prompts))


def test_prompts_are_required_by_and_only_accepted_by_prompt_models():
    video, actions, prompts = inputs()
    world = prompt_world()
    ctx = world.encode(video[:, :1])
    with pytest.raises(ValueError, match="needs prompts"):
        world.predict(ctx, actions, SamplingConfig(num_steps=2))
    plain = prompt_world("none")
    with pytest.raises(ValueError, match="takes no prompts"):
        plain.predict(ctx, actions, SamplingConfig(num_steps=2), prompts=prompts)
    with pytest.raises(ValueError, match="takes no prompts"):
        plain.training_loss(world.encode(video), actions, prompts=prompts)


@pytest.mark.parametrize("parameterization", ["ddpm", "edm"])
def test_training_loss_trains_the_prompt_paths(parameterization):
    world = prompt_world("both", parameterization)
    video, actions, prompts = inputs()
    g = torch.Generator().manual_seed(0)
    loss = world.training_loss(world.encode(video), actions, generator=g, prompts=prompts)
    loss.backward()
    dit = world.dit
    grads = {
        "branch": dit.controlnet.prompt_embed.proj.weight.grad,
        "channels": dit.x_embedder.proj.weight.grad[:, -3:],  # the prompt channels
    }
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads.values())
    same = world.training_loss(
        world.encode(video), actions, generator=torch.Generator().manual_seed(0), prompts=prompts
    )
    other = world.training_loss(
        world.encode(video), actions, generator=torch.Generator().manual_seed(0),
        prompts=255 - prompts,
    )  # fmt: skip
    same, other, loss = same.item(), other.item(), loss.item()
    assert same == pytest.approx(loss) and not np.isclose(other, loss)
