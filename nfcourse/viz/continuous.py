"""Pictures of continuous flows: the paths that a velocity field moves points along."""

from __future__ import annotations

import torch
from matplotlib.axes import Axes

from ..continuous import trajectories
from .plots import get_axes, to_numpy


def plot_trajectories(
    field,
    z: torch.Tensor,
    ax: Axes | None = None,
    times: int = 41,
    bounds: tuple[float, float] = (-4.5, 4.5),
    title: str | None = None,
) -> Axes:
    """Draw the paths of the points ``z`` (at ``t = 0``) to ``t = 1`` under ``field``.

    The start points are grey, the paths thin translucent lines (one adaptive solve that
    reports ``times`` points on each), the end points (``t = 1``) black.
    """
    ax = get_axes(ax)
    path = to_numpy(trajectories(field, z, torch.linspace(0, 1, times)))  # (T, N, 2)
    ax.plot(path[:, :, 0], path[:, :, 1], color="tab:blue", alpha=0.25, lw=0.6)
    ax.scatter(path[0, :, 0], path[0, :, 1], s=4, color="0.6", label="t = 0 (noise)", zorder=3)
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=4, color="k", label="t = 1 (data)", zorder=3)
    ax.set_xlim(*bounds)
    ax.set_ylim(*bounds)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7, markerscale=2, framealpha=0.8)
    return ax
