"""Checks of lesson 06: the reference passes, a stub is "not done", mistakes get their hint.

Each planted mistake is one a learner makes when writing a rational-quadratic spline; the
check must fail on it with the hint that names that mistake (a hint naming another one
would send the learner the wrong way).
"""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from check_support import assert_hint, not_strict  # noqa: F401 (not_strict: an autouse fixture)

from nfcourse.course.check import CheckFailed, lesson06
from nfcourse.layers.spline import MIN_BIN, MIN_DERIVATIVE

# --- Exercise 6.1: one bin, forward --------------------------------------------------------------


def forward_with(xi_norm=True, swap=False, y0_in=True, den_power=2, s_power=2, num_swap=False,
                 output="log", slope="h / w"):
    def spline_bin(x, x0, w, y0, h, d0, d1):
        if swap:
            d0, d1 = d1, d0
        s = h / w if slope == "h / w" else w / h
        xi = (x - x0) / w if xi_norm else x - x0
        t = xi * (1 - xi)
        den = s + (d0 + d1 - 2 * s) * t
        y = (y0 if y0_in else 0) + h * (s * xi**2 + d0 * t) / den
        a, b = (d0, d1) if num_swap else (d1, d0)
        num = a * xi**2 + 2 * s * t + b * (1 - xi) ** 2
        log_d = s_power * torch.log(s) + torch.log(num) - den_power * torch.log(den)
        return y, {"log": log_d, "not log": log_d.exp(), "minus": -log_d,
                   "wrt xi": log_d + torch.log(w)}[output]

    return spline_bin


spline_bin_reference = forward_with()


def spline_bin_stub(x, x0, w, y0, h, d0, d1):
    raise NotImplementedError("Exercise 6.1: the spline in one bin, y and log dy/dx")


def spline_bin_ends_wrong(x, x0, w, y0, h, d0, d1):
    y, log_d = spline_bin_reference(x, x0, w, y0, h, d0, d1)
    return y + 0.1 * (x - x0) / w, log_d  # misses the right knot by 0.1


def spline_bin_inside_wrong(x, x0, w, y0, h, d0, d1):
    y, log_d = spline_bin_reference(x, x0, w, y0, h, d0, d1)
    xi = (x - x0) / w
    return y + 0.3 * xi * (1 - xi), log_d  # right at the knots, wrong in between


def spline_bin_detached(x, x0, w, y0, h, d0, d1):
    y, log_d = spline_bin_reference(x.detach(), x0, w, y0, h, d0, d1)
    return y, log_d


def spline_bin_summed(x, x0, w, y0, h, d0, d1):
    y, log_d = spline_bin_reference(x, x0, w, y0, h, d0, d1)
    return y, log_d.sum(-1)


def test_spline_bin_reference_passes():
    result = lesson06.spline_bin(spline_bin_reference)
    assert result.status == "passed", result.line
    assert "autograd" in result.message and "broadcasts" in result.message
    detached = lesson06.spline_bin(spline_bin_detached)
    assert detached.status == "passed" and "no gradient" in detached.message


def test_spline_bin_stub_is_not_done():
    assert lesson06.spline_bin(spline_bin_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (forward_with(xi_norm=False), "xi = (x - x0) / w"),
        (forward_with(swap=True), "derivative of the wrong side"),
        (forward_with(y0_in=False), "the bin starts at height y0"),
        (forward_with(slope="w / h"), "s = h / w"),
        (forward_with(den_power=1), "the denominator of the derivative is squared"),
        (forward_with(s_power=0), "the factor s^2 in front"),
        (forward_with(s_power=1), "is s^2, not s"),
        (forward_with(num_swap=True), "d1 goes with xi^2 and d0"),
        (forward_with(output="not log"), "not dy/dx"),
        (forward_with(output="minus"), "the sign is flipped"),
        (forward_with(output="wrt xi"), "derivative with respect to xi"),
        (spline_bin_ends_wrong, "the spline goes through its knots"),
        (spline_bin_inside_wrong, "y = y0 + h (s xi^2 + d0 xi (1 - xi))"),
        (spline_bin_summed, "nothing summed"),
        (lambda *args: spline_bin_reference(*args)[0], "return y, log_d"),
    ],
    ids=[
        "xi not normalized", "d0 d1 swapped", "no y0", "s = w / h", "denominator not squared",
        "no s^2", "s not squared", "derivative sides swapped", "not a log", "minus log",
        "log dy/dxi", "misses a knot", "wrong inside", "log summed", "y only",
    ],
)
def test_spline_bin_mistakes_get_their_hint(learner, hint):
    assert_hint(lesson06.spline_bin(learner), hint)


