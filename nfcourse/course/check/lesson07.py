"""Checks of lesson 07 (image flows): the preprocessing of dequantized pixels with its log-det,
bits per dimension from a density on the unit cube, and actnorm (both directions and its
data-dependent initialization).

Each check runs the learner's code in float64 on inputs it builds, compares with the
reference (:func:`nfcourse.layers.image.dequantized_to_logit`,
:func:`nfcourse.data.digits.bits_per_dim_unit`, :class:`nfcourse.layers.image.ActNorm`) and
with the autograd Jacobian, then compares a wrong answer with the typical mistakes to name
the likely one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ... import testing
from ...layers.image import ActNorm
from ._core import Mistake, exercise
from ._tools import as_tensor, close, pair

__all__ = ["preprocess", "bits_per_dim", "actnorm"]

F64 = torch.float64
TOL = 1e-8


# --- Exercise 7.1: from dequantized pixels to the logit space --------------------------------


def _preprocess_variants(v: Tensor, levels: int, alpha: float, mistake: str = ""):
    """The reference ``(x, ladj)`` of the normalizing map, or one typical mistake of it."""
    y = v / levels if mistake != "no rescaling" else v
    s = alpha + (1 - 2 * alpha) * y if mistake != "no margin" else y
    x = s.log() - (1 - s).log()
    per_pixel = -(s.log() + (1 - s).log())
    if mistake == "logit derivative 1/s":
        per_pixel = -s.log()
    scale = {
        "no scaling term": math.log(1 - 2 * alpha),
        "no margin term": -math.log(levels),
        "no rescaling": math.log(1 - 2 * alpha),
        "no margin": -math.log(levels),
    }.get(mistake, math.log((1 - 2 * alpha) / levels))
    ladj = (per_pixel + scale).sum(-1)
    if mistake == "sign":
        ladj = -ladj
    if mistake == "only the logit":
        ladj = per_pixel.sum(-1)
    return x, ladj


_LADJ_MISTAKES = [
    (
        "no scaling term",
        "your log-det misses the rescaling v -> v / levels: D log(1 / levels)",
        "every pixel is divided by levels = 17, and that map has log-derivative -log(levels) per "
        "pixel: add -D log(levels) to the log-det. Without it every density is off by a factor "
        "levels^D (log2(17) = 4.09 bits per dimension).",
    ),
    (
        "no margin term",
        "your log-det misses the margin's factor (1 - 2 alpha)",
        "s = alpha + (1 - 2 alpha) y multiplies by (1 - 2 alpha): add D log(1 - 2 alpha).",
    ),
    (
        "only the logit",
        "your log-det holds only the logit's part",
        "the map is a chain, v -> y = v / levels -> s = alpha + (1 - 2 alpha) y -> logit(s): "
        "its log-det is the sum of the three, D log((1 - 2 alpha) / levels) - sum(log s + "
        "log(1 - s)).",
    ),
    (
        "sign",
        "your log-det has the wrong sign",
        "this is the normalizing direction, v -> x: ladj = log|dx/dv| = D log((1 - 2 alpha) / "
        "levels) - sum(log s + log(1 - s)). You returned log|dv/dx|, that of the generative "
        "direction.",
    ),
    (
        "logit derivative 1/s",
        "your log-det uses 1 / s as the logit's derivative",
        "d logit(s) / ds = 1 / s + 1 / (1 - s) = 1 / (s (1 - s)): its log is -log s - log(1 - s).",
    ),
]


@exercise("Exercise 7.1")
def preprocess(fn: Callable[..., tuple[Tensor, Tensor]]) -> str:
    """Check ``preprocess(v, levels, alpha) -> (x, ladj)`` against the reference layers."""
    g = torch.Generator().manual_seed(0)
    levels, alpha = 17, 0.05
    v = torch.randint(levels, (12, 64), generator=g).to(F64) + torch.rand(
        12, 64, generator=g, dtype=F64
    )
    v = v.requires_grad_()
    x, ladj = pair(fn(v, levels, alpha), "preprocess", "x")
    # the formula in float64 (the package's layers, dequantized_to_logit, keep float32 constants)
    ref_x, ref_ladj = _preprocess_variants(v.detach(), levels, alpha)
    if x.shape != v.shape:
        raise Mistake(
            f"x has shape {tuple(x.shape)}; expected {tuple(v.shape)}, one value per pixel.",
            "the map acts on each pixel by itself.",
        )
    if not torch.isfinite(x).all():
        raise Mistake(
            f"x has {int((~torch.isfinite(x)).sum())} NaN or infinite values: the logit was "
            "taken of numbers outside (0, 1).",
            "x = logit(s) with s = alpha + (1 - 2 alpha) v / levels: first into (0, 1) by "
            "dividing by levels, then away from 0 and 1 by the margin.",
        )
    if not close(x, ref_x, TOL):
        for mistake, what in [
            ("no rescaling", "v, not v / levels"),
            ("no margin", "y = v / levels without the margin"),
        ]:
            if close(x, _preprocess_variants(v.detach(), levels, alpha, mistake)[0], TOL):
                raise Mistake(
                    f"x is the logit of {what}.",
                    "x = logit(s) with s = alpha + (1 - 2 alpha) v / levels: first "
                    "into (0, 1) by dividing by levels, then away from 0 and 1 by the "
                    "margin.",
                )
        raise Mistake(
            "x differs from logit(alpha + (1 - 2 alpha) v / levels).",
            "logit(s) = log(s) - log(1 - s) with s = alpha + (1 - 2 alpha) v / levels.",
        )
    if ladj.shape != v.shape[:-1]:
        raise Mistake(
            f"ladj has shape {tuple(ladj.shape)}; expected {tuple(v.shape[:-1])}, one value per "
            "image.",
            "the log-det of the whole map is the sum of the pixels' log-derivatives: "
            "sum over the last dimension, .sum(-1).",
        )
    if not close(ladj, ref_ladj, TOL):
        for mistake, what, hint in _LADJ_MISTAKES:
            if close(ladj, _preprocess_variants(v.detach(), levels, alpha, mistake)[1], TOL):
                raise Mistake(f"{what}.", hint)
        raise Mistake(
            "ladj differs from log|det dx/dv|.",
            "ladj = D log((1 - 2 alpha) / levels) - sum(log s + log(1 - s)).",
        )
    oracle = ""
    if x.requires_grad:
        error = testing.ladj_error(_Map(lambda t: fn(t, levels, alpha)), v.detach()[:3], "forward")
        if not error < 1e-8:  # pragma: no cover - x and ladj already match the reference
            raise Mistake(
                f"ladj differs from autograd's log|det| by {error:.2e}.",
                "compute x with differentiable torch operations.",
            )
        oracle = "; ladj equals log|det| of autograd's Jacobian of your x"
    return (
        f"x and ladj equal the reference on {len(v)} dequantized images of 64 pixels "
        f"(levels = {levels}, alpha = {alpha}){oracle}."
    )


class _Map:
    """A function ``t -> (out, ladj)`` seen as a layer's forward, for the oracle."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, t: Tensor):
        return self.fn(t)


