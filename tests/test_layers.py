"""One battery of properties (float64) over the registry of every layer (tests/registry.py)."""

from __future__ import annotations

import math

import pytest
import torch
from registry import CASES, LAYERS, build, inputs

import nfcourse as nf
from nfcourse import testing

TOL = 1e-10  # float64: the layers reach 1e-14 (a sign or factor bug gives order 1)

each_case = pytest.mark.parametrize("case, dim, seed", CASES)  # every layer, size and draw


@pytest.fixture
def layer(case, dim, seed):
    return build(case, dim, seed)


@pytest.fixture
def z(case, dim):
    return inputs(case, dim)


@each_case
def test_round_trip(layer, z):
    assert testing.round_trip_error(layer, z) < TOL


@each_case
def test_ladj_matches_autograd_jacobian(layer, z):
    assert testing.ladj_error(layer, z, "forward") < TOL
    x, _ = layer(z)
    assert testing.ladj_error(layer, x, "inverse") < TOL


@each_case
def test_inverse_ladj_is_minus_forward_ladj(layer, z):
    assert testing.inverse_ladj_error(layer, z) < TOL


@each_case
def test_batch_independence_and_shapes(layer, z, dim):
    x, ladj = layer(z)
    assert x.shape == z.shape and ladj.shape == z.shape[:-1]
    assert x.dtype == torch.float64 and ladj.dtype == torch.float64
    assert testing.batch_error(layer, z) < 1e-12
    for step, t in [(layer, z), (layer.inverse, x)]:
        # any leading batch shape, and one point without a batch dimension
        out, ladj2 = step(t.reshape(2, -1, dim))
        assert out.shape == (2, len(t) // 2, dim) and ladj2.shape == (2, len(t) // 2)
        out1, ladj1 = step(t[0])
        assert out1.shape == (dim,) and ladj1.shape == ()


@each_case
def test_jacobian_structure(layer, z, case, dim):
    """Triangular (in some order) exactly when the case says so, in both directions; and
    the perturbed layer couples coordinates unless it is elementwise."""
    x, _ = layer(z)
    for step, t in [(layer, z), (layer.inverse, x)]:
        jac = testing.autograd_jacobian(lambda p, step=step: step(p)[0], t)
        assert testing.is_triangular(jac) == (case.triangular or dim == 1)
        if dim > 1:
            off_diagonal = (jac - torch.diag_embed(jac.diagonal(dim1=-2, dim2=-1))).abs().max()
            assert off_diagonal == 0 if case.elementwise else off_diagonal > 1e-3


@each_case
def test_float32_round_trip(layer, case, dim):
    layer = layer.float()
    z = inputs(case, dim, n=64).float()
    x, ladj = layer(z)
    z_back, ladj_back = layer.inverse(x)
    for t in (x, ladj, z_back, ladj_back):
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    assert (z_back - z).abs().max() < 1e-4 and (ladj + ladj_back).abs().max() < 1e-4


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
        for wrong in (2, 4):  # too few and too many
            with pytest.raises(ValueError, match=rf"`{name}` must have shape \(\.\.\., 3\)"):
                method(torch.zeros(4, wrong))


@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
def test_non_tensor_and_integer_input_are_clear_errors(case):
    layer = case.make(2)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        layer([[0.1, 0.2]])
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(3, 2, dtype=torch.long))