def test_a_crash_in_learner_code_is_a_failed_verdict():
    result = lesson06.spline_bin(lambda x, *rest: torch.cat([x, rest]))
    assert result.status == "failed" and "raised TypeError" in result.message


# --- Exercise 6.2: one bin, inverse --------------------------------------------------------------


def inverse_with(form="stable", sign=-1, clamp=True, swap=False, use_dy=True, output="x"):
    def spline_bin_inverse(y, x0, w, y0, h, d0, d1):
        if swap:
            d0, d1 = d1, d0
        s = h / w
        dy = y - y0 if use_dy else y
        e = d0 + d1 - 2 * s
        a = h * (s - d0) + dy * e
        b = h * d0 - dy * e
        c = -s * dy
        disc = b**2 - 4 * a * c
        if clamp:
            disc = disc.clamp_min(0)
        if form == "stable":
            xi = 2 * c / (-b + sign * torch.sqrt(disc))
        else:  # the textbook form, (-b - sign sqrt) / 2a: the same root for the same sign
            xi = (-b - sign * torch.sqrt(disc)) / (2 * a)
        return xi if output == "xi" else x0 + xi * w

    return spline_bin_inverse


spline_bin_inverse_reference = inverse_with()


def spline_bin_inverse_stub(y, x0, w, y0, h, d0, d1):
    raise NotImplementedError("Exercise 6.2: the inverse in one bin, the root of a quadratic")


def spline_bin_inverse_straight_fallback(y, x0, w, y0, h, d0, d1):
    """The textbook root with a special case for a = 0 exactly: nearly straight bins still lose."""
    s = h / w
    dy = y - y0
    e = d0 + d1 - 2 * s
    a, b, c = h * (s - d0) + dy * e, h * d0 - dy * e, -s * dy
    safe_a = torch.where(a == 0, torch.ones_like(a), a)
    root = (-b + (b**2 - 4 * a * c).clamp_min(0).sqrt()) / (2 * safe_a)
    return x0 + w * torch.where(a == 0, -c / b, root)


def spline_bin_inverse_wrong_root_clamped(y, x0, w, y0, h, d0, d1):
    return x0 + w * ((inverse_with(sign=1)(y, x0, w, y0, h, d0, d1) - x0) / w).clamp(0, 1)


def spline_bin_inverse_linear(y, x0, w, y0, h, d0, d1):
    return x0 + (y - y0) * w / h  # a straight line between the knots


def spline_bin_inverse_both_tricks(y, x0, w, y0, h, d0, d1):
    """Another right answer: the stable root through torch.where on the sign of b."""
    s = h / w
    dy = y - y0
    e = d0 + d1 - 2 * s
    a, b, c = h * (s - d0) + dy * e, h * d0 - dy * e, -s * dy
    root = torch.sqrt(torch.clamp(b * b - 4 * a * c, min=0))
    return x0 + w * (2 * c / (-b - root)).clamp(0, 1)


def test_spline_bin_inverse_reference_passes():
    result = lesson06.spline_bin_inverse(spline_bin_inverse_reference)
    assert result.status == "passed", result.line
    assert "straight bins" in result.message and "no NaN" in result.message
    assert lesson06.spline_bin_inverse(spline_bin_inverse_both_tricks)


