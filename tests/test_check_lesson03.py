"""The checks of lesson 03: the reference passes, a stub is "not done", typical mistakes get
the right hint, and strict mode raises."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from check_support import not_strict  # noqa: F401 (not_strict: an autouse fixture)
from torch import nn

from nfcourse import check
from nfcourse.course.check import CheckFailed

# --- Exercise 3.1: reference solution and typical mistakes ----------------------------------


class Planar(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.u = nn.Parameter(0.1 * torch.randn(dim))
        self.w = nn.Parameter(0.1 * torch.randn(dim))
        self.b = nn.Parameter(torch.zeros(()))

    @property
    def u_hat(self):
        wu = self.w @ self.u
        m = -1 + F.softplus(wu)
        return self.u + (m - wu) * self.w / (self.w @ self.w)

    def dtanh(self, s):
        return 1 - torch.tanh(s) ** 2

    def forward(self, z):
        u_hat = self.u_hat
        s = z @ self.w + self.b
        x = z + u_hat * torch.tanh(s)[..., None]
        ladj = torch.log(torch.abs(1 + (self.w @ u_hat) * self.dtanh(s)))
        return x, ladj


class PlanarAsMethod(Planar):
    """u_hat as a method rather than a property: also accepted."""

    def u_hat(self):  # noqa: D102
        wu = self.w @ self.u
        return self.u + (-1 + F.softplus(wu) - wu) * self.w / (self.w @ self.w)

    def forward(self, z):
        u_hat = self.u_hat()
        s = z @ self.w + self.b
        ladj = torch.log(torch.abs(1 + (self.w @ u_hat) * self.dtanh(s)))
        return z + u_hat * torch.tanh(s)[..., None], ladj


class PlanarStub(Planar):
    @property
    def u_hat(self):
        raise NotImplementedError("Exercise 3.1: ...")

    def forward(self, z):
        raise NotImplementedError("Exercise 3.1: ...")


class NoConstraint(Planar):
    @property
    def u_hat(self):
        return self.u


class NoAbs(Planar):
    def forward(self, z):
        x, _ = super().forward(z)
        s = z @ self.w + self.b
        return x, torch.log(1 + (self.w @ self.u_hat) * self.dtanh(s))


class TanhNotSquared(Planar):
    def dtanh(self, s):
        return 1 - torch.tanh(s)


class KeepDim(Planar):
    def forward(self, z):
        x, ladj = super().forward(z)
        return x, ladj[..., None]


class Sign(Planar):
    def forward(self, z):
        x, ladj = super().forward(z)
        return x, -ladj


class NormNotSquared(Planar):
    @property
    def u_hat(self):
        wu = self.w @ self.u
        return self.u + (-1 + F.softplus(wu) - wu) * self.w / self.w.norm()


class RawUInMap(Planar):
    def forward(self, z):
        _, ladj = super().forward(z)
        return z + self.u * torch.tanh(z @ self.w + self.b)[..., None], ladj


class NoBInDerivative(Planar):
    def forward(self, z):
        x, _ = super().forward(z)
        return x, torch.log(torch.abs(1 + (self.w @ self.u_hat) * self.dtanh(z @ self.w)))


class FlatLadj(Planar):
    """Right for a batch (N, D), wrong for points of shape (2, 3, D)."""

    def forward(self, z):
        x, ladj = super().forward(z)
        return x, ladj.flatten()


class UHatFromData(Planar):
    """Right values, but u_hat is built from self.u.data: no gradient reaches u."""

    @property
    def u_hat(self):
        u = self.u.data
        wu = self.w @ u
        return u + (-1 + F.softplus(wu) - wu) * self.w / (self.w @ self.w)


class DetachedInput(Planar):
    """Right values, but s is computed from a detached z: autograd sees another map."""

    def forward(self, z):
        u_hat = self.u_hat
        s = z.detach() @ self.w + self.b
        ladj = torch.log(torch.abs(1 + (self.w @ u_hat) * self.dtanh(s)))
        return z + u_hat * torch.tanh(s)[..., None], ladj


class Misspelt(Planar):
    """`foward`: nn.Module finds no forward and raises its own NotImplementedError."""

    forward = nn.Module.forward

    def foward(self, z):
        return Planar.forward(self, z)


class TypoInProperty(Planar):
    """An AttributeError inside the property u_hat (self.ww), not a missing u_hat."""

    @property
    def u_hat(self):
        wu = self.ww @ self.u
        return self.u + (-1 + F.softplus(wu) - wu) * self.w / (self.w @ self.w)


def test_planar_reference_passes_fast():
    start = time.perf_counter()
    result = check.planar_layer(Planar)
    assert result and result.status == "passed", result.line
    assert time.perf_counter() - start < 1.0
    assert check.planar_layer(PlanarAsMethod)


def test_planar_stub_is_not_done():
    assert check.planar_layer(PlanarStub).status == "not done"


@pytest.mark.parametrize(
    "cls, hint",
    [
        (NoConstraint, "the constraint is missing"),
        (NoAbs, "you forgot the absolute value"),
        (TanhNotSquared, "you forgot the square"),
        (KeepDim, "drop the last dimension"),
        (Sign, "the sign is flipped"),
        (NormNotSquared, "divide by ||w||^2"),
        (RawUInMap, "not the raw u"),
        (NoBInDerivative, "you left out b"),
        (FlatLadj, "any leading batch shape works"),
        (UHatFromData, "`.data` in u_hat"),
        (DetachedInput, "`.detach()` in forward"),
        (Misspelt, "check the spelling of your method names"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_planar_mistakes_get_the_right_hint(cls, hint):
    result = check.planar_layer(cls)
    assert result.status == "failed" and hint in result.hint, result.line


def test_planar_gradients_must_reach_the_parameters():
    result = check.planar_layer(UHatFromData)
    assert "no gradient reaches the parameter `u`" in result.message, result.line


def test_planar_misspelt_forward_is_a_failure_not_work_to_do():
    result = check.planar_layer(Misspelt)
    assert result.status == "failed" and "found no `forward`" in result.message, result.line


def test_planar_error_inside_a_property_is_reported_as_it_is():
    result = check.planar_layer(TypoInProperty)
    assert result.status == "failed", result.line
    assert "has no attribute 'ww'" in result.message and "property `u_hat`" in result.message
    assert "of u_hat()" in result.hint, result.line


def test_planar_instance_instead_of_class():
    result = check.planar_layer(Planar(2))
    assert result.status == "failed" and "leave out the parentheses" in result.hint


# --- Exercise 3.2 --------------------------------------------------------------------------------


class Radial(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.z0 = nn.Parameter(0.1 * torch.randn(dim))
        self.alpha_raw = nn.Parameter(0.1 * torch.randn(()))
        self.beta_raw = nn.Parameter(0.1 * torch.randn(()))

    @property
    def alpha_beta(self):
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)

    def last_term(self, beta, h, r):
        return torch.log(1 + beta * h - beta * r * h**2)

    def factor(self, D):
        return D - 1

    def forward(self, z):
        alpha, beta = self.alpha_beta
        r = (z - self.z0).norm(dim=-1)
        h = 1 / (alpha + r)
        x = z + (beta * h)[..., None] * (z - self.z0)
        ladj = self.factor(z.shape[-1]) * torch.log(1 + beta * h) + self.last_term(beta, h, r)
        return x, ladj

    def inverse(self, x):
        alpha, beta = self.alpha_beta
        R = (x - self.z0).norm(dim=-1)
        p = alpha + beta - R
        r = (-p + torch.sqrt(p**2 + 4 * alpha * R)) / 2
        h = 1 / (alpha + r)
        z = self.z0 + (x - self.z0) / (1 + beta * h)[..., None]
        ladj = (x.shape[-1] - 1) * torch.log(1 + beta * h) + self.last_term(beta, h, r)
        return z, -ladj


class RadialNoInverse(Radial):
    inverse = None


class RadialInverseStub(Radial):
    def inverse(self, x):
        raise NotImplementedError("Exercise 3.2: ...")


class RadialStub(Radial):
    @property
    def alpha_beta(self):
        raise NotImplementedError("Exercise 3.2: ...")

    def forward(self, z):
        raise NotImplementedError("Exercise 3.2: ...")


class DetachedAlphaBeta(Radial):
    """Right values, but alpha and beta are detached: alpha_raw and beta_raw never train."""

    @property
    def alpha_beta(self):
        alpha, beta = super().alpha_beta
        return alpha.detach(), beta.detach()


class InverseUnderNoGrad(Radial):
    """A right inverse computed under torch.no_grad(): a flow's log_prob cannot train it."""

    def inverse(self, x):
        with torch.no_grad():
            return super().inverse(x)


