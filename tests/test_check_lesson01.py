"""The checks of lesson 01: each reference passes, a stub is "not done", and typical
mistakes fail with a hint that names them."""

from __future__ import annotations

import math

import pytest
import torch

from nfcourse import check
from nfcourse.course.check import CheckFailed

LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)


def assert_fails(result, expected):
    assert result.status == "failed", result.line
    assert expected in result.message + " " + result.hint, result.line


# --- Exercise 1.1: log-density of X = exp(Z) ------------------------------------------------


def log_normal_z(z):
    return -0.5 * z**2 - 0.5 * LOG_2PI


def exp_reference(x):
    z = torch.log(x.clamp_min(torch.finfo(x.dtype).tiny))
    return torch.where(x > 0, log_normal_z(z) - z, torch.full_like(x, -torch.inf))


def exp_stub(x):
    raise NotImplementedError("Exercise 1.1: the log-density of X = exp(Z)")


def test_exp_reference_passes():
    result = check.log_density_exp(exp_reference)
    assert result and check.log_density_exp.exercise == "Exercise 1.1"


def test_exp_a_torch_where_with_nan_branch_passes():
    # the plain formula makes NaN at x <= 0, but torch.where picks -inf there
    def with_where(x):
        return torch.where(x > 0, log_normal_z(x.log()) - x.log(), -torch.inf)

    assert check.log_density_exp(with_where)


def test_exp_stub_is_not_done():
    assert check.log_density_exp(exp_stub).status == "not done"


def _inside(fn):
    """A learner formula that is right for x > 0 and gives -inf elsewhere."""
    return lambda x: torch.where(x > 0, fn(x.clamp_min(1e-300)), -torch.inf)


EXP_MISTAKES = {
    "no jacobian": (_inside(lambda x: log_normal_z(x.log())), "Jacobian term is missing"),
    "wrong sign": (_inside(lambda x: log_normal_z(x.log()) + x.log()), "wrong sign"),
    "density": (lambda x: exp_reference(x).exp(), "you returned the density"),
    "density by division": (
        _inside(lambda x: log_normal_z(x.log()).exp() / x), "you returned the density"
    ),
    "exponential distribution": (_inside(lambda x: -x), "*exponential* distribution"),
    "forward map": (_inside(lambda x: log_normal_z(x.exp()) - x), "*inverse* map"),
    "base at x": (_inside(lambda x: log_normal_z(x) - x), "base density at x itself"),
    "no constant": (_inside(lambda x: -0.5 * x.log() ** 2 - x.log()), "normalizing constant"),
    "nan at x <= 0": (lambda x: log_normal_z(x.log()) - x.log(), "NaN"),
    "raises at x <= 0": (
        lambda x: torch.distributions.LogNormal(0.0, 1.0, validate_args=True).log_prob(x),
        "Return -inf there",
    ),
    "zero instead of -inf": (
        lambda x: torch.where(x > 0, exp_reference(x), torch.zeros_like(x)), "must be -inf"
    ),
    "filters x <= 0": (lambda x: exp_reference(x[x > 0]), "do not drop or filter"),
    "sums": (lambda x: exp_reference(x).sum(), "one log-density per entry"),
}


@pytest.mark.parametrize("name", EXP_MISTAKES)
def test_exp_mistakes_fail_with_the_right_hint(name):
    fn, expected = EXP_MISTAKES[name]
    assert_fails(check.log_density_exp(fn), expected)


def test_torch_lognormal_is_the_reference():
    # the check's formula is the log-normal of torch.distributions
    x = torch.linspace(0.05, 9, 50, dtype=torch.float64)
    lognormal = torch.distributions.LogNormal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    assert torch.allclose(exp_reference(x), lognormal.log_prob(x))


# --- Exercise 1.2: log|det| of 2x2 matrices --------------------------------------------------


def det_reference(J):
    a, b, c, d = J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]
    return torch.log(torch.abs(a * d - b * c))


def det_stub(J):
    raise NotImplementedError("Exercise 1.2: log|det J| of 2x2 matrices")


def test_det_reference_passes():
    assert check.log_abs_det_2x2(det_reference)
    assert check.log_abs_det_2x2.exercise == "Exercise 1.2"


def test_det_transposed_and_slogdet_pass():
    assert check.log_abs_det_2x2(lambda J: det_reference(J.mT))  # det J^T = det J
    assert check.log_abs_det_2x2(lambda J: torch.linalg.slogdet(J).logabsdet)


def test_det_stub_is_not_done():
    assert check.log_abs_det_2x2(det_stub).status == "not done"


def _entries(J):
    return J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]


