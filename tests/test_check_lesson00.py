"""The check of lesson 00's warm-up exercise: the reference passes, a stub is "not done",
and typical mistakes fail with a hint that names them."""

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


def reference(z):
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


def stub(z):
    raise NotImplementedError("Exercise 0.1: the log-density of N(0, I_D)")


def test_reference_passes():
    result = check.standard_normal_log_prob(reference)
    assert result and result.status == "passed"
    assert check.standard_normal_log_prob.exercise == "Exercise 0.1"


def test_torch_distributions_pass_too():
    def with_torch(z):
        d = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        return d.log_prob(z).sum(-1)

    assert check.standard_normal_log_prob(with_torch)


def test_float32_computation_passes():
    assert check.standard_normal_log_prob(lambda z: reference(z.float()))


def test_stub_is_not_done():
    result = check.standard_normal_log_prob(stub)
    assert result.status == "not done" and "NotImplementedError" in result.message


MISTAKES = {
    "density": (lambda z: reference(z).exp(), "density p(z)"),
    "sign": (lambda z: -reference(z), "sign is flipped"),
    "no constant": (lambda z: -0.5 * z.pow(2).sum(-1), "normalizing constant"),
    "constant once": (lambda z: -0.5 * z.pow(2).sum(-1) - 0.5 * LOG_2PI, "once per coordinate"),
    "no half": (lambda z: -z.pow(2).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI, "left out the 1/2"),
    "per coordinate": (lambda z: -0.5 * z.pow(2) - 0.5 * LOG_2PI, "one value per coordinate"),
    "sum over all": (lambda z: reference(z).sum(), "single number"),
    "mean": (lambda z: (-0.5 * z.pow(2) - 0.5 * LOG_2PI).mean(-1), "mean over the coordinates"),
    "D from dim 1": (
        lambda z: -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[1] * LOG_2PI, "last* dimension"
    ),
    "not squared": (
        lambda z: -0.5 * z.norm(dim=-1) - 0.5 * z.shape[-1] * LOG_2PI, "squared* norm"
    ),
    "math on a tensor": (lambda z: math.exp(z), "your code raised"),
    "a list": (lambda z: reference(z).tolist(), "not a torch.Tensor"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_mistakes_fail_with_the_right_hint(name):
    fn, expected = MISTAKES[name]
    result = check.standard_normal_log_prob(fn)
    assert result.status == "failed"
    assert expected in result.message + " " + result.hint, result.line


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert check.standard_normal_log_prob(reference)
    with pytest.raises(CheckFailed, match="sign is flipped"):
        check.standard_normal_log_prob(lambda z: -reference(z))
    with pytest.raises(CheckFailed, match="not done"):
        check.standard_normal_log_prob(stub)
