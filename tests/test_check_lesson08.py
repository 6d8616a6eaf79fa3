"""Checks of lesson 08: the reference passes, a stub is "not done", mistakes get their hint.

Each planted mistake is one a learner makes when estimating an ELBO or an importance-sampling
evidence; the check must fail on it with the hint that names that mistake (a hint naming
another one would send the learner the wrong way).
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from check_support import assert_hint, not_strict  # noqa: F401 (not_strict: an autouse fixture)

from nfcourse.course.check import CheckFailed, lesson08

# --- Exercise 8.1: the ELBO ------------------------------------------------------------------


def elbo_right(flow, log_density, n):
    x, log_q = flow.sample_and_log_prob(n)
    return (log_density(x) - log_q).mean()


def elbo_with(mistake):
    def elbo_estimate(flow, log_density, n):
        if mistake == "detached":
            x = flow.sample(n)
            log_q = flow.log_prob(x)
        elif mistake == "no_grad":
            with torch.no_grad():
                x, log_q = flow.sample_and_log_prob(n)
        else:
            x, log_q = flow.sample_and_log_prob(n)
        lp = log_density(x)
        return {
            "sign": (log_q - lp).mean(),
            "log p only": lp.mean(),
            "plus log q": (lp + log_q).mean(),
            "sum": (lp - log_q).sum(),
            "per sample": lp - log_q,
            "item": (lp - log_q).mean().item(),
            "detached": (lp - log_q).mean(),
            "no_grad": (lp - log_q).mean(),
            "wrong": (lp - 0.5 * log_q).mean(),
        }[mistake]

    return elbo_estimate


def elbo_stub(flow, log_density, n):
    raise NotImplementedError("Exercise 8.1: the ELBO from sample_and_log_prob")


def elbo_own_draws(flow, log_density, n):
    g = torch.Generator().manual_seed(123)
    x, log_q = flow.sample_and_log_prob(n, generator=g)
    return (log_density(x) - log_q).mean()


def test_elbo_passes_and_not_done():
    assert lesson08.elbo_estimate(elbo_right)
    assert lesson08.elbo_estimate(elbo_own_draws)  # other draws, right within MC error
    assert lesson08.elbo_estimate(elbo_stub).status == "not done"


@pytest.mark.parametrize(
    "mistake, hint",
    [
        ("sign", "the sign is flipped"),
        ("log p only", "log p instead of log p - log q"),
        ("plus log q", "minus sign"),
        ("sum", "do not sum"),
        ("per sample", "average over the samples"),
        ("item", "samples detached from the reparameterization"),
        ("no_grad", "samples detached from the reparameterization"),
        ("detached", "samples detached from the reparameterization"),
        ("wrong", "sample_and_log_prob"),
    ],
)
def test_elbo_mistakes_get_their_hint(mistake, hint):
    assert_hint(lesson08.elbo_estimate(elbo_with(mistake)), hint)


def test_the_detached_hint_is_about_the_gradient_not_the_value():
    result = lesson08.elbo_estimate(elbo_with("detached"))
    assert "the value is right" in result.message


# --- Exercise 8.2: log-mean-exp ----------------------------------------------------------------


def lme_with(mistake):
    def log_mean_exp(log_w):
        n = log_w.shape[0]
        return {
            "right": torch.logsumexp(log_w, 0) - math.log(n),
            "by hand": log_w.max() + (log_w - log_w.max()).exp().mean().log(),
            "naive": log_w.exp().mean().log(),
            "mean of logs": log_w.mean(),
            "no log n": torch.logsumexp(log_w, 0),
            "per sample": log_w - math.log(n),
            "off": torch.logsumexp(log_w, 0) - n,
        }[mistake]

    return log_mean_exp


def test_log_mean_exp_passes_and_not_done():
    assert lesson08.log_mean_exp(lme_with("right"))
    assert lesson08.log_mean_exp(lme_with("by hand"))

    def stub(log_w):
        raise NotImplementedError("Exercise 8.2: log-mean-exp")

    assert lesson08.log_mean_exp(stub).status == "not done"


@pytest.mark.parametrize(
    "mistake, hint",
    [
        ("naive", "log of mean of exp computed naively"),
        ("mean of logs", "Jensen"),
        ("no log n", "subtract log(n)"),
        ("per sample", "reduce over the samples"),
        ("off", "m = max_i l_i"),
    ],
)
def test_log_mean_exp_mistakes_get_their_hint(mistake, hint):
    assert_hint(lesson08.log_mean_exp(lme_with(mistake)), hint)


# --- Exercise 8.3: effective sample size -------------------------------------------------------


def ess_with(mistake):
    def effective_sample_size(log_w):
        n = log_w.shape[0]
        wbar = torch.softmax(log_w, 0)
        w = log_w.exp()
        return {
            "right": 1 / wbar.square().sum(),
            "sums": torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)),
            "naive": w.sum() ** 2 / w.square().sum(),
            "unnormalized": 1 / w.square().sum(),
            "inverted": wbar.square().sum(),
            "fraction": 1 / wbar.square().sum() / n,
            "no square": 1 / wbar.sum(),
            "per sample": 1 / wbar.square(),
        }[mistake]

    return effective_sample_size


def test_ess_passes_and_not_done():
    assert lesson08.effective_sample_size(ess_with("right"))
    assert lesson08.effective_sample_size(ess_with("sums"))

    def stub(log_w):
        raise NotImplementedError("Exercise 8.3: the effective sample size")

    assert lesson08.effective_sample_size(stub).status == "not done"


@pytest.mark.parametrize(
    "mistake, hint",
    [
        ("naive", "overflows"),
        ("unnormalized", "ESS formula with unnormalized weights"),
        ("inverted", "that is 1 / ESS"),
        ("fraction", "efficiency"),
        ("no square", "square the normalized weights"),
        ("per sample", "reduce over the samples"),
    ],
)
def test_ess_mistakes_get_their_hint(mistake, hint):
    assert_hint(lesson08.effective_sample_size(ess_with(mistake)), hint)


# --- all ---------------------------------------------------------------------------------------


def test_strict_mode_raises_and_checks_are_fast(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed):
        lesson08.log_mean_exp(lme_with("naive"))
    for check, fn in [
        (lesson08.elbo_estimate, elbo_right),
        (lesson08.log_mean_exp, lme_with("right")),
        (lesson08.effective_sample_size, ess_with("right")),
    ]:
        start = time.process_time()  # CPU time: steadier than wall time on a shared machine
        assert check(fn)
        assert time.process_time() - start < 1.0


def test_the_checks_are_registered():
    from nfcourse import check

    for name in ("elbo_estimate", "log_mean_exp", "effective_sample_size"):
        assert getattr(check, name).exercise.startswith("Exercise 8.")
