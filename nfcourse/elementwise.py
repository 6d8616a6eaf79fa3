"""Elementwise layers: each coordinate is transformed on its own.

The Jacobian of an elementwise map is diagonal, so its log-determinant is the
sum of the log-derivatives of the coordinates: ``ladj = sum_i log|f'(z_i)|``.

The elementwise affine map written here (``affine_forward`` /
``affine_inverse``) is the one the coupling and autoregressive layers reuse
with a shift and log-scale computed by a network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Inverse, Layer, check_dim


def affine_forward(z: Tensor, shift: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z * exp(log_scale) + shift``; ``ladj = sum(log_scale)``.

    ``shift`` and ``log_scale`` broadcast against ``z`` of shape ``(*, D)``.
    """
    x = z * log_scale.exp() + shift
    return x, log_scale.expand_as(x).sum(-1)


def affine_inverse(x: Tensor, shift: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """``z = (x - shift) * exp(-log_scale)``; ``ladj = -sum(log_scale)``."""
    z = (x - shift) * (-log_scale).exp()
    return z, -log_scale.expand_as(z).sum(-1)


def soft_clamp(log_scale: Tensor, bound: float) -> Tensor:
    """Smoothly squash a log-scale into ``(-bound, bound)``: ``bound * tanh(s / bound)``.

    Near zero it is the identity (slope 1), so small scales train as if
    unclamped; far from zero it saturates, so one layer can never multiply by
    more than ``exp(bound)``: a guard against the exploding scales that make
    flows produce NaNs, while stacked layers can still reach any scale.
    """
    return bound * torch.tanh(log_scale / bound)


class Affine(Layer):
    """Learnable elementwise affine layer.

    ``x = z * exp(log_scale) + shift`` with parameters ``shift, log_scale`` of
    shape ``(D,)``; ``ladj = sum(log_scale)``, the same for every point.
    Starts as the identity. The log-scale parameterization keeps the scale
    positive, so the layer is always invertible.

    Shapes: ``z`` and ``x`` are ``(*, D)``; ``ladj`` is ``(*)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim, "Affine")
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        return affine_forward(z, self.shift, self.log_scale)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        return affine_inverse(x, self.shift, self.log_scale)


def _check_inside(x: Tensor, low: float, high: float | None, where: str) -> None:
    """Refuse points outside the open interval ``(low, high)`` with a clear error."""
    outside = x <= low if high is None else (x <= low) | (x >= high)
    if outside.any():
        bad = x[outside].flatten()[0].item()
        span = f"({low}, {'inf' if high is None else high})"
        raise ValueError(
            f"{where}: every coordinate of `x` must lie in {span}, the range of the "
            f"layer's forward map; got {bad} ({int(outside.sum())} values outside). "
            "Such points have density zero under this flow: score only points "
            "inside the support."
        )


class Exp(Layer):
    """``x = exp(z)`` elementwise; ``ladj = sum(z)``.

    Applied to a standard normal it gives a log-normal distribution (not an
    exponential one). Inverse: ``z = log(x)`` for ``x > 0``, ``ladj = -sum(log x)``.
    """

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        return z.exp(), z.sum(-1)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        _check_inside(x, 0.0, None, "Exp.inverse")
        z = x.log()
        return z, -z.sum(-1)


class Sigmoid(Layer):
    """``x = sigmoid(z) = 1 / (1 + exp(-z))`` elementwise, mapping R onto (0, 1).

    ``log sigmoid'(z) = log sigmoid(z) + log sigmoid(-z)`` (computed with
    ``logsigmoid`` for stability), so ``ladj = sum(logsigmoid(z) + logsigmoid(-z))``.
    Inverse: the logit ``z = log(x) - log(1 - x)``.
    """

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        return torch.sigmoid(z), (F.logsigmoid(z) + F.logsigmoid(-z)).sum(-1)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        _check_inside(x, 0.0, 1.0, "Sigmoid.inverse")
        log_x, log_1mx = x.log(), torch.log1p(-x)
        return log_x - log_1mx, -(log_x + log_1mx).sum(-1)


class Logit(Inverse):
    """``x = logit(z) = log(z / (1 - z))``, mapping (0, 1) onto R.

    Written as ``Inverse(Sigmoid())``: its forward is the sigmoid's inverse.
    """

    def __init__(self):
        super().__init__(Sigmoid())
