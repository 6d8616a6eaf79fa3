"""Planar and radial layers: what is specific to them.

The generic battery (tests/test_layers.py) runs over their rows in tests/registry.py,
among them "Planar-far" and "Radial-far": large parameters, several draws. Here: the
invertibility constraints for arbitrary raw parameters, the numerical planar inverse
(accuracy near the constraint boundary, with large parameters, in float32, its
gradients), the closed-form radial inverse (at, near and far from the centre), stacked
densities that integrate to one, and the error messages. Parameters are always
perturbed away from the initialization: a layer near the identity hides sign errors.
"""

from __future__ import annotations

import pytest
import torch
from registry import CASE, build, perturb

from nfcourse import Flow
from nfcourse.layers.planar import Planar, constrain_u, planar_forward, planar_inverse
from nfcourse.layers.radial import Radial, constrain_alpha_beta, radial_forward, radial_inverse

f64 = torch.float64


def planar_params(dim: int, wu: float, w_norm: float = 1.0, u_norm: float = 1.0, seed: int = 0):
    """Raw ``u_hat, w, b`` (float64) with a chosen ``w.u_hat`` and size."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, dtype=f64, generator=g)
    w = w_norm * w / w.norm()
    u_perp = torch.randn(dim, dtype=f64, generator=g)
    u_perp = u_perp - (u_perp @ w) / (w @ w) * w
    u_hat = u_norm * u_perp / max(u_perp.norm(), 1e-300) + wu * w / (w @ w)
    return u_hat, w, torch.randn((), dtype=f64, generator=g)


# --- float32 and the start ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["Planar-far", "Radial-far"])
def test_float32_round_trip(name):
    """Tighter and on more points than the battery: the planar inverse is a root find."""
    for seed in range(3):
        layer = build(CASE[name], 3, seed).float()
        z = 2 * torch.randn(500, 3)
        x, ladj = layer(z)
        z_back, ladj_inv = layer.inverse(x)
        assert z_back.dtype == ladj.dtype == torch.float32
        assert (z_back - z).abs().max() < 1e-5
        assert (ladj + ladj_inv).abs().max() < 1e-5


def test_stacked_layers_start_different():
    torch.manual_seed(0)
    a, b = Planar(3), Planar(3)
    assert not torch.equal(a.u, b.u) and not torch.equal(a.w, b.w)
    c, d = Radial(3), Radial(3)
    assert not torch.equal(c.z0, d.z0)


# --- the planar constraint -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, f64])
def test_constrain_u_holds_for_any_raw_parameters(dtype):
    g = torch.Generator().manual_seed(0)
    scales = torch.logspace(-3, 1.5, 1000, dtype=dtype)[:, None]
    w = torch.randn(1000, 4, dtype=dtype, generator=g) * scales
    u = torch.randn(1000, 4, dtype=dtype, generator=g) * scales.flip(0)
    # adversarial: u = -c w (so w.u = -c |w|^2, far past the boundary) and u = +c w; the
    # constraint survives rounding while |u| |w| << 1 / sqrt(eps) (3e3 in float32, 7e7 in float64)
    c = [1.0, 10.0, 100.0] + ([1e3, 1e5] if dtype == f64 else [])
    c = torch.tensor(c, dtype=dtype).repeat_interleave(50)[:, None]
    w_adv = torch.randn(50, 4, dtype=dtype, generator=g).repeat(len(c) // 50, 1)
    w = torch.cat([w, w_adv, w_adv])
    u = torch.cat([u, -c * w_adv, c * w_adv])
    u_hat = constrain_u(u, w)
    assert torch.isfinite(u_hat).all()
    assert ((w * u_hat).sum(-1) > -1).all()
    # only the component along w changes
    w_unit = w / w.norm(dim=-1, keepdim=True)
    change = u_hat - u
    along = (change * w_unit).sum(-1, keepdim=True) * w_unit
    assert torch.allclose(change, along, atol=1e-4 if dtype == torch.float32 else 1e-9)


def test_planar_layer_with_adversarial_parameters_is_invertible():
    torch.manual_seed(0)
    layer = Planar(3).double()
    with torch.no_grad():
        layer.w.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.u.copy_(-100 * layer.w)  # w.u = -525: the raw u folds space
        layer.b.fill_(0.3)
    assert (layer.w @ layer.u_hat) > -1
    z = torch.randn(200, 3, dtype=f64)
    x, ladj = layer(z)
    assert torch.isfinite(ladj).all()
    # forward(inverse(x)) = x: the solver is exact even where the map is almost flat
    z_back, _ = layer.inverse(x)
    assert (layer(z_back)[0] - x).abs().max() < 1e-12


def test_w_zero_gives_no_nan():
    torch.manual_seed(0)
    layer = Planar(2).double()
    with torch.no_grad():
        layer.w.zero_()
        layer.u.copy_(torch.tensor([1.0, -2.0]))
        layer.b.fill_(0.7)
    assert torch.equal(layer.u_hat, layer.u)
    z = torch.randn(10, 2, dtype=f64)
    x, ladj = layer(z)  # a translation by u tanh(b)
    assert torch.allclose(x, z + layer.u * torch.tanh(layer.b))
    assert ladj.abs().max() < 1e-15
    z_back, ladj_inv = layer.inverse(x)
    assert (z_back - z).abs().max() < 1e-14 and ladj_inv.abs().max() < 1e-15
    Flow([layer]).nll(x).backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


# --- the numerical planar inverse ----------------------------------------------------------


@pytest.mark.parametrize(
    "wu, w_norm, u_norm",
    [
        (-1 + 1e-6, 1.0, 1.0),  # near the constraint boundary: the map is almost flat
        (-1 + 1e-6, 2.0, 5.0),
        (200.0, 10.0, 30.0),  # large ||w||, ||u||
        (-1 + 1e-6, 10.0, 30.0),
    ],
)
def test_planar_inverse_near_boundary_and_large_parameters(wu, w_norm, u_norm):
    for seed in range(3):
        u_hat, w, b = planar_params(4, wu, w_norm, u_norm, seed)
        z = torch.randn(1000, 4, dtype=f64, generator=torch.Generator().manual_seed(seed))
        x, ladj = planar_forward(z, u_hat, w, b)
        z_back, ladj_inv = planar_inverse(x, u_hat, w, b)
        assert (planar_forward(z_back, u_hat, w, b)[0] - x).abs().max() < 1e-13 * u_norm
        # the round trip is bounded by the conditioning: rounding of x times 1 / (1 + w.u_hat)
        assert (z_back - z).abs().max() < 1e-10 * u_norm
        assert torch.allclose(ladj_inv, -ladj, atol=1e-5, rtol=0)


def test_planar_inverse_near_boundary_float32():
    torch.manual_seed(0)
    u_hat, w, b = (t.float() for t in planar_params(4, -1 + 1e-6, 1.0, 2.0))
    assert w @ u_hat > -1
    x = 3 * torch.randn(1000, 4)
    z, _ = planar_inverse(x, u_hat, w, b)
    # a true preimage up to float32 rounding (the round trip z -> x -> z cannot be better
    # than about eps / (1 + w.u_hat) in the flat direction: conditioning, not the solver)
    assert (planar_forward(z, u_hat, w, b)[0] - x).abs().max() < 1e-5


def test_planar_inverse_gradients_match_finite_differences():
    torch.manual_seed(0)
    u_hat, w, b = planar_params(3, 0.8, 1.3, 0.7)
    x = torch.randn(4, 3, dtype=f64)
    args = [t.clone().requires_grad_() for t in (x, u_hat, w, b)]
    assert torch.autograd.gradcheck(planar_inverse, args)
    # through the constraint, as a Planar layer trains (raw u pointing against w)
    raw = [t.clone().requires_grad_() for t in (x, -2 * w, w, b)]
    assert torch.autograd.gradcheck(
        lambda x, u, w, b: planar_inverse(x, constrain_u(u, w), w, b), raw
    )


def test_planar_flow_trains_by_maximum_likelihood():
    torch.manual_seed(0)
    data = torch.randn(256, 2, dtype=f64) * torch.tensor([2.0, 0.5], dtype=f64) + 1.0
    flow = Flow([Planar(2) for _ in range(4)]).double()
    opt = torch.optim.Adam(flow.parameters(), lr=0.05)
    first = flow.nll(data).item()
    for _ in range(60):
        opt.zero_grad()
        loss = flow.nll(data)
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.5


# --- densities -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Planar, Radial], ids=["planar", "radial"])
def test_stacked_flow_density_integrates_to_one(cls):
    # (scale 1: a layer close to w.u_hat = -1 makes ridges too sharp for this grid)
    torch.manual_seed(0)
    flow = Flow([perturb(cls(2), scale=1.0) for _ in range(3)])
    grid = torch.linspace(-12, 12, 481, dtype=f64)
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = flow.log_prob(points).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3
    # density estimation (inverses) agrees with the sampling path (forwards only)
    x, log_p = flow.sample_and_log_prob(100)
    assert torch.allclose(flow.log_prob(x), log_p, atol=1e-8)


# --- the closed-form radial inverse --------------------------------------------------------


@pytest.mark.parametrize(
    "alpha, beta",
    [(1.0, 2.0), (0.5, -0.3), (1e-3, 1e3), (1e3, -999.0), (0.5, -0.5 * (1 - 1e-9)), (2.0, -2.0)],
)
def test_radial_inverse_at_near_and_far_from_centre(alpha, beta):
    alpha, beta = torch.tensor(alpha, dtype=f64), torch.tensor(beta, dtype=f64)
    z0 = torch.zeros(3, dtype=f64)  # offsets from z0 exact, so relative errors are meaningful
    direction = torch.tensor([2.0, -1.0, 0.5], dtype=f64)
    direction = direction / direction.norm()
    radii = torch.tensor([1e-200, 1e-12, 1e-6, 0.3, 1.0, 1e3, 1e8], dtype=f64)
    if alpha + beta == 0:  # singular at z0: 1e-200 is mapped to 1e-400 = 0
        radii = radii[1:]
    z = radii[:, None] * direction
    x, ladj = radial_forward(z, z0, alpha, beta)
    z_back, ladj_inv = radial_inverse(x, z0, alpha, beta)
    assert ((z_back - z).norm(dim=-1) / radii).max() < 1e-12
    assert torch.allclose(ladj_inv, -ladj, atol=1e-12, rtol=0)
    if alpha + beta > 0:  # at z0 itself (singular if beta = -alpha)
        centre = torch.tensor([0.3, -0.2, 0.5], dtype=f64)
        x, ladj = radial_forward(centre, centre, alpha, beta)
        z_back, ladj_inv = radial_inverse(x, centre, alpha, beta)
        assert torch.equal(x, centre) and torch.equal(z_back, centre)
        assert torch.allclose(ladj, 3 * torch.log1p(beta / alpha)) and ladj_inv == -ladj


def test_constrain_alpha_beta_holds_for_any_raw_parameters():
    raw = torch.tensor([-1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3], dtype=f64)
    alpha_raw, beta_raw = torch.cartesian_prod(raw, raw).unbind(-1)
    alpha, beta = constrain_alpha_beta(alpha_raw, beta_raw)
    assert (alpha > 0).all() and (beta >= -alpha).all()
    for a, b in zip(alpha, beta, strict=True):  # every pair passes the raw functions' checks
        radial_forward(torch.ones(2, dtype=f64), torch.zeros(2, dtype=f64), a, b)


# --- errors that say what to do ------------------------------------------------------------


def test_raw_functions_with_wrong_shapes_name_the_expected_shape():
    # (the layers themselves: test_layers.py, test_wrong_number_of_coordinates_is_a_clear_error)
    with pytest.raises(ValueError, match=r"`w` must have shape \(2,\)"):
        planar_forward(torch.randn(4, 2), torch.ones(2), torch.ones(1), torch.zeros(()))
    with pytest.raises(ValueError, match=r"`b` must be a scalar"):
        planar_inverse(torch.randn(4, 2), torch.ones(2), torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"`z0` must have shape \(2,\)"):
        radial_forward(torch.randn(4, 2), torch.zeros(3), torch.ones(()), torch.ones(()))


@pytest.mark.parametrize("wu", [-1.0, -1.5, float("nan")])
@pytest.mark.parametrize("fn", [planar_forward, planar_inverse])
def test_planar_raw_parameters_violating_the_constraint(fn, wu):
    w, u_hat = torch.tensor([2.0, 0.0]), torch.tensor([wu / 2, 3.0])  # w.u_hat = wu exactly
    with pytest.raises(ValueError, match=r"w\.u_hat > -1.*constrain_u"):
        fn(torch.randn(5, 2), u_hat, w, torch.tensor(0.1))


@pytest.mark.parametrize(
    "alpha, beta, message",
    [
        (0.0, 1.0, "alpha` must be > 0"),
        (-1.0, 1.0, "alpha` must be > 0"),
        (1.0, -1.5, "beta >= -alpha"),
    ],
)
@pytest.mark.parametrize("fn", [radial_forward, radial_inverse])
def test_radial_raw_parameters_violating_the_constraint(fn, alpha, beta, message):
    alpha, beta = torch.tensor(alpha), torch.tensor(beta)
    with pytest.raises(ValueError, match=f"{message}.*constrain_alpha_beta"):
        fn(torch.randn(5, 2), torch.zeros(2), alpha, beta)
