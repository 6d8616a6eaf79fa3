"""The registry of every layer and ready-made flow of the package, shared by every layer test.

Adding a layer to the course costs one line in LAYERS; tests/test_layers.py
runs one battery of properties over it. Every layer's parameters are perturbed
away from their initial values first (:func:`build`, :func:`perturb`): a layer
that starts as the identity has ladj = 0 and would hide a sign bug. A variant
of a layer (another mask, order, size or parameter range) is one more row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import nfcourse as nf
from nfcourse.layers import conditional, image

HIDDEN = (16, 16)  # small conditioner networks: the variants test structure, not capacity

# the orders of MAF-order: reversed for D = 2, shuffled for D = 3 and 5
ORDERS = {2: [2, 1], 3: [2, 3, 1], 5: [3, 1, 5, 2, 4]}


def tanh_net(d_in: int, d_out: int) -> nn.Module:
    """A conditioner built by hand, not by nf.mlp: what a learner passes as ``net=``."""
    return nn.Sequential(nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, d_out))


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int], nn.Module]
    triangular: bool  # is the Jacobian triangular up to a reordering of coordinates?
    domain: str = "real"  # where forward's inputs live: "real", "unit" (0, 1)
    dims: tuple[int, ...] = (2, 5)
    image: tuple[float, float] = (-9.0, 9.0)  # a box holding the 2-D density's mass
    elementwise: bool = False  # a diagonal Jacobian; otherwise it couples coordinates
    scale: float = 0.4  # size of the perturbation of the parameters (see perturb)
    seeds: tuple[int, ...] = (0,)  # random draws of the parameters the battery runs



# Image layers take flattened images of shape (C, H, W) with C * H * W = D: one shape per D.
# Every row is also built with D = 2 and 3 by the argument-error tests (when they are
# collected), so each has a shape for those too; Squeeze, which needs even sides, squeezes
# those by a factor of 1 (they are not in its dims).
CHECKERBOARD = {2: (1, 1, 2), 3: (1, 1, 3), 16: (1, 4, 4), 18: (2, 3, 3)}
CHANNELS = {2: (2, 1, 1), 3: (3, 1, 1), 8: (2, 2, 2), 12: (3, 2, 2)}
SQUEEZE = {2: ((2, 1, 1), 1), 3: ((3, 1, 1), 1), 16: ((1, 4, 4), 2), 32: ((2, 4, 4), 2)}


def actnorm(d: int) -> nn.Module:
    """An ActNorm already set by its data-dependent initialization (on a batch of 64)."""
    layer = image.ActNorm(CHANNELS[d])
    g = torch.Generator().manual_seed(5)
    layer.initialize(1.0 + 1.5 * torch.randn(64, d, generator=g))
    return layer


# Conditional layers run the battery with their context fixed (conditional.Conditioned): for
# every fixed context a conditional layer is an ordinary layer. C = 3, one draw for all points.
CONTEXT = torch.randn(3, generator=torch.Generator().manual_seed(9))


def fixed_context(layer: nn.Module) -> nn.Module:
    return conditional.Conditioned(layer, CONTEXT)


LAYERS = [
    Case("Affine", nf.Affine, True, dims=(1, 2, 5), elementwise=True),
    Case("Exp", lambda d: nf.Exp(), True, dims=(1, 2, 5), image=(0.0, 80.0), elementwise=True),
    Case(
        "Sigmoid", lambda d: nf.Sigmoid(), True, dims=(1, 2, 5), image=(0.0, 1.0), elementwise=True
    ),
    Case("Logit", lambda d: nf.Logit(), True, domain="unit", dims=(1, 2, 5), elementwise=True),
    Case("LULinear", nf.LULinear, False),
    Case("Permutation", lambda d: nf.Permutation(torch.arange(d).roll(1)), False),
    Case("Reverse", nf.Reverse, False),
    Case("Planar", nf.Planar, False, dims=(1, 2, 5)),
    # far from the identity, several draws (rank-one updates, numerical planar inverse)
    Case("Planar-far", nf.Planar, False, dims=(1, 2, 5), scale=1.5, seeds=(0, 1, 2)),
    Case("Radial", nf.Radial, False, dims=(1, 2, 5)),
    Case("Radial-far", nf.Radial, False, dims=(1, 2, 5), scale=1.5, seeds=(0, 1, 2)),
    Case("AdditiveCoupling", lambda d: nf.AdditiveCoupling(nf.alternating_mask(d, 1)), True),
    Case(
        "AdditiveCoupling-parity0",
        lambda d: nf.AdditiveCoupling(nf.alternating_mask(d), HIDDEN),
        True,
    ),
    Case("AffineCoupling", lambda d: nf.AffineCoupling(nf.half_mask(d)), True),
    Case(
        "AffineCoupling-alternating",
        lambda d: nf.AffineCoupling(nf.alternating_mask(d, 1), HIDDEN),
        True,
    ),
    Case(
        "AffineCoupling-net",
        lambda d: nf.AffineCoupling(nf.alternating_mask(d), net=tanh_net(d - d // 2, d // 2 * 2)),
        True,
    ),
    Case("MAF", nf.MAF, True, dims=(1, 2, 5)),
    Case("MAF-order", lambda d: nf.MAF(d, HIDDEN, order=torch.tensor(ORDERS[d])), True),
    Case("IAF", nf.IAF, True, dims=(1, 2, 5)),
    Case("IAF-order", lambda d: nf.IAF(d, HIDDEN, order=torch.arange(d, 0, -1)), True),
    # splines: perturbed enough that knots move and points fall in several bins and the tails
    Case("SplineCoupling", lambda d: nf.SplineCoupling(nf.half_mask(d), HIDDEN, bins=5), True,
         scale=0.6, image=(-12.0, 12.0)),
    Case("SplineAutoregressive", lambda d: nf.SplineAutoregressive(d, HIDDEN, bins=4, bound=3.0),
         True, dims=(1, 2, 5), scale=0.6, image=(-12.0, 12.0)),
    Case("Compose", lambda d: nf.Compose(nf.LULinear(d), nf.Affine(d), nf.Reverse(d)), False),
    Case("Inverse", lambda d: nf.Inverse(nf.LULinear(d)), False),
    Case("ImageCoupling-checkerboard", lambda d: image.ImageCoupling(
        CHECKERBOARD[d], image.checkerboard_mask(CHECKERBOARD[d]), hidden=8), True,
        dims=(2, 16, 18)),
    Case("ImageCoupling-channel", lambda d: image.ImageCoupling(
        CHANNELS[d], image.channel_mask(CHANNELS[d], 1), hidden=8), True, dims=(2, 8, 12)),
    Case("Squeeze", lambda d: image.Squeeze(*SQUEEZE[d]), False, dims=(16, 32)),
    Case("ActNorm", actnorm, True, dims=(2, 8), elementwise=True),
    Case("Conv1x1", lambda d: image.Conv1x1(CHANNELS[d]), False, dims=(2, 8, 12)),
    Case("Subset", lambda d: image.Subset(d, range(0, d, 2), nf.LULinear((d + 1) // 2)),
         False, dims=(4, 5)),
    Case("ConditionalAffineCoupling", lambda d: fixed_context(
        conditional.ConditionalAffineCoupling(nf.half_mask(d), 3, HIDDEN)), True),
    Case("ConditionalAffineCoupling-alternating", lambda d: fixed_context(
        conditional.ConditionalAffineCoupling(nf.alternating_mask(d, 1), 3, HIDDEN)), True),
    Case("ConditionalMAF", lambda d: fixed_context(conditional.ConditionalMAF(d, 3, HIDDEN)),
         True, dims=(1, 2, 5)),
    Case("ConditionalMAF-order", lambda d: fixed_context(
        conditional.ConditionalMAF(d, 3, HIDDEN, order=torch.tensor(ORDERS[d]))), True),
    Case("Inverse-ConditionalMAF", lambda d: fixed_context(
        nf.Inverse(conditional.ConditionalMAF(d, 3, HIDDEN))), True, dims=(1, 2, 5)),
]

CASE = {case.name: case for case in LAYERS}

CASES = [
    pytest.param(case, d, seed, id=f"{case.name}-D{d}" + (f"-s{seed}" if seed else ""))
    for case in LAYERS
    for d in case.dims
    for seed in case.seeds
]


def cases_of(*types: type) -> list:
    """``(case, dim)`` for the layers that are instances of one of ``types`` (e.g. ``nf.MAF``)."""
    return [
        pytest.param(case, d, id=f"{case.name}-D{d}")
        for case in LAYERS
        for d in case.dims
        if isinstance(case.make(d), types)
    ]


# The ready-made flows, small (a few layers, small networks): name -> builder(dim).
FLOWS = {
    "linear_flow": lambda d: nf.linear_flow(d),
    "planar_flow": lambda d: nf.planar_flow(d, layers=3),
    "radial_flow": lambda d: nf.radial_flow(d, layers=3),
    "nice": lambda d: nf.nice(d, layers=3, hidden=HIDDEN),
    "realnvp": lambda d: nf.realnvp(d, layers=3, hidden=HIDDEN),
    "maf": lambda d: nf.maf(d, layers=3, hidden=HIDDEN),
    "iaf": lambda d: nf.iaf(d, layers=3, hidden=HIDDEN),
    "nsf": lambda d: nf.nsf(d, layers=3, hidden=HIDDEN, bins=4),
}


def perturb(module: nn.Module, scale: float = 0.4) -> nn.Module:
    """The module in float64 with every parameter moved away from its initial value.

    Adds ``scale * N(0, 1)`` noise from torch's global random state (seed it
    first); weight matrices get ``scale / sqrt(fan-in)``, so that networks give
    outputs of order 1.
    """
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            size = scale / math.sqrt(p.shape[-1]) if p.dim() == 2 else scale
            p.add_(size * torch.randn_like(p))
    return module


def build(case: Case, dim: int, seed: int = 0) -> nn.Module:
    """The case's layer in float64, perturbed, reproducibly for a given seed."""
    torch.manual_seed(seed)
    return perturb(case.make(dim), case.scale)


def inputs(case: Case, dim: int, n: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if case.domain == "unit":
        return torch.rand(n, dim, generator=g, dtype=torch.float64) * 0.98 + 0.01
    return 1.5 * torch.randn(n, dim, generator=g, dtype=torch.float64)
