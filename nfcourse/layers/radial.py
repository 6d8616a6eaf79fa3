"""Radial flows: contract or expand space around a centre ``z0``.

A radial layer scales each point's offset from ``z0`` by a factor that depends
only on its distance ``r = ||z - z0||``::

    x = z + beta h(r) (z - z0),    h(r) = 1 / (alpha + r),

i.e. ``x - z0 = (1 + beta h) (z - z0)``. The Jacobian
``(1 + beta h) I + beta h'(r) (z - z0)(z - z0)^T / r`` has the eigenvalue
``1 + beta h`` on the ``D - 1`` directions orthogonal to ``z - z0`` and
``1 + beta h + beta r h' = 1 + beta h - beta r h^2 = 1 + alpha beta h^2`` along it::

    ladj = (D - 1) log(1 + beta h) + log(1 + beta h - beta r h^2).

Invertibility: with ``alpha > 0`` and ``beta >= -alpha`` the radius map
``r -> R = r (1 + beta h(r))`` is strictly increasing from 0 to infinity, so
every ``x`` has exactly one preimage, found in closed form from a quadratic.
(At ``beta = -alpha`` the Jacobian is singular at ``z0`` only.)
:func:`constrain_alpha_beta` turns any real numbers into valid ``alpha, beta``.

Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
Flows", arXiv:1505.05770.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validate import check_dim, check_points, check_scalar, check_vector
from .base import Layer


def constrain_alpha_beta(alpha_raw: Tensor, beta_raw: Tensor) -> tuple[Tensor, Tensor]:
    """Map any real ``alpha_raw, beta_raw`` to ``alpha > 0`` and ``beta >= -alpha``.

    ``alpha = softplus(alpha_raw)`` (floored at the dtype's smallest normal number,
    so it stays > 0 even where softplus underflows) and
    ``beta = -alpha + softplus(beta_raw)``.
    """
    alpha = F.softplus(alpha_raw).clamp_min(torch.finfo(alpha_raw.dtype).tiny)
    return alpha, -alpha + F.softplus(beta_raw)


def _check_params(
    z: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor, where: str
) -> tuple[Tensor, Tensor]:
    """Validate raw parameters for points ``z``; return ``alpha`` and ``beta`` of shape ()."""
    z0 = check_vector(z0, "z0", where, z.shape[-1])
    alpha, beta = check_scalar(alpha, "alpha", where), check_scalar(beta, "beta", where)
    fix = (
        "Pass alpha, beta = constrain_alpha_beta(alpha_raw, beta_raw), which maps any "
        "real alpha_raw, beta_raw to valid values."
    )
    if not bool(alpha > 0):
        raise ValueError(f"{where}: `alpha` must be > 0, got alpha = {alpha.item():.6g}. {fix}")
    if not bool(beta >= -alpha):
        raise ValueError(
            f"{where}: a radial layer is invertible only if beta >= -alpha, got "
            f"beta = {beta.item():.6g} < -alpha = {-alpha.item():.6g} (points near z0 "
            f"would be folded through it). {fix}"
        )
    return alpha, beta


def _sqrt_p2_plus(p: Tensor, q: Tensor) -> Tensor:
    """``sqrt(p^2 + q)`` for ``q >= 0``, written ``|p| sqrt(1 + q / p^2)`` where ``|p| > 1``.

    So ``p^2`` never overflows (a point at 1e20 in float32). Each branch gets safe
    inputs where it is not used, so neither puts a NaN into the other's gradient.
    """
    big = p.abs() > 1
    p_big = torch.where(big, p, torch.ones_like(p))
    p_small, q_small = torch.where(big, 0.0, p), torch.where(big, 1.0, q)
    return torch.where(
        big, p_big.abs() * torch.sqrt(1 + q / p_big**2), torch.sqrt(p_small**2 + q_small)
    )


def _scale_and_ladj(r: Tensor, alpha: Tensor, beta: Tensor, D: int) -> tuple[Tensor, Tensor]:
    """The factor ``1 + beta h`` applied to ``z - z0`` and the forward ladj, at radius ``r``.

    With ``h = 1 / (alpha + r)``: ``1 + beta h = (alpha + beta + r) h`` and
    ``1 + beta h - beta r h^2 = alpha h (1 + beta h) + r h``. These forms are sums
    of non-negative terms when ``beta >= -alpha``: no cancellation near the boundary.
    """
    h = 1 / (alpha + r)
    scale = (alpha + beta + r) * h
    return scale, (D - 1) * torch.log(scale) + torch.log(alpha * h * scale + r * h)


def radial_forward(z: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """``x = z0 + (1 + beta h(r)) (z - z0)``, ``r = ||z - z0||``; closed form, O(D).

    ``z``: ``(*, D)``; ``z0``: ``(D,)``; ``alpha > 0`` and ``beta >= -alpha``:
    scalar tensors (else ``ValueError``).
    """
    z = check_points(z, None, "z", "radial_forward")
    alpha, beta = _check_params(z, z0, alpha, beta, "radial_forward")
    return _forward(z, z0, alpha, beta)


def _norm(v: Tensor) -> Tensor:
    """``||v||`` over the last dimension without overflow: scaled by its largest entry.

    A plain norm squares the entries, so in float32 a point at 1e20 would get the
    radius ``inf`` (and the layer NaN); scaled, it gets 1.4e20.
    """
    m = v.abs().amax(-1, keepdim=True)
    return (v / torch.where(m > 0, m, torch.ones_like(m))).norm(dim=-1) * m[..., 0]


def _forward(z: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    r = _norm(z - z0)  # (*)
    scale, ladj = _scale_and_ladj(r, alpha, beta, z.shape[-1])
    return z0 + scale[..., None] * (z - z0), ladj


def radial_inverse(x: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """``z = z0 + (x - z0) / (1 + beta h(r))``; closed form, O(D).

    ``R = ||x - z0|| = r (alpha + beta + r) / (alpha + r)`` gives the quadratic
    ``r^2 + p r - alpha R = 0`` with ``p = alpha + beta - R``, whose non-negative
    root is ``(s - p) / 2 = 2 alpha R / (s + p)``, ``s = sqrt(p^2 + 4 alpha R)``.
    The first form cancels when ``p > 0`` (``x`` near ``z0``), the second when
    ``p < 0``: each is used where it is exact. ``ladj = -ladj_forward(r)``.
    """
    x = check_points(x, None, "x", "radial_inverse")
    alpha, beta = _check_params(x, z0, alpha, beta, "radial_inverse")
    return _inverse(x, z0, alpha, beta)


def _inverse(x: Tensor, z0: Tensor, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    R = _norm(x - z0)  # (*)
    p = alpha + beta - R
    s = _sqrt_p2_plus(p, 4 * alpha * R)
    neg = p < 0  # the safe denominator keeps the branch not taken from a 0 / 0 gradient
    r = torch.where(neg, (s - p) / 2, 2 * alpha * R / torch.where(neg, 1.0, s + p))
    scale, ladj = _scale_and_ladj(r, alpha, beta, x.shape[-1])
    return z0 + (x - z0) / scale[..., None], -ladj


class Radial(Layer):
    """Radial layer ``x = z + beta h(r) (z - z0)``, ``h = 1 / (alpha + r)``, ``r = ||z - z0||``.

    Parameters: the centre ``z0`` of shape ``(D,)`` and unconstrained scalars
    ``alpha_raw, beta_raw``, mapped by :func:`constrain_alpha_beta` to
    ``alpha > 0, beta >= -alpha``, so the layer stays invertible while it trains.
    All start at small random values (``N(0, 0.1^2)``) from torch's global random
    state, so that stacked layers differ. ``beta > 0`` pushes points away from
    ``z0``, ``beta < 0`` pulls them in.

    Cost: both directions are closed form, O(D) per point.

    Shapes: ``z`` and ``x`` are ``(*, D)``; ``ladj`` is ``(*)``.

    Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
    Flows", arXiv:1505.05770.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim, "Radial")
        self.z0 = nn.Parameter(0.1 * torch.randn(dim))
        self.alpha_raw = nn.Parameter(0.1 * torch.randn(()))
        self.beta_raw = nn.Parameter(0.1 * torch.randn(()))

    @property
    def alpha_beta(self) -> tuple[Tensor, Tensor]:
        """The constrained ``(alpha, beta)``, with ``alpha > 0`` and ``beta >= -alpha``."""
        return constrain_alpha_beta(self.alpha_raw, self.beta_raw)

    # constrain_alpha_beta guarantees alpha > 0 and beta >= -alpha: no need to check them
    # (and sync) at every call
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return _forward(self.check(z), self.z0, *self.alpha_beta)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _inverse(self.check(x, "x"), self.z0, *self.alpha_beta)
