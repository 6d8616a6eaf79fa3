"""Plotting helpers for the lessons: densities, samples, a flow's stages, training curves.

Also the lessons' special pictures, kept here so that a lesson shows one call
instead of a wall of plotting code: areas under a map (lesson 01), a planar
layer that folds (lesson 03), a density's peaks (lesson 04) and MADE's masks
(lesson 05). Figures of several panels are laid out to be read at the width of
a notebook (about 10 inches, rows of at most four panels).

Every function draws on the axes it is given (``ax=...``) or on a new figure,
and returns the axes (or the figure), so that lessons can compose panels; none
calls ``plt.show()``. Colours are colorblind-safe: seaborn's "colorblind"
palette for lines and points, the perceptually uniform "viridis" for
densities.

A density can be given as anything with ``log_prob`` (an :class:`nfcourse.Flow`,
a ``torch.distributions`` distribution, a dataset or energy object) or as a
callable returning log-densities. Densities are evaluated on the *centres* of
the image's pixels, so the picture lines up exactly with ``extent=bounds``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..data.grid import Bounds, grid, xy_bounds
from ..validate import check_int, check_number, dtype_device, make_generator

__all__ = [
    "PALETTE",
    "grid",
    "plot_1d_density",
    "plot_density",
    "plot_losses",
    "plot_samples",
    "plot_stages",
]

# seaborn.color_palette("colorblind").as_hex(), copied so that importing this
# module does not import seaborn (about 1 s); tests/test_plots.py checks it.
PALETTE = [
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
]
DENSITY_CMAP = "viridis"
# six palette colours for the six 60-degree sectors around the origin, ordered so
# that neighbouring sectors never get similar colours
SECTOR_COLORS = [PALETTE[i] for i in (0, 1, 9, 3, 2, 4)]
_BATCH = 16384

def get_axes(ax: Axes | None, figsize: tuple[float, float] = (4.0, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def to_numpy(x: object) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _log_density_fn(model: object) -> Callable[[Tensor], Tensor]:
    fn = getattr(model, "log_prob", None)
    if callable(fn):
        return fn
    if callable(model):
        return model
    raise TypeError(
        "expected a model with log_prob (a Flow, a torch distribution, a dataset or energy "
        f"object) or a callable returning log-densities, got {type(model).__name__}."
    )


@torch.no_grad()
def _evaluate(model: object, points: Tensor) -> np.ndarray:
    """Log-densities at ``points`` as a float64 NumPy array; ``-inf`` outside the support.

    Runs in batches without gradients; modules are put in ``eval()`` mode
    for the evaluation. For ``torch.distributions`` the points outside the
    support are masked first (``log_prob`` would raise on them).
    """
    fn = _log_density_fn(model)
    n = points.shape[0]
    inside = torch.ones(n, dtype=torch.bool, device=points.device)
    if isinstance(model, torch.distributions.Distribution):
        ok = model.support.check(points)
        if ok.dim() > 1:  # an elementwise support on an event of several coordinates
            ok = ok.all(-1)
        if ok.shape == inside.shape:
            inside = ok
    was_training = getattr(model, "training", None)
    if isinstance(model, nn.Module):
        model.eval()
    try:
        out = torch.full((n,), -math.inf, dtype=torch.float64)
        idx = inside.nonzero().squeeze(-1)
        for chunk in idx.split(_BATCH):
            try:
                lp = fn(points[chunk])
            except ValueError as err:
                raise ValueError(
                    f"evaluating the log-density on the grid failed: {err} If some grid points "
                    "lie outside the model's support, choose `bounds` inside it (e.g. (0, 1) "
                    "for a flow that ends with a Sigmoid)."
                ) from err
            if not isinstance(lp, Tensor):
                lp = torch.as_tensor(lp)
            if lp.dim() > 1 and lp.shape[-1] == 1:
                lp = lp.squeeze(-1)
            if lp.shape != chunk.shape:
                raise ValueError(
                    f"the log-density must return one value per point, shape "
                    f"({chunk.shape[0]},) for points of shape {tuple(points[chunk].shape)}; "
                    f"got {tuple(lp.shape)}. (A torch distribution with one distribution per "
                    "coordinate, like Normal(torch.zeros(2), 1), needs "
                    "torch.distributions.Independent(d, 1).)"
                )
            out[chunk.cpu()] = lp.detach().double().cpu()
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    values = out.numpy()
    if np.isnan(values).any():
        warnings.warn(
            f"{int(np.isnan(values).sum())} grid points have a NaN log-density; they are "
            "left blank in the picture.",
            UserWarning,
            stacklevel=3,
        )
    return values


def plot_density(
    model_or_fn: object,
    ax: Axes | None = None,
    bounds: Bounds = (-4, 4),
    resolution: int = 200,
    log: bool = False,
    title: str | None = None,
    colorbar: bool = False,
    cmap: str = DENSITY_CMAP,
) -> Axes:
    """Draw a 2-D density as an image.

    Args:
        model_or_fn: a Flow, a torch distribution, an object with ``log_prob``,
            or a callable ``points (M, 2) -> log-densities (M,)``.
        ax: axes to draw on (a new figure if ``None``).
        bounds: ``(lo, hi)`` for both axes or ``((x_lo, x_hi), (y_lo, y_hi))``.
        resolution: pixels per side.
        log: draw ``log p`` instead of ``p``. Zero densities (``-inf``) are left
            blank, and values more than 20 nats below the maximum are drawn in
            the lowest colour (the tails would otherwise take the whole scale).
        title: the axes' title.
        colorbar: add a colour bar.
        cmap: the colour map.

    Returns:
        The axes; the image is ``ax.images[-1]``, an array of shape
        ``(resolution, resolution)`` with ``x`` along the horizontal axis.
    """
    ax = get_axes(ax)
    dtype, device = dtype_device(model_or_fn)
    points, _, _ = grid(bounds, resolution, dtype)
    values = _evaluate(model_or_fn, points.to(device)).reshape(resolution, resolution)
    finite = values[np.isfinite(values)]
    if log:
        image = np.ma.masked_invalid(values)
        top = finite.max() if finite.size else 0.0
        vmin = max(finite.min(), top - 20.0) if finite.size else None
        vmax = top if finite.size else None
        label = "log density"
    else:
        image = np.ma.masked_invalid(np.exp(values))  # exp(-inf) = 0; NaN stays blank
        vmin, vmax, label = 0.0, None, "density"
    (x0, x1), (y0, y1) = xy_bounds(bounds)
    im = ax.imshow(
        image, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=vmin, vmax=vmax,
        interpolation="nearest", aspect="auto",
    )
    ax.set_aspect("equal" if math.isclose(x1 - x0, y1 - y0) else "auto")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label)
    return ax


def plot_samples(
    x: Tensor | np.ndarray,
    ax: Axes | None = None,
    bounds: Bounds | None = None,
    s: float = 2,
    alpha: float = 0.5,
    title: str | None = None,
    color: object = None,
    label: str | None = None,
) -> Axes:
    """Scatter 2-D points of shape ``(N, 2)`` (tensor or array).

    ``bounds`` fixes the axis limits (default: fit the points); ``color`` is
    one colour or one value per point (default: the palette's first colour).
    """
    pts = to_numpy(x)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(
            f"plot_samples: `x` must have shape (N, 2), got {pts.shape}. For points with more "
            "coordinates, choose two: x[:, [0, 1]]."
        )
    ax = get_axes(ax)
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, c=PALETTE[0] if color is None else color,
               linewidths=0, label=label)
    if bounds is not None:
        (x0, x1), (y0, y1) = xy_bounds(bounds)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="datalim" if bounds is None else "box")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is not None:
        ax.set_title(title)
    return ax


def sector(z: np.ndarray) -> np.ndarray:
    """The index (0-5) of the 60-degree sector around the origin that holds each point."""
    angle = np.arctan2(z[:, 1], z[:, 0])  # in [-pi, pi]
    return np.floor((angle + math.pi) / (math.pi / 3)).astype(int) % 6


def panel_grid(
    panels: int, max_cols: int = 4, panel_size: tuple[float, float] = (2.5, 2.6)
) -> tuple[Figure, list[Axes]]:
    """A figure with ``panels`` axes in rows of at most ``max_cols``, read at a notebook's width.

    The rows are as full as possible and equally long (7 panels: 4 + 3; 6 panels: 3 + 3);
    unused places of the last row are removed. Returns the figure and the axes in
    reading order.
    """
    panels = check_int(panels, "panels", "panel_grid")
    max_cols = check_int(max_cols, "max_cols", "panel_grid")
    rows = math.ceil(panels / max_cols)
    cols = math.ceil(panels / rows)
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False,
        layout="constrained",
    )
    flat = list(axes.flat)
    for ax in flat[panels:]:
        fig.delaxes(ax)
    return fig, flat[:panels]


def flow_stages(flow: object, n: int, seed: int | None, where: str) -> list[Tensor]:
    """``[z_0, ..., z_K]``: ``n`` base points and their images after every layer.

    With ``seed``, drawn from a private generator on the flow's device (the same
    points every time, torch's global random state untouched). Points must have at
    least 2 coordinates, since the pictures show the first two.
    """
    if not callable(getattr(flow, "stages", None)):
        raise TypeError(
            f"{where}: `flow` must be an nfcourse.Flow (something with a stages(n) method), "
            f"got {type(flow).__name__}."
        )
    generator = make_generator(seed, None, where, dtype_device(flow)[1])
    stages = flow.stages(n, generator=generator)
    if stages[0].shape[-1] < 2:
        raise ValueError(f"{where}: needs points with at least 2 coordinates.")
    return stages


def plot_stages(
    flow: nn.Module,
    n: int = 2000,
    bounds: Bounds | None = None,
    titles: Sequence[str] | None = None,
    seed: int | None = None,
    max_cols: int = 4,
) -> Figure:
    """One panel per stage of a flow: base samples, after layer 1, ..., data.

    Every point keeps the colour of the *direction* of its base sample (six
    60-degree sectors around the origin, six colours), so one can follow where
    each region of the base goes through the layers. For ``D > 2`` the first
    two coordinates are drawn. The panels wrap into rows of at most
    ``max_cols`` (see :func:`panel_grid`), so that a deep flow stays readable at
    the width of a notebook.

    Args:
        flow: an :class:`nfcourse.Flow` (anything with ``stages(n)``).
        n: number of points.
        bounds: shared axis limits for every panel (default: each panel fits its points).
        titles: one title per panel (``len(flow layers) + 1``).
        seed: makes the points reproducible.
        max_cols: the most panels in one row.

    Returns:
        The figure; ``fig.axes`` holds the ``K + 1`` panels, in reading order.
    """
    stages = flow_stages(flow, n, seed, "plot_stages")
    layers = list(getattr(getattr(flow, "transform", None), "layers", []))
    k = len(stages) - 1
    if titles is None:
        names = [type(layer).__name__ for layer in layers] or ["layer"] * k
        titles = ["base z"] + [f"after layer {i + 1}\n{names[i]}" for i in range(k)]
        if k:
            titles[-1] = f"data x (after layer {k})\n{names[k - 1]}"
    elif len(titles) != k + 1:
        raise ValueError(
            f"plot_stages: `titles` must have one entry per panel ({k + 1}: the base and "
            f"{k} layers), got {len(titles)}."
        )
    z0 = to_numpy(stages[0])
    colors = np.array(SECTOR_COLORS)[sector(z0)]
    fig, axes = panel_grid(k + 1, max_cols)
    for ax, points, title in zip(axes, stages, titles, strict=True):
        ax.scatter(*to_numpy(points)[:, :2].T, c=colors, s=3, alpha=0.8, linewidths=0)
        if bounds is not None:
            (x0, x1), (y0, y1) = xy_bounds(bounds)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="datalim" if bounds is None else "box")
        ax.tick_params(labelsize=8)
        ax.set_title(title, fontsize=10)
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (shorter windows at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


# what each kind of training history holds: (its curve's name, the y-axis label)
LOSS_LABELS = {
    "nll": ("train NLL", "NLL (nats)"),
    "reverse_kl": ("train objective", "KL(q || p) - log Z (nats)"),
    "flow_matching": ("train flow-matching loss", "flow-matching loss (squared velocity error)"),
}


def plot_losses(
    history: object,
    ax: Axes | None = None,
    entropy: float | None = None,
    label: str | None = None,
    log_normalizer: float | None = None,
) -> Axes:
    """Training curves of a :class:`~nfcourse.train.History`, in nats.

    Draws the minibatch losses (faint), their moving average, and the
    validation NLL (markers). ``entropy`` adds a horizontal line at the data
    distribution's entropy, the lowest NLL any model can reach. For a
    reverse-KL history, ``log_normalizer`` (``log Z``) adds the line at
    ``-log Z``, the lowest value of its objective (where ``KL = 0``). A flow-matching
    history (lesson 10) is labelled as the squared velocity error it is, with no bound.
    Several histories can share one axes: pass a ``label`` to each.
    """
    kind = getattr(history, "kind", "nll")
    if kind not in LOSS_LABELS:
        raise ValueError(
            f"plot_losses: a history of kind {kind!r} is not one it can label; expected one of "
            f"{sorted(LOSS_LABELS)} (the kind that nf.fit, nf.fit_reverse_kl or "
            "nf.continuous.fit_flow_matching writes)."
        )
    if kind == "flow_matching" and (entropy is not None or log_normalizer is not None):
        raise ValueError(
            "plot_losses: a flow-matching loss is a squared velocity error, not on the scale of "
            "an NLL or a KL: an entropy or -log Z line means nothing next to it. Drop entropy= "
            "and log_normalizer=, and compare held-out NLLs instead (continuous.log_prob)."
        )
    name, ylabel = LOSS_LABELS[kind]
    ax = get_axes(ax, figsize=(6.0, 3.5))
    step = np.asarray(history.step, dtype=float)
    loss = np.asarray(history.loss, dtype=float)
    prefix = f"{label}: " if label else ""
    color = PALETTE[sum(line.get_gid() == "nfcourse-train" for line in ax.lines) % len(PALETTE)]
    if len(loss):
        window = max(1, len(loss) // 50)
        ax.plot(step, loss, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(step, _smooth(loss, window), color=color, linewidth=1.5,
                label=f"{prefix}{name} (minibatch, mean of {window})", gid="nfcourse-train")
    if getattr(history, "val_nll", None):
        ax.plot(history.val_step, history.val_nll, color=color, linestyle="--", marker="o",
                markersize=3, label=f"{prefix}validation NLL", gid="nfcourse-val")
    if entropy is not None:
        ax.axhline(entropy, color="black", linestyle=":", linewidth=1.2, gid="nfcourse-bound",
                   label=f"entropy of the data = {entropy:.3f} (best possible NLL)")
    if log_normalizer is not None:
        ax.axhline(-log_normalizer, color="black", linestyle=":", linewidth=1.2,
                   gid="nfcourse-bound", label=f"-log Z = {-log_normalizer:.3f} (KL = 0)")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if len(loss) or entropy is not None or log_normalizer is not None:
        ax.legend(fontsize=8)
    return ax


def plot_1d_density(
    model_or_fn: object,
    samples: Tensor | np.ndarray | None = None,
    ax: Axes | None = None,
    bounds: tuple[float, float] | None = None,
    bins: int = 60,
    resolution: int = 400,
    label: str = "density (formula)",
    title: str | None = None,
) -> Axes:
    """A 1-D density curve over a histogram of samples: formula vs histogram.

    Args:
        model_or_fn: a 1-D torch distribution (e.g. ``LogNormal(0, 1)``), a 1-D
            Flow, an object with ``log_prob``, or a callable mapping points of
            shape ``(M,)`` to log-densities ``(M,)``.
        samples: optional samples ``(N,)`` or ``(N, 1)``, drawn as a normalized histogram.
        bounds: the x range (default: the 0.5%-99.5% range of the samples
            widened by 10%, or (-4, 4) without samples).
        bins, resolution: histogram bins and curve points.

    Zero densities (``-inf`` log-densities) are drawn as 0; points where the
    function gives NaN are left out of the curve.
    """
    ax = get_axes(ax, figsize=(5.0, 3.5))
    xs_samples = None
    if samples is not None:
        xs_samples = to_numpy(samples).reshape(len(samples), -1)
        if xs_samples.shape[1] != 1:
            raise ValueError(
                f"plot_1d_density: `samples` must have shape (N,) or (N, 1), "
                f"got {tuple(np.shape(samples))}."
            )
        xs_samples = xs_samples[:, 0]
    if bounds is None:
        if xs_samples is not None and len(xs_samples):
            lo, hi = np.quantile(xs_samples, [0.005, 0.995])
            pad = 0.1 * (hi - lo) if hi > lo else 1.0
            bounds = (float(lo - pad), float(hi + pad))
        else:
            bounds = (-4.0, 4.0)
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise ValueError(f"plot_1d_density: `bounds` must have lo < hi, got {bounds!r}.")
    dtype, device = dtype_device(model_or_fn)
    xs = torch.linspace(lo, hi, resolution, dtype=dtype, device=device)
    # the shape the model expects: events of shape (1,) for Flows and 1-D vector models
    event_shape = getattr(model_or_fn, "event_shape", None)
    as_column = event_shape == torch.Size([1]) or (
        event_shape is None and getattr(model_or_fn, "dim", None) == 1
    )
    values = _evaluate(model_or_fn, xs[:, None] if as_column else xs)
    if xs_samples is not None:
        # Normalized by ALL samples, not only those inside the bounds (hist's density=True),
        # so that bars estimate the density even when the bounds cut off some mass.
        width = (hi - lo) / bins
        weights = np.full(len(xs_samples), 1.0 / (len(xs_samples) * width))
        ax.hist(xs_samples, bins=bins, range=(lo, hi), weights=weights, color=PALETTE[0],
                alpha=0.45, label=f"histogram of {len(xs_samples)} samples")
    ax.plot(xs.cpu().numpy(), np.exp(values), color=PALETTE[1], linewidth=2, label=label)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("$x$")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------
# Areas under a map of the plane (lesson 01)


def cell_outlines(
    lo: float = -2.0, hi: float = 2.0, n: int = 8, per_edge: int = 16
) -> tuple[Tensor, float]:
    """Outlines of an ``n x n`` grid of square cells covering ``[lo, hi]^2``, in float64.

    Each outline runs counterclockwise with ``per_edge`` points on each side, so
    that the curved image of a side under a nonlinear map is followed.

    Returns:
        ``(outlines, h)``: outlines of shape ``(n * n, 4 * per_edge, 2)``, cell by
        cell with ``x_1`` changing fastest, and the side ``h`` of a cell.
    """
    where = "cell_outlines"
    n = check_int(n, "n", where)
    per_edge = check_int(per_edge, "per_edge", where)
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ValueError(f"{where}: needs lo < hi, got lo = {lo!r}, hi = {hi!r}.")
    h = (hi - lo) / n
    t = torch.linspace(0, 1, per_edge + 1, dtype=torch.float64)[:-1]
    zero, one = torch.zeros_like(t), torch.ones_like(t)
    sides = [(t, zero), (one, t), (1 - t, one), (zero, 1 - t)]  # of the unit square
    unit = torch.cat([torch.stack(side, -1) for side in sides])
    ij = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="xy"), -1)
    corners = lo + h * ij.reshape(-1, 2).double()
    return corners[:, None, :] + h * unit, h


def signed_area(outline: Tensor) -> Tensor:
    """The area inside closed outlines ``(..., M, 2)`` by the shoelace formula: ``(...)``.

    Positive for a counterclockwise outline, negative for a clockwise one (a
    mirrored shape).
    """
    x, y = outline[..., 0], outline[..., 1]
    return 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)


def _abs_det_jacobian(f: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """``|det J_f|`` at each point ``(N, 2)`` of a map applied point by point."""
    points = points.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = f(points)
        rows = [torch.autograd.grad(out[:, i].sum(), points, retain_graph=i == 0)[0]
                for i in range(2)]
    return torch.linalg.det(torch.stack(rows, dim=1)).abs().detach()


def _draw_cells(ax: Axes, polygons: Tensor, title: str) -> None:
    from matplotlib.collections import PolyCollection

    n = math.isqrt(len(polygons))
    checker = [PALETTE[0] if (i // n + i % n) % 2 else PALETTE[9] for i in range(n * n)]
    checker[n * n // 2 + n // 2 + 1] = PALETTE[1]  # one cell to follow
    ax.add_collection(PolyCollection(to_numpy(polygons), facecolors=checker,
                                     edgecolors="white", linewidths=0.5))
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=10)


def plot_area_change(
    maps: dict[str, Callable[[Tensor], Tensor]],
    lo: float = -2.0,
    hi: float = 2.0,
    n: int = 8,
    max_cols: int = 2,
) -> Figure:
    """How maps of the plane change areas: a grid of cells, its images, and area vs ``|det J|``.

    Panels: the grid of ``n x n`` square cells on ``[lo, hi]^2`` (one cell in
    another colour, to follow); its image under each map, titled with the range
    of the cells' area ratios (measured on the mapped outlines with
    :func:`signed_area`); and every cell's measured area ratio against
    ``|det J|`` of the map at the cell's centre (from autograd), with the line
    ``y = x``.

    Args:
        maps: ``{name: f}`` with ``f`` mapping float64 points ``(..., 2)`` to ``(..., 2)``
            point by point.
        lo, hi, n: the grid of cells.
        max_cols: the most panels in one row.

    Returns:
        The figure; ``fig.axes`` are the grid, one panel per map, and the scatter.
    """
    if not isinstance(maps, dict) or not maps or not all(callable(f) for f in maps.values()):
        raise TypeError(
            "plot_area_change: `maps` must be a non-empty dict {name: function of points "
            f"(..., 2) -> (..., 2)}}, got {type(maps).__name__}."
        )
    outlines, h = cell_outlines(lo, hi, n)
    centres = outlines.mean(1)
    fig, axes = panel_grid(len(maps) + 2, max_cols, panel_size=(4.4, 3.6))
    _draw_cells(axes[0], outlines, f"z: cells of area {h * h:.2f}")
    for ax, (name, f), color in zip(axes[1:-1], maps.items(), PALETTE[1:], strict=False):
        with torch.no_grad():
            mapped = f(outlines)
        measured = signed_area(mapped) / signed_area(outlines)
        det = _abs_det_jacobian(f, centres)
        _draw_cells(ax, mapped, f"{name}: areas x{measured.min():.2f} to x{measured.max():.2f}")
        axes[-1].scatter(to_numpy(det), to_numpy(measured), s=14, color=color, label=name)
    axes[-1].axline((0, 0), slope=1, color="gray", lw=0.8, ls="--")
    axes[-1].set_xlabel("|det J| at the cell's centre")
    axes[-1].set_ylabel("measured area ratio")
    axes[-1].set_title("area ratio vs |det J|", fontsize=10)
    axes[-1].legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------
# A planar layer that folds (lesson 03)


def _planar_g(a: Tensor, wu: float, b: float = 0.0) -> Tensor:
    """The planar map along ``w``: ``a = w.z -> w.x = a + (w.u) tanh(a + b)``."""
    return a + wu * torch.tanh(a + b)


def fold_branches(
    wu: float, b: float = 0.0, std: float = 1.0, lo: float = -10.0, hi: float = 10.0,
    n: int = 200_001,
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The density of ``g(a) = a + wu tanh(a + b)`` for ``a ~ N(0, std^2)``, branch by branch.

    ``g`` is increasing where ``g'(a) = 1 + wu / cosh^2(a + b) > 0``. For
    ``wu >= -1`` that is everywhere (one branch); for ``wu < -1``, ``g`` has three
    monotone branches, split where ``cosh^2(a + b) = -wu``, and a point ``x`` can
    have three preimages. On each branch the change-of-variables formula
    ``p(x) = phi(a) / |g'(a)|`` holds; the density of ``g(a)`` is the *sum* over
    the branches.

    Returns:
        One ``(x, density, mass)`` per branch, in the order of ``a``: ``x`` sorted,
        the formula at those ``x`` (NumPy arrays, for ``np.interp``), and the
        branch's share of the probability (its integral over ``x``).
    """
    where = "fold_branches"
    wu = check_number(wu, "wu", where)
    b = check_number(b, "b", where)
    std = check_number(std, "std", where, positive=True)
    n = check_int(n, "n", where, smallest=3)
    cuts = [float(lo), float(hi)]
    if wu < -1:
        a_star = math.acosh(math.sqrt(-wu))
        cuts = [float(lo), -b - a_star, -b + a_star, float(hi)]
    branches = []
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        a = torch.linspace(start, stop, n, dtype=torch.float64)
        mid = (a[1:] + a[:-1]) / 2
        phi = torch.exp(-0.5 * (mid / std) ** 2) / (std * math.sqrt(2 * math.pi))
        density = phi / (1 + wu / torch.cosh(mid + b) ** 2).abs()
        dx = (_planar_g(a[1:], wu, b) - _planar_g(a[:-1], wu, b)).abs()  # cells, mapped to x
        x = _planar_g(mid, wu, b)
        order = x.argsort()
        branches.append((x[order].numpy(), density[order].numpy(), (density * dx).sum().item()))
    return branches


