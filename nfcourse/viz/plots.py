"""Plotting helpers for the lessons: densities, samples, a flow's stages, training curves.

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
from ..validate import dtype_device

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


def plot_stages(
    flow: nn.Module,
    n: int = 2000,
    bounds: Bounds | None = None,
    titles: Sequence[str] | None = None,
    seed: int | None = None,
) -> Figure:
    """One panel per stage of a flow: base samples, after layer 1, ..., data.

    Every point keeps the colour of the *direction* of its base sample (six
    60-degree sectors around the origin, six colours), so one can follow where
    each region of the base goes through the layers. For ``D > 2`` the first
    two coordinates are drawn.

    Args:
        flow: an :class:`nfcourse.Flow` (anything with ``stages(n)``).
        n: number of points.
        bounds: shared axis limits for every panel (default: each panel fits its points).
        titles: one title per panel (``len(flow layers) + 1``).
        seed: makes the points reproducible.

    Returns:
        The figure; ``fig.axes`` holds the ``K + 1`` panels.
    """
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    _, device = dtype_device(flow)
    if generator is not None and device.type != "cpu":
        generator = torch.Generator(device=device).manual_seed(int(seed))
    stages = flow.stages(n, generator=generator)
    if stages[0].shape[-1] < 2:
        raise ValueError("plot_stages: needs points with at least 2 coordinates.")
    layers = list(getattr(getattr(flow, "transform", None), "layers", []))
    k = len(stages) - 1
    if titles is None:
        names = [type(layer).__name__ for layer in layers] or ["layer"] * k
        titles = ["base z"] + [f"after {i + 1}: {names[i]}" for i in range(k)]
        if k:
            titles[-1] = f"data x (after {k}: {names[k - 1]})"
    elif len(titles) != k + 1:
        raise ValueError(
            f"plot_stages: `titles` must have one entry per panel ({k + 1}: the base and "
            f"{k} layers), got {len(titles)}."
        )
    z0 = to_numpy(stages[0])
    colors = np.array(SECTOR_COLORS)[sector(z0)]
    fig, axes = plt.subplots(1, k + 1, figsize=(3.0 * (k + 1), 3.2), squeeze=False)
    for ax, points, title in zip(axes[0], stages, titles, strict=True):
        ax.scatter(*to_numpy(points)[:, :2].T, c=colors, s=3, alpha=0.8, linewidths=0)
        if bounds is not None:
            (x0, x1), (y0, y1) = xy_bounds(bounds)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        ax.set_aspect("equal", adjustable="datalim" if bounds is None else "box")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (shorter windows at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


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
    ``-log Z``, the lowest value of its objective (where ``KL = 0``).
    Several histories can share one axes: pass a ``label`` to each.
    """
    ax = get_axes(ax, figsize=(6.0, 3.5))
    step = np.asarray(history.step, dtype=float)
    loss = np.asarray(history.loss, dtype=float)
    kind = getattr(history, "kind", "nll")
    prefix = f"{label}: " if label else ""
    color = PALETTE[sum(line.get_gid() == "nfcourse-train" for line in ax.lines) % len(PALETTE)]
    if len(loss):
        window = max(1, len(loss) // 50)
        ax.plot(step, loss, color=color, alpha=0.25, linewidth=0.8)
        name = "train NLL" if kind == "nll" else "train objective"
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
    ax.set_ylabel("NLL (nats)" if kind == "nll" else "KL(q || p) - log Z (nats)")
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

    Panels, left to right:

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
        figsize = (3.6 + 2.2 * (n + 1), 3.6)
    fig = plt.figure(figsize=figsize, layout="constrained")
    grid_spec = fig.add_gridspec(1, n + 2, width_ratios=[1.8] + [1.0] * (n + 1))
    ax_net = fig.add_subplot(grid_spec[0])

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
        ax = fig.add_subplot(grid_spec[k + 1])
        ax.imshow(mask, cmap=binary, vmin=0, vmax=1, interpolation="nearest")
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
    ax = fig.add_subplot(grid_spec[n + 1])
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
