"""One registry of every layer, one battery of properties over it (float64).

Adding a layer to the course costs one line in LAYERS. Every layer's
parameters are perturbed away from their initial values first: a layer that
starts as the identity has ladj = 0 and would hide a sign bug.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import nfcourse as nf
from nfcourse import testing


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


@pytest.mark.parametrize("case, dim", CASES)
def test_round_trip(case, dim):
    layer = build(case, dim)
    assert testing.round_trip_error(layer, inputs(case, dim)) < 1e-9


@pytest.mark.parametrize("case, dim", CASES)
def test_ladj_matches_autograd_jacobian(case, dim):
    layer = build(case, dim)
    z = inputs(case, dim)
    assert testing.ladj_error(layer, z, "forward") < 1e-9
    x, _ = layer(z)
    assert testing.ladj_error(layer, x, "inverse") < 1e-9


@pytest.mark.parametrize("case, dim", CASES)
def test_inverse_ladj_is_minus_forward_ladj(case, dim):
    layer = build(case, dim)
    assert testing.inverse_ladj_error(layer, inputs(case, dim)) < 1e-9


@pytest.mark.parametrize("case, dim", CASES)
def test_batch_independence_and_shapes(case, dim):
    layer = build(case, dim)
    z = inputs(case, dim)
    x, ladj = layer(z)
    assert x.shape == z.shape and ladj.shape == z.shape[:-1]
    assert x.dtype == torch.float64 and ladj.dtype == torch.float64
    assert testing.batch_error(layer, z) < 1e-12
    # one point without a batch dimension
    x1, ladj1 = layer(z[0])
    assert x1.shape == (dim,) and ladj1.shape == ()


@pytest.mark.parametrize("case, dim", CASES)
def test_triangular_jacobian(case, dim):
    layer = build(case, dim)
    z = inputs(case, dim)
    jac = testing.autograd_jacobian(lambda p: layer(p)[0], z)
    assert testing.is_triangular(jac) == (case.triangular or dim == 1)


@pytest.mark.parametrize("case, dim", CASES)
def test_float32_runs(case, dim):
    layer = build(case, dim).float()
    x, ladj = layer(inputs(case, dim).float())
    assert x.dtype == torch.float32 and ladj.dtype == torch.float32
    assert torch.isfinite(x).all() and torch.isfinite(ladj).all()


@pytest.mark.parametrize(
    "case", [c for c in LAYERS if c.domain == "real" and 2 in c.dims], ids=lambda c: c.name
)
def test_flow_density_integrates_to_one(case):
    """A standard normal pushed through the layer still has total mass 1 (midpoint rule)."""
    flow = nf.Flow(build(case, 2), dim=2).double()
    lo, hi = case.image
    n = 600
    h = (hi - lo) / n
    ticks = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.cartesian_prod(ticks, ticks)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum().item() * h * h
    assert math.isclose(mass, 1.0, abs_tol=5e-3), mass


SIZED = [c for c in LAYERS if c.make(3).dim is not None]  # parameter-free elementwise: any D


@pytest.mark.parametrize("case", SIZED, ids=lambda c: c.name)
def test_wrong_number_of_coordinates_is_a_clear_error(case):
    layer = case.make(3)
    for method, name in [(layer, "z"), (layer.inverse, "x")]:
        with pytest.raises(ValueError, match=rf"`{name}` must have shape \(\.\.\., 3\)"):
            method(torch.zeros(4, 2))


@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_non_tensor_and_integer_input_are_clear_errors(case):
    layer = case.make(2)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        layer([[0.1, 0.2]])
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(3, 2, dtype=torch.long))
