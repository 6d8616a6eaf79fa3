"""Interactive explorers for the lessons (ipywidgets, JupyterLab).

Three widgets, each a thin shell around a *pure* drawing function that the
tests call directly (an error inside a widget callback is only printed, so a
headless run of a notebook would never notice it):

========================  =====================================  ==============================
widget                    what it shows                          pure function behind it
========================  =====================================  ==============================
:func:`layer_stepper`     a flow's points after layer k, k = 0   :func:`stage_figure`
                          (base) ... K (data), one slider
:func:`planar_explorer`   N(0, I) pushed through ONE planar      :func:`planar_density_figure`,
                          layer; sliders u1, u2, w1, w2, b       :func:`planar_summary`
:func:`radial_explorer`   N(0, I) pushed through ONE radial      :func:`radial_density_figure`,
                          layer; sliders z0_1, z0_2, alpha,      :func:`radial_summary`
                          beta
========================  =====================================  ==============================

How the widgets draw: each redraw renders a fresh matplotlib ``Figure`` (made
without pyplot, so nothing accumulates in pyplot's figure registry and no
figure needs closing) to PNG and puts the bytes in an ``ipywidgets.Image``.
Replacing an image's bytes does not clear the output area first, so nothing
flickers, and it works with any matplotlib backend. A redraw that fails shows
the error in the widget's ``message`` line and keeps the last picture.

The densities are computed as a learner would: ``nf.Flow([layer]).log_prob`` on
a grid, through the layer's inverse (numerical for planar, closed form for
radial), in float64.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ..data.grid import Bounds, grid, xy_bounds
from ..flow import Flow
from ..layers import Planar, Radial
from ..validate import check_int, check_number
from .plots import DENSITY_CMAP, SECTOR_COLORS, flow_stages, get_axes, sector, to_numpy

__all__ = [
    "Explorer",
    "Stepper",
    "layer_stepper",
    "planar_density_figure",
    "planar_explorer",
    "planar_summary",
    "radial_density_figure",
    "radial_explorer",
    "radial_summary",
    "stage_figure",
]

_F64 = torch.float64
_DPI = 100


# --- shared helpers ------------------------------------------------------------------------------


def _image_layout() -> widgets.Layout:
    # Shown at its own size: stretched to the notebook's width, the picture would blur.
    return widgets.Layout(width="auto", max_width="100%", align_self="flex-start")


def _render_png(draw: Callable[[Axes], object], figsize: tuple[float, float]) -> bytes:
    """Draw on a fresh pyplot-free figure and return it as PNG bytes."""
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.1, top=0.88)  # fixed: no layout pass
    draw(fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _error_html(err: Exception) -> str:
    return (
        f"<span style='color:#d55e00'><b>{type(err).__name__}:</b> "
        f"{html.escape(str(err))}</span>"
    )


def _density_image(
    ax: Axes, flow: Flow, bounds: Bounds, resolution: int
) -> tuple[np.ndarray, bool]:
    """Draw ``exp(flow.log_prob)`` on a grid; return ``(density, clipped)``.

    A layer at the edge of its constraint squeezes mass onto a line (planar) or
    a point (radial), where the density is huge or infinite: then the colour
    scale stops at the 99.5% quantile (``clipped``), so the rest stays visible.
    Non-finite values (an infinite density exactly at a singular point) are
    drawn in the top colour.
    """
    points, _, _ = grid(bounds, resolution, _F64)
    with torch.no_grad():
        log_p = flow.log_prob(points).numpy()
    p = np.exp(log_p)
    p = np.where(np.isnan(p), np.inf, p).reshape(resolution, resolution)
    finite = p[np.isfinite(p)]
    (x0, x1), (y0, y1) = xy_bounds(bounds)
    top = float(finite.max()) if finite.size else 1.0
    q = float(np.quantile(finite, 0.995)) if finite.size else 1.0
    clipped = bool(top > 3 * q or finite.size < p.size)
    vmax = q if clipped else top
    ax.imshow(
        np.minimum(p, vmax), origin="lower", extent=(x0, x1, y0, y1), cmap=DENSITY_CMAP,
        vmin=0.0, vmax=vmax, interpolation="nearest",
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal" if math.isclose(x1 - x0, y1 - y0) else "auto")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    return p, clipped


# --- the layer stepper ---------------------------------------------------------------------------


def _stages(flow: Flow, n: int, seed: int | None) -> list[np.ndarray]:
    """``[z_0, ..., z_K]`` as NumPy arrays (first two coordinates), reproducibly."""
    n = check_int(n, "n", "stage_figure", meaning="the number of points")
    return [to_numpy(s)[:, :2] for s in flow_stages(flow, n, seed, "stage_figure")]


def _layer_names(flow: Flow, k_max: int) -> list[str]:
    layers = list(getattr(getattr(flow, "transform", None), "layers", []))
    return [type(layer).__name__ for layer in layers] or ["layer"] * k_max


def _check_k(k: object, k_max: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= k_max:
        raise ValueError(
            f"stage_figure: `k` must be an int from 0 (the base samples) to K = {k_max} (after "
            f"the last layer) for this flow of {k_max} layers, got {k!r}."
        )
    return int(k)


def _draw_stage(
    ax: Axes,
    stages: list[np.ndarray],
    k: int,
    names: Sequence[str],
    bounds: Bounds | None,
    data: np.ndarray | None,
) -> Axes:
    k_max = len(stages) - 1
    colors = np.array(SECTOR_COLORS)[sector(stages[0])]
    if data is not None:
        ax.scatter(*data.T, s=2, c="#bbbbbb", alpha=0.5, linewidths=0, label="data")
    ax.scatter(*stages[k].T, c=colors, s=3, alpha=0.8, linewidths=0)
    if bounds is None:  # one frame for every k, so the picture does not jump
        everything = np.concatenate(stages + ([data] if data is not None else []))
        lo, hi = np.nanmin(everything, 0), np.nanmax(everything, 0)
        pad = 0.05 * (hi - lo) + 1e-9
        bounds = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
    (x0, x1), (y0, y1) = xy_bounds(bounds)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    if k == 0:
        title = f"k = 0: base samples z (flow of {k_max} layers)"
    elif k == k_max:
        title = f"k = {k} (last): data x, after {names[k - 1]}"
    else:
        title = f"k = {k} of {k_max}: after layer {k} ({names[k - 1]})"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    if data is not None:
        ax.legend(loc="upper right", fontsize=8, markerscale=4)
    return ax


def _data_array(data: object) -> np.ndarray | None:
    if data is None:
        return None
    arr = to_numpy(data)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"`data` must have shape (N, 2) (or (N, D >= 2)), got {arr.shape}.")
    return arr[:, :2]


def stage_figure(
    flow: Flow,
    k: int,
    n: int = 2000,
    bounds: Bounds | None = (-4, 4),
    seed: int | None = 0,
    ax: Axes | None = None,
    data: Tensor | np.ndarray | None = None,
) -> Axes:
    """The points of a flow after its first ``k`` layers (``k = 0``: the base samples).

    Each point keeps the colour of the direction of its base sample (six
    60-degree sectors around the origin), as in
    :func:`nfcourse.viz.plots.plot_stages`, so one can follow a region through the
    layers. The same ``seed`` gives the same points for every ``k``.

    Args:
        flow: an :class:`nfcourse.Flow` with ``K`` layers (its first two
            coordinates are drawn).
        k: ``0 <= k <= K`` (else a ``ValueError`` that says the range).
        n: number of points.
        bounds: axis limits, ``(lo, hi)`` or ``((x_lo, x_hi), (y_lo, y_hi))``;
            ``None``: one frame that holds every stage (and the data).
        seed: seed of the base samples (``None``: torch's global random state).
        ax: axes to draw on (default: a new pyplot figure).
        data: optional points ``(N, 2)`` drawn in grey behind, e.g. the
            training data the flow should reach at ``k = K``.

    Returns:
        The axes; ``ax.collections[-1]`` holds the flow's points.
    """
    stages = _stages(flow, n, seed)
    k = _check_k(k, len(stages) - 1)
    names = _layer_names(flow, len(stages) - 1)
    return _draw_stage(get_axes(ax), stages, k, names, bounds, _data_array(data))


class Stepper(widgets.VBox):
    """The widget of :func:`layer_stepper`: ``children = [slider, image, message]``.

    Attributes:
        slider: the ``IntSlider`` for ``k`` (``0 .. K``); setting its ``value``
            redraws.
        image: the ``ipywidgets.Image`` holding the PNG picture.
        message: an ``HTML`` line, empty unless a redraw failed.
        redraws: how many pictures were drawn so far (1 after construction).
    """

    def __init__(self, draw: Callable[[Axes, int], object], k_max: int):
        self._draw = draw
        self.redraws = 0
        self.slider = widgets.IntSlider(
            value=0, min=0, max=k_max, step=1, description="layer k",
            continuous_update=True, layout=widgets.Layout(width="420px"),
        )
        self.image = widgets.Image(format="png", layout=_image_layout())
        self.message = widgets.HTML("")
        super().__init__([self.slider, self.image, self.message])
        self.slider.observe(self._on_change, names="value")
        self.redraw()

    def redraw(self) -> None:
        k = self.slider.value
        try:
            self.image.value = _render_png(lambda ax: self._draw(ax, k), (5.0, 4.6))
            self.message.value = ""
            self.redraws += 1
        except Exception as err:  # noqa: BLE001 - shown in the widget, never lost
            self.message.value = _error_html(err)

    def _on_change(self, change: dict) -> None:
        self.redraw()


def layer_stepper(
    flow: Flow,
    n: int = 2000,
    bounds: Bounds | None = (-4, 4),
    seed: int | None = 0,
    data: Tensor | np.ndarray | None = None,
) -> Stepper:
    """A slider ``k = 0 .. K`` that shows a flow's points after layer ``k``.

    The points are sampled once (``seed``), so moving the slider only redraws;
    every frame has the same axis limits. The picture for a given ``k`` is
    exactly :func:`stage_figure` ``(flow, k, n, bounds, seed, data=data)``.
    Display the returned widget (last line of a cell); set
    ``widget.slider.value`` (also ``widget.children[0].value``) to step from code.
    """
    stages = _stages(flow, n, seed)
    names = _layer_names(flow, len(stages) - 1)
    points = _data_array(data)
    if bounds is not None:
        xy_bounds(bounds)  # a bad value is an error now, not in a callback

    def draw(ax: Axes, k: int) -> None:
        _draw_stage(ax, stages, _check_k(k, len(stages) - 1), names, bounds, points)

    return Stepper(draw, len(stages) - 1)


# --- one planar layer ----------------------------------------------------------------------------


def _planar_layer(u1: float, u2: float, w1: float, w2: float, b: float) -> Planar:
    where = "planar_density_figure"
    values = [check_number(v, name, where) for v, name in
              ((u1, "u1"), (u2, "u2"), (w1, "w1"), (w2, "w2"), (b, "b"))]
    layer = Planar(2).to(_F64)
    with torch.no_grad():
        layer.u.copy_(torch.tensor(values[:2], dtype=_F64))
        layer.w.copy_(torch.tensor(values[2:4], dtype=_F64))
        layer.b.fill_(values[4])
    return layer


def planar_summary(u1: float, u2: float, w1: float, w2: float, b: float) -> dict:
    """The numbers behind the planar explorer's picture, for raw parameters ``u, w, b``.

    Returns a dict with ``u``, ``w``, ``u_hat`` (lists), ``b``, ``wu`` (``w.u``,
    the raw value), ``wu_hat`` (``w.u_hat``, always ``> -1``), ``raw_invertible``
    (``w.u > -1``: the layer would be invertible without the reparameterization),
    ``min_slope`` (the smallest Jacobian determinant ``min(1, 1 + w.u_hat)``,
    reached on the hyperplane ``w.z + b = 0`` when ``w.u_hat < 0``) and ``kind``:
    ``"translation"`` (``w = 0``: every point moves by ``u tanh(b)``),
    ``"contract"`` (``w.u_hat < 0``: points are pulled towards the hyperplane)
    or ``"expand"`` (pushed away from it).
    """
    layer = _planar_layer(u1, u2, w1, w2, b)
    with torch.no_grad():
        u_hat, w, u = layer.u_hat, layer.w, layer.u
        wu, wu_hat = float(w @ u), float(w @ u_hat)
    kind = "translation" if not bool(w.any()) else ("contract" if wu_hat < 0 else "expand")
    return {
        "u": u.tolist(), "w": w.tolist(), "b": float(b), "u_hat": u_hat.tolist(),
        "wu": wu, "wu_hat": wu_hat, "raw_invertible": wu > -1,
        "min_slope": min(1.0, 1.0 + wu_hat), "kind": kind,
    }


def planar_density_figure(
    u1: float,
    u2: float,
    w1: float,
    w2: float,
    b: float,
    ax: Axes | None = None,
    bounds: Bounds = (-4, 4),
    resolution: int = 150,
) -> Axes:
    """The density of ``N(0, I)`` pushed through one planar layer ``x = z + u_hat tanh(w.z + b)``.

    ``u = (u1, u2)`` is the raw parameter; the layer uses
    ``u_hat = nfcourse.layers.planar.constrain_u(u, w)`` (as :class:`nfcourse.Planar`
    does), so any slider values give an invertible layer: ``w.u_hat > -1``. The
    density is ``nf.Flow([layer]).log_prob`` on a grid, through the numerical
    inverse. Drawn on top: the hyperplane ``w.x + b = 0`` (its points do not
    move: ``tanh(0) = 0``), the raw ``u`` (grey, dashed) and ``u_hat`` (white)
    as arrows from the point of the hyperplane nearest the origin. The title
    says ``w.u`` and ``w.u_hat``; near ``w.u_hat = -1`` the colour scale is
    clipped (the density is huge on the hyperplane).

    Returns:
        The axes; the image is ``ax.images[-1]``, shape ``(resolution, resolution)``.
    """
    layer = _planar_layer(u1, u2, w1, w2, b)
    s = planar_summary(u1, u2, w1, w2, b)
    ax = get_axes(ax, figsize=(5.0, 4.6))
    _, clipped = _density_image(ax, Flow([layer]), bounds, resolution)
    (x0, x1), (y0, y1) = xy_bounds(bounds)
    w, u, u_hat = np.array(s["w"]), np.array(s["u"]), np.array(s["u_hat"])
    w_sq = float(w @ w)
    base = -b * w / w_sq if w_sq > 0 else np.zeros(2)
    if w_sq > 0:
        d = np.array([-w[1], w[0]]) / math.sqrt(w_sq)  # along the hyperplane
        t = 2 * (abs(x1 - x0) + abs(y1 - y0) + float(np.abs(base).sum()))
        ax.plot(*np.stack([base - t * d, base + t * d]).T, color="white", linestyle="--",
                linewidth=1.0, label="hyperplane $w \\cdot x + b = 0$")
    arrow = {"length_includes_head": True, "head_width": 0.15, "width": 0.02}
    if np.linalg.norm(u - u_hat) > 1e-9:
        ax.arrow(*base, *u, color="#bbbbbb", linestyle="--", alpha=0.9, label="raw $u$", **arrow)
    ax.arrow(*base, *u_hat, color="white", label="$\\hat u$ (used)", **arrow)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    raw = "> -1" if s["raw_invertible"] else "<= -1: would fold"
    note = "; colour scale clipped" if clipped else ""
    ax.set_title(
        f"one planar layer: w.u = {s['wu']:.3g} ({raw})\n"
        f"w.u_hat = {s['wu_hat']:.4g} > -1 (after constrain_u){note}",
        fontsize=9,
    )
    return ax


def _planar_info(s: dict) -> str:
    if s["kind"] == "translation":
        what = (
            "w = 0: tanh(w.z + b) = tanh(b) is the same for every point, so the layer only "
            f"translates by u tanh(b) = ({s['u'][0] * math.tanh(s['b']):.2f}, "
            f"{s['u'][1] * math.tanh(s['b']):.2f}) (the identity if b = 0)."
        )
    elif s["kind"] == "contract":
        what = (
            "w.u_hat < 0: points are pulled towards the hyperplane (the density piles up on it;"
            f" the Jacobian determinant drops to {s['min_slope']:.3g} there)."
        )
    else:
        what = "w.u_hat > 0: points are pushed away from the hyperplane (a valley along it)."
    if s["raw_invertible"]:
        fix = (
            f"raw w.u = {s['wu']:.3g} > -1 would already be invertible; constrain_u still "
            f"maps it to w.u_hat = -1 + softplus(w.u) = {s['wu_hat']:.4g} (smooth and "
            "one-to-one, so training can move u freely)."
        )
    else:
        fix = (
            f"raw w.u = {s['wu']:.3g} <= -1: the layer x = z + u tanh(w.z + b) would fold the "
            "plane (not invertible). constrain_u moves u along w only, to u_hat with "
            f"w.u_hat = -1 + softplus(w.u) = {s['wu_hat']:.4g} > -1."
        )
    return f"<small>{html.escape(fix)}<br>{html.escape(what)}</small>"


# --- one radial layer ----------------------------------------------------------------------------


def _inv_softplus(y: float) -> float:
    """``softplus^{-1}(y) = log(expm1(y))`` for ``y >= 0`` (``-inf`` at 0)."""
    if y == 0:
        return -math.inf
    return y + math.log(-math.expm1(-y))  # = log(expm1(y)), without overflow for large y


def _radial_values(z01, z02, alpha, beta, where: str) -> tuple[float, float, float, float, bool]:
    z01, z02 = check_number(z01, "z0_1", where), check_number(z02, "z0_2", where)
    alpha, beta = check_number(alpha, "alpha", where), check_number(beta, "beta", where)
    if not alpha > 0:
        raise ValueError(
            f"{where}: `alpha` must be > 0, got {alpha:g}: with alpha = 0, h(r) = 1/r and the "
            "map tears a hole at z0 (Rezende and Mohamed exclude it). Try a tiny alpha, e.g. "
            "0.001, to see the limit."
        )
    clipped = beta < -alpha
    return z01, z02, alpha, max(beta, -alpha), clipped


def _radial_layer(z01: float, z02: float, alpha: float, beta: float) -> Radial:
    """A :class:`nfcourse.Radial` whose constrained ``(alpha, beta)`` are the given values.

    The raw parameters are set through the inverse of the reparameterization:
    ``alpha_raw = softplus^{-1}(alpha)``, ``beta_raw = softplus^{-1}(beta + alpha)``
    (``-inf`` at the boundary ``beta = -alpha``).
    """
    layer = Radial(2).to(_F64)
    with torch.no_grad():
        layer.z0.copy_(torch.tensor([z01, z02], dtype=_F64))
        layer.alpha_raw.fill_(_inv_softplus(alpha))
        layer.beta_raw.fill_(_inv_softplus(beta + alpha))
    return layer


def radial_summary(z01: float, z02: float, alpha: float, beta: float) -> dict:
    """The numbers behind the radial explorer's picture.

    Returns a dict with ``z0`` (list), ``alpha``, ``beta`` (as asked), ``beta_used``
    (``max(beta, -alpha)``), ``clipped`` (``beta < -alpha``: not invertible, so
    the boundary ``beta = -alpha`` is drawn instead, the limit of the
    reparameterization ``beta = -alpha + softplus(beta_raw)``), ``singular``
    (``beta_used == -alpha``: the Jacobian is singular at ``z0``, the density
    infinite there), ``factor_at_z0`` (``(1 + beta/alpha)^2``: the density at
    ``z0`` is the base density there divided by it) and ``kind``: ``"identity"``,
    ``"expand"`` (``beta > 0``: points pushed away from ``z0``, the density
    thinned around it) or ``"contract"`` (pulled in).
    """
    z01, z02, alpha, beta_used, clipped = _radial_values(z01, z02, alpha, beta, "radial_summary")
    factor = (1 + beta_used / alpha) ** 2
    kind = "identity" if beta_used == 0 else ("expand" if beta_used > 0 else "contract")
    return {
        "z0": [z01, z02], "alpha": alpha, "beta": float(beta), "beta_used": beta_used,
        "clipped": clipped, "singular": beta_used == -alpha, "factor_at_z0": factor,
        "kind": kind,
    }


def radial_density_figure(
    z01: float,
    z02: float,
    alpha: float,
    beta: float,
    ax: Axes | None = None,
    bounds: Bounds = (-4, 4),
    resolution: int = 150,
) -> Axes:
    """The density of ``N(0, I)`` pushed through one radial layer around ``z0 = (z01, z02)``.

    ``x = z + beta h(r) (z - z0)``, ``h = 1 / (alpha + r)``, ``r = ||z - z0||``.
    ``alpha`` must be ``> 0`` (``ValueError`` otherwise). The layer is invertible
    iff ``beta >= -alpha``; a smaller ``beta`` is replaced by ``-alpha``, the
    boundary (the limit of the reparameterization ``beta = -alpha +
    softplus(beta_raw)`` of :class:`nfcourse.Radial`), and the title says so.
    The density is ``nf.Flow([layer]).log_prob`` on a grid (closed-form
    inverse). ``z0`` is marked with an x; at ``beta = -alpha`` the density is
    infinite there and the colour scale is clipped. A tiny ``alpha`` with
    ``beta > 0`` empties a disc of radius about ``beta`` around ``z0``: the
    "hole" of the blog post appears only in this limit, and around ``z0``.

    Returns:
        The axes; the image is ``ax.images[-1]``, shape ``(resolution, resolution)``.
    """
    s = radial_summary(z01, z02, alpha, beta)
    layer = _radial_layer(*s["z0"], s["alpha"], s["beta_used"])
    ax = get_axes(ax, figsize=(5.0, 4.6))
    _, clipped = _density_image(ax, Flow([layer]), bounds, resolution)
    ax.plot(*s["z0"], marker="x", color="white", markersize=9, mew=2, linestyle="none",
            label="$z_0$")
    ax.plot(0, 0, marker="+", color="#bbbbbb", markersize=9, mew=1.5, linestyle="none",
            label="base mean")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.6)
    if s["clipped"]:
        head = f"beta = {s['beta']:.3g} < -alpha = {-s['alpha']:.3g}: drawn at beta = -alpha"
    else:
        head = f"alpha = {s['alpha']:.3g}, beta = {s['beta']:.3g} >= -alpha = {-s['alpha']:.3g}"
    note = "; colour scale clipped" if clipped else ""
    ax.set_title(f"one radial layer\n{head}{note}", fontsize=9)
    return ax


def _radial_info(s: dict) -> str:
    if s["clipped"]:
        con = (
            f"beta = {s['beta']:.3g} < -alpha = {-s['alpha']:.3g}: the radius map "
            "r -> r (alpha + beta + r)/(alpha + r) would decrease near z0 and fold points "
            "through it (not invertible). The reparameterization beta = -alpha + "
            "softplus(beta_raw) can only come close to the boundary beta = -alpha, drawn here."
        )
    else:
        con = (
            f"beta = {s['beta']:.3g} >= -alpha = {-s['alpha']:.3g}: invertible. nf.Radial gets "
            "there from any raw numbers: alpha = softplus(alpha_raw), beta = -alpha + "
            "softplus(beta_raw)."
        )
    if s["singular"]:
        what = (
            "beta = -alpha: every point near z0 is pulled onto it; the density is infinite at z0."
        )
    elif s["kind"] == "expand":
        what = (
            f"beta > 0: points are pushed away from z0; the density at z0 is the base density "
            f"there divided by (1 + beta/alpha)^2 = {s['factor_at_z0']:.3g} (a thin spot, a "
            "real hole only as alpha -> 0)."
        )
    elif s["kind"] == "contract":
        what = (
            f"beta < 0: points are pulled towards z0; the density at z0 is multiplied by "
            f"1/(1 + beta/alpha)^2 = {1 / s['factor_at_z0']:.3g}."
        )
    else:
        what = "beta = 0: the identity."
    return f"<small>{html.escape(con)}<br>{html.escape(what)}</small>"


# --- the explorers -------------------------------------------------------------------------------


class Explorer(widgets.VBox):
    """The widget of :func:`planar_explorer` / :func:`radial_explorer`.

    ``children = [controls, image, info, message]``, where ``controls`` is a
    ``GridBox`` of the sliders.

    Attributes:
        sliders: ``{name: slider}``, in the order of the drawing function's
            arguments (planar: ``u1, u2, w1, w2, b``; radial:
            ``z0_1, z0_2, alpha, beta``); setting a slider's ``value`` redraws.
        image: the ``ipywidgets.Image`` holding the PNG picture.
        info: an ``HTML`` text saying what the constraint and the
            reparameterization do for the current values.
        message: an ``HTML`` line, empty unless a redraw failed.
        redraws: how many pictures were drawn so far (1 after construction).
    """

    def __init__(
        self,
        sliders: dict[str, widgets.ValueWidget],
        draw: Callable[..., object],
        info: Callable[..., str],
    ):
        self.sliders = sliders
        self._draw, self._info = draw, info
        self.redraws = 0
        self.image = widgets.Image(format="png", layout=_image_layout())
        self.info = widgets.HTML("")
        self.message = widgets.HTML("")
        controls = widgets.GridBox(
            list(sliders.values()),
            layout=widgets.Layout(grid_template_columns="repeat(2, 300px)"),
        )
        super().__init__([controls, self.image, self.info, self.message])
        for slider in sliders.values():
            slider.observe(self._on_change, names="value")
        self.redraw()

    def values(self) -> list[float]:
        return [s.value for s in self.sliders.values()]

    def redraw(self) -> None:
        values = self.values()
        try:
            self.image.value = _render_png(lambda ax: self._draw(*values, ax=ax), (5.0, 4.8))
            self.info.value = self._info(*values)
            self.message.value = ""
            self.redraws += 1
        except Exception as err:  # noqa: BLE001 - shown in the widget, never lost
            self.message.value = _error_html(err)

    def _on_change(self, change: dict) -> None:
        self.redraw()


def _slider(name: str, value: float, lo: float, hi: float, step: float = 0.05):
    return widgets.FloatSlider(
        value=value, min=lo, max=hi, step=step, description=name, continuous_update=False,
        readout_format=".2f", layout=widgets.Layout(width="290px"),
    )


def planar_explorer(bounds: Bounds = (-4, 4), resolution: int = 120) -> Explorer:
    """Sliders ``u1, u2, w1, w2`` (in [-4, 4]) and ``b`` (in [-3, 3]) for one planar layer.

    Starts at the blog post's example made valid: ``u = w = (1, -1)``, ``b = 0``.
    Each change redraws :func:`planar_density_figure` and the text under it
    (:func:`planar_summary`: ``w.u`` against -1, and what ``constrain_u`` did).
    """
    xy_bounds(bounds)
    sliders = {
        "u1": _slider("u1", 1.0, -4, 4), "u2": _slider("u2", -1.0, -4, 4),
        "w1": _slider("w1", 1.0, -4, 4), "w2": _slider("w2", -1.0, -4, 4),
        "b": _slider("b", 0.0, -3, 3),
    }

    def draw(u1, u2, w1, w2, b, ax):
        planar_density_figure(u1, u2, w1, w2, b, ax=ax, bounds=bounds, resolution=resolution)

    return Explorer(sliders, draw, lambda *v: _planar_info(planar_summary(*v)))


def radial_explorer(bounds: Bounds = (-4, 4), resolution: int = 120) -> Explorer:
    """Sliders ``z0_1, z0_2`` (in [-3, 3]), ``alpha`` (log scale, 0.001 to 10) and ``beta``
    (in [-4, 4]) for one radial layer.

    Starts at the blog post's example made valid: ``z0 = (1, 1)``, ``alpha = 1``,
    ``beta = 1``. Each change redraws :func:`radial_density_figure` and the text
    under it (:func:`radial_summary`: ``beta`` against ``-alpha``).
    """
    xy_bounds(bounds)
    sliders = {
        "z0_1": _slider("z0_1", 1.0, -3, 3), "z0_2": _slider("z0_2", 1.0, -3, 3),
        "alpha": widgets.FloatLogSlider(
            value=1.0, base=10, min=-3, max=1, step=0.05, description="alpha",
            continuous_update=False, readout_format=".3g", layout=widgets.Layout(width="290px"),
        ),
        "beta": _slider("beta", 1.0, -4, 4),
    }

    def draw(z01, z02, alpha, beta, ax):
        radial_density_figure(z01, z02, alpha, beta, ax=ax, bounds=bounds, resolution=resolution)

    return Explorer(sliders, draw, lambda *v: _radial_info(radial_summary(*v)))
