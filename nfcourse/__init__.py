"""nfcourse: the helper package of a hands-on course on normalizing flows.

Convention: a layer's ``forward(z) -> (x, ladj)`` is the generative direction
(base noise to data), ``inverse(x) -> (z, ladj)`` the normalizing one; ``ladj``
is ``log|det J|`` of the map just applied, one value per sample.
See :mod:`nfcourse.layers.base`, and docs/architecture.md for the layout.

``import nfcourse`` loads torch but no plotting or widget library:
``nfcourse.plots``, ``nfcourse.widgets`` and ``nfcourse.check`` are loaded on
first use (``from nfcourse import check, plots`` works as usual).
"""

import importlib

from . import testing, transforms, validate
from .data import datasets, digits, energies, mixtures, posteriors, simulators
from .evaluate import (
    classifier_two_sample_test,
    effective_sample_size,
    elbo,
    gap_to_entropy,
    held_out_nll,
    log_evidence,
    log_mean_exp,
    median_bandwidth,
    mmd2,
    mmd_test,
    nll,
    reverse_kl,
)
from .flow import (
    Flow,
    StandardNormal,
    conditional_maf,
    conditional_realnvp,
    iaf,
    linear_flow,
    maf,
    nice,
    nsf,
    planar_flow,
    radial_flow,
    realnvp,
)
from .layers import (
    IAF,
    MAF,
    AdditiveCoupling,
    Affine,
    AffineCoupling,
    Compose,
    ConditionalAffineCoupling,
    ConditionalMADE,
    ConditionalMAF,
    Conditioned,
    Exp,
    Inverse,
    Layer,
    Logit,
    LULinear,
    Permutation,
    Planar,
    Radial,
    Reverse,
    Sigmoid,
    SplineAutoregressive,
    SplineCoupling,
    alternating_mask,
    half_mask,
)
from .nets import MADE, MaskedLinear, mlp
from .train import fit, fit_reverse_kl

__version__ = "0.1.0"

# loaded on first use: they bring matplotlib, seaborn, ipywidgets or IPython with them
_LAZY = {
    "check": "nfcourse.course.check",
    "plots": "nfcourse.viz.plots",
    "widgets": "nfcourse.viz.widgets",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'nfcourse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "classifier_two_sample_test",
    "held_out_nll",
    "median_bandwidth",
    "mmd2",
    "mmd_test",
    "ConditionalAffineCoupling",
    "ConditionalMADE",
    "ConditionalMAF",
    "Conditioned",
    "conditional_maf",
    "conditional_realnvp",
    "simulators",
    "effective_sample_size",
    "log_mean_exp",
    "log_evidence",
    "elbo",
    "posteriors",
    "mixtures",
    "digits",
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
    "MaskedLinear",
    "Permutation",
    "Planar",
    "Radial",
    "Reverse",
    "Sigmoid",
    "SplineAutoregressive",
    "SplineCoupling",
    "StandardNormal",
    "alternating_mask",
    "check",
    "datasets",
    "energies",
    "fit",
    "fit_reverse_kl",
    "gap_to_entropy",
    "half_mask",
    "iaf",
    "linear_flow",
    "maf",
    "mlp",
    "nice",
    "nll",
    "nsf",
    "planar_flow",
    "plots",
    "radial_flow",
    "realnvp",
    "reverse_kl",
    "testing",
    "transforms",
    "validate",
    "widgets",
]