def plot_planar_fold(
    u: Sequence[float] = (-3.0, 1.5),
    w: Sequence[float] = (1.0, 0.0),
    b: float = 0.0,
    wu_values: Sequence[float] = (1.0, -0.5, -1.0, -3.0),
    n_patch: int = 6000,
    n_samples: int = 200_000,
    seed: int = 0,
) -> Figure:
    """What a planar layer ``x = z + u tanh(w.z + b)`` with ``w.u < -1`` does: it folds.

    Three panels: the map along ``w``, ``g(a) = a + (w.u) tanh(a + b)``, for each
    value of ``wu_values``; a uniform patch of ``z`` (``[-4, 4] x [-3, 3]``) mapped
    by the layer, coloured by the monotone branch of ``g`` its ``a = w.z`` lies
    on (they land on top of each other); and, for ``z ~ N(0, I)``, a histogram of
    ``w.x`` against the change-of-variables formula summed over every preimage
    and the formula with only the right-most preimage (:func:`fold_branches`).
    Legends sit under the panels, off the data.

    Returns:
        The figure; ``fig.axes`` are the three panels.
    """
    where = "plot_planar_fold"
    u_t = torch.as_tensor(u, dtype=torch.float64)
    w_t = torch.as_tensor(w, dtype=torch.float64)
    if u_t.shape != (2,) or w_t.shape != (2,) or not float(w_t.norm()) > 0:
        raise ValueError(
            f"{where}: `u` and `w` must be 2 numbers each, w not zero; got u = {list(u)!r}, "
            f"w = {list(w)!r}."
        )
    wu = float(w_t @ u_t)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", where, smallest=0))
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.3), layout="constrained")
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "fontsize": 8,
             "frameon": False}

    a = torch.linspace(-4, 4, 401, dtype=torch.float64)
    for value in wu_values:
        axes[0].plot(a, _planar_g(a, value, b), label=f"$w^T u$ = {value:g}")
    axes[0].set(xlabel="$a = w^T z$", ylabel="$w^T x = g(a)$")
    axes[0].set_title("the planar map along $w$", fontsize=10)
    axes[0].legend(ncol=2, **below)

    z = torch.rand(n_patch, 2, generator=gen, dtype=torch.float64)
    z = z * torch.tensor([8.0, 6.0], dtype=torch.float64) - torch.tensor([4.0, 3.0])
    s = z @ w_t + b
    x = z + u_t * torch.tanh(s)[:, None]
    if wu < -1:
        s_star = math.acosh(math.sqrt(-wu))
        branch = (s > -s_star).long() + (s > s_star).long()
        names = [f"$w^T z + b$ < {-s_star:.2f}", f"|$w^T z + b$| < {s_star:.2f}",
                 f"$w^T z + b$ > {s_star:.2f}"]
    else:
        branch, names = torch.zeros(len(z), dtype=torch.long), ["the patch (one branch)"]
    for k, name in enumerate(names):
        axes[1].scatter(*to_numpy(x[branch == k]).T, s=3, alpha=0.5, color=PALETTE[k],
                        label=name, linewidths=0)
    axes[1].set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    folded = f"folded: {len(names)} strips overlap" if len(names) > 1 else "not folded"
    axes[1].set_title(f"a patch of $z$, {folded}", fontsize=10)
    axes[1].legend(markerscale=4, **below)

    norm = float(w_t.norm())
    a_samples = norm * torch.randn(n_samples, generator=gen, dtype=torch.float64)
    proj = _planar_g(a_samples, wu, b)  # w.x for z ~ N(0, I), with a = w.z ~ N(0, |w|^2)
    branches = fold_branches(wu, b, std=norm)
    lo, hi = np.quantile(to_numpy(proj), [0.001, 0.999])
    pad = 0.25 * (hi - lo)
    xs = np.linspace(lo - pad, hi + pad, 2001)
    total = sum(np.interp(xs, bx, dens, left=0, right=0) for bx, dens, _ in branches)
    right = np.interp(xs, *branches[-1][:2], left=0, right=0)
    axes[2].hist(to_numpy(proj), bins=240, range=(xs[0], xs[-1]), density=True,
                 color=PALETTE[0], alpha=0.4, label=f"histogram of {n_samples:,} samples")
    axes[2].plot(xs, total, color=PALETTE[2], lw=1.5,
                 label=f"sum over the {len(branches)} preimages" if len(branches) > 1
                 else "formula (one preimage)")
    if len(branches) > 1:
        axes[2].plot(xs, right, color=PALETTE[3], lw=1.5, ls="--",
                     label="formula, right-most preimage only")
    axes[2].set(xlim=(xs[0], xs[-1]), ylim=(0, 1.0), xlabel="$w^T x$", ylabel="density")
    axes[2].set_title("along $w$: samples vs formula", fontsize=10)
    axes[2].legend(**below)
    return fig


