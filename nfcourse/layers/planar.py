"""Planar flows: push points towards or away from a hyperplane.

A planar layer moves every point along one direction ``u_hat`` by an amount
that depends on where the point lies relative to the hyperplane
``w.z + b = 0``::

    x = z + u_hat tanh(w.z + b).

Its Jacobian ``I + u_hat w^T tanh'(w.z + b)`` is the identity plus a rank-one
matrix, so the matrix determinant lemma ``det(I + c d^T) = 1 + d.c`` gives the
log-determinant in O(D)::

    ladj = log|1 + (w.u_hat) tanh'(w.z + b)|.

Invertibility: dotting the map with ``w`` gives ``w.x = a + (w.u_hat) tanh(a + b)``
for ``a = w.z``, strictly increasing in ``a`` iff ``w.u_hat > -1`` (since
``0 < tanh' <= 1``). At ``w.u_hat = -1`` the Jacobian is singular on the
hyperplane; below it the map folds space and has no inverse. :func:`constrain_u`
turns any ``u`` into a ``u_hat`` that satisfies the constraint.

Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
Flows", arXiv:1505.05770.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validate import check_dim, check_points, check_scalar, check_vector
from .base import Layer


def constrain_u(u: Tensor, w: Tensor) -> Tensor:
    """Map any ``u`` to a ``u_hat`` with ``w.u_hat > -1``: the layer is then invertible.

    ``u_hat = u + (m(w.u) - w.u) w / ||w||^2`` with ``m(a) = -1 + softplus(a)``
    replaces the component of ``u`` along ``w`` so that ``w.u_hat = m(w.u) > -1``,
    and keeps the rest. ``softplus`` is floored at ``sqrt(eps)`` of the dtype so
    that the inequality survives rounding (in float64, ``-1 + softplus(a)``
    rounds to ``-1`` for ``a < -37``); this holds while ``|u| |w| << 1/sqrt(eps)``.
    ``w = 0`` gives ``u_hat = u`` (the layer is then a translation).

    Shapes: ``u`` and ``w`` are ``(*, D)``; returns ``(*, D)``.
    """
    wu = (w * u).sum(-1, keepdim=True)
    w_sq = (w * w).sum(-1, keepdim=True)
    m = -1 + F.softplus(wu).clamp_min(torch.finfo(wu.dtype).eps ** 0.5)
    w_sq = torch.where(w_sq > 0, w_sq, torch.ones_like(w_sq))  # w = 0: no 0 / 0
    return u + (m - wu) * w / w_sq


def _dtanh(s: Tensor) -> Tensor:
    """``tanh'(s) = 1 - tanh(s)^2``, computed as ``4 sigmoid(2s) sigmoid(-2s)``.

    The second form keeps full relative precision where ``tanh(s)`` is close to +-1.
    """
    return 4 * torch.sigmoid(2 * s) * torch.sigmoid(-2 * s)


def _slope(s: Tensor, wu: Tensor) -> Tensor:
    """The Jacobian determinant ``1 + (w.u_hat) tanh'(s)`` at ``s = w.z + b``.

    Written ``tanh(s)^2 + (1 + w.u_hat) tanh'(s)``: two terms that are >= 0 when
    ``w.u_hat > -1``, so there is no cancellation near the boundary ``w.u_hat = -1``.
    It is also ``g'(a)``, the slope of ``g(a) = a + (w.u_hat) tanh(a + b)``.
    """
    return torch.tanh(s) ** 2 + (1 + wu) * _dtanh(s)


def _check_params(
    z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor, where: str
) -> tuple[Tensor, Tensor]:
    """Validate raw parameters for points ``z``; return ``w.u_hat`` and ``b``, both of shape ()."""
    D = z.shape[-1]
    u_hat, w = check_vector(u_hat, "u_hat", where, D), check_vector(w, "w", where, D)
    b = check_scalar(b, "b", where)
    wu = (w * u_hat).sum(-1)
    if not bool(wu > -1):
        raise ValueError(
            f"{where}: a planar layer has a smooth inverse and a finite density everywhere "
            f"only if w.u_hat > -1, got w.u_hat = {wu.item():.6g}. (Below -1 the map folds "
            "space onto itself; at exactly -1 it is still a bijection, but its Jacobian is "
            "singular on the hyperplane w.z + b = 0, where the density is infinite.) Pass "
            "u_hat = constrain_u(u, w), which turns any u into a valid u_hat."
        )
    return wu, b


def planar_forward(z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z + u_hat tanh(w.z + b)``; ``ladj = log|1 + (w.u_hat) tanh'(w.z + b)|``.

    Closed form, O(D) per point. ``z``: ``(*, D)``; ``u_hat``, ``w``: ``(D,)``;
    ``b``: a scalar tensor. Raises ``ValueError`` unless ``w.u_hat > -1``.
    """
    z = check_points(z, None, "z", "planar_forward")
    wu, b = _check_params(z, u_hat, w, b, "planar_forward")
    return _forward(z, u_hat, w, b, wu)


