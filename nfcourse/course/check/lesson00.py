"""Checks of lesson 00 (welcome): one warm-up exercise.

- Exercise 0.1, :func:`standard_normal_log_prob`: a function ``log_prob(z)`` that
  returns the log-density of the standard normal ``N(0, I_D)`` at points ``z`` of
  shape ``(*, D)``, one value per point (shape ``(*)``)::

      log N(z; 0, I_D) = -||z||^2 / 2 - (D / 2) log(2 pi).

The check compares the learner's function with this formula on points it
chooses (two batch shapes and two values of ``D``), recognizes the usual wrong
variants to name the mistake, and answers in a few milliseconds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._core import Mistake, exercise
from ._tools import as_tensor
from ._tools import close as _close

__all__ = ["standard_normal_log_prob"]

LOG_2PI = math.log(2 * math.pi)


def _as_tensor(out: object, what: str) -> Tensor:
    return as_tensor(
        out,
        what,
        "compute with torch operations on the tensor z (e.g. `z.pow(2).sum(-1)`) and "
        "return the resulting tensor; `math` functions work on plain numbers only.",
    )


def _points(shape: tuple[int, ...], seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 1.5 * torch.randn(shape, generator=gen, dtype=torch.float64)


@exercise("Exercise 0.1")
def standard_normal_log_prob(log_prob) -> str:
    """Check ``log_prob(z)``: the log-density of ``N(0, I_D)``, shape ``(*, D) -> (*)``."""
    for shape, seed in (((6, 3), 0), ((2, 4, 2), 1)):
        z = _points(shape, seed)
        D = z.shape[-1]
        out = _as_tensor(log_prob(z.clone()), f"log_prob(z) for z of shape {shape}")
        sq = z.pow(2).sum(-1)
        want = -0.5 * sq - 0.5 * D * LOG_2PI
        per_coordinate = -0.5 * z.pow(2) - 0.5 * LOG_2PI
        if out.shape != want.shape:
            if out.shape == z.shape:
                hint = (
                    "you returned one value per coordinate. The coordinates of a standard "
                    "normal are independent, so the log-densities of the coordinates add: "
                    "sum over the last dimension, `.sum(-1)` (or `.sum(dim=-1)`)."
                )
            elif out.numel() == 1:
                hint = (
                    "you returned a single number: sum over the coordinates only (the last "
                    "dimension, `.sum(-1)`), not over the points too."
                )
            else:
                hint = (
                    "sum over the last dimension (`.sum(-1)`), so that any leading batch "
                    "shape works, rather than `dim=1`."
                )
            raise Mistake(
                f"for z of shape {shape} the result must have shape {tuple(want.shape)} "
                f"(one value per point), got {tuple(out.shape)}.",
                hint,
            )
        if _close(out, want):
            continue
        variants = [
            (
                want.exp(),
                "you returned the density p(z); the exercise asks for its log, "
                "log p(z) (leave out the exp).",
            ),
            (
                -want,
                "the sign is flipped: a log-density of a standard normal is largest at 0 "
                "and decreases like -||z||^2 / 2.",
            ),
            (
                -0.5 * sq,
                "you left out the normalizing constant -(D / 2) log(2 pi), which makes "
                "the density integrate to 1.",
            ),
            (
                -0.5 * sq - 0.5 * LOG_2PI,
                "the constant -log(2 pi) / 2 comes once per coordinate: "
                "in D dimensions it is -(D / 2) log(2 pi), with D = z.shape[-1].",
            ),
            (
                -0.5 * sq - D * LOG_2PI,
                "the constant is -(D / 2) log(2 pi): half of log(2 pi) "
                "per coordinate (the 1 / sqrt(2 pi) of the 1-D density).",
            ),
            (
                -0.5 * sq - 0.5 * D * math.log(2),
                "the constant is -(D / 2) log(2 pi), with pi inside the log (math.pi or torch.pi).",
            ),
            (-sq - 0.5 * D * LOG_2PI, "the quadratic term is -||z||^2 / 2: you left out the 1/2."),
            (
                -0.5 * sq.sqrt() - 0.5 * D * LOG_2PI,
                "the quadratic term uses the *squared* norm ||z||^2 = sum of z_i^2, not ||z||.",
            ),
            (
                per_coordinate.mean(-1),
                "you took the mean over the coordinates; the log-densities "
                "of independent coordinates add up: use `.sum(-1)`.",
            ),
        ]
        if len(shape) == 3:
            D_wrong = z.shape[1]
            variants.insert(
                0,
                (
                    -0.5 * sq - 0.5 * D_wrong * LOG_2PI,
                    "D is the size of the *last* dimension, "
                    "z.shape[-1]: for z of shape (2, 4, 2) you used 4 instead of 2.",
                ),
            )
        hint = next((h for value, h in variants if _close(out, value)), None) or (
            "compare with the formula -||z||^2 / 2 - (D / 2) log(2 pi), term by term, at a "
            "single point such as z = torch.zeros(1, D), where it equals -(D / 2) log(2 pi)."
        )
        i = (out - want).abs().flatten().argmax().item()
        point = z.reshape(-1, D)[i]
        raise Mistake(
            f"at z = {[round(v, 3) for v in point.tolist()]} (D = {D}) the log-density is "
            f"{want.flatten()[i].item():.6f}, your function gave {out.flatten()[i].item():.6f}.",
            hint,
        )
    return (
        "log N(z; 0, I) matches -||z||^2/2 - (D/2) log(2 pi) for D = 3 and D = 2, "
        "with batch shapes (6,) and (2, 4)."
    )
