"""The registry of every layer of the package, shared by every layer test.

Adding a layer to the course costs one line in LAYERS; tests/test_layers.py
runs one battery of properties over it. Every layer's parameters are perturbed
away from their initial values first (:func:`build`): a layer that starts as
the identity has ladj = 0 and would hide a sign bug.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import nfcourse as nf


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int], torch.nn.Module]
    triangular: bool  # is the Jacobian triangular up to a reordering of coordinates?
    domain: str = "real"  # where forward's inputs live: "real", "unit" (0, 1)
    dims: tuple[int, ...] = (2, 5)
    image: tuple[float, float] = (-9.0, 9.0)  # a box holding the 2-D density's mass


LAYERS = [
    Case("Affine", nf.Affine, True, dims=(1, 2, 5)),
    Case("Exp", lambda d: nf.Exp(), True, dims=(1, 2, 5), image=(0.0, 80.0)),
    Case("Sigmoid", lambda d: nf.Sigmoid(), True, dims=(1, 2, 5), image=(0.0, 1.0)),
    Case("Logit", lambda d: nf.Logit(), True, domain="unit", dims=(1, 2, 5)),
    Case("LULinear", nf.LULinear, False),
    Case("Permutation", lambda d: nf.Permutation(torch.arange(d).roll(1)), False),
    Case("Reverse", nf.Reverse, False),
    Case("Planar", nf.Planar, False),
    Case("Radial", nf.Radial, False),
    Case("AdditiveCoupling", lambda d: nf.AdditiveCoupling(nf.alternating_mask(d, 1)), True),
    Case("AffineCoupling", lambda d: nf.AffineCoupling(nf.half_mask(d)), True),
    Case("MAF", nf.MAF, True, dims=(1, 2, 5)),
    Case("MAF-order", lambda d: nf.MAF(d, order=torch.randperm(d) + 1), True),
    Case("IAF", nf.IAF, True, dims=(1, 2, 5)),
    Case("Compose", lambda d: nf.Compose(nf.LULinear(d), nf.Affine(d), nf.Reverse(d)), False),
    Case("Inverse", lambda d: nf.Inverse(nf.LULinear(d)), False),
]

CASES = [pytest.param(case, d, id=f"{case.name}-D{d}") for case in LAYERS for d in case.dims]


def build(case: Case, dim: int, seed: int = 0) -> torch.nn.Module:
    """The layer in float64 with every parameter perturbed away from its initial value."""
    torch.manual_seed(seed)
    layer = case.make(dim).double()
    with torch.no_grad():
        for p in layer.parameters():
            # weight matrices scaled by fan-in, so that networks give outputs of order 1
            scale = 0.4 / math.sqrt(p.shape[-1]) if p.dim() == 2 else 0.4
            p.add_(scale * torch.randn_like(p))
    return layer


def inputs(case: Case, dim: int, n: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if case.domain == "unit":
        return torch.rand(n, dim, generator=g, dtype=torch.float64) * 0.98 + 0.01
    return 1.5 * torch.randn(n, dim, generator=g, dtype=torch.float64)


