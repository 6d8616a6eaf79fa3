"""The layers: one module per family, all with the interface of :mod:`.base`.

Layers depend on torch, :mod:`nfcourse.nets` (their conditioners),
:mod:`nfcourse.validate` and each other only (docs/architecture.md).
"""

from .autoregressive import IAF, MAF
from .base import Compose, Inverse, Layer
from .conditional import (
    ConditionalAffineCoupling,
    ConditionalMADE,
    ConditionalMAF,
    Conditioned,
)
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask, half_mask
from .elementwise import Affine, Exp, Logit, Sigmoid
from .image import (
    ActNorm,
    Conv1x1,
    ImageCoupling,
    Squeeze,
    Subset,
    channel_mask,
    checkerboard_mask,
    dequantized_to_logit,
)
from .linear import LULinear, Permutation, Reverse
from .planar import Planar
from .radial import Radial
from .spline import SplineAutoregressive, SplineCoupling

__all__ = [
    "IAF",
    "MAF",
    "ActNorm",
    "AdditiveCoupling",
    "Affine",
    "AffineCoupling",
    "Compose",
    "ConditionalAffineCoupling",
    "ConditionalMADE",
    "ConditionalMAF",
    "Conditioned",
    "Conv1x1",
    "Exp",
    "ImageCoupling",
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
    "Squeeze",
    "Subset",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "dequantized_to_logit",
    "half_mask",
]
