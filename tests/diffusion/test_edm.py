"""EDM preconditioning, loss target and Euler sampler, against diffusers' own formulas and
closed-form oracles."""

from __future__ import annotations

import math

import pytest
import torch

from freeaction_gym.diffusion.edm import (
    EDMNetwork,
    edm_loss,
    edm_scalings,
    karras_sigmas,
    network_time,
    training_sigmas,
)
from freeaction_gym.diffusion.sampler import sample_video
from freeaction_gym.diffusion.schedule import initial_noise_scale, make_scheduler


def test_scalings_match_diffusers_and_edm_table():
    sched = make_scheduler("edm", sigma_data=0.5)
    sigma = torch.tensor([0.002, 0.28, 1.0, 5.0], dtype=torch.float64)
    c_in, c_skip, c_out, c_noise = edm_scalings(sigma, 0.5)
    x, f = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    for i in range(4):
        s = float(sigma[i])
        assert float(sched.precondition_inputs(x[i], s)) == pytest.approx(float(c_in[i] * x[i]))
        want = sched.precondition_outputs(x[i], f[i], s)
        assert float(want) == pytest.approx(float(c_skip[i] * x[i] + c_out[i] * f[i]))
        assert float(c_noise[i]) == pytest.approx(math.log(s) / 4)
    # DIAMOND's statement of the same: c_out = sigma * sqrt(c_skip)
    torch.testing.assert_close(c_out, sigma * c_skip.sqrt())


def test_karras_schedule_three_steps():
    sched = make_scheduler("edm", sigma_min=0.002, sigma_max=5.0, rho=7.0)
    sched.set_timesteps(3)
    want = karras_sigmas(3, 0.002, 5.0, 7.0)
    torch.testing.assert_close(sched.sigmas[:3].double(), want, rtol=1e-5, atol=1e-7)
    assert float(want[1]) == pytest.approx(0.283, abs=1e-3)  # 5 -> 0.28 -> 0.002 -> 0
    assert float(sched.sigmas[-1]) == 0.0
    assert initial_noise_scale(sched) == pytest.approx(5.0)  # not sqrt(sigma_max^2 + 1)


def test_network_time_spans_the_dit_range():
    sig = torch.tensor([math.exp(-7.0), 1.0, math.exp(3.0)])
    torch.testing.assert_close(network_time(0.25 * sig.log()), torch.tensor([0.0, 700.0, 1000.0]))


def test_training_sigmas_are_lognormal():
    s = training_sigmas(20000, loc=-0.4, scale=1.2, generator=torch.Generator().manual_seed(0))
    assert s.log().mean().item() == pytest.approx(-0.4, abs=0.03)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.03)


def _oracle(target: torch.Tensor, n: int, sigma_data: float = 0.5):
    """A network returning exactly the EDM regression target for clean frames ``target``."""

    def net(video, t, actions, null_action=None, **kw):
        sigma = torch.exp(t / 100.0 - 7.0).view(-1, 1, 1, 1, 1)
        c_in, c_skip, c_out, _ = edm_scalings(sigma, sigma_data)
        x = video[:, n:] / c_in  # undo the input scaling
        return torch.cat([video[:, :n], (target - c_skip * x) / c_out], dim=1)

    return net


def test_loss_is_zero_for_the_oracle_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    clip = torch.randn(3, 4, 2, 8, 8, generator=g)
    actions = torch.zeros(3, 3, 2)
    oracle = _oracle(clip[:, 1:], 1)
    assert edm_loss(oracle, clip, actions, num_context=1, generator=g).item() < 1e-8
    wrong = _oracle(clip[:, 1:] + 0.1, 1)
    assert edm_loss(wrong, clip, actions, num_context=1, generator=g).item() > 1e-3


def test_euler_sampler_with_oracle_lands_on_the_data():
    """With D(x; sigma) = y exactly, deterministic Euler reaches y at the final sigma 0."""
    g = torch.Generator().manual_seed(1)
    ctx = torch.randn(2, 1, 3, 8, 8, generator=g)
    y = torch.randn(2, 2, 3, 8, 8, generator=g) * 0.5
    noise = torch.randn(y.shape, generator=g)
    net = EDMNetwork(_oracle(y, 1))
    out = sample_video(net, ctx, torch.zeros(2, 2, 4), noise, make_scheduler("edm"), 3)
    torch.testing.assert_close(out, y, atol=1e-5, rtol=1e-5)