class RadialInverseNotImplemented(Radial):
    """An inverse that raises a NotImplementedError of its own, not the stub's."""

    def inverse(self, x):
        raise NotImplementedError("only for D = 2")


class FactorD(Radial):
    def factor(self, D):
        return D


class TwoDOnly(Radial):
    def factor(self, D):
        return 1


class NoRadialConstraint(Radial):
    @property
    def alpha_beta(self):
        return self.alpha_raw, self.beta_raw


class HPrimeSign(Radial):
    def last_term(self, beta, h, r):
        return torch.log(1 + beta * h + beta * r * h**2)


class RadialSign(Radial):
    def forward(self, z):
        x, ladj = super().forward(z)
        return x, -ladj


class BetaPositiveOnly(Radial):
    @property
    def alpha_beta(self):
        return F.softplus(self.alpha_raw), F.softplus(self.beta_raw)


class InverseLadjSign(Radial):
    def inverse(self, x):
        z, ladj = super().inverse(x)
        return z, -ladj


class RSquared(Radial):
    def forward(self, z):
        _, ladj = super().forward(z)
        alpha, beta = self.alpha_beta
        r2 = ((z - self.z0) ** 2).sum(-1)
        return z + (beta / (alpha + r2))[..., None] * (z - self.z0), ladj


