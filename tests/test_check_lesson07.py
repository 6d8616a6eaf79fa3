"""Checks of lesson 07: the reference passes, a stub is "not done", mistakes get their hint.

Each planted mistake is one a learner makes in the accounting of dequantized images or in
actnorm; the check must fail on it with the hint that names that mistake.
"""

from __future__ import annotations

import math

import pytest
import torch
from check_support import assert_hint, not_strict  # noqa: F401 (not_strict: an autouse fixture)

from nfcourse.course.check import CheckFailed, lesson07

# --- Exercise 7.1: preprocessing -----------------------------------------------------------------


def preprocess_with(
    scale=True, margin=True, sign=1, logit_terms=2, summed=True, rescale=True, only_logit=False
):
    def preprocess(v, levels, alpha):
        y = v / levels if rescale else v
        s = alpha + (1 - 2 * alpha) * y if margin else y
        x = torch.log(s) - torch.log(1 - s)
        per_pixel = -torch.log(s) - (torch.log(1 - s) if logit_terms == 2 else 0)
        if not only_logit:
            per_pixel = per_pixel + (math.log(1 - 2 * alpha) if margin else 0)
            per_pixel = per_pixel - (math.log(levels) if scale else 0)
        ladj = per_pixel.sum(-1) if summed else per_pixel
        return x, sign * ladj

    return preprocess


def preprocess_stub(v, levels, alpha):
    raise NotImplementedError("Exercise 7.1: the preprocessing and its log-det")


def test_preprocess_reference_passes_and_stub_is_not_done():
    result = lesson07.preprocess(preprocess_with())
    assert result.status == "passed", result.line
    assert "autograd" in result.message
    assert lesson07.preprocess(preprocess_stub).status == "not done"


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (preprocess_with(scale=False), "add -D log(levels)"),
        (preprocess_with(margin=False), "first into (0, 1) by dividing by levels"),
        (preprocess_with(rescale=False), "first into (0, 1) by dividing by levels"),
        (preprocess_with(sign=-1), "You returned log|dv/dx|"),
        (preprocess_with(logit_terms=1), "1 / (s (1 - s))"),
        (preprocess_with(only_logit=True), "the sum of the three"),
        (preprocess_with(summed=False), ".sum(-1)"),
    ],
)
def test_preprocess_mistakes_get_their_hint(wrong, hint):
    assert_hint(lesson07.preprocess(wrong), hint)


def test_preprocess_missing_margin_term_gets_its_hint():
    def no_margin_term(v, levels, alpha):
        x, ladj = preprocess_with()(v, levels, alpha)
        return x, ladj - v.shape[-1] * math.log(1 - 2 * alpha)

    assert_hint(lesson07.preprocess(no_margin_term), "add D log(1 - 2 alpha)")


# --- Exercise 7.2: bits per dimension ------------------------------------------------------------


def bits_with(scale="D", base=2, per="dim", sign=1, levels_used=None, reduce=True):
    def bits_per_dim(log_p_unit, dim, levels):
        n = levels if levels_used is None else levels_used
        term = {"D": dim * math.log(n), "once": math.log(n), "none": 0.0}[scale]
        nats = -log_p_unit + term
        per_dim = nats / (dim if per == "dim" else 1) / math.log(base)
        return sign * (per_dim.mean() if reduce else per_dim)

    return bits_per_dim


def test_bits_reference_passes_also_as_a_float():
    assert lesson07.bits_per_dim(bits_with()).status == "passed"

    def as_float(log_p_unit, dim, levels):
        return bits_with()(log_p_unit, dim, levels).item()

    assert lesson07.bits_per_dim(as_float).status == "passed"


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (bits_with(scale="none"), "add D ln(levels) to -log p_Y"),
        (bits_with(levels_used=256), "not the 256 of 8-bit images"),
        (bits_with(scale="once"), "the log-det of v -> v / levels is -D ln(levels)"),
        (bits_with(base=math.e), "divide by ln 2"),
        (bits_with(base=10), "not by ln 10"),
        (bits_with(per="image"), "divide by the number of dimensions D"),
        (bits_with(sign=-1), "a negative log-likelihood"),
        (bits_with(reduce=False), "average over the images"),
    ],
)
def test_bits_mistakes_get_their_hint(wrong, hint):
    assert_hint(lesson07.bits_per_dim(wrong), hint)