# --- Exercise 7.2: bits per dimension ------------------------------------------------------------


def _bits(log_p: Tensor, dim: int, levels: int, mistake: str = "") -> Tensor:
    nats = -log_p + (0 if mistake == "no scaling term" else dim * math.log(levels))
    if mistake == "log(levels) once":
        nats = -log_p + math.log(levels)
    if mistake == "8-bit levels":
        nats = -log_p + dim * math.log(256)
    per_dim = nats / (1 if mistake == "per image" else dim)
    per_dim = per_dim / (1 if mistake == "nats" else math.log(2))
    if mistake == "log10":
        per_dim = per_dim * math.log(2) / math.log(10)
    return -per_dim.mean() if mistake == "sign" else per_dim.mean()


_BITS_MISTAKES = [
    (
        "no scaling term",
        "your number leaves out the rescaling term",
        "the density is that of y = v / levels in the unit cube; the discrete bound needs the "
        "density of v, p_V(v) = p_Y(v / levels) / levels^D: add D ln(levels) to -log p_Y before "
        "dividing (log2(17) = 4.09 bits per dimension here).",
    ),
    (
        "8-bit levels",
        "your rescaling term uses 256 grey levels",
        "these pixels have `levels` = 17 grey levels (0 to 16), not the 256 of 8-bit images: add "
        "D ln(levels).",
    ),
    (
        "log(levels) once",
        "your rescaling term is ln(levels) once, not D ln(levels)",
        "every one of the D pixels is rescaled: the log-det of v -> v / levels is -D ln(levels).",
    ),
    (
        "nats",
        "your number is in nats per dimension, not bits",
        "divide by ln 2: bits = nats / ln(2) (torch.log2 or math.log(2)).",
    ),
    (
        "log10",
        "your number is in base-10 units",
        "bits are base 2: divide nats by ln 2, not by ln 10.",
    ),
    (
        "per image",
        "your number is bits per image, not per dimension",
        "divide by the number of dimensions D (pixels per image) as well: bits/dim = (-log p_Y + "
        "D ln levels) / (D ln 2), averaged over the images.",
    ),
    (
        "sign",
        "your number has the wrong sign",
        "bits/dim is a negative log-likelihood: -log p, which is positive for these data.",
    ),
]


