"""Lesson 11's measures: held-out NLL with its standard error, MMD^2 and two two-sample tests.

Known answers come from Gaussians. For ``x ~ N(m1, s1^2 I_D)``, ``y ~ N(m2, s2^2 I_D)``
independent and the kernel ``k(a, b) = exp(-||a - b||^2 / (2 h^2))``, ``u = x - y`` is
``N(m1 - m2, (s1^2 + s2^2) I_D)`` and, coordinate by coordinate,

    E exp(-u^2 / (2 h^2)) = sqrt(h^2 / (h^2 + v)) exp(-mu^2 / (2 (h^2 + v)))   (u ~ N(mu, v)),

so ``E k(x, y) = (h^2 / (h^2 + v))^(D/2) exp(-||m1 - m2||^2 / (2 (h^2 + v)))`` with
``v = s1^2 + s2^2``; ``E k(x, x')`` is the same with ``v = 2 s1^2`` and no mean, and
``MMD^2 = E k(x, x') - 2 E k(x, y) + E k(y, y')``. The unbiased estimator's mean over many
draws must match it within a few standard errors.

Each test was seen failing with a planted bug: the biased V-statistic (diagonal kept, 1/m^2),
the cross term without its factor 2 (both fail the closed form), relabellings that do not
shuffle (p-values all 1: the rejection rate under H0 falls out of its binomial interval), the
classifier's p-value from the wrong tail (large for separated samples), and the NLL's standard
error without the 1/sqrt(N).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nfcourse as nf
from nfcourse.evaluate import (
    HeldOutNLL,
    TwoSampleTest,
    classifier_two_sample_test,
    held_out_nll,
    median_bandwidth,
    mmd2,
    mmd_test,
)
from nfcourse.flow import conditional_realnvp
from nfcourse.layers import Affine

F64 = torch.float64


def expected_kernel(m1, s1, m2, s2, h, dim):
    """``E k(x, y)`` for ``x ~ N(m1, s1^2 I)``, ``y ~ N(m2, s2^2 I)`` independent (float64)."""
    v = s1**2 + s2**2
    dist2 = float(np.sum((np.asarray(m1, float) - np.asarray(m2, float)) ** 2))
    return (h**2 / (h**2 + v)) ** (dim / 2) * math.exp(-dist2 / (2 * (h**2 + v)))


def exact_mmd2(m1, s1, m2, s2, h, dim):
    return (
        expected_kernel(m1, s1, m1, s1, h, dim)
        - 2 * expected_kernel(m1, s1, m2, s2, h, dim)
        + expected_kernel(m2, s2, m2, s2, h, dim)
    )


def gaussian(g, n, mean, std, dim):
    return torch.as_tensor(mean, dtype=F64) + std * torch.randn(n, dim, generator=g, dtype=F64)


# --- MMD^2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "m2, s2, h, dim",
    [([0.8, -0.3], 1.0, 1.0, 2), ([0.0, 0.0, 0.0], 1.6, 0.7, 3), ([1.5], 0.5, 2.0, 1)],
)
def test_unbiased_mmd2_matches_its_closed_form(m2, s2, h, dim):
    g = torch.Generator().manual_seed(dim)
    m1, s1, m, n, reps = [0.0] * dim, 1.0, 20, 25, 400
    values = torch.tensor(
        [
            mmd2(gaussian(g, m, m1, s1, dim), gaussian(g, n, m2, s2, dim), bandwidth=h)
            for _ in range(reps)
        ]
    )
    exact = exact_mmd2(m1, s1, m2, s2, h, dim)
    se = values.std().item() / math.sqrt(reps)
    assert abs(values.mean().item() - exact) < 4 * se, (values.mean().item(), exact, se)


def test_mmd2_is_unbiased_when_both_samples_come_from_one_distribution():
    g = torch.Generator().manual_seed(5)
    values = torch.tensor(
        [mmd2(gaussian(g, 15, [0, 0], 1, 2), gaussian(g, 15, [0, 0], 1, 2)) for _ in range(400)]
    )
    se = values.std().item() / math.sqrt(len(values))
    assert abs(values.mean().item()) < 4 * se
    assert (values < 0).float().mean() > 0.2  # the unbiased estimate is often negative


def test_mmd2_equals_a_direct_double_sum_and_is_symmetric():
    g = torch.Generator().manual_seed(1)
    x, y, h = gaussian(g, 7, [0, 0], 1, 2), gaussian(g, 5, [1, 0], 1, 2), 0.9

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h**2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert mmd2(x, y, h) == pytest.approx(xx + yy - 2 * xy, abs=1e-12)
    assert mmd2(y, x, h) == pytest.approx(mmd2(x, y, h), abs=1e-12)
    assert mmd2(x.numpy(), y.float(), h) == pytest.approx(mmd2(x, y, h), abs=1e-6)


def test_the_median_heuristic():
    g = torch.Generator().manual_seed(2)
    x, y = gaussian(g, 30, [0, 0], 1, 2), gaussian(g, 20, [2, 0], 1, 2)
    z = torch.cat([x, y])
    d = [float((z[i] - z[j]).norm()) for i in range(len(z)) for j in range(i + 1, len(z))]
    assert median_bandwidth(x, y) == pytest.approx(float(np.median(d)), abs=1e-12)
    assert mmd2(x, y) == pytest.approx(mmd2(x, y, median_bandwidth(x, y)), abs=1e-12)
    # scaling the data scales the bandwidth: the statistic does not change
    assert mmd2(3 * x, 3 * y) == pytest.approx(mmd2(x, y), abs=1e-12)


# --- the permutation test -----------------------------------------------------------------------


def test_permutation_p_values_are_calibrated_under_the_null():
    g = torch.Generator().manual_seed(3)
    reps = 300
    p = torch.tensor(
        [
            mmd_test(
                gaussian(g, 15, [0, 0], 1, 2),
                gaussian(g, 12, [0, 0], 1, 2),
                bandwidth=1.0,
                permutations=99,
                seed=i,
            ).p_value
            for i in range(reps)
        ]
    )
    for alpha in (0.05, 0.2):
        rate = (p <= alpha).double().mean().item()
        half = 3.5 * math.sqrt(alpha * (1 - alpha) / reps)  # binomial interval
        assert alpha - half < rate < alpha + half, (alpha, rate)


def test_the_mmd_test_rejects_a_shifted_distribution():
    g = torch.Generator().manual_seed(4)
    x, y = gaussian(g, 60, [0, 0], 1, 2), gaussian(g, 60, [1.5, 0], 1, 2)
    result = mmd_test(x, y, permutations=199, seed=0)
    assert isinstance(result, TwoSampleTest)
    assert result.statistic == pytest.approx(mmd2(x, y), abs=1e-12)
    assert result.p_value == pytest.approx(1 / 200)  # no relabelling comes close
    again = mmd_test(x, y, permutations=199, seed=0)
    assert again == result  # seeded


# --- the classifier test ------------------------------------------------------------------------


def test_the_classifier_is_at_chance_for_equal_distributions():
    g = torch.Generator().manual_seed(6)
    reps, n = 40, 200
    results = [
        classifier_two_sample_test(
            gaussian(g, n, [0, 0], 1, 2), gaussian(g, n, [0, 0], 1, 2), seed=i
        )
        for i in range(reps)
    ]
    acc = torch.tensor([r.statistic for r in results])
    # each accuracy is over n test points (half of the 2n): about N(1/2, 1/(4n)) under H0
    assert abs(acc.mean().item() - 0.5) < 4 * math.sqrt(0.25 / n / reps)
    rejections = sum(r.p_value <= 0.05 for r in results)
    assert rejections <= 6  # at most 0.05 * 40 + 3.5 binomial standard deviations


def test_the_classifier_tells_separated_samples_apart():
    g = torch.Generator().manual_seed(7)
    x, y = gaussian(g, 150, [0, 0], 1, 2), gaussian(g, 150, [5, 0], 1, 2)
    result = classifier_two_sample_test(x, y, seed=0)
    assert result.statistic > 0.97
    assert result.p_value < 1e-30
    assert classifier_two_sample_test(x, y, seed=0) == result  # seeded


# --- held-out NLL -------------------------------------------------------------------------------


def affine_flow():
    layer = Affine(2).double()
    with torch.no_grad():
        layer.shift.copy_(torch.tensor([0.3, -0.2], dtype=F64))
        layer.log_scale.copy_(torch.tensor([0.4, -0.1], dtype=F64))
    return nf.Flow([layer]).double()


def test_held_out_nll_and_its_standard_error():
    flow = affine_flow()
    x = torch.randn(301, 2, generator=torch.Generator().manual_seed(8), dtype=F64) * 2
    values = -flow.log_prob(x).detach().numpy()
    result = held_out_nll(flow, x, batch_size=64)
    assert isinstance(result, HeldOutNLL) and result.n == 301
    assert result.nll == pytest.approx(values.mean(), abs=1e-12)
    assert result.se == pytest.approx(values.std(ddof=1) / math.sqrt(301), abs=1e-12)
    assert result.nll == pytest.approx(nf.nll(flow, x), abs=1e-12)
    flow.train()
    held_out_nll(flow, x)
    assert flow.training  # the mode is restored


def test_held_out_nll_passes_a_context():
    torch.manual_seed(0)
    flow = conditional_realnvp(2, context_dim=1).double()
    x = torch.randn(40, 2, dtype=F64)
    c = torch.randn(40, 1, dtype=F64)
    values = -flow.log_prob(x, context=c).detach()
    result = held_out_nll(flow, x, context=c, batch_size=16)
    assert result.nll == pytest.approx(values.mean().item(), abs=1e-10)
    assert result.se == pytest.approx(values.std().item() / math.sqrt(40), abs=1e-10)
    one = held_out_nll(flow, x, context=c[0])
    assert one.nll == pytest.approx(-flow.log_prob(x, context=c[0]).mean().item(), abs=1e-10)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda x: mmd2(x, x[:, :1]), "same number of coordinates"),
        (lambda x: mmd2(x[:1], x), "at least 2 points"),
        (lambda x: mmd2(x, x, bandwidth=-1.0), "positive finite number"),
        (lambda x: mmd2(x.new_zeros(5, 2), x.new_zeros(5, 2)), "median heuristic"),
        (lambda x: mmd2(x[:, 0], x), "shape (N, D)"),
        (lambda x: mmd2(x.clone().fill_(float("nan")), x), "NaN"),
        (lambda x: mmd_test(x, x, permutations=0), "positive integer"),
        (lambda x: classifier_two_sample_test(x, x[:5]), "same number of points"),
        (lambda x: classifier_two_sample_test(x, x, neighbors=50), "at most"),
        (lambda x: held_out_nll(affine_flow(), x, context=x[:3]), "(N, C)"),
        (lambda x: held_out_nll("a flow", x), "log_prob"),
    ],
)
def test_bad_input_gets_a_clear_error(call, words):
    x = torch.randn(10, 2, dtype=F64)
    with pytest.raises((ValueError, TypeError)) as info:
        call(x)
    assert words in str(info.value)
