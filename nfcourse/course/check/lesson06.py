"""Checks of lesson 06 (spline flows): one bin of a rational-quadratic spline, both ways, and
the knots from a network's numbers.

The checks run the learner's code on bins they build from
:func:`nfcourse.layers.spline.knots` of random numbers, in float64, and compare with
the reference (:func:`~nfcourse.layers.spline.bin_forward`,
:func:`~nfcourse.layers.spline.bin_inverse`, :func:`~nfcourse.layers.spline.knots`)
and with properties: the log-derivative against autograd, the inverse against the
reference forward (a round trip). The inverse is also tried where the usual
numerical mistakes show: straight bins (``a = 0`` in the quadratic) and float32
bins at their upper edge, where round-off makes the discriminant negative. A wrong
answer is compared with the typical mistakes to name the likely one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ...layers.spline import MIN_BIN, MIN_DERIVATIVE, bin_forward, bin_inverse, knots
from ._core import Mistake, exercise
from ._tools import close

__all__ = ["spline_bin", "spline_bin_inverse", "spline_knots"]

F64 = torch.float64
TOL = 1e-9  # float64: the reference and a right answer agree to about 1e-14


@dataclass
class _Bins:
    """Bins of splines, one entry per point: left knot ``(x0, y0)``, width, height, end slopes."""

    x0: Tensor
    w: Tensor
    y0: Tensor
    h: Tensor
    d0: Tensor
    d1: Tensor

    @property
    def s(self) -> Tensor:
        return self.h / self.w

    def args(self) -> list[Tensor]:
        return [self.x0, self.w, self.y0, self.h, self.d0, self.d1]

    def swapped(self) -> _Bins:
        return replace(self, d0=self.d1, d1=self.d0)

    def map(self, fn: Callable[[Tensor], Tensor]) -> _Bins:
        return _Bins(*(fn(getattr(self, f.name)) for f in fields(self)))


def _random_bins(splines: int, bins: int, seed: int, bound: float = 3.0) -> _Bins:
    """Every bin of ``splines`` random splines of ``bins`` bins, flattened to one dimension."""
    g = torch.Generator().manual_seed(seed)
    raw = 1.5 * torch.randn(splines, 3 * bins - 1, generator=g, dtype=F64)
    xs, ys, ds = knots(raw, bound)
    return _Bins(
        xs[:, :-1], xs.diff(dim=-1), ys[:, :-1], ys.diff(dim=-1), ds[:, :-1], ds[:, 1:]
    ).map(lambda t: t.reshape(-1))


def _points(bins: _Bins, per_bin: int, seed: int) -> tuple[_Bins, Tensor]:
    """Each bin repeated: at its two ends (xi = 0 and 1) and at ``per_bin`` random places."""
    g = torch.Generator().manual_seed(seed)
    n = bins.x0.numel()
    xi = torch.cat([torch.zeros(1, n, dtype=F64), torch.ones(1, n, dtype=F64),
                    torch.rand(per_bin, n, generator=g, dtype=F64)])
    many = bins.map(lambda t: t.expand_as(xi).reshape(-1))
    return many, xi.reshape(-1)


def _where(bins: _Bins, i: int) -> str:
    return (
        f"x0 = {bins.x0[i].item():.4g}, w = {bins.w[i].item():.4g}, y0 = {bins.y0[i].item():.4g}, "
        f"h = {bins.h[i].item():.4g}, d0 = {bins.d0[i].item():.4g}, d1 = {bins.d1[i].item():.4g}"
    )


def _worst(a: Tensor, b: Tensor) -> int:
    """The index where ``a`` and ``b`` differ most (NaN counts as the largest gap)."""
    gap = (a.detach().double() - b.double()).abs()
    return int(torch.nan_to_num(gap, nan=math.inf).argmax())


def _as_tensor(out: object, name: str, what: str, shape: torch.Size) -> Tensor:
    if not isinstance(out, Tensor) or not out.is_floating_point():
        got = f"a tensor of dtype {out.dtype}" if isinstance(out, Tensor) else type(out).__name__
        raise Mistake(f"{name} returned {got} for {what}; expected a float tensor.",
                      "compute with torch operations on the tensors you are given and return "
                      "a tensor.")
    if out.shape != shape:
        raise Mistake(
            f"{name} returned {what} of shape {tuple(out.shape)}; expected {tuple(shape)}, the "
            "shape of its input.",
            "the spline acts on each number by itself: one output per input, nothing summed "
            "or reshaped (all the arguments broadcast against each other).",
        )
    return out


# --- Exercise 6.1: one bin, forward --------------------------------------------------------------


def _forward(x: Tensor, b: _Bins, mistake: str = "") -> tuple[Tensor, Tensor]:
    """The spline in one bin, right (``mistake=""``) or with one typical mistake."""
    if mistake == "d swapped":
        b = b.swapped()
    s = b.w / b.h if mistake == "s = w / h" else b.s
    xi = x - b.x0 if mistake == "xi = x - x0" else (x - b.x0) / b.w
    t = xi * (1 - xi)
    den = s + (b.d0 + b.d1 - 2 * s) * t
    y = (b.y0 if mistake != "no y0" else 0) + b.h * (s * xi.square() + b.d0 * t) / den
    num = b.d1 * xi.square() + 2 * s * t + b.d0 * (1 - xi).square()
    if mistake == "sides swapped in the derivative":
        num = b.d0 * xi.square() + 2 * s * t + b.d1 * (1 - xi).square()
    square = {"no s^2": 0, "s, not s^2": 1}.get(mistake, 2)
    log_d = square * s.log() + num.log() - (1 if mistake == "den not squared" else 2) * den.log()
    return y, log_d


_Y_MISTAKES = [
    (
        "xi = x - x0",
        "your y is the spline at xi = x - x0, not divided by the bin's width",
        "xi is the position inside the bin as a fraction of its width: xi = (x - x0) / w, from 0 "
        "at the left knot to 1 at the right one. Unnormalized, xi runs to w instead of 1.",
    ),
    (
        "d swapped",
        "your y has d0 and d1 swapped",
        "derivative of the wrong side: d0 is the derivative at the bin's left knot (xi = 0), d1 "
        "at its right knot (xi = 1). The numerator of y has d0 xi (1 - xi): near xi = 0 it "
        "gives y = y0 + d0 (x - x0), the slope of the left knot.",
    ),
    (
        "s = w / h",
        "your y uses the slope s = w / h",
        "the slope of a bin is rise over run: s = h / w.",
    ),
    (
        "no y0",
        "your y is off by y0, the bin's lower value",
        "the bin starts at height y0: y = y0 + h (s xi^2 + d0 xi (1 - xi)) / (...); "
        "at xi = 0, y must be y0.",
    ),
]

_LOG_MISTAKES = [
    (
        "den not squared",
        "the denominator of the derivative is squared (quotient rule): log dy/dx = 2 log s + "
        "log(d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2) - 2 log(s + (d0 + d1 - 2 s) xi (1 - xi)).",
    ),
    (
        "no s^2",
        "the derivative has the factor s^2 in front: add 2 log s.",
    ),
    (
        "s, not s^2",
        "the factor in front of the derivative is s^2, not s: 2 log s.",
    ),
    (
        "sides swapped in the derivative",
        "derivative of the wrong side: in the derivative's numerator d1 goes with xi^2 and d0 "
        "with (1 - xi)^2, so that dy/dx = d0 at xi = 0 (left knot) and d1 at xi = 1 (right "
        "knot).",
    ),
]


def _y_hint(y: Tensor, x: Tensor, b: _Bins, ref: Tensor, n_ends: int) -> Mistake:
    for mistake, what, hint in _Y_MISTAKES:
        if close(y, _forward(x, b, mistake)[0], TOL):
            return Mistake(f"{what}.", hint)
    i = _worst(y, ref)
    ends_wrong = not close(y[:n_ends], ref[:n_ends], TOL)
    place = "at a bin's end (xi = 0 or 1)" if ends_wrong and i < n_ends else "inside a bin"
    return Mistake(
        f"y differs from the spline {place}: {y[i].item():.6g} instead of {ref[i].item():.6g} "
        f"at x = {x[i].item():.6g} in the bin {_where(b, i)}.",
        "with s = h / w and xi = (x - x0) / w: y = y0 + h (s xi^2 + d0 xi (1 - xi)) / "
        "(s + (d0 + d1 - 2 s) xi (1 - xi)); at xi = 0 it gives y0, at xi = 1 y0 + h."
        if not ends_wrong
        else "the spline goes through its knots: y = y0 at xi = 0 and y = y0 + h at xi = 1 "
        "(xi = (x - x0) / w). Check the numerator h (s xi^2 + d0 xi (1 - xi)) and the "
        "denominator s + (d0 + d1 - 2 s) xi (1 - xi).",
    )


def _log_hint(log_d: Tensor, x: Tensor, b: _Bins, ref: Tensor) -> Mistake:
    i = _worst(log_d, ref)
    message = (
        f"y is right, but log dy/dx is {log_d[i].item():.6g} instead of {ref[i].item():.6g} at "
        f"x = {x[i].item():.6g} in the bin {_where(b, i)}."
    )
    for mistake, hint in _LOG_MISTAKES:
        if close(log_d, _forward(x, b, mistake)[1], TOL):
            return Mistake(message, hint)
    if close(log_d, ref + b.w.log(), TOL):
        return Mistake(message, "that is log dy/dxi, the derivative with respect to xi. Since "
                       "xi = (x - x0) / w, dy/dx = (dy/dxi) / w: the formula with s^2 in front "
                       "already includes that.")
    if close(log_d, ref.exp(), TOL):
        return Mistake(message, "return the logarithm of the derivative, log dy/dx, not dy/dx "
                       "itself: flows add log-derivatives.")
    if close(log_d, -ref, TOL):
        return Mistake(message, "the sign is flipped: return log dy/dx of the map x -> y, not "
                       "log dx/dy.")
    return Mistake(message, "log dy/dx = 2 log s + log(d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2)"
                   " - 2 log(s + (d0 + d1 - 2 s) xi (1 - xi)).")


def _call_forward(fn: Callable, x: Tensor, b: _Bins) -> tuple[Tensor, Tensor]:
    out = fn(x, *b.args())
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else (
            type(out).__name__)
        raise Mistake(f"spline_bin returned {got}; expected a pair (y, log dy/dx).",
                      "end with `return y, log_d`: the value and the log-derivative, as a "
                      "layer returns its output and its ladj.")
    y, log_d = out
    return (_as_tensor(y, "spline_bin", "y", x.shape),
            _as_tensor(log_d, "spline_bin", "log dy/dx", x.shape))


@exercise("Exercise 6.1")
def spline_bin(fn: Callable[..., tuple[Tensor, Tensor]]) -> str:
    """Check ``spline_bin(x, x0, w, y0, h, d0, d1) -> (y, log dy/dx)`` against the reference."""
    bins = _random_bins(splines=6, bins=5, seed=0)
    b, xi = _points(bins, per_bin=6, seed=1)
    n_ends = 2 * bins.x0.numel()
    x = (b.x0 + xi * b.w).requires_grad_()
    y, log_d = _call_forward(fn, x, b)
    ref_y, ref_log = bin_forward(xi, b.y0, b.h, b.s, b.d0, b.d1)
    if not close(y, ref_y, TOL):
        raise _y_hint(y.detach(), x.detach(), b, ref_y, n_ends)
    if not close(log_d, ref_log, TOL):
        raise _log_hint(log_d.detach(), x.detach(), b, ref_log)
    if y.requires_grad:  # the oracle: autograd's derivative of the learner's own y
        (dy,) = torch.autograd.grad(y.sum(), x)
        error = (dy.log() - log_d.detach()).abs().max().item()
        if not error < 1e-8:  # pragma: no cover - y and log dy/dx already match the reference
            raise Mistake(f"log dy/dx differs from the log of autograd's dy/dx by {error:.2e}.",
                          "compute y from x with differentiable torch operations.")
        oracle = "matches the log of autograd's derivative of your y"
    else:
        oracle = "is right (your y carries no gradient, so autograd was not asked)"
    # shapes: a batch of points in the same bins, the bins' numbers broadcast
    few = _random_bins(splines=1, bins=4, seed=2)
    grid = few.x0 + torch.linspace(0.1, 0.9, 3, dtype=F64)[:, None] * few.w
    _call_forward(fn, grid, few)
    return (
        f"y and log dy/dx equal the reference at {x.numel()} points in {bins.x0.numel()} bins "
        f"(both ends of every bin included); log dy/dx {oracle}; a batch of shape "
        f"{tuple(grid.shape)} against bins of shape {tuple(few.x0.shape)} broadcasts."
    )


# --- Exercise 6.2: one bin, inverse --------------------------------------------------------------


def _coefficients(y: Tensor, b: _Bins, dy: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    dy = y - b.y0 if dy is None else dy
    e = b.d0 + b.d1 - 2 * b.s
    return b.h * (b.s - b.d0) + dy * e, b.h * b.d0 - dy * e, -b.s * dy


def _textbook(y: Tensor, b: _Bins) -> Tensor:
    """``x`` from the textbook root ``(-b + sqrt(b^2 - 4ac)) / 2a`` (its disc clamped)."""
    a, bb, c = _coefficients(y, b)
    return b.x0 + b.w * (-bb + (bb.square() - 4 * a * c).clamp_min(0).sqrt()) / (2 * a)


def _inverse_variants(y: Tensor, b: _Bins) -> list[tuple[Tensor, str, str]]:
    a, bb, c = _coefficients(y, b)
    root = (bb.square() - 4 * a * c).clamp_min(0).sqrt()
    other = b.x0 + b.w * 2 * c / (-bb + root)  # = (-b - sqrt) / 2a, the root outside the bin
    xi = bin_inverse(y, b.y0, b.h, b.s, b.d0, b.d1)
    sw = b.swapped()
    a0, b0, c0 = _coefficients(y, b, dy=y)
    no_y0 = b.x0 + b.w * 2 * c0 / (-b0 - (b0.square() - 4 * a0 * c0).clamp_min(0).sqrt())
    outside = b.x0 + b.w * ((other - b.x0) / b.w).clamp(0, 1)  # then clamped into the bin
    return [
        (other, "your x comes from the other root of the quadratic, the one outside the bin",
         "wrong root: the quadratic has two roots and only one lies in [0, 1], xi = "
         "(-b + sqrt(b^2 - 4ac)) / (2a), written stably as xi = 2c / (-b - sqrt(b^2 - 4ac)); "
         "you have the other sign in front of the square root."),
        (outside, "your x comes from the other root of the quadratic, clamped into the bin",
         "wrong root: the root you took lies outside the bin, and clamping only hides it. The "
         "root in [0, 1] is xi = 2c / (-b - sqrt(b^2 - 4ac)) (the textbook "
         "(-b + sqrt(b^2 - 4ac)) / (2a), written stably): the other sign in front of the "
         "square root."),
        (xi, "you returned xi, the position inside the bin, not x",
         "map it back: x = x0 + xi * w."),
        (b.x0 + b.w * bin_inverse(y, sw.y0, sw.h, sw.s, sw.d0, sw.d1),
         "your x is the inverse of the spline with d0 and d1 swapped",
         "derivative of the wrong side: d0 belongs to the left knot (xi = 0), d1 to the right "
         "one; with e = d0 + d1 - 2 s: a = h (s - d0) + dy e, b = h d0 - dy e, c = -s dy."),
        (no_y0, "your quadratic uses y instead of dy = y - y0",
         "the coefficients use the height above the bin's lower value, dy = y - y0: "
         "a = h (s - d0) + dy e, b = h d0 - dy e, c = -s dy."),
    ]


_UNSTABLE = (
    "the textbook root (-b + sqrt(b^2 - 4ac)) / (2a) divides by a, which is 0 in a straight bin "
    "(d0 = d1 = s) and tiny in a nearly straight one, where the two terms of the numerator "
    "nearly cancel and most digits are lost. Multiply above and below by (-b - sqrt(b^2 - 4ac)): "
    "xi = 2c / (-b - sqrt(b^2 - 4ac)), the same root without the division by a."
)
_NO_CLAMP = (
    "in float32, round-off makes b^2 - 4ac slightly negative at a bin's edge where a derivative "
    "is small, and sqrt of a negative number is NaN. Clamp the discriminant at 0 before the "
    "square root: (b**2 - 4*a*c).clamp_min(0)."
)


def _agrees(x: Tensor, variant: Tensor) -> bool:
    """``x`` equals ``variant`` wherever that is finite, and that is most of the points.

    A typical wrong answer can be NaN where the right one is not (the other root is 0 / 0
    at a bin's lower edge), so the comparison skips those points.
    """
    finite = torch.isfinite(variant)
    return bool(finite.float().mean() > 0.8) and close(x[finite], variant[finite], TOL)


def _call_inverse(fn: Callable, y: Tensor, b: _Bins) -> Tensor:
    return _as_tensor(fn(y, *b.args()), "spline_bin_inverse", "x", y.shape).detach()


def _straight_bins() -> _Bins:
    """Straight bins (d0 = d1 = s: a = 0 exactly) and nearly straight ones (a ~ 1e-9)."""
    bins = _random_bins(splines=2, bins=4, seed=3)
    s = bins.s
    exact = replace(bins, d0=s.clone(), d1=s.clone())
    near = replace(bins, d0=s * (1 + 1e-9), d1=s * (1 - 2e-9))
    return _Bins(*(torch.cat([e, n]) for e, n in zip(exact.args(), near.args(), strict=True)))


def _float32_edges() -> tuple[_Bins, Tensor]:
    """Float32 bins with a small right derivative, at their upper edge y = y0 + h.

    There the discriminant is (h d1)^2 in exact arithmetic, tiny next to b^2, and
    float32 round-off makes it negative for some of them (a test counts them).
    """
    g = torch.Generator().manual_seed(4)
    n = 400
    h = 0.1 + 2 * torch.rand(n, generator=g)
    w = 0.1 + 2 * torch.rand(n, generator=g)
    bins = _Bins(
        x0=-3 + 3 * torch.rand(n, generator=g), w=w, y0=-3 + 3 * torch.rand(n, generator=g), h=h,
        d0=0.2 + 3 * torch.rand(n, generator=g),
        d1=MIN_DERIVATIVE * (1 + torch.rand(n, generator=g)),
    )
    return bins, bins.y0 + bins.h


@exercise("Exercise 6.2")
def spline_bin_inverse(fn: Callable[..., Tensor]) -> str:
    """Check ``spline_bin_inverse(y, x0, w, y0, h, d0, d1) -> x`` against the reference."""
    bins = _random_bins(splines=6, bins=5, seed=5)
    b, xi = _points(bins, per_bin=6, seed=6)
    x_true = b.x0 + xi * b.w
    y, _ = bin_forward(xi, b.y0, b.h, b.s, b.d0, b.d1)  # the reference forward
    x = _call_inverse(fn, y, b)
    if not close(x, x_true, TOL):
        if close(x, _textbook(y, b), TOL):
            raise Mistake("x is off by round-off where a, the coefficient of xi^2, is small.",
                          _UNSTABLE)
        for variant, what, hint in _inverse_variants(y, b):
            if _agrees(x, variant):
                raise Mistake(f"{what} ({x.numel()} points in {bins.x0.numel()} bins).", hint)
        i = _worst(x, x_true)
        outside = bool(((x < b.x0 - TOL) | (x > b.x0 + b.w + TOL)).any())
        raise Mistake(
            f"x is not the inverse of the spline: at y = {y[i].item():.6g} you give "
            f"x = {x[i].item():.6g}, the spline takes x = {x_true[i].item():.6g} there "
            f"(bin {_where(b, i)}).",
            "your x lies outside its bin, so xi is outside [0, 1]: that is the wrong root. "
            "Take xi = 2c / (-b - sqrt(b^2 - 4ac)) and x = x0 + xi * w."
            if outside
            else "with dy = y - y0, s = h / w, e = d0 + d1 - 2 s: a = h (s - d0) + dy e, "
            "b = h d0 - dy e, c = -s dy; xi = 2c / (-b - sqrt(b^2 - 4ac)); x = x0 + xi * w.",
        )
    # straight bins: a = 0, where the textbook root divides 0 by 0
    flat = _straight_bins()
    xi_flat = torch.linspace(0, 1, 7, dtype=F64)[:, None].expand(-1, flat.x0.numel())
    fb = flat.map(lambda t: t.expand_as(xi_flat).reshape(-1))
    xi_flat = xi_flat.reshape(-1)
    y_flat, _ = bin_forward(xi_flat, fb.y0, fb.h, fb.s, fb.d0, fb.d1)
    x_flat = _call_inverse(fn, y_flat, fb)
    if not close(x_flat, fb.x0 + xi_flat * fb.w, TOL):
        bad = "NaN or infinite" if not torch.isfinite(x_flat).all() else "off by round-off"
        raise Mistake(f"in straight bins (d0 = d1 = s, so a = 0) and nearly straight ones your x "
                      f"is {bad}.", _UNSTABLE)
    # float32 at the upper edge of bins with a small right derivative
    edge, y32 = _float32_edges()
    x32 = _call_inverse(fn, y32, edge)
    if not torch.isfinite(x32).all():
        count = int((~torch.isfinite(x32)).sum())
        raise Mistake(f"in float32, at the upper edge y = y0 + h of bins whose right derivative "
                      f"is small, {count} of your {x32.numel()} x are NaN.", _NO_CLAMP)
    error = ((x32.double() - (edge.x0 + edge.w).double()) / edge.w.double()).abs().max().item()
    if error > 1e-2:
        raise Mistake(f"in float32, at the upper edge y = y0 + h of a bin, your x misses the "
                      f"bin's right end by {error:.1e} bin widths.",
                      "check the float32 path: with the discriminant clamped at 0 and the stable "
                      "root, x comes within about 1e-3 bin widths of x0 + w.")
    return (
        f"the reference forward of your x gives y back at {x.numel()} points in "
        f"{bins.x0.numel()} bins (float64, both ends included); straight bins (a = 0) work, and "
        f"float32 bin edges, where round-off makes b^2 - 4ac negative, give no NaN."
    )


# --- Exercise 6.3: the knots from unconstrained numbers ------------------------------------------


def _knots_variant(raw: Tensor, bound: float, mistake: str) -> tuple[Tensor, Tensor, Tensor]:
    bins = (raw.shape[-1] + 1) // 3
    u_w, u_h, v = raw[..., :bins], raw[..., bins : 2 * bins], raw[..., 2 * bins :]
    if mistake == "widths and heights swapped":
        u_w, u_h = u_h, u_w

    def sizes(u: Tensor) -> Tensor:
        if mistake == "no softmax":
            return u.exp()
        if mistake == "no minimum bin size":
            return torch.softmax(u, dim=-1)
        if mistake == "minimum not rescaled":
            return MIN_BIN + torch.softmax(u, dim=-1)
        return MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(u, dim=-1)

    def cumulative(u: Tensor) -> Tensor:
        c = torch.cat([torch.zeros_like(u[..., :1]), torch.cumsum(sizes(u), dim=-1)], dim=-1)
        return bound * c if mistake == "scaled to [0, B]" else bound * (2 * c - 1)

    shift = {
        "no shift": 0.0,
        "no minimum derivative": math.log(math.expm1(1.0)),
    }.get(mistake, math.log(math.expm1(1 - MIN_DERIVATIVE)))
    inner = F.softplus(v + shift) + (0 if mistake == "no minimum derivative" else MIN_DERIVATIVE)
    one = torch.ones_like(v[..., :1])
    return cumulative(u_w), cumulative(u_h), torch.cat([one, inner, one], dim=-1)


_KNOT_MISTAKES = [
    ("no minimum bin size", "the sizes are a softmax without a minimum bin size",
     "missing minimum bin size: with the softmax alone a bin can shrink to nothing (its slope "
     "then explodes). Give every bin the share MIN_BIN first: sizes = MIN_BIN + (1 - MIN_BIN * K) "
     "* softmax(u), which still sums to 1."),
    ("minimum not rescaled", "the sizes are MIN_BIN + softmax(u), which sum to 1 + K * MIN_BIN",
     "scale the softmax down by (1 - MIN_BIN * K) so that the sizes still sum to 1: "
     "sizes = MIN_BIN + (1 - MIN_BIN * K) * softmax(u)."),
    ("no softmax", "the sizes are exp(u), not normalized",
     "unnormalized widths: sizes must be positive AND sum to 1 so the knots end at +bound: use "
     "a softmax, sizes = MIN_BIN + (1 - MIN_BIN * K) * softmax(u)."),
    ("scaled to [0, B]", "your knots run from 0 to bound",
     "the knots span [-bound, bound]: map the cumulative sums c (from 0 to 1) with "
     "bound * (2 * c - 1)."),
    ("widths and heights swapped", "your xs come from the heights' numbers and ys from the widths'",
     "raw holds the K widths first (raw[..., :K], for xs), then the K heights "
     "(raw[..., K:2K], for ys), then the K - 1 inner derivatives."),
]

_DERIVATIVE_MISTAKES = [
    ("no shift", "the inner derivatives are MIN_DERIVATIVE + softplus(v)",
     "shift v so that v = 0 gives the derivative 1 (the identity): d = MIN_DERIVATIVE + "
     "softplus(v + c) with c = log(expm1(1 - MIN_DERIVATIVE))."),
    ("no minimum derivative", "the inner derivatives have no minimum",
     "missing minimum derivative: add MIN_DERIVATIVE, d = MIN_DERIVATIVE + softplus(v + c) with "
     "c = log(expm1(1 - MIN_DERIVATIVE)), so that d stays above it and v = 0 gives exactly 1."),
]


def _knot_tensors(out: object, shape: torch.Size) -> tuple[Tensor, Tensor, Tensor]:
    if not (isinstance(out, (tuple, list)) and len(out) == 3):
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else (
            type(out).__name__)
        raise Mistake(f"spline_knots returned {got}; expected three tensors (xs, ys, ds).",
                      "end with `return xs, ys, ds`.")
    result = []
    for name, t in zip(("xs", "ys", "ds"), out, strict=True):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise Mistake(f"{name} is a {type(t).__name__}, not a float tensor.",
                          "build the knots with torch operations on raw.")
        if t.shape != shape:
            short = {"xs": (1,), "ys": (1,), "ds": (1, 2)}[name]  # knots or ends missing
            fewer = t.shape[:-1] == shape[:-1] and shape[-1] - t.shape[-1] in short
            raise Mistake(
                f"{name} has shape {tuple(t.shape)}; expected {tuple(shape)}: K + 1 = "
                f"{shape[-1]} values for K = {shape[-1] - 1} bins.",
                ("K bins have K + 1 knots: put a 0 in front of the cumulative sums (the first "
                 "knot, -bound)." if name != "ds" else
                 "K - 1 inner derivatives from raw, plus the two ends, both fixed to 1.")
                if fewer else
                "keep the leading (batch) dimensions of raw; the last one holds the K + 1 "
                "knots.",
            )
        result.append(t.detach().double())
    return result[0], result[1], result[2]


def _diagnose_knots(got, raw: Tensor, bound: float, ref, case: str) -> None:
    names = ("xs", "ys", "ds")
    wrong = [n for n, g, r in zip(names, got, ref, strict=True) if not close(g, r, TOL)]
    if not wrong:
        return
    if "xs" in wrong or "ys" in wrong:
        for mistake, what, hint in _KNOT_MISTAKES:
            variant = _knots_variant(raw, bound, mistake)
            if all(close(g, v, TOL) for g, v in zip(got[:2], variant[:2], strict=True)):
                raise Mistake(f"{what} ({case}).", hint)
        name = "xs" if "xs" in wrong else "ys"
        t = got[names.index(name)]
        ends = torch.stack([t[..., 0], t[..., -1]], -1)
        if not close(ends, torch.tensor([-bound, bound], dtype=F64).expand_as(ends), TOL):
            raise Mistake(
                f"{name} does not run from -bound to bound ({case}): it starts at "
                f"{t[..., 0].flatten()[0].item():.4g} and ends at "
                f"{t[..., -1].flatten()[0].item():.4g}.",
                "unnormalized widths? The sizes must sum to 1 (a softmax), and the cumulative "
                "sums c, from 0 to 1, become knots with bound * (2 * c - 1).",
            )
        raise Mistake(
            f"{name} differs from the reference knots ({case}).",
            "sizes = MIN_BIN + (1 - MIN_BIN * K) * softmax(u); knots = bound * (2 * c - 1) with "
            "c = [0, cumsum(sizes)].",
        )
    ds = got[2]
    if not (close(ds[..., 0], torch.ones_like(ds[..., 0])) and
            close(ds[..., -1], torch.ones_like(ds[..., -1]))):
        raise Mistake(
            f"the end derivatives ds[..., 0] and ds[..., -1] are not 1 ({case}).",
            "fix both ends to 1: outside [-bound, bound] the map is the identity (slope 1), and "
            "the spline must meet it with the same slope, or the density jumps at +-bound.",
        )
    for mistake, what, hint in _DERIVATIVE_MISTAKES:
        if close(ds, _knots_variant(raw, bound, mistake)[2], TOL):
            raise Mistake(f"{what} ({case}).", hint)
    raise Mistake(
        f"the inner derivatives differ from the reference ({case}).",
        "d = MIN_DERIVATIVE + softplus(v + c) with c = log(expm1(1 - MIN_DERIVATIVE)), "
        "v = raw[..., 2K:], and 1 at both ends.",
    )


@exercise("Exercise 6.3")
def spline_knots(fn: Callable[[Tensor, float], tuple[Tensor, Tensor, Tensor]]) -> str:
    """Check ``spline_knots(raw, bound) -> (xs, ys, ds)`` against :func:`knots`."""
    g = torch.Generator().manual_seed(7)
    cases = [
        ("K = 5 bins, bound 3, raw of shape (6, 14)", 5, 3.0, 2.0, (6,)),
        ("K = 8 bins, bound 5, raw of shape (2, 3, 23)", 8, 5.0, 2.0, (2, 3)),
        ("K = 4 bins, bound 2, large raw numbers (a softmax near one-hot)", 4, 2.0, 30.0, (5,)),
    ]
    for case, bins, bound, scale, batch in cases:
        raw = scale * torch.randn(*batch, 3 * bins - 1, generator=g, dtype=F64)
        ref = knots(raw, bound)
        got = _knot_tensors(fn(raw.clone(), bound), ref[0].shape)
        _diagnose_knots(got, raw, bound, ref, case)
    return (
        f"xs, ys and ds equal the reference on {len(cases)} sets of raw numbers (K = 4, 5, 8; "
        "one with a nearly one-hot softmax, where the minimum bin size matters): knots from "
        "-bound to bound, no bin below its minimum, end derivatives 1."
    )