def _forward(z: Tensor, u_hat: Tensor, w: Tensor, b: Tensor, wu: Tensor) -> tuple[Tensor, Tensor]:
    s = (z * w).sum(-1) + b  # (*)
    x = z + u_hat * torch.tanh(s)[..., None]
    return x, torch.log(_slope(s, wu))


def planar_inverse(x: Tensor, u_hat: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`planar_forward`, by a 1-D root find per point.

    Dotting ``x = z + u_hat tanh(w.z + b)`` with ``w`` leaves one scalar equation
    for ``a = w.z``::

        g(a) = a + (w.u_hat) tanh(a + b) = w.x,

    with ``g`` strictly increasing (``g' = 1 + (w.u_hat) tanh' > 0``) and its root
    in ``[w.x - |w.u_hat|, w.x + |w.u_hat|]`` since ``|tanh| < 1``. Bisection
    halves that bracket down to float precision (25 steps in float32, 54 in
    float64, each one vectorized over the batch). One Newton step taken with
    autograd on then makes ``a`` differentiable in ``x`` and the parameters: at
    the root its gradient is the implicit-function one,
    ``da = (d(w.x) - dg) / g'(a)`` with ``dg`` the change of ``g`` at fixed ``a``. Then
    ``z = x - u_hat tanh(a + b)`` and ``ladj = -log|1 + (w.u_hat) tanh'(a + b)|``.
    """
    x = check_points(x, None, "x", "planar_inverse")
    wu, b = _check_params(x, u_hat, w, b, "planar_inverse")
    return _inverse(x, u_hat, w, b, wu)


def _inverse(x: Tensor, u_hat: Tensor, w: Tensor, b: Tensor, wu: Tensor) -> tuple[Tensor, Tensor]:
    y = (x * w).sum(-1)  # (*)
    with torch.no_grad():
        a = _bisect(lambda a: a + wu * torch.tanh(a + b), y, y - wu.abs(), y + wu.abs())
    s = a + b
    a = a - (a + wu * torch.tanh(s) - y) / _slope(s, wu)  # the Newton step, with autograd
    s = a + b
    z = x - u_hat * torch.tanh(s)[..., None]
    return z, -torch.log(_slope(s, wu))


def _bisect(g: Callable[[Tensor], Tensor], y: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Solve ``g(a) = y`` elementwise for an increasing ``g`` with the root in ``[lo, hi]``.

    ``nmant + 2`` halvings shrink a bracket of width ``2 |w.u_hat|`` below
    ``eps |w.u_hat| / 2``, finer than the rounding of ``g`` itself.
    """
    for _ in range(round(-math.log2(torch.finfo(y.dtype).eps)) + 2):
        mid = (lo + hi) / 2
        above = g(mid) > y
        lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
    return (lo + hi) / 2


class Planar(Layer):
    """Planar layer ``x = z + u_hat tanh(w.z + b)``, ``u_hat = constrain_u(u, w)``.

    Parameters ``u, w`` of shape ``(D,)`` and ``b`` of shape ``()``, started at
    small random values (``u, w ~ N(0, 0.1^2)``, ``b = 0``) from torch's global
    random state, so that stacked layers differ. ``constrain_u`` keeps
    ``w.u_hat > -1`` for any ``u, w``, so the layer stays invertible while it trains.

    Cost: ``forward`` is closed form, O(D) per point. ``inverse`` is a 1-D root
    find per point (a few dozen cheap bisection steps, vectorized over the batch,
    see :func:`planar_inverse`), so a planar flow *can* score data it did not
    sample itself, and can even be trained by maximum likelihood (unlike in
    libraries that only implement the forward direction).

    Shapes: ``z`` and ``x`` are ``(*, D)``; ``ladj`` is ``(*)``.

    Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
    Flows", arXiv:1505.05770.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim, "Planar")
        self.u = nn.Parameter(0.1 * torch.randn(dim))
        self.w = nn.Parameter(0.1 * torch.randn(dim))
        self.b = nn.Parameter(torch.zeros(()))

    @property
    def u_hat(self) -> Tensor:
        """The constrained direction ``constrain_u(u, w)``, with ``w.u_hat > -1``."""
        return constrain_u(self.u, self.w)

    def _params(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # constrain_u guarantees w.u_hat > -1: no need to check it (and sync) at every call
        u_hat = self.u_hat
        return u_hat, self.w, self.b, (self.w * u_hat).sum(-1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return _forward(self.check(z), *self._params())

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _inverse(self.check(x, "x"), *self._params())
