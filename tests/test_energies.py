"""Tests of the energies U1-U4 of Rezende and Mohamed (2015) and their normalizers."""

import math

import pytest
import torch

from nfcourse import energies
from nfcourse.validate import UnknownNameError

NAMES = ["U1", "U2", "U3", "U4"]
RAW = {"U1": energies.U1, "U2": energies.U2, "U3": energies.U3, "U4": energies.U4}


def _by_hand(name, z1, z2):
    """The formulas of Table 1, written out again with the math module (scalars)."""
    w1 = math.sin(2 * math.pi * z1 / 4)
    w2 = 3 * math.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + math.exp(-(z1 - 1) / 0.3))
    if name == "U1":
        r = math.hypot(z1, z2)
        bumps = math.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + math.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
        return 0.5 * ((r - 2) / 0.4) ** 2 - math.log(bumps)
    if name == "U2":
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if name == "U3":
        return -math.log(
            math.exp(-0.5 * ((z2 - w1) / 0.35) ** 2) + math.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
        )
    return -math.log(
        math.exp(-0.5 * ((z2 - w1) / 0.4) ** 2) + math.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    )


POINTS = [(0.0, 0.0), (2.0, 0.0), (1.0, 1.0), (1.0, -2.0), (1.0, -0.5), (-3.0, 2.5), (0.3, -1.7)]


@pytest.mark.parametrize("name", NAMES)
def test_values_match_the_formulas_of_the_paper(name):
    z = torch.tensor(POINTS, dtype=torch.float64)
    expected = torch.tensor([_by_hand(name, *p) for p in POINTS], dtype=torch.float64)
    assert torch.allclose(RAW[name](z), expected, rtol=1e-12, atol=1e-12)


def test_values_worked_out_on_paper():
    def t(*p):
        return torch.tensor(p, dtype=torch.float64)

    # ||z|| = 0: 1/2 (2/0.4)^2 = 12.5; both bumps exp(-1/2 (2/0.6)^2): -log 2 + 50/9
    assert energies.U1(t(0.0, 0.0)).item() == pytest.approx(12.5 + 50 / 9 - math.log(2))
    assert energies.U1(t(2.0, 0.0)).item() == pytest.approx(0.0, abs=1e-9)  # on the ring
    assert energies.U2(t(1.0, 1.0)).item() == pytest.approx(0.0, abs=1e-15)  # w1(1) = 1
    assert energies.U2(t(0.0, 0.4)).item() == pytest.approx(0.5)
    # z1 = 1: w1 = 1, w2 = 3, w3 = 1.5; at z2 = -0.5 the lower branch of U4 is at its peak
    expected = -math.log(1 + math.exp(-0.5 * (1.5 / 0.4) ** 2))
    assert energies.U4(t(1.0, -0.5)).item() == pytest.approx(expected, rel=1e-12)
    assert energies.U3(t(1.0, -2.0)).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_envelope_is_added_to_u2_u4_only(name):
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    target = energies.get(name)
    wall = (z[:, 0] / 5) ** 8 if name != "U1" else 0.0
    assert torch.allclose(target.energy(z), RAW[name](z) + wall)
    assert torch.allclose(target.log_prob(z), -target.energy(z) - target.log_normalizer)


def _trapezoid_2d(fn, box, step):
    (a1, b1), (a2, b2) = box
    x1 = torch.arange(a1, b1 + step / 2, step, dtype=torch.float64)
    x2 = torch.arange(a2, b2 + step / 2, step, dtype=torch.float64)
    values = fn(torch.stack(torch.meshgrid(x1, x2, indexing="ij"), -1))
    return torch.trapezoid(torch.trapezoid(values, x2, dim=1), x1).item()


