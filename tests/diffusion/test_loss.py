"""Training loss: clean context, no loss on context frames, q_sample, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeaction_gym.diffusion import alphas_cumprod, diffusion_loss, q_sample

B, F, C, H, W, A = 3, 5, 4, 6, 6, 4
ABAR_NP = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))


def model_fn(x, t, actions, null_action=None):
    return torch.tanh(x) * 0.5 + actions.mean() * 0.1 + t.float().view(-1, 1, 1, 1, 1) / 2000


class Perturb:
    """Adds 10 to the model output of one frame and records the inputs."""

    def __init__(self, frame: int | None) -> None:
        self.frame = frame
        self.inputs: list = []
        self.outputs: list = []

    def __call__(self, x, t, actions, null_action=None):
        self.inputs.append((x.clone(), t.clone(), actions, null_action))
        out = model_fn(x, t, actions, null_action)
        if self.frame is not None:
            out = out.clone()
            out[:, self.frame] += 10.0
        self.outputs.append(out)
        return out


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, F, C, H, W, generator=g), torch.randn(B, F - 1, A, generator=g)


def _loss(model, latents, actions, seed=1, **kw):
    return diffusion_loss(
        model, latents, actions, generator=torch.Generator().manual_seed(seed), **kw
    )


@pytest.mark.parametrize("num_context", [1, 2])
def test_context_output_does_not_affect_loss(data, num_context) -> None:
    latents, actions = data
    base = _loss(Perturb(None), latents, actions, num_context=num_context)
    for f in range(num_context):
        assert torch.equal(_loss(Perturb(f), latents, actions, num_context=num_context), base)
    changed = _loss(Perturb(num_context), latents, actions, num_context=num_context)
    assert changed > base + 1.0
    # the same seed draws the same t and noise, a different one does not
    assert torch.equal(_loss(Perturb(None), latents, actions, num_context=num_context), base)
    assert not torch.equal(
        _loss(Perturb(None), latents, actions, seed=2, num_context=num_context), base
    )


@pytest.mark.parametrize("num_context", [1, 2])
def test_inputs_and_value_match_recomputation(data, num_context) -> None:
    """Context enters clean; the rest is sqrt(abar) x0 + sqrt(1-abar) eps with the same draws;
    the loss is the MSE between the model's prediction and that eps on the predicted frames."""
    latents, actions = data
    spy = Perturb(None)
    loss = _loss(spy, latents, actions, num_context=num_context)
    ((x_t, t, acts, null),) = spy.inputs
    assert x_t.shape == latents.shape
    assert torch.equal(x_t[:, :num_context], latents[:, :num_context])
    assert acts is actions and null is None

    g = torch.Generator().manual_seed(1)  # replicate the loss's draws
    t_ref = torch.randint(0, 1000, (B,), generator=g)
    noise = torch.randn(latents[:, num_context:].shape, generator=g)
    assert torch.equal(t, t_ref)
    a = torch.from_numpy(ABAR_NP[t_ref.numpy()]).float().view(-1, 1, 1, 1, 1)
    want_xt = a.sqrt() * latents[:, num_context:] + (1 - a).sqrt() * noise
    torch.testing.assert_close(x_t[:, num_context:], want_xt, rtol=1e-6, atol=1e-6)
    want_loss = ((spy.outputs[0][:, num_context:] - noise) ** 2).mean()
    torch.testing.assert_close(loss, want_loss)


def test_null_action_passed_through(data) -> None:
    latents, actions = data
    spy = Perturb(None)
    null = torch.tensor([True, False, True])
    _loss(spy, latents, actions, null_action=null)
    assert spy.inputs[0][3] is null


def test_q_sample_formula() -> None:
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 2, 3, generator=g)
    noise = torch.randn(4, 2, 3, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    got = q_sample(x0, t, noise, alphas_cumprod())
    for i, ti in enumerate(t.tolist()):
        want = np.sqrt(ABAR_NP[ti]) * x0[i].numpy() + np.sqrt(1 - ABAR_NP[ti]) * noise[i].numpy()
        np.testing.assert_allclose(got[i].numpy(), want, rtol=1e-5, atol=1e-6)
    assert got.dtype == x0.dtype
    # t = 999 is almost pure noise, t = 0 almost clean
    assert (got[3] - noise[3]).abs().max() < 0.01
    assert (got[0] - x0[0]).abs().max() < 0.02


def test_weights(data) -> None:
    latents, actions = data
    base = _loss(Perturb(None), latents, actions)
    ones = torch.ones(B, F - 1, C, H, W)
    torch.testing.assert_close(_loss(Perturb(None), latents, actions, weights=ones), base)
    torch.testing.assert_close(
        _loss(Perturb(None), latents, actions, weights=torch.ones(B, F - 1, 1, H, W)), base
    )
    torch.testing.assert_close(_loss(Perturb(None), latents, actions, weights=3.0 * ones), base)

    # weight only predicted frame 2 (index 1 of the predicted frames): equals its own MSE
    spy = Perturb(None)
    w = torch.zeros(B, F - 1, 1, H, W)
    w[:, 1] = 1.0
    loss = _loss(spy, latents, actions, weights=w)
    g = torch.Generator().manual_seed(1)
    torch.randint(0, 1000, (B,), generator=g)
    noise = torch.randn(B, F - 1, C, H, W, generator=g)
    want = ((spy.outputs[0][:, 2] - noise[:, 1]) ** 2).mean()
    torch.testing.assert_close(loss, want)
    assert not torch.allclose(loss, base)