# ----------------------------------------------------------------------------
# Counting a density's peaks (lesson 04)


def count_peaks(
    model_or_density: object, bounds: Bounds = (-4, 4), resolution: int = 200
) -> int:
    """The number of local maxima of a 2-D density on a grid of pixels.

    A peak is a pixel strictly higher than all 8 of its neighbours (the border
    counts as lower), so a flat top counts as none and a peak on the edge of
    ``bounds`` still counts.

    Args:
        model_or_density: anything :func:`plot_density` accepts (a Flow, a torch
            distribution, an object with ``log_prob``, a callable returning
            log-densities), evaluated on a ``resolution x resolution`` grid over
            ``bounds``; or a 2-D array of density values (an image).
        bounds, resolution: the grid (ignored for an image).
    """
    if isinstance(model_or_density, (np.ndarray, Tensor)) and np.ndim(model_or_density) == 2:
        density = torch.as_tensor(to_numpy(model_or_density), dtype=torch.float64)
    else:
        resolution = check_int(resolution, "resolution", "count_peaks", smallest=3)
        dtype, device = dtype_device(model_or_density)
        points, _, _ = grid(bounds, resolution, dtype)
        values = _evaluate(model_or_density, points.to(device))
        density = torch.from_numpy(np.exp(values)).reshape(resolution, resolution)
    rows, cols = density.shape
    padded = torch.nn.functional.pad(density, (1, 1, 1, 1), value=-1.0)
    neighbours = torch.stack([padded[1 + i:rows + 1 + i, 1 + j:cols + 1 + j]
                              for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)])
    return int((density > neighbours.amax(0)).sum())


