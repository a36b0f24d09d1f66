"""The sampling loop: clean context, batched CFG vs a hand-written loop, schedulers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from freeaction_gym.diffusion import (
    ActionCFG,
    alphas_cumprod,
    guided,
    make_scheduler,
    sample_video,
)
from freeaction_gym.models import VideoDiT, dit_config

A, C, HW = 4, 4, 8
_PROJ = torch.randn(A, C, generator=torch.Generator().manual_seed(0))


def standin_denoiser(x, t, actions, null_action=None):
    """Deterministic; mixes frames (roll) so context matters; frame k>=1 sees action k-1."""
    b = x.shape[0]
    a_term = torch.tanh(actions @ _PROJ)  # (B, F-1, C)
    if null_action is not None:
        a_term = a_term * (~null_action.bool()).float().view(b, 1, 1)
    a_term = torch.cat([torch.zeros_like(a_term[:, :1]), a_term], dim=1)[..., None, None]
    mix = 0.1 * torch.tanh(x.roll(1, dims=1))
    return 0.5 * torch.sin(x) * (1 + t.float().view(b, 1, 1, 1, 1) / 1000) + mix + 0.3 * a_term


class Spy:
    """Wraps a denoiser and records every call."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls: list[dict] = []

    def __call__(self, x, t, actions, null_action=None):
        self.calls.append(
            dict(
                x=x.clone(),
                t=t.clone(),
                actions=actions.clone(),
                null=None if null_action is None else null_action.clone(),
            )
        )
        return self.model(x, t, actions, null_action)


def tiny_dit(seed: int = 0, num_frames: int = 5) -> VideoDiT:
    torch.manual_seed(seed)
    model = VideoDiT(
        dit_config("tiny", input_size=(HW, HW), num_frames=num_frames, action_dim=A, depth=2)
    )
    with torch.no_grad():  # leave adaLN-Zero's identity start so actions matter
        for name, p in model.named_parameters():
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.normal_(0.0, 0.05)
    return model.eval()


def run(model, context, actions, noise, scheduler, steps, guidance=None, norms=None, batch=True):
    """sample_video with the model wrapped in action-scaled CFG (as WorldModel.predict does)."""
    return sample_video(
        guided(model, guidance, norms, scheduler, batch), context, actions, noise, scheduler, steps
    )


def make_inputs(b=2, n=1, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(b, n, C, HW, HW, generator=g)
    actions = torch.randn(b, n + k - 1, A, generator=g)
    noise = torch.randn(b, k, C, HW, HW, generator=g)
    return context, actions, noise


@torch.no_grad()
def hand_loop(model, context, actions, noise, scheduler, num_steps, norms, lam, cutoff, negative):
    """Reference: separate positive and negative calls per step."""
    b, n = context.shape[:2]
    scheduler.set_timesteps(num_steps)
    ts = scheduler.timesteps
    x = noise * scheduler.init_noise_sigma
    for i, t in enumerate(ts):
        x_in = scheduler.scale_model_input(x, t)
        video = torch.cat([context, x_in], dim=1)
        tt = torch.full((b,), int(t))
        eps_pos = model(video, tt, actions)[:, n:]
        if i < cutoff * len(ts):
            if negative == "negated":
                eps_neg = model(video, tt, -actions)[:, n:]
            else:
                eps_neg = model(video, tt, actions, torch.ones(b, dtype=torch.bool))[:, n:]
            eps = eps_pos + lam * norms.view(-1, 1, 1, 1, 1) * (eps_pos - eps_neg)
        else:
            eps = eps_pos
        x = scheduler.step(eps, t, x).prev_sample
    return x


@pytest.mark.parametrize("sched", ["ddim", "pndm", "dpmsolver++"])
@pytest.mark.parametrize("negative", ["negated", "null"])
def test_batched_cfg_equals_separate_calls(sched: str, negative: str) -> None:
    model = tiny_dit()
    context, actions, noise = make_inputs()
    norms = torch.tensor([0.4, 1.7])
    guidance = ActionCFG("action_scaled", lam=1.0, cutoff=0.5, negative=negative)
    got = run(model, context, actions, noise, make_scheduler(sched), 6, guidance, norms)
    want = hand_loop(
        model, context, actions, noise, make_scheduler(sched), 6, norms, 1.0, 0.5, negative
    )
    assert got.shape == noise.shape
    # float32: the first step divides by sqrt(abar_999) ~ 0.006, amplifying rounding
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)
    # the naive two-call path (benchmarks) gives the same frames
    split = run(model, context, actions, noise, make_scheduler(sched), 6, guidance, norms, False)
    torch.testing.assert_close(split, got, rtol=1e-3, atol=1e-4)
    # guidance made a difference (so the comparison above is meaningful)
    plain = sample_video(model, context, actions, noise, make_scheduler(sched), 6)
    assert (got - plain).abs().max() > 1e-3


@pytest.mark.parametrize("cutoff", [0.5, 0.25, 1.0])
def test_call_counts_batch_sizes_and_pndm_59_evals(cutoff: float) -> None:
    context, actions, noise = make_inputs(b=3)
    b = 3
    spy = Spy(standin_denoiser)
    norms = torch.tensor([0.5, 1.0, 2.0])
    run(spy, context, actions, noise, make_scheduler("pndm"), 50, ActionCFG(cutoff=cutoff), norms)
    assert len(spy.calls) == 59  # IRASim parity: PNDM (PRK warm-up) 50 steps = 59 evals
    n_guided = math.ceil(cutoff * 59)
    sizes = [c["x"].shape[0] for c in spy.calls]
    assert sizes == [2 * b] * n_guided + [b] * (59 - n_guided)
    for c in spy.calls[:n_guided]:
        assert torch.equal(c["actions"][:b], actions)
        assert torch.equal(c["actions"][b:], -actions)
        assert not c["null"].any()
        assert torch.equal(c["t"][:b], c["t"][b:])
    for c in spy.calls[n_guided:]:
        assert torch.equal(c["actions"], actions)
    spy.calls.clear()  # unbatched guidance: two calls of B per guided step
    run(
        spy, context, actions, noise, make_scheduler("pndm"), 50, ActionCFG(cutoff=cutoff), norms,
        batch=False,
    )  # fmt: skip
    sizes = [c["x"].shape[0] for c in spy.calls]
    assert sizes == [b] * (2 * n_guided + 59 - n_guided)
    assert torch.equal(spy.calls[1]["actions"], -actions)


