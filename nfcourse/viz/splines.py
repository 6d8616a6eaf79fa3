"""Pictures of one rational-quadratic spline (lesson 06) and a slider explorer of it.

A spline is given as its ``3K - 1`` unconstrained numbers ``raw`` (K for the widths, K
for the heights, K - 1 for the inner derivatives, as in
:func:`nfcourse.layers.spline.knots`), so every value a slider can take gives a valid,
increasing spline: that is the point of the parameterization.

========================  ============================================  =======================
function                  what it gives                                 used by
========================  ============================================  =======================
:func:`spline_curves`     the numbers: knots, the map, its derivative,  the figure, the tests
                          the density of ``g(Z)`` for ``Z ~ N(0, 1)``
:func:`spline_summary`    a few numbers about them (slopes, smallest    the explorer's text
                          bin, the density's integral)
:func:`spline_figure`     three panels: the map, its derivative, the    the lesson, the explorer
                          density it makes from a Gaussian
:func:`spline_explorer`   sliders for the ``3K - 1`` numbers            the lesson
========================  ============================================  =======================

The explorer redraws :func:`spline_figure`; an error inside a widget callback is
only shown in the widget, so the tests call the pure functions directly with the
extreme values the sliders reach.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from torch import Tensor

from ..layers.spline import MIN_BIN, knots, spline
from ..validate import check_int, check_number
from .plots import PALETTE
from .widgets import Explorer, _error_html, _slider

__all__ = ["SplineExplorer", "spline_curves", "spline_explorer", "spline_figure", "spline_summary"]

_F64 = torch.float64
_NORMAL = torch.distributions.Normal(torch.tensor(0.0, dtype=_F64), torch.tensor(1.0, dtype=_F64))


def _raw(raw: object, where: str) -> Tensor:
    """``raw`` as a float64 vector of ``3K - 1`` finite numbers, ``K >= 2``."""
    try:
        t = torch.as_tensor(raw, dtype=_F64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        t = None
    if t is None or t.dim() != 1 or t.numel() < 5 or (t.numel() + 1) % 3:
        got = f"shape {tuple(t.shape)}" if t is not None else type(raw).__name__
        raise ValueError(
            f"{where}: `raw` must be a vector of 3K - 1 numbers for K >= 2 bins (K widths, K "
            f"heights, K - 1 inner derivatives: 5, 8, 11, ...), got {got}."
        )
    if not torch.isfinite(t).all():
        raise ValueError(f"{where}: `raw` must hold finite numbers, got {t.tolist()}.")
    return t


def spline_curves(
    raw: Sequence[float] | Tensor,
    bound: float = 3.0,
    margin: float = 2.0,
    resolution: int = 1201,
) -> dict:
    """The numbers behind the pictures of the spline ``g`` set by ``raw``.

    Args:
        raw: ``3K - 1`` unconstrained numbers (any finite values).
        bound: the spline acts on ``[-bound, bound]``; outside, ``g`` is the identity.
        margin: the curves run over ``[-bound - margin, bound + margin]``.
        resolution: points of each curve.

    Returns:
        A dict of float64 NumPy arrays: ``xs, ys, ds`` (the ``K + 1`` knots and the
        derivatives there), ``x`` (the grid), ``y = g(x)``, ``dydx`` (the derivative,
        from the formula), ``grid`` (the same grid, read as values ``y``) and
        ``density`` (the density of ``g(Z)`` for ``Z ~ N(0, 1)`` there:
        ``N(g^{-1}(y)) |d g^{-1} / dy|``, through the spline's closed-form inverse).
    """
    where = "spline_curves"
    t = _raw(raw, where)
    bound = check_number(bound, "bound", where, positive=True, example="3.0")
    margin = check_number(margin, "margin", where, positive=True, example="2.0")
    resolution = check_int(resolution, "resolution", where, smallest=3,
                           meaning="the number of points of each curve")
    xs, ys, ds = knots(t, bound)
    grid = torch.linspace(-bound - margin, bound + margin, resolution, dtype=_F64)
    params = t.expand(resolution, -1)
    with torch.no_grad():
        y, log_d = spline(grid, params, bound)
        z, log_dz = spline(grid, params, bound, inverse=True)
        log_p = _NORMAL.log_prob(z) + log_dz
    return {
        "xs": xs.numpy(), "ys": ys.numpy(), "ds": ds.numpy(), "x": grid.numpy(),
        "y": y.numpy(), "dydx": log_d.exp().numpy(), "grid": grid.numpy(),
        "density": log_p.exp().numpy(), "bound": bound,
    }


def spline_summary(raw: Sequence[float] | Tensor, bound: float = 3.0) -> dict:
    """A few numbers about the spline set by ``raw`` (see :func:`spline_curves`).

    Returns a dict with ``bins`` (K), ``xs``, ``ys``, ``ds`` (lists), ``min_slope`` and
    ``max_slope`` (of ``g`` on ``[-bound, bound]``, from the formula on a fine grid),
    ``smallest_bin`` (the smallest width or height, as a share of ``2 bound``),
    ``at_minimum`` (whether some bin is below twice the minimum share ``MIN_BIN``: the
    softmax gives it almost nothing, the minimum most of what it has),
    ``increasing`` (``g`` strictly increasing on the grid) and ``mass`` (the integral
    of the density of ``g(Z)`` over the grid, by the trapezoid rule: 1 up to the
    Gaussian's mass beyond the grid and the rule's error).
    """
    c = spline_curves(raw, bound, margin=3.0, resolution=4001)
    inside = np.abs(c["x"]) <= c["bound"]
    p = c["density"]
    shares = np.concatenate([np.diff(c["xs"]), np.diff(c["ys"])]) / (2 * c["bound"])
    return {
        "bins": len(c["xs"]) - 1,
        "xs": c["xs"].tolist(), "ys": c["ys"].tolist(), "ds": c["ds"].tolist(),
        "min_slope": float(c["dydx"][inside].min()), "max_slope": float(c["dydx"][inside].max()),
        "smallest_bin": float(shares.min()),
        "at_minimum": bool(shares.min() < 2 * MIN_BIN),
        "increasing": bool((np.diff(c["y"]) > 0).all()),
        "mass": float(((p[1:] + p[:-1]) / 2 * np.diff(c["grid"])).sum()),  # trapezoid rule
    }


def spline_figure(
    raw: Sequence[float] | Tensor,
    bound: float = 3.0,
    fig: Figure | None = None,
    samples: int = 20_000,
    seed: int = 0,
) -> Figure:
    """Three panels of the spline ``g`` set by ``raw``: the map, its derivative, a density.

    1. ``y = g(x)`` with its knots (dots) and, at each knot, a short segment of the
       slope ``d_k`` there; the identity (dashed) and the tails ``|x| > bound``
       (shaded), where ``g`` is the identity.
    2. ``dg/dx`` (log scale), equal to ``d_k`` at the knots and to 1 in the tails.
    3. The density of ``g(Z)``, ``Z ~ N(0, 1)``, from the formula (through the
       closed-form inverse), over a histogram of ``g`` of ``samples`` draws
       (``seed``), and the standard normal for comparison.

    Args:
        raw: ``3K - 1`` unconstrained numbers (see :func:`nfcourse.layers.spline.knots`).
        bound: the spline acts on ``[-bound, bound]``.
        fig: a figure to draw on (its three new axes are added); default: a new pyplot figure.
        samples: draws of ``Z`` for the histogram (0: no histogram).
        seed: the seed of those draws.

    Returns:
        The figure; its first three axes are the three panels.
    """
    where = "spline_figure"
    samples = check_int(samples, "samples", where, smallest=0, meaning="the number of draws")
    c = spline_curves(raw, bound)
    b = c["bound"]
    if fig is None:
        fig = plt.figure(figsize=(12, 3.6), layout="constrained")
    ax_map, ax_slope, ax_density = fig.subplots(1, 3)
    grey = PALETTE[7]
    for ax in (ax_map, ax_slope):
        for side in (-1, 1):
            ax.axvspan(side * b, side * (b + 10), color=grey, alpha=0.12, linewidth=0)
        ax.set_xlim(c["x"][0], c["x"][-1])
        ax.set_xlabel("$x$")
    ax_map.plot(c["x"], c["x"], color=grey, linestyle="--", linewidth=1, label="identity")
    ax_map.plot(c["x"], c["y"], color=PALETTE[0], linewidth=2, label="$y = g(x)$")
    ax_map.plot(c["xs"], c["ys"], "o", color=PALETTE[3], markersize=5, label="knots")
    half = 0.06 * (c["x"][-1] - c["x"][0])
    for xk, yk, dk in zip(c["xs"], c["ys"], c["ds"], strict=True):
        dx = half / math.sqrt(1 + dk**2)  # every segment has the same length on screen
        ax_map.plot([xk - dx, xk + dx], [yk - dk * dx, yk + dk * dx], color=PALETTE[3],
                    linewidth=1.2)
    ax_map.set_ylim(c["x"][0], c["x"][-1])
    ax_map.set_aspect("equal")
    ax_map.set_ylabel("$y$")
    ax_map.set_title(f"the map: {len(c['xs']) - 1} bins on [{-b:g}, {b:g}], identity outside",
                     fontsize=10)
    ax_map.legend(fontsize=7, loc="upper left")

    ax_slope.plot(c["x"], c["dydx"], color=PALETTE[0], linewidth=2)
    ax_slope.plot(c["xs"], c["ds"], "o", color=PALETTE[3], markersize=5, label="$d_k$ at the knots")
    ax_slope.axhline(1.0, color=grey, linestyle="--", linewidth=1)
    ax_slope.set_yscale("log")
    ax_slope.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_slope.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_slope.yaxis.set_minor_formatter(NullFormatter())
    ax_slope.set_ylabel("$dy/dx$ (log scale)")
    ax_slope.set_title("its derivative: $d_k$ at the knots, 1 at the ends", fontsize=10)
    ax_slope.legend(fontsize=7, loc="upper left")

    if samples:
        z = torch.randn(samples, generator=torch.Generator().manual_seed(int(seed)), dtype=_F64)
        with torch.no_grad():
            y, _ = spline(z, _raw(raw, where).expand(samples, -1), b)
        ax_density.hist(y.numpy(), bins=120, range=(c["grid"][0], c["grid"][-1]), density=True,
                        histtype="stepfilled", color=PALETTE[0], alpha=0.35,
                        label=f"histogram of g(z), {samples} z")
    ax_density.plot(c["grid"], np.exp(_NORMAL.log_prob(torch.as_tensor(c["grid"])).numpy()),
                    color=grey, linestyle="--", linewidth=1, label="N(0, 1), the base")
    ax_density.plot(c["grid"], c["density"], color=PALETTE[1], linewidth=2,
                    label="density of g(Z) (formula)")
    top = float(np.quantile(c["density"], 0.995))
    ax_density.set_ylim(0, 1.15 * max(top, 0.45))
    ax_density.set_xlim(c["grid"][0], c["grid"][-1])
    ax_density.set_xlabel("$y$")
    ax_density.set_ylabel("density")
    ax_density.set_title("the density it makes from $Z \\sim N(0, 1)$", fontsize=10)
    ax_density.legend(fontsize=7, loc="upper left")
    return fig


def _info(s: dict) -> str:
    ds = ", ".join(f"{d:.3g}" for d in s["ds"])
    widths = ", ".join(f"{w:.2f}" for w in np.diff(s["xs"]))
    heights = ", ".join(f"{h:.2f}" for h in np.diff(s["ys"]))
    lines = [
        f"bin widths {widths}; heights {heights}; derivatives at the knots {ds} (the ends "
        "fixed to 1).",
        f"slope of g from {s['min_slope']:.3g} to {s['max_slope']:.3g}; increasing: "
        f"{s['increasing']}; the density of g(Z) integrates to {s['mass']:.4f}.",
    ]
    if s["at_minimum"]:
        lines.append(
            f"A bin is close to its minimum share ({s['smallest_bin']:.2e} of the interval, "
            f"MIN_BIN = {MIN_BIN:g}): the softmax gave it almost nothing, the minimum keeps it "
            "open."
        )
    return "<small>" + "<br>".join(html.escape(line) for line in lines) + "</small>"


class SplineExplorer(Explorer):
    """The widget of :func:`spline_explorer`: ``children = [controls, image, info, message]``.

    Attributes:
        sliders: ``{name: slider}``: ``w1 .. wK`` (widths), ``h1 .. hK`` (heights),
            ``d1 .. d{K-1}`` (inner derivatives), the ``3K - 1`` numbers of ``raw`` in
            order; setting a slider's ``value`` redraws.
        bound: the interval of the spline.
        image, info, message, redraws: as for :class:`nfcourse.viz.widgets.Explorer`.
    """

    def __init__(self, sliders: dict[str, widgets.FloatSlider], bound: float, samples: int):
        self.bound, self.samples = bound, samples
        super().__init__(sliders, spline_figure, lambda *v: _info(spline_summary(v, bound)))
        self.children[0].layout.grid_template_columns = "repeat(4, 240px)"

    def redraw(self) -> None:
        raw = self.values()
        try:
            fig = Figure(figsize=(12, 3.6), layout="constrained")
            spline_figure(raw, self.bound, fig=fig, samples=self.samples)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            self.image.value = buf.getvalue()
            self.info.value = self._info(*raw)
            self.message.value = ""
            self.redraws += 1
        except Exception as err:  # noqa: BLE001 - shown in the widget, never lost
            self.message.value = _error_html(err)


def spline_explorer(
    bins: int = 4,
    bound: float = 3.0,
    start: Sequence[float] | None = None,
    samples: int = 20_000,
) -> SplineExplorer:
    """Sliders for the ``3K - 1`` numbers of one spline of ``bins`` bins, in ``[-4, 4]``.

    Each change redraws :func:`spline_figure` and the text under it
    (:func:`spline_summary`). ``start``: the first values (default: all 0, the
    identity). Any slider values give a valid spline: the softmax, the minimum
    bin size and the softplus take care of it.
    """
    where = "spline_explorer"
    bins = check_int(bins, "bins", where, smallest=2, meaning="the number of bins")
    bound = check_number(bound, "bound", where, positive=True, example="3.0")
    n = 3 * bins - 1
    values = [0.0] * n if start is None else _raw(start, where).tolist()
    if len(values) != n:
        raise ValueError(f"{where}: `start` must hold 3 * bins - 1 = {n} numbers, got "
                         f"{len(values)}.")
    names = ([f"w{k + 1}" for k in range(bins)] + [f"h{k + 1}" for k in range(bins)]
             + [f"d{k + 1}" for k in range(bins - 1)])
    sliders = {}
    for name, value in zip(names, values, strict=True):
        slider = _slider(name, max(-4.0, min(4.0, value)), -4, 4, step=0.1)
        slider.layout.width = "230px"
        sliders[name] = slider
    return SplineExplorer(sliders, bound, samples)
