"""Action-scaled noise truncation: exact truncated normal draws (vs scipy) and eq. 3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from freeaction_gym.diffusion import NoiseTruncation, truncated_initial_noise, truncation_threshold

N_LARGE = 200_000
P_MIN = 1e-3  # seeded draws: deterministic, so this is not flaky


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("tau", [0.3, 0.5, 1.0, 1.5, 3.0])
def test_truncated_noise_matches_scipy_truncnorm(tau: float) -> None:
    z = truncated_initial_noise((N_LARGE,), tau, generator=_gen(int(tau * 10)))
    assert z.shape == (N_LARGE,) and z.dtype == torch.float32
    assert z.abs().max().item() <= tau
    x = z.double().numpy()
    assert stats.kstest(x, stats.truncnorm(-tau, tau).cdf).pvalue > P_MIN
    # sample moments vs the exact truncated-normal variance
    assert abs(x.mean()) < 5 * math.sqrt(stats.truncnorm(-tau, tau).var() / N_LARGE)
    assert x.var() == pytest.approx(stats.truncnorm(-tau, tau).var(), rel=0.02)


def test_ks_check_has_power_against_clipping() -> None:
    """Negative control: clipping N(0,1) at tau (what truncation must not be) is rejected."""
    tau = 1.0
    clipped = torch.randn(N_LARGE, generator=_gen(1)).clamp(-tau, tau).double().numpy()
    assert stats.kstest(clipped, stats.truncnorm(-tau, tau).cdf).pvalue < 1e-10
    wrong_tau = truncated_initial_noise((N_LARGE,), 1.2, generator=_gen(2)).double().numpy()
    assert stats.kstest(wrong_tau, stats.truncnorm(-tau, tau).cdf).pvalue < 1e-10


def test_per_sample_tau_broadcasts_over_batch() -> None:
    taus = torch.tensor([0.3, 1.0, 2.0, float("inf")])
    z = truncated_initial_noise((4, 5, 4, 50, 50), taus, generator=_gen(3))
    assert z.shape == (4, 5, 4, 50, 50)
    for i, tau in enumerate(taus.tolist()):
        row = z[i].flatten().double().numpy()
        assert row.max() <= tau and row.min() >= -tau
        ref = stats.norm if math.isinf(tau) else stats.truncnorm(-tau, tau)
        assert stats.kstest(row, ref.cdf).pvalue > P_MIN, tau
    # sample 0 is really truncated at 0.3, sample 3 really is not
    assert z[0].abs().max() > 0.299
    assert z[3].abs().max() > 3.0


def test_tau_inf_is_standard_normal() -> None:
    z = truncated_initial_noise((N_LARGE,), float("inf"), generator=_gen(4)).double().numpy()
    assert np.isfinite(z).all()
    assert stats.kstest(z, stats.norm.cdf).pvalue > P_MIN
    assert np.abs(z).max() > 3.5  # tails present


def test_seeded_draws_repeat_and_seeds_differ() -> None:
    a = truncated_initial_noise((2, 3, 4, 8, 8), 1.0, generator=_gen(7))
    b = truncated_initial_noise((2, 3, 4, 8, 8), 1.0, generator=_gen(7))
    c = truncated_initial_noise((2, 3, 4, 8, 8), 1.0, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_dtype_argument() -> None:
    z = truncated_initial_noise((10,), 0.5, generator=_gen(0), dtype=torch.float64)
    assert z.dtype == torch.float64


@pytest.mark.parametrize(
    "tau",
    [
        0.0,
        -1.0,
        float("nan"),
        torch.tensor([1.0, 1.0, 1.0]),
        torch.tensor([1.0, 0.0]),
        torch.ones(2, 2),
    ],
)
def test_invalid_tau_raises(tau) -> None:
    with pytest.raises(ValueError):
        truncated_initial_noise((2, 4), tau)


def test_threshold_formula_by_hand() -> None:
    mu, tmin, tmax = 1.3, 0.5, 1.5
    norms = [0.0, 0.7, 1.3, 2.0, 5.0]
    got = truncation_threshold(torch.tensor(norms), mu, tmin, tmax)
    want = [tmin + (tmax - tmin) / (1.0 + math.exp(-(n - mu))) for n in norms]
    assert got.shape == (5,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert got[2].item() == pytest.approx(1.0)  # ||a|| = mu -> midpoint
    # scalar in, 0-d out
    assert truncation_threshold(2.0, mu, tmin, tmax).ndim == 0
    with pytest.raises(ValueError):
        truncation_threshold(1.0, mu, tau_min=2.0, tau_max=1.0)


def test_threshold_monotone_in_action_norm_and_bounded() -> None:
    norms = torch.linspace(0, 10, 101)
    tau = truncation_threshold(norms, mu_act=3.0, tau_min=0.5, tau_max=1.5)
    assert (tau[1:] > tau[:-1]).all()
    assert (tau > 0.5).all() and (tau < 1.5).all()


def test_noise_truncation_modes() -> None:
    norms = torch.tensor([0.2, 1.0, 4.0])
    shape = (3, 4, 4, 16, 16)

    scaled = NoiseTruncation("action_scaled", tau_min=0.5, tau_max=1.5, mu_act=1.0)
    z, tau = scaled.sample(shape, norms, generator=_gen(0))
    torch.testing.assert_close(tau, truncation_threshold(norms, 1.0, 0.5, 1.5))
    assert z.shape == shape
    for i in range(3):
        assert z[i].abs().max() <= tau[i]
        assert z[i].abs().max() > 0.98 * tau[i]  # actually reaches its own bound
    assert tau[0] < tau[1] < tau[2]

    fixed = NoiseTruncation("fixed", fixed_tau=0.7)
    z, tau = fixed.sample(shape, norms, generator=_gen(0))
    assert torch.equal(tau, torch.full((3,), 0.7))
    assert z.abs().max() <= 0.7 + 1e-7

    none = NoiseTruncation("none")
    z, tau = none.sample((3, 20_000), norms, generator=_gen(0))
    assert torch.isinf(tau).all()
    assert stats.kstest(z.flatten().double().numpy(), stats.norm.cdf).pvalue > P_MIN

    with pytest.raises(ValueError):
        NoiseTruncation("clip")  # type: ignore[arg-type]
