"""nfcourse: the helper package of a hands-on course on normalizing flows.

Convention: a layer's ``forward(z) -> (x, ladj)`` is the generative direction
(base noise to data), ``inverse(x) -> (z, ladj)`` the normalizing one; ``ladj``
is ``log|det J|`` of the map just applied, one value per sample.
See :mod:`nfcourse.base`.
"""

from .base import Compose, Inverse, Layer
from .distributions import Flow, StandardNormal
from .elementwise import Affine, Exp, Logit, Sigmoid
from .linear import LULinear, Permutation, Reverse

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "Compose",
    "Exp",
    "Flow",
    "Inverse",
    "Layer",
    "Logit",
    "LULinear",
    "Permutation",
    "Reverse",
    "Sigmoid",
    "StandardNormal",
]
