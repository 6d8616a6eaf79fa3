"""The variational-inference estimators: ELBO, importance-weighted log evidence, ESS.

Known answers come from Gaussians. The target is ``p~(x) = Z N(x; m, S)`` (so its
log evidence is ``log Z``) and the guide a flow with one :class:`nfcourse.Affine`
layer, ``q = N(mu, diag(sigma^2))``. Then

    ELBO = log Z - KL(q || N(m, S))                     (closed form),
    E_q[w^2] / E_q[w]^2 = integral of p^2 / q           (closed form, per coordinate),

and ``n / ESS`` tends to that ratio as ``n`` grows. Each test was seen failing with a
planted bug (the sign of the ELBO flipped, a naive ``log(mean(exp))``, the ESS from
unnormalized weights, the mean of the log-weights instead of their log-mean-exp).
"""

from __future__ import annotations

import math

import pytest
import torch

import nfcourse as nf
from nfcourse.evaluate import (
    Evidence,
    effective_sample_size,
    elbo,
    log_evidence,
    log_mean_exp,
    reverse_kl,
)
from nfcourse.layers import Affine

LOG_Z = 2.5  # the target's log evidence
M = torch.tensor([0.5, -1.0], dtype=torch.float64)  # its mean
S = torch.tensor([0.8, 1.5], dtype=torch.float64)  # its standard deviations


def target(x):
    """``log p~(x) = log Z + log N(x; M, diag(S^2))``."""
    z = (x - M) / S
    return LOG_Z - 0.5 * (z**2).sum(-1) - S.log().sum() - math.log(2 * math.pi)


def gaussian_guide(mu, sigma):
    layer = Affine(2).double()
    with torch.no_grad():
        layer.shift.copy_(torch.as_tensor(mu, dtype=torch.float64))
        layer.log_scale.copy_(torch.as_tensor(sigma, dtype=torch.float64).log())
    return nf.Flow([layer]).double()


def kl_gauss(mu, sigma):
    """``KL(N(mu, sigma^2) || N(M, S^2))`` summed over the coordinates."""
    mu, sigma = (
        torch.as_tensor(mu, dtype=torch.float64),
        torch.as_tensor(sigma, dtype=torch.float64),
    )
    return (torch.log(S / sigma) + (sigma**2 + (mu - M) ** 2) / (2 * S**2) - 0.5).sum().item()


def second_moment_ratio(mu, sigma):
    """``E_q[w^2] / E_q[w]^2 = integral p^2 / q`` for Gaussians (needs 2/S^2 > 1/sigma^2)."""
    mu, sigma = (
        torch.as_tensor(mu, dtype=torch.float64),
        torch.as_tensor(sigma, dtype=torch.float64),
    )
    a = 2 / S**2 - 1 / sigma**2
    assert (a > 0).all()
    # integral of N(x; M, S^2)^2 / N(x; mu, sigma^2) dx, per coordinate
    log_c = torch.log(sigma / S**2) - 0.5 * torch.log(a)
    b = 2 * M / S**2 - mu / sigma**2
    c = 2 * M**2 / S**2 - mu**2 / sigma**2
    log_each = log_c + 0.5 * (b**2 / a - c)
    return log_each.sum().exp().item()


GUIDES = [((0.5, -1.0), (0.8, 1.5)), ((0.0, -0.5), (1.0, 1.8)), ((1.0, -1.5), (1.2, 2.0))]
# the last two are wider than the target, so their weights are bounded and the ESS converges


@pytest.mark.parametrize("mu, sigma", GUIDES)
def test_elbo_is_log_z_minus_the_kl(mu, sigma):
    flow = gaussian_guide(mu, sigma)
    value, se = elbo(flow, target, n=200_000, seed=0)
    expected = LOG_Z - kl_gauss(mu, sigma)
    assert abs(value - expected) < 4 * se + 1e-12
    assert value <= LOG_Z + 4 * se + 1e-12
    kl, se_kl = reverse_kl(flow, target, n=200_000, log_normalizer=LOG_Z, seed=0)
    assert kl == pytest.approx(LOG_Z - value, abs=1e-9)  # the same samples: KL = log Z - ELBO
    assert se_kl == pytest.approx(se)


