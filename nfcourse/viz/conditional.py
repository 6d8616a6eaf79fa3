"""Pictures of conditional densities (lesson 09): one context at a time, a slider over it,
and the coverage of a posterior approximation.

=============================  ======================================  ==========================
function                       what it shows                           pure function behind it
=============================  ======================================  ==========================
:func:`context_explorer`       a slider over a 1-D context ``c``: the  :func:`context_figure`
                               exact ``p(x | c)`` next to the flow's
                               ``q(x | c)``
:func:`coverage_figure`        expected coverage against the nominal   (itself)
                               level, one curve per method
=============================  ======================================  ==========================

As in :mod:`nfcourse.viz.widgets`, the slider redraws a fresh pyplot-free
figure into an ``ipywidgets.Image``; an error shows in the widget's message
line, and the tests call the pure function with the slider's extreme values.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ..data.grid import Bounds, grid, xy_bounds
from ..validate import check_int, check_number
from .plots import DENSITY_CMAP, get_axes, to_numpy
from .widgets import _error_html, _image_layout

__all__ = ["ContextExplorer", "context_explorer", "context_figure", "coverage_figure"]

_DPI = 100


@torch.no_grad()
def _density(log_prob: Callable[[Tensor], Tensor], bounds: Bounds, resolution: int) -> np.ndarray:
    points, _, _ = grid(bounds, resolution, torch.float64)
    return np.exp(to_numpy(log_prob(points)).astype(np.float64)).reshape(resolution, resolution)


def _flow_log_prob(flow, context: float) -> Callable[[Tensor], Tensor]:
    ref = next(iter(flow.parameters()), None)
    dtype = ref.dtype if ref is not None else torch.float32
    c = torch.full((flow.context_dim,), float(context), dtype=dtype)

    def log_prob(points: Tensor) -> Tensor:
        was_training = flow.training
        flow.eval()
        try:
            return flow.log_prob(points.to(dtype), context=c)
        finally:
            flow.train(was_training)

    return log_prob


def context_figure(
    flow,
    context: float,
    exact: Callable[[Tensor, float], Tensor] | None = None,
    axes: Sequence[Axes] | None = None,
    bounds: Bounds = (-4, 4),
    resolution: int = 100,
) -> list[Axes]:
    """The flow's density ``q(x | c)`` at one value of a 1-D context, next to the exact one.

    Args:
        flow: a conditional :class:`~nfcourse.Flow` on 2-D points with ``context_dim = 1``.
        context: the value of ``c``.
        exact: ``(points, c) -> log p(x | c)``, drawn in the first panel (e.g.
            ``Banana().log_prob``); ``None`` draws the flow alone.
        axes: two axes (one without ``exact``); new ones if ``None``.
        bounds, resolution: the grid of the pictures.

    Both panels share one colour scale, so their heights compare. Returns the axes.
    """
    context = check_number(context, "context", "context_figure", example="0.5")
    resolution = check_int(resolution, "resolution", "context_figure")
    xy_bounds(bounds)
    if getattr(flow, "context_dim", None) != 1:
        raise ValueError(
            "context_figure: `flow` must be a conditional flow with a 1-D context "
            f"(context_dim=1), got context_dim={getattr(flow, 'context_dim', None)}."
        )
    panels = [("flow q(x | c)", _flow_log_prob(flow, context))]
    if exact is not None:
        panels.insert(0, ("exact p(x | c)", lambda p: exact(p, context)))
    if axes is None:
        fig = Figure(figsize=(4.2 * len(panels), 3.8))
        axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    if len(axes) != len(panels):
        raise ValueError(f"context_figure: `axes` must hold {len(panels)} axes, got {len(axes)}.")
    images = [_density(fn, bounds, resolution) for _, fn in panels]
    top = max(float(np.nanmax(im)) for im in images)
    (x0, x1), (y0, y1) = xy_bounds(bounds)
    for ax, (title, _), image in zip(axes, panels, images, strict=True):
        ax.imshow(
            image,
            origin="lower",
            extent=(x0, x1, y0, y1),
            cmap=DENSITY_CMAP,
            vmin=0.0,
            vmax=top,
            interpolation="nearest",
            aspect="auto",
        )
        ax.set_title(f"{title}, c = {context:.2f}", fontsize=10)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    return list(axes)


class ContextExplorer(widgets.VBox):
    """The widget of :func:`context_explorer`: ``children = [slider, image, message]``.

    Attributes:
        slider: the ``FloatSlider`` for ``c``; setting its ``value`` redraws.
        image: the ``ipywidgets.Image`` holding the PNG picture.
        message: an ``HTML`` line, empty unless a redraw failed.
        redraws: how many pictures were drawn so far (1 after construction).
    """

    def __init__(self, draw: Callable[[float], Figure], slider: widgets.FloatSlider):
        self._draw = draw
        self.redraws = 0
        self.slider = slider
        self.image = widgets.Image(format="png", layout=_image_layout())
        self.message = widgets.HTML("")
        super().__init__([self.slider, self.image, self.message])
        self.slider.observe(lambda change: self.redraw(), names="value")
        self.redraw()

    def redraw(self) -> None:
        try:
            fig = self._draw(self.slider.value)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=_DPI)
            self.image.value = buf.getvalue()
            self.message.value = ""
            self.redraws += 1
        except Exception as err:  # noqa: BLE001 - shown in the widget, never lost
            self.message.value = _error_html(err)


def context_explorer(
    flow,
    exact: Callable[[Tensor, float], Tensor] | None = None,
    context_range: tuple[float, float] = (-1.5, 1.5),
    step: float = 0.1,
    bounds: Bounds = (-4, 4),
    resolution: int = 90,
) -> ContextExplorer:
    """A slider over a 1-D context ``c`` in ``context_range``: each move redraws
    :func:`context_figure` (the exact density next to the flow's) for the new ``c``."""
    lo, hi = (float(v) for v in context_range)
    if not lo < hi:
        raise ValueError(
            f"context_explorer: `context_range` must be (lo, hi) with lo < hi, got {(lo, hi)}."
        )
    step = check_number(step, "step", "context_explorer", positive=True, example="0.1")
    context_figure(flow, lo, exact, bounds=bounds, resolution=4)  # bad arguments fail now

    def draw(c: float) -> Figure:
        n = 1 if exact is None else 2
        fig = Figure(figsize=(4.2 * n, 3.7), layout="constrained")
        axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
        context_figure(flow, c, exact, axes=axes, bounds=bounds, resolution=resolution)
        return fig

    slider = widgets.FloatSlider(
        value=round((lo + hi) / 2, 6),
        min=lo,
        max=hi,
        step=step,
        description="context c",
        continuous_update=False,
        readout_format=".2f",
        layout=widgets.Layout(width="420px"),
    )
    return ContextExplorer(draw, slider)


def coverage_figure(
    curves: Mapping[str, Sequence[float] | Tensor | np.ndarray],
    levels: Sequence[float] | Tensor | np.ndarray,
    ax: Axes | None = None,
    band: float | None = None,
) -> Axes:
    """Expected coverage against the nominal credibility level, one line per method.

    A calibrated posterior puts the true parameter inside its highest-density
    region of level ``alpha`` a fraction ``alpha`` of the time: its curve lies on
    the diagonal. Below it the approximation is overconfident (its regions are
    too small), above it underconfident.

    Args:
        curves: ``{name: coverage at each level}``.
        levels: the nominal levels, in (0, 1).
        band: if given, the number of test pairs ``n``: a grey band of two binomial
            standard errors, ``2 sqrt(alpha (1 - alpha) / n)``, around the diagonal.
    """
    ax = get_axes(ax, (4.2, 4.0))
    levels = np.asarray(to_numpy(levels), dtype=float)
    if band is not None:
        se = 2 * np.sqrt(levels * (1 - levels) / float(band))
        ax.fill_between(levels, levels - se, levels + se, color="0.85", label="±2 s.e. (binomial)")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    for name, values in curves.items():
        ax.plot(levels, np.asarray(to_numpy(values), dtype=float), lw=2, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="credibility level", ylabel="expected coverage")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper left")
    return ax