__all__ += [
    "cell_outlines", "count_peaks", "fold_branches", "panel_grid", "plot_area_change",
    "plot_planar_fold", "signed_area",
]


# ----------------------------------------------------------------------------
# MADE's masks (lesson 05)


def _made_of(model: object) -> nn.Module:
    """The MADE inside ``model``: itself, a MAF's ``.made`` or an IAF's ``.layer.made``."""
    for candidate in (model, getattr(model, "made", None),
                      getattr(getattr(model, "layer", None), "made", None)):
        if all(hasattr(candidate, a) for a in ("masks", "degrees", "connectivity")):
            return candidate
    raise TypeError(
        "plot_made_masks: expected an nfcourse.MADE (or a MAF/IAF holding one), got "
        f"{type(model).__name__}. Build one with nfcourse.MADE(3, hidden=(5, 5), params=1)."
    )


def plot_made_masks(made: object, figsize: tuple[float, float] | None = None) -> Figure:
    """Draw MADE's degrees, masks and connectivity, to see why it is autoregressive.

    Panels: on top the network and the connectivity, below the masks (all
    equally high, each as wide as its number of columns asks, so they line up):

    - the network: a column of units per layer (inputs, hidden layers,
      outputs), each unit coloured and labelled by its degree, and a line for
      every connection its mask keeps;
    - each mask, shape ``(out, in)`` like the weight it multiplies: dark = 1
      (kept), light = 0 (cut), the rows and columns labelled by degree;
    - the connectivity, the product of the masks (outputs x inputs): entry
      ``(i, j)`` counts the paths from input ``j`` to output ``i``. Rows and
      columns are sorted by degree (within each block of outputs), so an
      autoregressive network gives a *strictly* lower-triangular picture: no
      output sees its own input or a later one.

    Meant for small networks (a few units per layer), where every line can be seen.

    Args:
        made: an :class:`nfcourse.MADE` (or a MAF/IAF layer holding one).
        figsize: the figure size (default: grows with the number of masks).

    Returns:
        The figure; ``fig.axes[0]`` is the network, ``fig.axes[1:-1]`` the
        masks (their images are the masks), ``fig.axes[-1]`` the connectivity
        (its image is the connectivity with rows and columns in degree order).
    """
    made = _made_of(made)
    masks = [m.detach().cpu().numpy() for m in made.masks]
    degrees = [d.detach().cpu().numpy() for d in made.degrees]
    conn = made.connectivity.detach().cpu().numpy()
    dim = len(degrees[0])
    params = len(degrees[-1]) // dim
    # outputs: a shift m and a log-scale s per coordinate (MAF), else parameters theta
    block = {1: ["\\theta"], 2: ["m", "s"]}.get(
        params, [f"\\theta^{{({b + 1})}}" for b in range(params)]
    )
    out_names = [f"${block[k // dim]}_{{{k % dim + 1}}}$" for k in range(len(degrees[-1]))]
    in_names = [f"$x_{{{j + 1}}}$" for j in range(dim)]
    n = len(masks)
    if figsize is None:
        figsize = (10.0, 6.6)
    # two rows: the network and the connectivity on top, the masks below; every mask panel
    # has the same height, and its width follows its number of columns, so the panels line
    # up and a unit of the layer below is equally wide in every mask
    fig = plt.figure(figsize=figsize, layout="constrained")
    rows = fig.add_gridspec(2, 1, height_ratios=[1.15, 1.0])
    top = rows[0].subgridspec(1, 2, width_ratios=[2.2, 1.0])
    bottom = rows[1].subgridspec(1, n, width_ratios=[m.shape[1] for m in masks])
    ax_net = fig.add_subplot(top[0])

    def colour(d: int) -> str:
        return PALETTE[7] if d == 0 else PALETTE[(d - 1) % len(PALETTE)]

    # the network: unit u of layer k at (k, y), inputs at the top
    ys = [np.linspace(1.0, 0.0, len(d)) if len(d) > 1 else np.array([0.5]) for d in degrees]
    for k, mask in enumerate(masks):
        for o, i in zip(*np.nonzero(mask), strict=True):
            ax_net.plot([k, k + 1], [ys[k][i], ys[k + 1][o]], color="#888888",
                        alpha=0.5, linewidth=0.7, zorder=1)
    for k, (d, y) in enumerate(zip(degrees, ys, strict=True)):
        ax_net.scatter(np.full(len(d), k), y, s=260, c=[colour(int(v)) for v in d],
                       edgecolors="black", linewidths=0.6, zorder=2)
        for v, yy in zip(d, y, strict=True):
            ax_net.text(k, yy, str(int(v)), ha="center", va="center", fontsize=8,
                        color="white", fontweight="bold", zorder=3)
    for j, yy in enumerate(ys[0]):
        ax_net.text(-0.18, yy, in_names[j], ha="right", va="center", fontsize=9)
    for o, yy in enumerate(ys[-1]):
        ax_net.text(n + 0.18, yy, out_names[o], ha="left", va="center", fontsize=9)
    layer_names = ["inputs"] + [f"hidden {h}" for h in range(1, n)] + ["outputs"]
    ax_net.set_xticks(range(n + 1), layer_names, fontsize=8)
    ax_net.set_yticks([])
    ax_net.set_xlim(-0.6, n + 0.6)
    ax_net.set_ylim(-0.08, 1.08)
    for side in ("left", "right", "top"):
        ax_net.spines[side].set_visible(False)
    ax_net.set_title("units labelled by degree", fontsize=10)

    from matplotlib.colors import ListedColormap

    binary = ListedColormap(["#eeeeee", PALETTE[0]])
    for k, mask in enumerate(masks):
        ax = fig.add_subplot(bottom[k])
        ax.imshow(mask, cmap=binary, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax.set_xticks(range(mask.shape[1]), [str(int(v)) for v in degrees[k]], fontsize=7)
        ax.set_yticks(range(mask.shape[0]), [str(int(v)) for v in degrees[k + 1]], fontsize=7)
        ax.set_xlabel("degree of input unit" if k == 0 else "degree of unit below", fontsize=8)
        ax.set_ylabel("degree of unit", fontsize=8)
        rule = "out > in (strict)" if k == n - 1 else "out >= in"
        ax.set_title(f"mask {k + 1} {mask.shape}\n{rule}", fontsize=9)

    # connectivity in degree order: columns by degree, rows by block then degree
    cols = np.argsort(degrees[0], kind="stable")
    rows = np.concatenate([b * dim + cols for b in range(params)])
    sorted_conn = conn[rows][:, cols]
    ax = fig.add_subplot(top[1])
    ax.imshow(np.ma.masked_equal(sorted_conn, 0), cmap="Blues", vmin=0,
              vmax=max(float(sorted_conn.max()), 1.0) * 1.3, interpolation="nearest")
    ax.set_facecolor("#eeeeee")
    if sorted_conn.size <= 200:
        for (r, c), v in np.ndenumerate(sorted_conn):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7)
    for b in range(1, params):
        ax.axhline(b * dim - 0.5, color="black", linewidth=0.8)
    ax.set_xticks(range(dim), [in_names[j] for j in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), [out_names[r] for r in rows], fontsize=8)
    strict_tril = all(
        not np.triu(sorted_conn[b * dim:(b + 1) * dim]).any() for b in range(params)
    )
    shape = "strictly lower-triangular" if strict_tril else "NOT strictly lower-triangular"
    ax.set_title(f"connectivity (paths)\n{shape}", fontsize=9)
    return fig


__all__ += ["plot_made_masks"]
