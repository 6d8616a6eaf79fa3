"""The layers: one module per family, all with the interface of :mod:`.base`.

Layers depend on torch, :mod:`nfcourse.nets` (their conditioners),
:mod:`nfcourse.validate` and each other only (docs/architecture.md).
"""

from .autoregressive import IAF, MAF
from .base import Compose, Inverse, Layer
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask, half_mask
from .elementwise import Affine, Exp, Logit, Sigmoid
from .linear import LULinear, Permutation, Reverse
from .planar import Planar
from .radial import Radial
from .spline import SplineAutoregressive, SplineCoupling

__all__ = [
    "IAF",
    "MAF",
    "AdditiveCoupling",
    "Affine",
    "AffineCoupling",
    "Compose",
    "Exp",
    "Inverse",
    "LULinear",
    "Layer",
    "Logit",
    "Permutation",
    "Planar",
    "Radial",
    "Reverse",
    "Sigmoid",
    "SplineAutoregressive",
    "SplineCoupling",
    "alternating_mask",
    "half_mask",
]