@pytest.mark.parametrize("name", NAMES)
def test_density_integrates_to_one(name):
    """exp(log_prob) on a trapezoid grid over a larger box than the one log Z used."""
    target = energies.get(name)
    mass = _trapezoid_2d(lambda z: target.log_prob(z).exp(), ((-8.5, 8.5), (-9.0, 9.0)), 0.02)
    assert mass == pytest.approx(1.0, abs=1e-7)


def test_u1_normalizer_by_polar_quadrature():
    """An independent method: Z = ∫ r dr ∫ dθ exp(-U1), trapezoid in r, periodic in θ."""
    r = torch.linspace(0, 7, 1401, dtype=torch.float64)
    theta = torch.arange(800, dtype=torch.float64) * 2 * math.pi / 800
    rr, tt = torch.meshgrid(r, theta, indexing="ij")
    z = torch.stack([rr * tt.cos(), rr * tt.sin()], -1)
    inner = torch.exp(-energies.U1(z)).sum(-1) * 2 * math.pi / 800  # (len(r),)
    log_z = math.log(torch.trapezoid(r * inner, r).item())
    assert energies.get("U1").log_normalizer == pytest.approx(log_z, abs=1e-9)
    assert log_z == pytest.approx(1.877502, abs=1e-6)


@pytest.mark.parametrize("name, c", [("U2", 0.4), ("U3", 0.7), ("U4", 0.75)])
def test_closed_form_normalizers(name, c):
    """Z = c sqrt(2 pi) * ∫ exp(-(z1/5)^8) dz1, with the z1 integral done numerically here."""
    z1 = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    envelope_mass = torch.trapezoid(torch.exp(-((z1 / 5) ** 8)), z1).item()
    expected = math.log(c * math.sqrt(2 * math.pi) * envelope_mass)
    assert energies.get(name).log_normalizer == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("name, c", [("U2", 0.4), ("U3", 0.7), ("U4", 0.75)])
def test_without_the_envelope_u2_u4_do_not_normalize(name, c):
    """The mass of exp(-U) on [-L, L] x [-10, 10] is 2 L c sqrt(2 pi): it grows without bound."""

    def mass(fn, half_width):
        box = ((-half_width, half_width), (-10.0, 10.0))
        return _trapezoid_2d(lambda z: torch.exp(-fn(z)), box, 0.02)

    raw = [mass(RAW[name], L) for L in (4.0, 8.0, 16.0)]
    for L, m in zip((4.0, 8.0, 16.0), raw, strict=True):
        assert m == pytest.approx(2 * L * c * math.sqrt(2 * math.pi), rel=1e-6)
    enveloped = energies.get(name).energy
    assert mass(enveloped, 16.0) == pytest.approx(mass(enveloped, 8.0), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_stability_far_away(name):
    target = energies.get(name)
    z = torch.randn(3, 4, 2)
    assert target.log_prob(z).shape == (3, 4) and target.log_prob(z).dtype == torch.float32
    assert target.energy(z[0, 0]).shape == ()
    far = torch.tensor([[60.0, 0.0], [0.0, -60.0], [-40.0, 40.0]], requires_grad=True)
    u = target.energy(far)
    (grad,) = torch.autograd.grad(u.sum(), far)
    assert torch.isfinite(u).all() and torch.isfinite(grad).all()


def test_registry_and_bounds():
    assert energies.names() == NAMES
    for name in NAMES:
        assert energies.get(name).name == name
        assert energies.get(name).bounds == ((-4.0, 4.0), (-4.0, 4.0))
    assert energies.get("U1") is energies.ENERGIES["U1"]  # log Z is computed once


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        energies.get("U5")
    assert isinstance(info.value, UnknownNameError)
    assert all(name in str(info.value) for name in NAMES)


@pytest.mark.parametrize(
    "fn", [energies.U1, energies.get("U3").energy, energies.get("U4").log_prob]
)
def test_bad_points(fn):
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\).*got shape \(5, 3\)"):
        fn(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        fn([0.0, 0.0])
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.zeros(5, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="got a scalar"):
        fn(torch.tensor(1.0))
