"""Checks of lesson 11: the reference passes, a stub is "not done", mistakes get their hint.

Each planted mistake is one a learner makes when putting an error bar on a held-out NLL or
writing the unbiased MMD^2 estimator; the check must fail on it with the hint that names that
mistake (a hint naming another one would send the learner the wrong way).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from check_support import assert_hint, not_strict  # noqa: F401 (not_strict: an autouse fixture)

from nfcourse.course.check import CheckFailed, lesson11

# --- Exercise 11.1: the NLL and its standard error ----------------------------------------------


def nll_with(mistake):
    def nll_standard_error(log_p):
        n = log_p.shape[0]
        per_point = -log_p.sum(-1)
        per_dim = -log_p.mean(-1)
        flat = -log_p.flatten()
        nll, std = per_point.mean(), per_point.std()
        return {
            "right": (nll, std / math.sqrt(n)),
            "ddof 0": (nll.item(), per_point.std(unbiased=False).item() / math.sqrt(n)),
            "numpy": (
                float(np.mean(per_point.numpy())),
                float(np.std(per_point.numpy(), ddof=1) / np.sqrt(n)),
            ),
            "std": (nll, std),
            "variance": (nll, per_point.var() / math.sqrt(n)),
            "variance of the mean": (nll, per_point.var() / n),
            "sign": (-nll, std / math.sqrt(n)),
            "order": (std / math.sqrt(n), nll),
            "mean over dims": (per_dim.mean(), per_dim.std() / math.sqrt(n)),
            "wrong quantity": (nll, flat.std() / math.sqrt(flat.numel())),
            "per point": (per_point, std / math.sqrt(n)),
            "one value": nll,
            "off": (nll, 1.5 * std / math.sqrt(n)),
        }[mistake]

    return nll_standard_error


def test_nll_passes_and_not_done():
    assert lesson11.nll_standard_error(nll_with("right"))
    assert lesson11.nll_standard_error(nll_with("ddof 0"))  # either ddof is accepted
    assert lesson11.nll_standard_error(nll_with("numpy"))

    def stub(log_p):
        raise NotImplementedError("Exercise 11.1: the NLL and its standard error")

    assert lesson11.nll_standard_error(stub).status == "not done"


@pytest.mark.parametrize(
    "mistake, hint",
    [
        ("std", "std instead of std / sqrt(N)"),
        ("variance", "variance instead of standard deviation"),
        ("variance of the mean", "variance instead of standard deviation"),
        ("sign", "the sign of the log-likelihood"),
        ("order", "return (nll, se)"),
        ("mean over dims", "mean over dims instead of sum"),
        ("wrong quantity", "SE of the wrong quantity"),
        ("per point", "reduce over the points"),
        ("one value", "return nll, se"),
        ("off", "SE = std(l) / sqrt(N)"),
    ],
)
def test_nll_mistakes_get_their_hint(mistake, hint):
    assert_hint(lesson11.nll_standard_error(nll_with(mistake)), hint)


# --- Exercise 11.2: the unbiased MMD^2 ----------------------------------------------------------


def mmd_with(mistake):
    def mmd_estimator(x, y, bandwidth):
        m, n = len(x), len(y)
        d2 = {"not squared": lambda a, b: torch.cdist(a, b)}.get(
            mistake, lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)
        )
        denom = {
            "sigma": bandwidth,
            "sigma^2": bandwidth**2,
            "2 sigma": 2 * bandwidth,
        }.get(mistake, 2 * bandwidth**2)
        kxx = torch.exp(-d2(x, x) / denom)
        kyy = torch.exp(-d2(y, y) / denom)
        kxy = torch.exp(-d2(x, y) / denom)
        if mistake == "biased":
            return kxx.mean() + kyy.mean() - 2 * kxy.mean()
        if mistake == "diagonal kept":
            return kxx.sum() / (m * (m - 1)) + kyy.sum() / (n * (n - 1)) - 2 * kxy.mean()
        sxx = kxx.sum() - kxx.diagonal().sum()
        syy = kyy.sum() - kyy.diagonal().sum()
        if mistake == "n^2":
            return sxx / m**2 + syy / n**2 - 2 * kxy.mean()
        cross = 1.0 if mistake == "no 2" else 2.0
        value = sxx / (m * (m - 1)) + syy / (n * (n - 1)) - cross * kxy.mean()
        return {
            "sqrt": value.clamp(min=0).sqrt(),
            "item": value.item(),
            "per pair": kxy,
            "off": value + 0.01,
        }.get(mistake, value)

    return mmd_estimator


def test_mmd_passes_and_not_done():
    assert lesson11.mmd_estimator(mmd_with("right"))
    assert lesson11.mmd_estimator(mmd_with("item"))  # a float is fine

    def stub(x, y, bandwidth):
        raise NotImplementedError("Exercise 11.2: the unbiased MMD^2")

    assert lesson11.mmd_estimator(stub).status == "not done"


@pytest.mark.parametrize(
    "mistake, hint",
    [
        ("biased", "the biased estimator including diagonal terms"),
        ("diagonal kept", "diagonal terms included"),
        ("n^2", "normalizing by n^2 instead of n(n-1)"),
        ("no 2", "a missing factor 2 on the cross term"),
        ("sigma", "sigma vs 2 sigma^2 in the kernel"),
        ("sigma^2", "sigma vs 2 sigma^2 in the kernel"),
        ("2 sigma", "sigma vs 2 sigma^2 in the kernel"),
        ("not squared", "squared distance not squared"),
        ("sqrt", "returning MMD instead of MMD^2"),
        ("per pair", "reduce to one number"),
        ("off", "MMD^2_u = sum_{i!=j}"),
    ],
)
def test_mmd_mistakes_get_their_hint(mistake, hint):
    assert_hint(lesson11.mmd_estimator(mmd_with(mistake)), hint)


# --- all ---------------------------------------------------------------------------------------


def test_strict_mode_raises_and_checks_are_fast(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed):
        lesson11.mmd_estimator(mmd_with("biased"))
    for check, fn in [
        (lesson11.nll_standard_error, nll_with("right")),
        (lesson11.mmd_estimator, mmd_with("right")),
    ]:
        start = time.process_time()  # CPU time: steadier than wall time on a shared machine
        assert check(fn)
        assert time.process_time() - start < 1.0


def test_the_checks_are_registered():
    from nfcourse import check

    for name in ("nll_standard_error", "mmd_estimator"):
        assert getattr(check, name).exercise.startswith("Exercise 11.")
