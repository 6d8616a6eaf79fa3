"""Grids on the plane: points for pictures, and quadrature for exact integrals.

The course computes entropies, normalizing constants and "does this density
integrate to 1" by deterministic quadrature on a grid rather than by Monte
Carlo, so the numbers it shows are exact to many digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..validate import check_int, check_points

Box = tuple[tuple[float, float], tuple[float, float]]
Bounds = tuple[float, float] | Box


def check_points_2d(x: Tensor, name: str, where: str) -> Tensor:
    """Validate points of the plane, shape ``(*, 2)`` (see :func:`check_points`)."""
    x = check_points(x, None, name, where)  # type, dtype, not a scalar
    if x.shape[-1] != 2:
        raise ValueError(
            f"{where}: `{name}` must have shape (..., 2) (points of the plane, coordinates "
            f"in the last dimension), got shape {tuple(x.shape)}. For N points pass an "
            "(N, 2) tensor; a grid of shape (H, W, 2) works too."
        )
    return x


def xy_bounds(bounds: Bounds) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(lo, hi)`` for both axes, or ``((x_lo, x_hi), (y_lo, y_hi))``."""
    try:
        if len(bounds) == 2 and all(np.ndim(b) == 0 for b in bounds):
            lo, hi = float(bounds[0]), float(bounds[1])
            xb = yb = (lo, hi)
        else:
            (x0, x1), (y0, y1) = bounds
            xb, yb = (float(x0), float(x1)), (float(y0), float(y1))
    except (TypeError, ValueError):
        raise ValueError(
            f"`bounds` must be (lo, hi) or ((x_lo, x_hi), (y_lo, y_hi)), got {bounds!r}."
        ) from None
    if not (xb[0] < xb[1] and yb[0] < yb[1]):
        raise ValueError(f"`bounds` must have lo < hi on each axis, got {bounds!r}.")
    return xb, yb


def grid(
    bounds: Bounds = (-4, 4), resolution: int = 200, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor]:
    """A square grid of points over a 2-D box, for evaluating densities.

    The points are the centres of ``resolution x resolution`` pixels covering
    ``bounds``. ``X, Y`` come from ``torch.meshgrid(xs, ys, indexing="xy")``:
    row ``i`` of the image holds ``y = ys[i]`` and column ``j`` holds
    ``x = xs[j]``, the layout ``imshow(..., origin="lower")`` expects (the
    default ``indexing="ij"`` would transpose the picture).

    Returns:
        ``(points, X, Y)``: ``points`` of shape ``(R * R, 2)`` with
        ``points[:, 0] == X.flatten()`` and ``points[:, 1] == Y.flatten()``,
        so ``values.reshape(R, R)`` lines up with ``X`` and ``Y``.
    """
    resolution = check_int(resolution, "resolution", "grid")
    (x0, x1), (y0, y1) = xy_bounds(bounds)
    centres = (torch.arange(resolution, dtype=dtype) + 0.5) / resolution
    xs, ys = x0 + (x1 - x0) * centres, y0 + (y1 - y0) * centres
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    return torch.stack([X.flatten(), Y.flatten()], dim=-1), X, Y


def integrate_2d(fn: Callable[[Tensor], Tensor], box: Box, step: float) -> float:
    """``∫∫_box fn(x) dx`` by the midpoint rule on a grid of spacing at most ``step``.

    ``fn`` maps points ``(N, 2)`` (float64) to values ``(N,)``; it is called on chunks of
    the grid. For a smooth integrand that is negligible at the edges of the box, the
    midpoint rule converges faster than any power of the step (it acts like the
    trapezoid rule on a periodic function): a step of a third of the integrand's
    smallest length scale already gives near machine precision.
    """
    (a1, b1), (a2, b2) = box
    n1, n2 = math.ceil((b1 - a1) / step), math.ceil((b2 - a2) / step)
    h1, h2 = (b1 - a1) / n1, (b2 - a2) / n2
    x1 = a1 + h1 * (torch.arange(n1, dtype=torch.float64) + 0.5)
    x2 = a2 + h2 * (torch.arange(n2, dtype=torch.float64) + 0.5)
    rows = max(1, 2**16 // n2)
    total = 0.0
    for i in range(0, n1, rows):
        grid = torch.stack(torch.meshgrid(x1[i : i + rows], x2, indexing="ij"), -1)
        total += fn(grid.reshape(-1, 2)).sum().item()
    return total * h1 * h2


def neg_p_log_p(log_p: Tensor) -> Tensor:
    """``-p log p`` from ``log p``, with ``0 log 0 = 0``."""
    p = log_p.exp()
    return torch.where(p > 0, -p * log_p, torch.zeros_like(p))


def gauss_legendre(a: float, b: float, width: float, order: int = 8) -> tuple[Tensor, Tensor]:
    """Nodes and weights of composite Gauss-Legendre quadrature on ``[a, b]``.

    Panels of length about ``width``, plus panels graded geometrically towards both ends
    (``width / 2, width / 4, ..., width / 2^16``): they resolve integrands that fall off
    steeply from an end of the interval.
    """
    u, w = np.polynomial.legendre.leggauss(order)  # on [-1, 1]
    width = min(width, (b - a) / 4)
    grade = width * 2.0 ** -np.arange(16, 0, -1)  # width/2^16 ... width/2
    inner = np.linspace(a + width, b - width, max(1, math.ceil((b - a) / width) - 2) + 1)
    edges = np.concatenate([[a], a + grade, inner, b - grade[::-1], [b]])
    half = (edges[1:] - edges[:-1])[:, None] / 2
    mid = (edges[1:] + edges[:-1])[:, None] / 2
    return torch.from_numpy((mid + half * u).ravel()), torch.from_numpy((half * w).ravel())