def test_a_perfect_guide_gets_the_evidence_exactly_and_every_sample_counts():
    flow = gaussian_guide(M, S)
    ev = log_evidence(flow, target, n=5000, seed=0)
    assert isinstance(ev, Evidence)
    assert ev.log_z == pytest.approx(LOG_Z, abs=1e-9)
    assert ev.elbo == pytest.approx(LOG_Z, abs=1e-9)
    assert ev.ess == pytest.approx(5000, rel=1e-9)
    assert ev.n == 5000 and ev.se < 1e-6


@pytest.mark.parametrize("mu, sigma", GUIDES[1:])
def test_importance_sampling_recovers_the_evidence_and_the_ess(mu, sigma):
    flow = gaussian_guide(mu, sigma)
    n = 200_000
    ev = log_evidence(flow, target, n=n, seed=1)
    assert abs(ev.log_z - LOG_Z) < 4 * ev.se
    assert ev.elbo < ev.log_z  # Jensen: the mean of log w is below the log of the mean
    ratio = second_moment_ratio(mu, sigma)
    assert ev.ess / n == pytest.approx(1 / ratio, rel=0.05)
    assert ev.se == pytest.approx(math.sqrt(1 / ev.ess - 1 / n))


def test_log_mean_exp_does_not_overflow_or_underflow():
    log_w = torch.tensor([1000.0, 1000.0 + math.log(3.0)], dtype=torch.float64)
    assert log_mean_exp(log_w).item() == pytest.approx(1000.0 + math.log(2.0))
    assert log_mean_exp(-log_w).item() == pytest.approx(
        -1000.0 + math.log((1 + 1 / 3) / 2), abs=1e-9
    )
    small = torch.randn(3, 50, dtype=torch.float64)
    naive = small.exp().mean(-1).log()
    assert torch.allclose(log_mean_exp(small), naive)
    assert log_mean_exp(small).shape == (3,)


def test_effective_sample_size_in_the_extreme_cases_and_any_scale():
    assert effective_sample_size(torch.zeros(7)).item() == pytest.approx(7)
    one = torch.tensor([0.0, -800.0, -900.0, -1000.0], dtype=torch.float64)
    assert effective_sample_size(one).item() == pytest.approx(1.0)
    log_w = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)
    assert effective_sample_size(log_w).item() == pytest.approx(16 / 10)  # (1+3)^2 / (1+9)
    for shift in (-1000.0, 0.0, 1000.0):  # the weights' scale does not matter
        assert effective_sample_size(log_w + shift).item() == pytest.approx(1.6)


@pytest.mark.parametrize("fn", [log_mean_exp, effective_sample_size])
def test_bad_log_weights_are_clear_errors(fn):
    with pytest.raises(TypeError, match="log_w"):
        fn([0.0, 1.0])
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(0))


def test_bad_arguments_are_clear_errors():
    flow = gaussian_guide(M, S)
    with pytest.raises(TypeError, match="sample_and_log_prob"):
        elbo(object(), target)
    with pytest.raises(ValueError, match="one log-density per sample"):
        log_evidence(flow, lambda x: x, n=10)
    with pytest.raises(ValueError, match="`n`"):
        elbo(flow, target, n=0)
    with pytest.raises(ValueError, match="log_normalizer"):
        reverse_kl(flow, target, log_normalizer=float("nan"))


def test_the_estimates_leave_the_flows_mode_and_gradients_alone():
    flow = gaussian_guide((0.0, 0.0), (1.0, 1.0))
    flow.train()
    log_evidence(flow, target, n=100, seed=0)
    elbo(flow, target, n=100, seed=0)
    assert flow.training
    assert all(p.grad is None for p in flow.parameters())