def test_spline_bin_inverse_stub_is_not_done():
    assert lesson06.spline_bin_inverse(spline_bin_inverse_stub).status == "not done"


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (inverse_with(sign=1), "wrong root"),
        (inverse_with(form="textbook", sign=1), "wrong root"),
        (spline_bin_inverse_wrong_root_clamped, "wrong root"),
        (inverse_with(form="textbook"), "the textbook root"),
        (inverse_with(form="textbook", clamp=False), "the textbook root"),
        (spline_bin_inverse_straight_fallback, "the textbook root"),
        (inverse_with(clamp=False), "Clamp the discriminant at 0"),
        (inverse_with(swap=True), "derivative of the wrong side"),
        (inverse_with(use_dy=False), "dy = y - y0"),
        (inverse_with(output="xi"), "x = x0 + xi * w"),
        (spline_bin_inverse_linear, "xi = 2c / (-b - sqrt(b^2 - 4ac)); x = x0 + xi * w"),
        (lambda y, *args: spline_bin_inverse_reference(y, *args)[:-1], "nothing summed"),
    ],
    ids=[
        "other root", "other root, textbook", "other root, clamped to the bin", "textbook root",
        "textbook root, no clamp", "textbook with a = 0 special case", "no clamp", "d0 d1 swapped",
        "y not dy", "returns xi", "a straight line", "wrong shape",
    ],
)
def test_spline_bin_inverse_mistakes_get_their_hint(learner, hint):
    assert_hint(lesson06.spline_bin_inverse(learner), hint)


def test_the_textbook_root_is_fine_in_curved_bins_so_only_straight_bins_catch_it():
    """The unstable form agrees with the reference in the random bins: the check needs the
    straight bins to name it (and a learner to see why it matters)."""
    bins = lesson06._random_bins(splines=6, bins=5, seed=5)
    b, xi = lesson06._points(bins, per_bin=6, seed=6)
    y, _ = lesson06.bin_forward(xi, b.y0, b.h, b.s, b.d0, b.d1)
    x = inverse_with(form="textbook")(y, *b.args())
    assert (x - (b.x0 + xi * b.w)).abs().max() < 1e-9


def test_the_float32_edge_case_has_negative_discriminants():
    """The check's float32 bins really make b^2 - 4ac negative (else the clamp goes untested)."""
    bins, y = lesson06._float32_edges()
    a, b, c = lesson06._coefficients(y, bins)
    assert y.dtype == torch.float32
    assert int((b**2 - 4 * a * c < 0).sum()) >= 5


# --- Exercise 6.3: the knots ---------------------------------------------------------------------


def knots_with(sizes="right", scale="[-B, B]", shift=True, min_derivative=True, swap=False,
               ends="one", first_knot=True):
    def spline_knots(raw, bound):
        K = (raw.shape[-1] + 1) // 3
        u_w, u_h, v = raw[..., :K], raw[..., K : 2 * K], raw[..., 2 * K :]
        if swap:
            u_w, u_h = u_h, u_w

        def cumulative(u):
            p = {
                "right": lambda: MIN_BIN + (1 - MIN_BIN * K) * torch.softmax(u, -1),
                "softmax only": lambda: torch.softmax(u, -1),
                "min not rescaled": lambda: MIN_BIN + torch.softmax(u, -1),
                "exp": lambda: torch.exp(u),
                "raw": lambda: u,
                "softmax by hand": lambda: MIN_BIN + (1 - MIN_BIN * K) * torch.exp(u)
                / torch.exp(u).sum(-1, keepdim=True),
            }[sizes]()
            c = torch.cumsum(p, -1)
            if first_knot:
                c = torch.cat([torch.zeros_like(c[..., :1]), c], -1)
            return bound * c if scale == "[0, B]" else bound * (2 * c - 1)

        c = math.log(math.expm1(1 - MIN_DERIVATIVE)) if shift else 0.0
        if not min_derivative:
            c = math.log(math.expm1(1.0)) if shift else 0.0
        d = F.softplus(v + c) + (MIN_DERIVATIVE if min_derivative else 0.0)
        one = torch.ones_like(v[..., :1])
        edge = {"one": one, "zero": 0 * one, "softplus": F.softplus(0 * one)}[ends]
        ds = torch.cat([edge, d, edge], -1)
        return cumulative(u_w), cumulative(u_h), ds

    return spline_knots


