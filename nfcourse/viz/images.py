"""Pictures of small grey images (lesson 07): grids of digits, samples and interpolations.

Images come as flattened grey levels, shape ``(N, H * W)`` (``0`` to ``levels - 1``), as
:mod:`nfcourse.data.digits` and :mod:`nfcourse.images` give them. Dark strokes on a light
background (``gray_r``), as the digits are usually shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..validate import check_int


def montage(images: object, cols: int, side: int = 8, pad: int = 1) -> np.ndarray:
    """The images tiled in rows of ``cols`` with ``pad`` blank pixels between them.

    ``images``: ``(N, side * side)``; returns a 2-D array (``NaN`` in the gaps and
    the empty places of the last row, drawn as the background).
    """
    cols = check_int(cols, "cols", "montage")
    side = check_int(side, "side", "montage")
    pixels = torch.as_tensor(images).detach().cpu().double().reshape(-1, side, side).numpy()
    n = len(pixels)
    if n == 0:
        raise ValueError("montage: `images` is empty: pass at least one image.")
    rows = math.ceil(n / cols)
    step = side + pad
    out = np.full((rows * step - pad, cols * step - pad), np.nan)
    for i, image in enumerate(pixels):
        r, c = divmod(i, cols)
        out[r * step : r * step + side, c * step : c * step + side] = image
    return out


def image_grid(
    images: object,
    cols: int = 10,
    ax: Axes | None = None,
    title: str = "",
    levels: int = 17,
    side: int = 8,
) -> Axes:
    """Draw images as a grid on one axes (grey levels ``0`` to ``levels - 1``)."""
    grid = montage(images, cols, side)
    if ax is None:
        rows, width = grid.shape
        _, ax = plt.subplots(figsize=(max(2.0, width / 9), max(1.2, rows / 9)))
    cmap = plt.get_cmap("gray_r").copy()
    cmap.set_bad("white")
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=levels - 1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def image_rows(
    rows: Sequence[tuple[str, object]], cols: int = 10, levels: int = 17, side: int = 8
) -> Figure:
    """One grid per row, each with its title: ``rows = [(title, images), ...]``."""
    if not rows:
        raise ValueError("image_rows: `rows` is empty: pass [(title, images), ...].")
    heights = [math.ceil(len(torch.as_tensor(images)) / cols) for _, images in rows]
    fig, axes = plt.subplots(
        len(rows),
        1,
        figsize=(cols * 0.75, sum(heights) * 0.8 + 0.45 * len(rows)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
        layout="constrained",
    )
    for ax, (title, images) in zip(axes[:, 0], rows, strict=True):
        image_grid(images, cols, ax=ax, title=title, levels=levels, side=side)
    return fig
