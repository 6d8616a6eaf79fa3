"""Elementwise layers: each coordinate is transformed on its own.

The Jacobian of an elementwise map is diagonal, so its log-determinant is the
sum of the log-derivatives of the coordinates: ``ladj = sum_i log|f'(z_i)|``.

The affine map is written once, here (:func:`affine_forward` and
:func:`affine_inverse`), and used by the :class:`Affine` layer, the affine
coupling layer and MAF. Those two read their network's output as an affine
map in the normalizing direction, ``z = x exp(r) + q`` (:func:`read_affine`):
the RealNVP paper's own form. The lessons teach the textbook reading of the
generative direction, ``x = z exp(s) + t``; the two are the same maps with
``s = -r`` and ``t = -q exp(-r)`` (:func:`shift_log_scale` converts), and the
normalizing reading trains faster at equal budget, because the direction that
maximum likelihood trains then takes the network's outputs as they are
(docs/benchmarks.md, "What made the difference").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validate import check_dim, check_number
from .base import Inverse, Layer

# Default bound of a log-scale in coupling and autoregressive layers. The
# scale of one layer lies in (exp(-2), exp(2)) = (0.14, 7.4): symmetric, so a
# layer can both contract and expand (nflows' sigmoid(s) + 1e-3 lies in
# (0.001, 1.001) in the data-to-noise direction, so its layer can never
# contract in the generative direction, which caps the density a flow can
# reach). Stacking K layers reaches exp(2K), so the bound limits how fast a
# layer can blow up, not what the flow can express. At equal budget 2 trains
# as well as 3 or slightly better (docs/benchmarks.md, "What made the difference").
SCALE_BOUND = 2.0


def affine_forward(t: Tensor, shift: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """``y = t * exp(log_scale) + shift``; ``ladj = sum(log_scale)``.

    ``shift`` and ``log_scale`` broadcast against ``t`` of shape ``(*, D)``.
    """
    y = t * log_scale.exp() + shift
    return y, log_scale.expand_as(y).sum(-1)


def affine_inverse(y: Tensor, shift: Tensor, log_scale: Tensor) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`affine_forward`: ``t = (y - shift) * exp(-log_scale)``;
    ``ladj = -sum(log_scale)``."""
    t = (y - shift) * (-log_scale).exp()
    return t, -log_scale.expand_as(t).sum(-1)


def soft_clamp(log_scale: Tensor, bound: float) -> Tensor:
    """Smoothly squash a log-scale into ``(-bound, bound)``: ``bound * tanh(s / bound)``.

    Near zero it is the identity (slope 1), so small scales train as if
    unclamped; far from zero it saturates, so one layer can never multiply by
    more than ``exp(bound)``: a guard against the exploding scales that make
    flows produce NaNs, while stacked layers can still reach any scale.
    """
    return bound * torch.tanh(log_scale / bound)


def check_scale_bound(bound: object, where: str) -> float:
    """A log-scale bound: a positive finite number."""
    return check_number(bound, "scale_bound", where, positive=True, example=str(SCALE_BOUND))


def read_affine(h: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """A network output ``h = (q, raw)`` read as the normalizing map ``z = x exp(r) + q``.

    ``h`` has shape ``(*, 2K)``: a shift block ``q``, then a raw log-scale
    block, soft-clamped to ``r = B tanh(raw / B)`` with ``B = bound``. Returns
    ``(q, r)``, each ``(*, K)``: the ``shift`` and ``log_scale`` of
    :func:`affine_forward` in the normalizing direction.
    """
    q, raw = h.chunk(2, dim=-1)
    return q, soft_clamp(raw, bound)


def shift_log_scale(h: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """The textbook ``t`` and ``s`` of the generative map ``x = z exp(s) + t`` that ``h`` defines.

    ``s = -r`` and ``t = -q exp(-r)`` with ``q, r`` from :func:`read_affine`.
    For reading a layer; the layers compute the map without them.
    """
    q, r = read_affine(h, bound)
    return -q * (-r).exp(), -r


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
