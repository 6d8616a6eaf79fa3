"""Tests of the D-dimensional Gaussian mixtures: density, sampler, entropy, bad arguments."""

import math

import pytest
import torch

from nfcourse.data.grid import integrate_2d, neg_p_log_p
from nfcourse.data.mixtures import ENTROPY_SAMPLES, Mixture, mixture


def _moments(mix: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact mean and covariance of the mixture, from its parameters."""
    w, mu, cov = mix.weights, mix.means, mix.covariances
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    return mean, second - mean[:, None] * mean[None, :]


def _importance(mix: Mixture, n: int, seed: int):
    """Points from a proposal q and the weights p/q, with ``log_prob`` as p.

    q is the mixture with every covariance doubled, written with torch.distributions
    (not with the code under test): p/q <= 2^(D/2), so the weights have a finite variance.
    """
    D = torch.distributions
    q = D.MixtureSameFamily(
        D.Categorical(probs=mix.weights),
        D.MultivariateNormal(mix.means, covariance_matrix=2.0 * mix.covariances),
    )
    torch.manual_seed(seed)
    x = q.sample((n,))
    return x, (mix.log_prob(x) - q.log_prob(x)).exp()


def test_fixed_by_its_seed():
    a, b, c = Mixture(4, seed=3), Mixture(4, seed=3), Mixture(4, seed=4)
    for name in ("weights", "means", "covariances"):
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert not torch.allclose(getattr(a, name), getattr(c, name))
    assert a.name == "mixture_4d" and repr(mixture(4, seed=3)) == repr(a)
    assert math.isclose(a.weights.sum().item(), 1.0, rel_tol=1e-12)
    assert (a.weights > 1 / (2 * 8) - 1e-12).all()
    for cov in a.covariances:  # symmetric positive definite, standard deviations in [0.3, 1]
        ev = torch.linalg.eigvalsh(cov)
        assert torch.allclose(cov, cov.T) and ev.min() > 0.3**2 - 1e-9 and ev.max() < 1 + 1e-9


@pytest.mark.parametrize("dim", [1, 3, 16])
def test_log_prob_is_the_mixture_of_gaussians(dim):
    mix = Mixture(dim, components=5, seed=1)
    x = mix.sample(300, seed=0, dtype=torch.float64)
    ref = mix.distribution().log_prob(x)
    assert torch.allclose(mix.log_prob(x), ref, atol=1e-10)
    lp = mix.log_prob(x.float().reshape(3, 100, dim))  # any batch shape, the input's dtype
    assert lp.shape == (3, 100) and lp.dtype == torch.float32
    assert mix.log_prob(torch.zeros(0, dim)).shape == (0,)


def test_log_prob_integrates_to_one_on_the_plane():
    mix = Mixture(2, seed=2)
    mass = integrate_2d(lambda x: mix.log_prob(x).exp(), ((-9.0, 9.0), (-9.0, 9.0)), 0.05)
    assert abs(mass - 1) < 1e-8


@pytest.mark.parametrize("dim", [4, 8])
def test_log_prob_integrates_to_one_by_importance_sampling(dim):
    mix = Mixture(dim, seed=0)
    _, w = _importance(mix, 200_000, seed=0)
    se = w.std().item() / math.sqrt(len(w))
    assert se < 0.02  # precise enough to see a density off by a factor 1.1
    assert abs(w.mean().item() - 1) < 4 * se


@pytest.mark.parametrize("dim", [2, 6])
def test_sampler_matches_log_prob(dim):
    """The sampler's moments, and the moments log_prob gives by importance sampling, are
    the exact ones (so the sampler and the density describe the same mixture)."""
    mix = Mixture(dim, seed=5)
    mean, cov = _moments(mix)
    x = mix.sample(100_000, seed=1, dtype=torch.float64)
    tol = 4 * cov.diagonal().sqrt() / math.sqrt(len(x))
    assert ((x.mean(0) - mean).abs() < tol).all()
    assert torch.allclose(torch.cov(x.T), cov, atol=0.03)
    xq, w = _importance(mix, 100_000, seed=2)
    mean_is = (w[:, None] * xq).sum(0) / w.sum()
    assert ((mean_is - mean).abs() < 10 * tol).all()


def test_sample_interface():
    mix = Mixture(3)
    x = mix.sample(50, seed=7)
    assert x.shape == (50, 3) and x.dtype == torch.float32
    assert mix.sample(0, seed=0).shape == (0, 3)
    state = torch.get_rng_state()
    assert torch.equal(x, mix.sample(50, seed=7))
    assert torch.equal(torch.get_rng_state(), state)  # a seed leaves the global state alone
    assert torch.equal(x, mix.sample(50, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(x, mix.sample(50, seed=8))


def test_entropy_matches_quadrature_on_the_plane():
    """In 2-D the Monte Carlo estimate can be checked against the grid's integral of
    -p log p, which comes from the formula alone: a sampler that does not match the
    formula would move the estimate (H + KL), not the integral."""
    mix = Mixture(2, seed=2)
    exact = integrate_2d(lambda x: neg_p_log_p(mix.log_prob(x)), ((-9.0, 9.0), (-9.0, 9.0)), 0.05)
    h, se = mix.entropy_estimate(200_000)
    assert se < 0.005 and abs(h - exact) < 4 * se


@pytest.mark.parametrize("dim", [4, 16])
def test_entropy_estimate_within_its_bounds_and_precise(dim):
    mix = Mixture(dim, seed=0)
    h, se = mix.entropy_estimate(100_000)
    low, high = mix.entropy_bounds()
    assert low - 4 * se < h < high + 4 * se
    # at the default 10^6 points the standard error is sqrt(10) times smaller: a few
    # thousandths of a nat, far below the gaps the benchmark compares
    assert ENTROPY_SAMPLES == 1_000_000 and se / math.sqrt(10) < 0.004
    assert mix.entropy_estimate(100_000) == (h, se)  # the same draws each time


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: Mixture(0), "`dim` must be a positive integer"),
        (lambda: Mixture(2.5), "`dim` must be a positive integer"),
        (lambda: Mixture(3, components=0), "`components` must be a positive integer"),
        (lambda: Mixture(3, seed=-1), "`seed` must be a non-negative integer"),
        (lambda: Mixture(3, spread=-1.0), "`spread` must be a positive finite number"),
        (lambda: Mixture(3).sample(-1), "`n` must be a non-negative integer"),
        (lambda: Mixture(3).sample(2, seed=1, generator=torch.Generator()), "not both"),
        (lambda: Mixture(3).sample(2, dtype=torch.int64), "floating-point torch.dtype"),
        (lambda: Mixture(3).log_prob(torch.zeros(4, 2)), "shape (..., 3)"),
        (lambda: Mixture(3).log_prob([[0.0, 0.0, 0.0]]), "must be a torch.Tensor"),
        (lambda: Mixture(3).log_prob(torch.full((2, 3), math.nan)), "NaN or infinite"),
        (lambda: Mixture(3).entropy_estimate(1), "`n` must be an integer >= 2"),
    ],
)
def test_bad_arguments_get_clear_errors(call, words):
    with pytest.raises((ValueError, TypeError)) as err:
        call()
    assert words in str(err.value)
