"""Ready-made flows for the lessons: a standard normal base and a stack of layers.

Each builder returns a :class:`nfcourse.Flow`. Coupling and autoregressive
stacks change which coordinates condition which from one layer to the next
(alternating masks, reversed orders), since a single layer leaves some
coordinates, or some dependencies, untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from .autoregressive import IAF, MAF
from .base import check_dim
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask
from .distributions import Flow
from .elementwise import Affine
from .linear import LULinear, Reverse
from .planar import Planar
from .radial import Radial


def _check_layers(layers: object, where: str) -> int:
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ValueError(f"{where}: `layers` must be a positive int (the depth K), got {layers!r}.")
    return layers


def linear_flow(dim: int) -> Flow:
    """``x = W z + b`` with a learnable invertible ``W``: exactly the Gaussians ``N(b, W W^T)``."""
    return Flow([LULinear(check_dim(dim, "linear_flow"))])


def planar_flow(dim: int, layers: int = 8) -> Flow:
    """K planar layers (Rezende and Mohamed 2015)."""
    dim, k = check_dim(dim, "planar_flow"), _check_layers(layers, "planar_flow")
    return Flow([Planar(dim) for _ in range(k)])


def radial_flow(dim: int, layers: int = 8) -> Flow:
    """K radial layers (Rezende and Mohamed 2015)."""
    dim, k = check_dim(dim, "radial_flow"), _check_layers(layers, "radial_flow")
    return Flow([Radial(dim) for _ in range(k)])


def nice(dim: int, layers: int = 4, hidden: Sequence[int] = (64, 64)) -> Flow:
    """NICE: additive couplings with alternating masks, then a learnable elementwise scale.

    The couplings preserve volume (ladj = 0), so the final :class:`Affine` is
    what lets the flow change the overall spread (Dinh et al. 2014, section 3.3).
    """
    dim, k = check_dim(dim, "nice"), _check_layers(layers, "nice")
    couplings = [AdditiveCoupling(alternating_mask(dim, i % 2), hidden) for i in range(k)]
    return Flow([*couplings, Affine(dim)])


def realnvp(dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)) -> Flow:
    """RealNVP: affine couplings whose masks alternate, so every coordinate gets transformed."""
    dim, k = check_dim(dim, "realnvp"), _check_layers(layers, "realnvp")
    return Flow([AffineCoupling(alternating_mask(dim, i % 2), hidden) for i in range(k)])


def _autoregressive(layer, dim: int, layers: int, hidden: Sequence[int], where: str) -> Flow:
    dim, k = check_dim(dim, where), _check_layers(layers, where)
    stack = []
    for i in range(k):
        if i > 0:
            stack.append(Reverse(dim))  # the next layer conditions in the other order
        stack.append(layer(dim, hidden))
    return Flow(stack)


def maf(dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)) -> Flow:
    """MAF: affine autoregressive layers, order reversed between layers.

    Density in one pass per layer; sampling in D passes per layer.
    """
    return _autoregressive(MAF, dim, layers, hidden, "maf")


def iaf(dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)) -> Flow:
    """IAF: the inverse of MAF. Sampling (with log-densities) in one pass per layer;
    the density of external data in D passes per layer."""
    return _autoregressive(IAF, dim, layers, hidden, "iaf")
