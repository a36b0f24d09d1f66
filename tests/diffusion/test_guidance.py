"""Action-scaled CFG (eq. 2): weights, cutoff, fixed scale, negative conditions."""

from __future__ import annotations

import math

import pytest
import torch

from freeaction_gym.diffusion import ActionCFG, action_scaled_cfg, guidance_weight

B, F, C, H, W, A = 3, 5, 4, 6, 6, 4
_PROJ = torch.randn(A, C, generator=torch.Generator().manual_seed(0))


def standin_denoiser(x, t, actions, null_action=None):
    """Deterministic, non-linear in x, t and actions; frame k>=1 sees action k-1."""
    b = x.shape[0]
    a_term = torch.tanh(actions @ _PROJ)  # (B, F-1, C)
    if null_action is not None:
        a_term = a_term * (~null_action.bool()).float().view(b, 1, 1)
    a_term = torch.cat([torch.zeros_like(a_term[:, :1]), a_term], dim=1)[..., None, None]
    return torch.sin(x) * (1 + t.float().view(b, 1, 1, 1, 1) / 1000) + a_term


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, F, C, H, W, generator=g)
    actions = torch.randn(B, F - 1, A, generator=g)
    t = torch.full((B,), 500)
    return x, t, actions


def test_guidance_weight_cutoff_and_lambda() -> None:
    n = torch.tensor([0.5, 1.0, 2.5])
    for i in range(10):
        w = guidance_weight(n, i, 10, lam=2.0, cutoff=0.5)
        expected = 2.0 * n if i < 5 else torch.zeros(3)
        assert torch.equal(w, expected), i
    n_guided = sum(bool((guidance_weight(n, i, 59, 1.0, 0.5) != 0).any()) for i in range(59))
    assert n_guided == math.ceil(0.5 * 59)


def test_action_scaled_cfg_equals_formula(batch) -> None:
    x, t, actions = batch
    eps_pos = standin_denoiser(x, t, actions)
    eps_neg = standin_denoiser(x, t, -actions)
    assert not torch.allclose(eps_pos, eps_neg)
    norms = actions.flatten(1).norm(dim=1)
    lam, steps = 1.5, 10
    for i in range(steps):
        got = action_scaled_cfg(eps_pos, eps_neg, norms, i, steps, lam=lam, cutoff=0.5)
        if i < 5:
            want = torch.stack(
                [eps_pos[j] + lam * norms[j].item() * (eps_pos[j] - eps_neg[j]) for j in range(B)]
            )
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
            # per-sample weights: samples with different ||a|| get different offsets
            d = [(got[j] - eps_pos[j]).norm() / (eps_pos[j] - eps_neg[j]).norm() for j in range(B)]
            torch.testing.assert_close(torch.stack(d), lam * norms, rtol=1e-5, atol=0)
        else:
            assert torch.equal(got, eps_pos)


def test_lambda_zero_is_no_guidance(batch) -> None:
    x, t, actions = batch
    eps_pos, eps_neg = standin_denoiser(x, t, actions), standin_denoiser(x, t, -actions)
    got = action_scaled_cfg(eps_pos, eps_neg, torch.ones(B), 0, 10, lam=0.0)
    assert torch.equal(got, eps_pos)


def test_scalar_action_norm(batch) -> None:
    x, t, actions = batch
    eps_pos, eps_neg = standin_denoiser(x, t, actions), standin_denoiser(x, t, -actions)
    got = action_scaled_cfg(eps_pos, eps_neg, 0.75, 0, 10)
    torch.testing.assert_close(got, eps_pos + 0.75 * (eps_pos - eps_neg))


def test_action_cfg_modes(batch) -> None:
    x, t, actions = batch
    eps_pos, eps_neg = standin_denoiser(x, t, actions), standin_denoiser(x, t, -actions)
    norms = torch.tensor([0.1, 1.0, 3.0])

    w = ActionCFG("action_scaled", lam=2.0).weight(norms, 0, 10)
    assert torch.equal(w, 2.0 * norms)
    assert torch.equal(ActionCFG("action_scaled").weight(norms, 5, 10), torch.zeros(3))

    s = 3.0
    w = ActionCFG("fixed", scale=s).weight(norms, 0, 10)
    assert torch.equal(w, torch.full((3,), s - 1.0))  # independent of ||a||
    guided = eps_pos + w.view(-1, 1, 1, 1, 1) * (eps_pos - eps_neg)
    torch.testing.assert_close(guided, eps_neg + s * (eps_pos - eps_neg), rtol=0, atol=1e-5)
    assert torch.equal(ActionCFG("fixed", scale=1.0).weight(norms, 0, 10), torch.zeros(3))

    assert torch.equal(ActionCFG("none").weight(norms, 0, 10), torch.zeros(3))
    assert torch.equal(ActionCFG(cutoff=1.0).weight(norms, 9, 10), norms)
    assert torch.equal(ActionCFG(cutoff=0.0).weight(norms, 0, 10), torch.zeros(3))


def test_negative_conditions(batch) -> None:
    _, _, actions = batch
    neg, null = ActionCFG(negative="negated").negative_actions(actions)
    assert torch.equal(neg, -actions) and null is None
    neg, null = ActionCFG(negative="null").negative_actions(actions)
    assert torch.equal(neg, actions)
    assert null.dtype == torch.bool and null.shape == (B,) and null.all()


@pytest.mark.parametrize(
    "kwargs", [{"mode": "cfg"}, {"negative": "zero"}, {"cutoff": 1.5}, {"cutoff": -0.1}]
)
def test_invalid_config(kwargs) -> None:
    with pytest.raises(ValueError):
        ActionCFG(**kwargs)
