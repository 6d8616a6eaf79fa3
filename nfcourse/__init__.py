"""nfcourse: the helper package of a hands-on course on normalizing flows.

Convention: a layer's ``forward(z) -> (x, ladj)`` is the generative direction
(base noise to data), ``inverse(x) -> (z, ladj)`` the normalizing one; ``ladj``
is ``log|det J|`` of the map just applied, one value per sample.
See :mod:`nfcourse.base`.
"""

from . import check, datasets, energies, plots, testing, transforms, widgets
from .autoregressive import IAF, MADE, MAF
from .base import Compose, Inverse, Layer
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask, half_mask
from .distributions import Flow, StandardNormal
from .elementwise import Affine, Exp, Logit, Sigmoid
from .flows import iaf, linear_flow, maf, nice, planar_flow, radial_flow, realnvp
from .linear import LULinear, Permutation, Reverse
from .planar import Planar
from .radial import Radial
from .train import fit, fit_reverse_kl, nll

__version__ = "0.1.0"

__all__ = [
    "IAF",
    "MADE",
    "MAF",
    "AdditiveCoupling",
    "Affine",
    "AffineCoupling",
    "Compose",
    "Exp",
    "Flow",
    "Inverse",
    "LULinear",
    "Layer",
    "Logit",
    "Permutation",
    "Planar",
    "Radial",
    "Reverse",
    "Sigmoid",
    "StandardNormal",
    "alternating_mask",
    "check",
    "datasets",
    "energies",
    "fit",
    "fit_reverse_kl",
    "half_mask",
    "iaf",
    "linear_flow",
    "maf",
    "nice",
    "nll",
    "planar_flow",
    "plots",
    "radial_flow",
    "realnvp",
    "testing",
    "transforms",
    "widgets",
]