spline_knots_reference = knots_with()


def spline_knots_stub(raw, bound):
    raise NotImplementedError("Exercise 6.3: the knots and derivatives from raw numbers")


def test_spline_knots_reference_passes():
    result = lesson06.spline_knots(spline_knots_reference)
    assert result.status == "passed", result.line
    assert lesson06.spline_knots(knots_with(sizes="softmax by hand"))  # a softmax by hand


def test_spline_knots_stub_is_not_done():
    assert lesson06.spline_knots(spline_knots_stub).status == "not done"


def spline_knots_inner_only(raw, bound):
    xs, ys, ds = spline_knots_reference(raw, bound)
    return xs, ys, ds[..., 1:-1]


@pytest.mark.parametrize(
    ("learner", "hint"),
    [
        (knots_with(sizes="softmax only"), "missing minimum bin size"),
        (knots_with(sizes="min not rescaled"), "scale the softmax down by (1 - MIN_BIN * K)"),
        (knots_with(sizes="exp"), "unnormalized widths"),
        (knots_with(sizes="raw"), "unnormalized widths"),
        (knots_with(scale="[0, B]"), "bound * (2 * c - 1)"),
        (knots_with(swap=True), "the K widths first"),
        (knots_with(first_knot=False), "put a 0 in front of the cumulative sums"),
        (knots_with(shift=False), "shift v so that v = 0 gives the derivative 1"),
        (knots_with(min_derivative=False), "missing minimum derivative"),
        (knots_with(ends="zero"), "fix both ends to 1"),
        (knots_with(ends="softplus"), "fix both ends to 1"),
        (spline_knots_inner_only, "plus the two ends, both fixed to 1"),
        (lambda raw, bound: spline_knots_reference(raw, bound)[:2], "return xs, ys, ds"),
    ],
    ids=[
        "no minimum bin size", "minimum not rescaled", "exp, unnormalized", "raw, unnormalized",
        "knots on [0, B]", "widths and heights swapped", "no first knot", "no shift",
        "no minimum derivative", "end derivatives 0", "end derivatives softplus(0)",
        "no end derivatives", "two outputs",
    ],
)
def test_spline_knots_mistakes_get_their_hint(learner, hint):
    assert_hint(lesson06.spline_knots(learner), hint)


# --- all three -----------------------------------------------------------------------------------


def test_strict_mode_raises_unless_passed(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert lesson06.spline_bin(spline_bin_reference)
    assert lesson06.spline_bin_inverse(spline_bin_inverse_reference)
    assert lesson06.spline_knots(spline_knots_reference)
    with pytest.raises(CheckFailed, match="wrong root"):
        lesson06.spline_bin_inverse(inverse_with(sign=1))
    with pytest.raises(CheckFailed, match="not done"):
        lesson06.spline_knots(spline_knots_stub)


def test_checks_are_exported_and_quick():
    from nfcourse import check

    assert check.spline_bin is lesson06.spline_bin
    assert check.spline_bin_inverse is lesson06.spline_bin_inverse
    assert check.spline_knots is lesson06.spline_knots
    for run in (
        lambda: check.spline_bin(spline_bin_reference),
        lambda: check.spline_bin_inverse(spline_bin_inverse_reference),
        lambda: check.spline_knots(spline_knots_reference),
    ):
        start = time.perf_counter()
        assert run()
        assert time.perf_counter() - start < 2.0  # well under a second on an idle laptop
