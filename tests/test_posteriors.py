"""The 2-D posteriors: the log joint, its evidence and moments by quadrature.

Known answers: with no data the posterior is the prior (evidence 1, mean 0, covariance
s^2 I); with one data point at x = 0 the likelihood is sigmoid(+-a), independent of b, and
the evidence is exactly 1/2 (by symmetry of the prior). The evidence of the lesson's data
is checked against an independent quadrature (Gauss-Legendre panels from
``nfcourse.data.grid``) and against a finer midpoint grid. Each was seen failing with a
planted bug (the prior's normalizer missing the 2 of 2 pi, the label sign flipped, the
cell area forgotten).
"""

from __future__ import annotations

import math

import pytest
import torch

from nfcourse.data.grid import gauss_legendre
from nfcourse.data.posteriors import LogisticRegression, X, Y, logistic_regression


def brute_log_joint(theta, x, y, s):
    """The log joint written out point by point, as a second opinion."""
    out = []
    for a, b in theta.tolist():
        total = -0.5 * (a * a + b * b) / s**2 - math.log(2 * math.pi * s**2)
        for xi, yi in zip(x, y, strict=True):
            p1 = 1 / (1 + math.exp(-(a + b * xi)))
            total += math.log(p1 if yi == 1 else 1 - p1)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_log_joint_is_the_prior_times_the_likelihood():
    post = logistic_regression()
    theta = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    theta = 3 * theta
    assert torch.allclose(post.log_joint(theta), brute_log_joint(theta, X, Y, 5.0))
    assert post.log_joint(theta.reshape(4, 5, 2)).shape == (4, 5)
    assert post.log_joint(theta.float()).dtype == torch.float32


def test_without_informative_data_the_posterior_is_the_prior():
    post = LogisticRegression([0.0], [1], prior_scale=2.0)  # likelihood sigmoid(a)
    # E_prior[sigmoid(a)] = 1/2 by symmetry: Z = 1/2 exactly
    assert post.log_evidence == pytest.approx(math.log(0.5), abs=1e-10)
    mean, cov = post.moments()
    assert mean[1].item() == pytest.approx(0.0, abs=1e-10)  # b is untouched by the data
    assert cov[1, 1].item() == pytest.approx(4.0, abs=1e-9)
    assert cov[0, 1].item() == pytest.approx(0.0, abs=1e-10)
    assert mean[0].item() > 0  # a label 1 at x = 0 pulls the intercept up


def test_the_posterior_density_integrates_to_one():
    post = logistic_regression()
    nodes, weights = gauss_legendre(*post.box[0], width=0.5)
    grid = torch.stack(torch.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    w2 = (weights[:, None] * weights[None, :]).reshape(-1)
    mass = (post.log_prob(grid).exp() * w2).sum().item()
    assert mass == pytest.approx(1.0, abs=1e-10)


def test_the_evidence_converges_on_finer_grids():
    post = logistic_regression()
    log_z = post.log_evidence
    assert post._quadrature(post.step / 2)[0] == pytest.approx(log_z, abs=1e-10)
    coarse = post._quadrature(4 * post.step)[0]
    assert coarse != log_z  # the comparison above is between two real computations


def test_the_lesson_posterior_is_skewed_away_from_a_gaussian():
    post = logistic_regression()
    mean, cov = post.moments()
    assert mean[1] > 3 and cov[0, 1] < 0  # steep slopes, intercept going down with them
    # the probability of the threshold -a/b falling between the classes (x in (0.05, 0.45))
    nodes, weights = gauss_legendre(*post.box[0], width=0.5)
    grid = torch.stack(torch.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    w2 = (weights[:, None] * weights[None, :]).reshape(-1)
    p = post.log_prob(grid).exp() * w2
    # skewness of b: a Gaussian has 0
    b = grid[:, 1]
    skew = (p * (b - mean[1]) ** 3).sum() / cov[1, 1] ** 1.5
    assert skew > 0.3


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="same positive number"):
        LogisticRegression([0.0, 1.0], [1])
    with pytest.raises(ValueError, match="0s and 1s"):
        LogisticRegression([0.0, 1.0], [1, 2])
    with pytest.raises(ValueError, match="prior_scale"):
        LogisticRegression([0.0], [1], prior_scale=0)
    with pytest.raises(ValueError, match="theta"):
        logistic_regression().log_joint(torch.zeros(3))


def test_log_likelihood_is_stable_far_out():
    post = logistic_regression()
    far = torch.tensor([[0.0, 1e4], [0.0, -1e4]], dtype=torch.float64)
    ll = post.log_likelihood(far)
    assert torch.isfinite(ll).all()
    assert ll[0] > ll[1]  # steep positive slopes explain the data, negative ones do not
    # logsigmoid(-t) = -t for large t: the misclassified points cost 1e4 |x| each
    expected = -sum(1e4 * abs(x) for x, y in zip(X, Y, strict=True) if (x > 0) == (y == 1))
    assert ll[1].item() == pytest.approx(expected, rel=1e-9)