# --- Exercise 7.3: actnorm -----------------------------------------------------------------------


def per_coordinate(t, shape):
    return t.repeat_interleave(shape[1] * shape[2])


def forward_with(sign=1, pixels=True, direction="right", by_pixel=False):
    def actnorm_forward(z, shift, log_scale, shape):
        if by_pixel:
            b, s = shift.repeat(shape[1] * shape[2]), log_scale.repeat(shape[1] * shape[2])
        else:
            b, s = per_coordinate(shift, shape), per_coordinate(log_scale, shape)
        x = z * s.exp() + b if direction == "right" else (z - b) * (-s).exp()
        count = shape[1] * shape[2] if pixels else 1
        return x, sign * count * log_scale.sum() * torch.ones(z.shape[:-1], dtype=z.dtype)

    return actnorm_forward


def inverse_with(sign=-1, pixels=True, mirror=True, summed_exp=False):
    def actnorm_inverse(x, shift, log_scale, shape):
        b, s = per_coordinate(shift, shape), per_coordinate(log_scale, shape)
        z = (x - b) * (-s).exp() if mirror else x * (-s).exp() - b
        count = shape[1] * shape[2] if pixels else 1
        value = s.exp().sum() if summed_exp else count * log_scale.sum()
        return z, sign * value * torch.ones(x.shape[:-1], dtype=x.dtype)

    return actnorm_inverse


def init_with(log=True, sign=1, per_channel=True, unbiased=True):
    def actnorm_init(x, shape):
        values = x.reshape(len(x), shape[0], -1).transpose(0, 1).reshape(shape[0], -1)
        if not per_channel:
            values = x.reshape(1, -1)
        std = values.std(1, unbiased=unbiased)
        return values.mean(1), sign * (std.log() if log else std)

    return actnorm_init


def test_actnorm_reference_passes_with_either_std_and_stub_is_not_done():
    assert lesson07.actnorm(forward_with(), inverse_with(), init_with()).status == "passed"
    biased = init_with(unbiased=False)
    assert lesson07.actnorm(forward_with(), inverse_with(), biased).status == "passed"

    def stub(*args):
        raise NotImplementedError("Exercise 7.3: actnorm")

    assert lesson07.actnorm(stub, inverse_with(), init_with()).status == "not done"


@pytest.mark.parametrize(
    "parts, hint",
    [
        (
            (forward_with(sign=-1), inverse_with(), init_with()),
            "forward multiplies by exp(log_scale)",
        ),
        (
            (forward_with(), inverse_with(sign=1), init_with()),
            "forward multiplies by exp(log_scale)",
        ),
        ((forward_with(pixels=False), inverse_with(), init_with()), "acts on all H W pixels"),
        ((forward_with(), inverse_with(pixels=False), init_with()), "acts on all H W pixels"),
        ((forward_with(direction="swapped"), inverse_with(), init_with()), "wrong direction"),
        ((forward_with(), inverse_with(mirror=False), init_with()), "the mirror image"),
        ((forward_with(by_pixel=True), inverse_with(), init_with()), "coordinate i belongs"),
        ((forward_with(), inverse_with(summed_exp=True), init_with()), "not the sum of exp"),
        (
            (forward_with(), inverse_with(), init_with(log=False)),
            "the layer multiplies by exp(log_scale)",
        ),
        ((forward_with(), inverse_with(), init_with(sign=-1)), "to give unit variance"),
        (
            (forward_with(), inverse_with(), init_with(per_channel=False)),
            "each channel over the images AND",
        ),
    ],
)
def test_actnorm_mistakes_get_their_hint(parts, hint):
    assert_hint(lesson07.actnorm(*parts), hint)


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    with pytest.raises(CheckFailed):
        lesson07.bits_per_dim(bits_with(scale="none"))
