"""One battery of properties (float64) over the registry of every layer (tests/registry.py)."""

from __future__ import annotations

import math

import pytest
import torch
from registry import CASES, LAYERS, build, inputs

import nfcourse as nf
from nfcourse import testing


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