DET_MISTAKES = {
    "no abs": (lambda J: torch.log(torch.linalg.det(J)), "absolute value is missing"),
    "det": (lambda J: torch.linalg.det(J), "you returned det J"),
    "abs det": (lambda J: torch.linalg.det(J).abs(), "take its log"),
    "plus": (lambda J: (lambda a, b, c, d: (a * d + b * c).abs().log())(*_entries(J)), "minus"),
    "trace": (lambda J: (lambda a, b, c, d: (a + d).abs().log())(*_entries(J)), "*trace*"),
    "diagonal": (
        lambda J: (lambda a, b, c, d: (a * d).abs().log())(*_entries(J)), "triangular"
    ),
    "log10": (lambda J: torch.linalg.det(J).abs().log10(), "log10"),
    "first batch dim": (
        lambda J: (J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]).abs().log(), "J[..., 0, 0]"
    ),
    "epsilon": (lambda J: (torch.linalg.det(J).abs() + 1e-12).log(), "epsilon"),
    "one number": (lambda J: det_reference(J).sum(), "one value per matrix"),
}


@pytest.mark.parametrize("name", DET_MISTAKES)
def test_det_mistakes_fail_with_the_right_hint(name):
    fn, expected = DET_MISTAKES[name]
    assert_fails(check.log_abs_det_2x2(fn), expected)


# --- Exercise 1.3: density of a linear map of a standard normal -------------------------------


def linear_reference(x, A, b):
    z = torch.linalg.solve(A, (x - b).T).T
    return -0.5 * z.pow(2).sum(-1) - LOG_2PI - torch.linalg.slogdet(A).logabsdet


def linear_stub(x, A, b):
    raise NotImplementedError("Exercise 1.3: the log-density of X = A Z + b")


def test_linear_reference_passes():
    assert check.linear_log_density(linear_reference)
    assert check.linear_log_density.exercise == "Exercise 1.3"


def test_linear_torch_multivariate_normal_passes():
    def mvn(x, A, b):
        return torch.distributions.MultivariateNormal(b, A @ A.T).log_prob(x)

    assert check.linear_log_density(mvn)


def test_linear_stub_is_not_done():
    assert check.linear_log_density(linear_stub).status == "not done"


def _base(z):
    return -0.5 * z.pow(2).sum(-1) - LOG_2PI


def _lad(A):
    return torch.linalg.det(A).abs().log()


LINEAR_MISTAKES = {
    "no jacobian": (lambda x, A, b: linear_reference(x, A, b) + _lad(A), "Jacobian term"),
    "wrong sign": (lambda x, A, b: linear_reference(x, A, b) + 2 * _lad(A), "wrong sign"),
    "no abs": (
        lambda x, A, b: linear_reference(x, A, b) + _lad(A) - torch.linalg.det(A).log(),
        "absolute",
    ),
    "forward map": (lambda x, A, b: _base((x - b) @ A.T) - _lad(A), "*inverse*"),
    "transposed inverse": (
        lambda x, A, b: _base((x - b) @ torch.linalg.inv(A)) - _lad(A), "transposed"
    ),
    "no shift": (lambda x, A, b: _base(x @ torch.linalg.inv(A).T) - _lad(A), "subtract the shift"),
    "shift after": (
        lambda x, A, b: _base(x @ torch.linalg.inv(A).T - b) - _lad(A), "reverse order"
    ),
    "constant": (
        lambda x, A, b: linear_reference(x, A, b) + 0.5 * LOG_2PI, "-(D/2) log(2 pi)"
    ),
    "density": (lambda x, A, b: linear_reference(x, A, b).exp(), "the log-density"),
    "per coordinate": (
        lambda x, A, b: torch.stack([linear_reference(x, A, b)] * 2, -1), "per coordinate"
    ),
}


@pytest.mark.parametrize("name", LINEAR_MISTAKES)
def test_linear_mistakes_fail_with_the_right_hint(name):
    fn, expected = LINEAR_MISTAKES[name]
    assert_fails(check.linear_log_density(fn), expected)


# --- strict mode -----------------------------------------------------------------------------


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert check.log_density_exp(exp_reference)
    assert check.log_abs_det_2x2(det_reference)
    assert check.linear_log_density(linear_reference)
    with pytest.raises(CheckFailed, match="absolute value"):
        check.log_abs_det_2x2(DET_MISTAKES["no abs"][0])
    with pytest.raises(CheckFailed, match="not done"):
        check.linear_log_density(linear_stub)
    with pytest.raises(CheckFailed, match="wrong sign"):
        check.log_density_exp(EXP_MISTAKES["wrong sign"][0])


def test_checks_are_fast():
    import time

    start = time.perf_counter()
    check.log_density_exp(exp_reference)
    check.log_abs_det_2x2(det_reference)
    check.linear_log_density(linear_reference)
    assert time.perf_counter() - start < 1.0