@exercise("Exercise 7.2")
def bits_per_dim(fn: Callable[..., object]) -> str:
    """Check ``bits_per_dim(log_p_unit, dim, levels) -> mean bits/dim`` against the reference."""
    g = torch.Generator().manual_seed(1)
    for dim, levels in [(64, 17), (12, 5)]:
        log_p = 40.0 + 5.0 * torch.randn(50, generator=g, dtype=F64)
        out = fn(log_p.clone(), dim, levels)
        if isinstance(out, (int, float)):
            out = torch.tensor(float(out), dtype=F64)
        out = as_tensor(out, "bits_per_dim", "return a number or a tensor with one value.")
        if out.numel() != 1:
            raise Mistake(
                f"bits_per_dim returned {out.numel()} values for {len(log_p)} images; expected "
                "one number, their mean.",
                "average over the images at the end: .mean().",
            )
        out = out.reshape(())
        ref = _bits(log_p, dim, levels)
        if not close(out, ref, TOL):
            for mistake, what, hint in _BITS_MISTAKES:
                if close(out, _bits(log_p, dim, levels, mistake), TOL):
                    raise Mistake(
                        f"{what}: {out.item():.4f} instead of {ref.item():.4f} "
                        f"(D = {dim}, levels = {levels}).",
                        hint,
                    )
            raise Mistake(
                f"bits_per_dim gives {out.item():.4f} instead of {ref.item():.4f} (D = {dim}, "
                f"levels = {levels}).",
                "bits/dim = mean over images of (-log p_Y(y) + D ln(levels)) / (D ln 2).",
            )
    return (
        "bits per dimension equal the reference for D = 64 with 17 levels and D = 12 with 5 "
        "levels: nats to bits, per dimension, with the rescaling term."
    )


# --- Exercise 7.3: actnorm ---------------------------------------------------------------------


def _reference(shape, shift: Tensor, log_scale: Tensor) -> ActNorm:
    layer = ActNorm(shape).double()
    with torch.no_grad():
        layer.shift.copy_(shift)
        layer.log_scale.copy_(log_scale)
        layer.initialized.fill_(1)
    return layer


def _per_coordinate(t: Tensor, shape) -> Tensor:
    return t.repeat_interleave(shape[1] * shape[2])


def _actnorm_variants(t: Tensor, shift: Tensor, log_scale: Tensor, shape, direction: str):
    """Typical wrong ``(out, ladj)`` of one direction, with what they are and a hint."""
    pixels = shape[1] * shape[2]
    b, s = _per_coordinate(shift, shape), _per_coordinate(log_scale, shape)
    b_pix, s_pix = shift.repeat(pixels), log_scale.repeat(pixels)  # per pixel, not channel
    forward = direction == "forward"
    ladj = (1 if forward else -1) * pixels * log_scale.sum() * t.new_ones(t.shape[:-1])
    outs = [
        (
            (t - b) * (-s).exp() if forward else t * s.exp() + b,
            f"your {direction} applies the other direction's map",
            "wrong direction: forward is the generative map z -> x = z exp(log_scale) + shift; "
            "inverse undoes it, z = (x - shift) exp(-log_scale).",
        ),
        (
            t * s_pix.exp() + b_pix if forward else (t - b_pix) * (-s_pix).exp(),
            f"your {direction} gives the parameters to pixels, not to channels",
            "the points are flattened images, channel after channel: coordinate i belongs to "
            "channel i // (H W). Repeat each channel's value H W times (repeat_interleave(H * W)), "
            "or reshape to (N, C, H, W) and use log_scale[:, None, None].",
        ),
    ]
    if not forward:
        outs.append(
            (
                t * (-s).exp() - b,
                "your inverse divides by the scale before removing the shift",
                "the inverse is the mirror image of the forward map: forward scales, then "
                "shifts, so the inverse removes the shift first, then divides: "
                "z = (x - shift) * exp(-log_scale).",
            )
        )
    ladjs = [
        (
            -ladj,
            "the sign of your log-det is flipped",
            f"in the {direction} direction ladj = {'+' if forward else '-'}H W sum(log_scale): "
            "forward multiplies by exp(log_scale), inverse divides by it.",
        ),
        (
            ladj / pixels,
            "your log-det misses the factor H W",
            "each channel's scale acts on all H W pixels of that channel, and the log-det sums "
            "over every coordinate: ladj = H W sum(log_scale) (with a minus sign for inverse).",
        ),
        (
            (1 if forward else -1) * s.exp().sum() * t.new_ones(t.shape[:-1]),
            "your log-det sums the scales, not their logs",
            "ladj is the log of the determinant: the sum of the logs of the diagonal, "
            "H W sum(log_scale), not the sum of exp(log_scale).",
        ),
    ]
    return {"out": outs, "ladj": ladjs}


