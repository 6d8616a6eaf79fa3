"""The oracle: property checks of a layer, shared by the test suite and the exercise checks.

Every function here works on any object with ``forward(z) -> (x, ladj)`` and
``inverse(x) -> (z, ladj)``; run them in float64 for tight tolerances.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def autograd_jacobian(fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """The Jacobian ``d fn(p) / d p`` of a map ``(D,) -> (D,)`` at each point.

    ``points`` has shape ``(N, D)``; returns ``(N, D, D)`` with
    ``J[n, i, j] = d out_i / d in_j``. ``fn`` receives a batch of one point of
    shape ``(1, D)`` and returns ``(1, D)``.
    """
    return torch.stack(
        [torch.autograd.functional.jacobian(lambda p: fn(p[None])[0], p) for p in points]
    )


def autograd_ladj(fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """``log|det J|`` of ``fn`` at each point, from the autograd Jacobian: shape ``(N,)``."""
    return torch.linalg.slogdet(autograd_jacobian(fn, points)).logabsdet


def ladj_error(layer, z: Tensor, direction: str = "forward") -> float:
    """Largest gap between a layer's ladj and ``log|det|`` of its autograd Jacobian."""
    step = layer if direction == "forward" else layer.inverse
    _, ladj = step(z)
    return (ladj - autograd_ladj(lambda p: step(p)[0], z)).abs().max().item()


def round_trip_error(layer, z: Tensor) -> float:
    """``max |inverse(forward(z)) - z|``."""
    x, _ = layer(z)
    z_back, _ = layer.inverse(x)
    return (z_back - z).abs().max().item()


def inverse_ladj_error(layer, z: Tensor) -> float:
    """``max |ladj_inverse(x) + ladj_forward(z)|`` at ``x = forward(z)``: should be 0."""
    x, ladj_forward = layer(z)
    _, ladj_inverse = layer.inverse(x)
    return (ladj_inverse + ladj_forward).abs().max().item()


def batch_error(layer, z: Tensor) -> float:
    """How much a point's result depends on the other points of its batch.

    Compares a batched call with one call per point, and checks that any
    leading batch shape gives the same numbers; returns the largest gap.
    """
    x, ladj = layer(z)
    singles = [layer(p[None]) for p in z]
    x1 = torch.cat([s[0] for s in singles])
    ladj1 = torch.cat([s[1] for s in singles])
    folded = z.reshape(2, -1, z.shape[-1]) if z.shape[0] % 2 == 0 else z[None]
    x2, ladj2 = layer(folded)
    return max(
        (x - x1).abs().max().item(),
        (ladj - ladj1).abs().max().item(),
        (x2.reshape(x.shape) - x).abs().max().item(),
        (ladj2.reshape(ladj.shape) - ladj).abs().max().item(),
    )


def is_triangular(jacobians: Tensor, tol: float = 1e-12) -> bool:
    """Whether Jacobians ``(N, D, D)`` are triangular up to one reordering of coordinates.

    A matrix can be made lower-triangular by one simultaneous permutation of
    rows and columns iff the graph "output i depends on input j" (i != j) has
    no cycle, i.e. its off-diagonal pattern ``B`` is nilpotent: ``B^D = 0``.
    The pattern is the union over all given points, so one ordering must fit all.
    """
    pattern = (jacobians.abs() > tol).any(dim=0).double()
    pattern.fill_diagonal_(0.0)
    return bool((torch.linalg.matrix_power(pattern, pattern.shape[0]) == 0).all())