class RadialFlatLadj(Radial):
    """Right for a batch (N, D), wrong for points of shape (2, 3, D)."""

    def forward(self, z):
        x, ladj = super().forward(z)
        return x, ladj.flatten()


def test_radial_reference_passes_fast():
    start = time.perf_counter()
    result = check.radial_layer(Radial)
    assert result and "inverse undoes forward" in result.message, result.line
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("cls", [RadialNoInverse, RadialInverseStub])
def test_radial_optional_inverse(cls):
    result = check.radial_layer(cls)
    assert result and "optional inverse is not written" in result.message


def test_radial_stub_is_not_done():
    assert check.radial_layer(RadialStub).status == "not done"


@pytest.mark.parametrize(
    "cls, hint",
    [
        (FactorD, "appears D - 1 times, not D"),
        (TwoDOnly, "you wrote the 2-D formula"),
        (NoRadialConstraint, "the constraint is missing"),
        (HPrimeSign, "wrong h'(r)"),
        (RadialSign, "the sign is flipped"),
        (BetaPositiveOnly, "you left out -alpha"),
        (InverseLadjSign, "wrong sign"),
        (RSquared, "not its square"),
        (RadialFlatLadj, "(.norm(dim=-1), [..., None])"),
        (DetachedAlphaBeta, "`.detach()` in alpha_beta"),
        (InverseUnderNoGrad, "`torch.no_grad()` in inverse"),
        (RadialInverseNotImplemented, "see line"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_radial_mistakes_get_the_right_hint(cls, hint):
    result = check.radial_layer(cls)
    assert result.status == "failed" and hint in result.hint, result.line


def test_radial_gradients_must_reach_the_parameters():
    result = check.radial_layer(DetachedAlphaBeta)
    assert "forward: no gradient reaches the parameter `alpha_raw`" in result.message, result.line
    result = check.radial_layer(InverseUnderNoGrad)
    assert "inverse: no gradient reaches the parameter `z0`" in result.message, result.line


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert check.planar_layer(Planar)
    with pytest.raises(CheckFailed, match="absolute value"):
        check.planar_layer(NoAbs)
    with pytest.raises(CheckFailed, match="not done"):
        check.radial_layer(RadialStub)