def _check_direction(fn, t, shift, log_scale, shape, direction: str) -> None:
    name = f"actnorm_{direction}"
    out, ladj = pair(
        fn(t, shift.clone(), log_scale.clone(), shape), name, "x" if direction == "forward" else "z"
    )
    ref = _reference(shape, shift, log_scale)
    ref_out, ref_ladj = ref(t) if direction == "forward" else ref.inverse(t)
    variants = _actnorm_variants(t, shift, log_scale, shape, direction)
    if out.shape != t.shape:
        raise Mistake(
            f"{name} returned an output of shape {tuple(out.shape)}; expected {tuple(t.shape)}.",
            "return flattened points, as they came in.",
        )
    if not close(out, ref_out, TOL):
        for value, what, hint in variants["out"]:
            if close(out, value, TOL):
                raise Mistake(f"{what}.", hint)
        raise Mistake(
            f"the output of {name} differs from the reference.",
            "forward: x = z exp(log_scale[c]) + shift[c]; inverse: z = (x - shift[c]) "
            "exp(-log_scale[c]), c the channel of each coordinate.",
        )
    if ladj.shape != t.shape[:-1]:
        raise Mistake(
            f"{name}'s ladj has shape {tuple(ladj.shape)}; expected "
            f"{tuple(t.shape[:-1])}, one value per image.",
            "the same number for every image: expand it, e.g. value.expand(len(z)).",
        )
    if not close(ladj, ref_ladj, TOL):
        for value, what, hint in variants["ladj"]:
            if close(ladj, value, TOL):
                raise Mistake(f"{what}.", hint)
        raise Mistake(
            f"the ladj of {name} differs from log|det| of its Jacobian.",
            "ladj = +-H W sum(log_scale): + forward, - inverse.",
        )


@exercise("Exercise 7.3")
def actnorm(forward: Callable, inverse: Callable, initialize: Callable) -> str:
    """Check ``actnorm_forward``, ``actnorm_inverse`` and ``actnorm_init`` against ActNorm."""
    g = torch.Generator().manual_seed(2)
    shape = (3, 2, 4)
    shift = torch.randn(3, generator=g, dtype=F64)
    log_scale = 0.7 * torch.randn(3, generator=g, dtype=F64)
    z = torch.randn(10, 24, generator=g, dtype=F64)
    _check_direction(forward, z, shift, log_scale, shape, "forward")
    x = _reference(shape, shift, log_scale)(z)[0]
    _check_direction(inverse, x, shift, log_scale, shape, "inverse")
    # the data-dependent initialization
    scales = torch.tensor([0.3, 2.0, 5.0], dtype=F64)
    data = (
        torch.randn(40, 3, 2, 4, generator=g, dtype=F64) * scales[:, None, None]
        + torch.tensor([1.0, -2.0, 4.0], dtype=F64)[:, None, None]
    ).reshape(40, 24)
    out = initialize(data, shape)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise Mistake(
            "actnorm_init must return a pair (shift, log_scale).",
            "end with `return shift, log_scale`, one value per channel each.",
        )
    init_shift = as_tensor(out[0], "actnorm_init", "return tensors.")
    init_log = as_tensor(out[1], "actnorm_init", "return tensors.")
    ref = ActNorm(shape).double()
    ref.initialize(data)
    if init_shift.shape != (3,) or init_log.shape != (3,):
        raise Mistake(
            f"actnorm_init returned shapes {tuple(init_shift.shape)} and "
            f"{tuple(init_log.shape)}; expected (3,) and (3,), one value per channel.",
            "take the mean and standard deviation of each channel over the images "
            "AND the pixels: reshape to (N, C, H W) and reduce over dimensions 0 and 2.",
        )
    if not close(init_shift, ref.shift, 1e-6):
        raise Mistake(
            "the shift of actnorm_init is not each channel's mean.",
            "shift[c] = the mean of channel c over all images and pixels.",
        )
    # either standard deviation (N or N - 1 in the denominator) is right
    if not close(init_log, ref.log_scale, 5e-3):
        std = ref.log_scale.exp()
        if close(init_log, std, 5e-3):
            raise Mistake(
                "actnorm_init returned the standard deviation, not its log.",
                "log_scale = log(std): the layer multiplies by exp(log_scale).",
            )
        if close(init_log, -ref.log_scale, 5e-3):
            raise Mistake(
                "actnorm_init's log_scale has the wrong sign.",
                "the inverse divides by exp(log_scale): to give unit variance, "
                "exp(log_scale) must be the standard deviation, log_scale = log(std).",
            )
        raise Mistake(
            "the log_scale of actnorm_init is not log(std) of each channel.",
            "log_scale[c] = log of the standard deviation of channel c over all images and pixels.",
        )
    return (
        "forward and inverse equal the reference, both ways, with ladj = +-H W "
        "sum(log_scale); the initialization gives each channel zero mean and unit variance."
    )