def test_null_negative_uses_null_mask() -> None:
    context, actions, noise = make_inputs(b=2)
    spy = Spy(standin_denoiser)
    run(
        spy,
        context,
        actions,
        noise,
        make_scheduler("ddim"),
        4,
        ActionCFG(negative="null"),
        torch.ones(2),
    )
    guided = [c for c in spy.calls if c["x"].shape[0] == 4]
    assert len(guided) == 2
    for c in guided:
        assert torch.equal(c["null"], torch.tensor([False, False, True, True]))
        assert torch.equal(c["actions"], torch.cat([actions, actions]))


def test_no_guidance_calls_once_per_step_with_b() -> None:
    context, actions, noise = make_inputs(b=2)
    for guidance in (None, ActionCFG("none")):
        spy = Spy(standin_denoiser)
        run(spy, context, actions, noise, make_scheduler("ddim"), 10, guidance, torch.ones(2))
        assert [c["x"].shape[0] for c in spy.calls] == [2] * 10


@pytest.mark.parametrize("guided", [False, True])
def test_context_is_clean_in_every_call(guided: bool) -> None:
    n, k = 2, 3
    context, actions, noise = make_inputs(b=2, n=n, k=k)
    spy = Spy(standin_denoiser)
    scheduler = make_scheduler("ddim")
    out = run(
        spy, context, actions, noise, scheduler, 5, ActionCFG() if guided else None, torch.ones(2)
    )
    assert out.shape == (2, k, C, HW, HW)
    assert len(spy.calls) == 5
    for c, t in zip(spy.calls, scheduler.timesteps, strict=True):
        reps = c["x"].shape[0] // 2
        assert c["x"].shape[1] == n + k
        assert torch.equal(c["x"][:, :n], context.repeat(reps, 1, 1, 1, 1))
        assert (c["t"] == t).all()
    # the predicted frames do change from call to call
    assert not torch.equal(spy.calls[0]["x"][:, n:], spy.calls[-1]["x"][:, n:])


def test_ddim_deterministic_given_noise_and_real_dit_shape() -> None:
    model = tiny_dit()
    context, actions, noise = make_inputs()
    a = sample_video(model, context, actions, noise, make_scheduler("ddim"), 4)
    b = sample_video(model, context, actions, noise, make_scheduler("ddim"), 4)
    c = sample_video(model, context, actions, noise + 0.1, make_scheduler("ddim"), 4)
    assert a.shape == (2, 4, C, HW, HW)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_ddim_with_oracle_denoiser_matches_closed_form() -> None:
    """With eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar), DDIM (eta 0) keeps eps constant:
    the last step goes to abar = 1 (set_alpha_to_one True), so the output is x0 itself."""
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    context, actions, noise = make_inputs(b=2, n=1, k=3)
    x0 = torch.randn(noise.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def oracle(x, t, actions, null_action=None):
        a = torch.from_numpy(abar[t.numpy()]).view(-1, 1, 1, 1, 1)
        eps = (x[:, 1:].double() - a.sqrt() * x0) / (1 - a).sqrt()
        return torch.cat([torch.zeros_like(x[:, :1]), eps.float()], dim=1)

    out = sample_video(oracle, context, actions, noise, make_scheduler("ddim"), 10).double()
    eps_t = (noise.double() - math.sqrt(abar[999]) * x0) / math.sqrt(1 - abar[999])
    want = 1.0 * x0 + 0.0 * eps_t
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)


def test_ddpm_reproducible_given_generator() -> None:
    context, actions, noise = make_inputs()

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return sample_video(
            standin_denoiser, context, actions, noise, make_scheduler("ddpm"), 8, generator=g
        )

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_alphas_cumprod_matches_numpy() -> None:
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    want = np.cumprod(1.0 - betas)
    got = alphas_cumprod()
    assert got.dtype == torch.float64 and got.shape == (1000,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    for name in ("pndm", "ddim", "ddpm", "dpmsolver++"):
        np.testing.assert_allclose(make_scheduler(name).alphas_cumprod.numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError):
        make_scheduler("euler")  # type: ignore[arg-type]


def test_input_validation() -> None:
    context, actions, noise = make_inputs(b=2, n=1, k=4)
    with pytest.raises(ValueError):
        sample_video(standin_denoiser, context, actions[:, :-1], noise, make_scheduler("ddim"), 2)
    with pytest.raises(ValueError, match="guidance needs the per-sample action_norm"):
        guided(standin_denoiser, ActionCFG(), None, make_scheduler("ddim"))


def test_sampler_runs_with_nn_module_in_train_mode_untouched() -> None:
    """The sampler must not need gradients (inference mode) and returns a plain tensor."""
    model = tiny_dit()
    context, actions, noise = make_inputs()
    out = sample_video(model, context, actions, noise, make_scheduler("ddim"), 2)
    assert not out.requires_grad
    assert isinstance(model, nn.Module) and torch.isfinite(out).all()
