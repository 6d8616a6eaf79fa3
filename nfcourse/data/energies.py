"""The four 2-D energies of Rezende and Mohamed (2015), targets ``p(z) ∝ exp(-U(z))``.

Table 1 of the paper, with ``z = (z1, z2)``::

    U1(z) = 1/2 ((||z|| - 2) / 0.4)^2
            - log(exp(-1/2 ((z1 - 2) / 0.6)^2) + exp(-1/2 ((z1 + 2) / 0.6)^2))
    w1(z) = sin(2 pi z1 / 4)
    w2(z) = 3 exp(-1/2 ((z1 - 1) / 0.6)^2)
    w3(z) = 3 sigmoid((z1 - 1) / 0.3)
    U2(z) = 1/2 ((z2 - w1) / 0.4)^2
    U3(z) = -log(exp(-1/2 ((z2 - w1) / 0.35)^2) + exp(-1/2 ((z2 - w1 + w2) / 0.35)^2))
    U4(z) = -log(exp(-1/2 ((z2 - w1) / 0.4)^2) + exp(-1/2 ((z2 - w1 + w3) / 0.35)^2))

The module-level functions :func:`U1` ... :func:`U4` are exactly these (computed with
logsumexp, so they stay finite far from the modes).

Why U2-U4 get an envelope. ``exp(-U1)`` is integrable on the plane (a ring). ``exp(-U2)``,
``exp(-U3)`` and ``exp(-U4)`` are not: for every ``z1`` the integral over ``z2`` is the same
positive constant (``0.4 sqrt(2 pi)``, ``0.7 sqrt(2 pi)`` and ``0.75 sqrt(2 pi)``: Gaussians
in ``z2`` whose means move with ``z1``), so the integral over a box ``[-L, L] x R`` grows like
``2 L`` and there is no normalized density. The paper plots them on ``[-4, 4]^2``, i.e.
implicitly restricts them to a box. A hard box would make reverse-KL training (whose
samples can land anywhere) infinite as soon as one sample leaves it, and without any
bound the objective ``E_q[log q(z) + U(z)]`` has no minimum: ``q`` gains by spreading
further and further along ``z1``. So the :class:`Energy` objects for U2-U4 add

    E(z) = (z1 / 5)^8,

a smooth, flat-topped wall: ``exp(-E)`` is above 0.98 for ``|z1| <= 3`` and 0.85 at
``|z1| = 4`` (the picture on ``[-4, 4]^2`` is almost unchanged), 0.37 at ``|z1| = 5`` and
below 1e-5 at ``|z1| = 7``. 83% of the target's mass lies in ``|z1| <= 4`` (so exact
samples fall outside the usual plot 17% of the time: plot on ``[-6, 6] x [-4, 4]`` to see
them). The envelope depends on ``z1`` only, so the normalizers stay in closed form:
``Z = c sqrt(2 pi) * 10 Gamma(9/8)`` with ``c = 0.4, 0.7, 0.75`` for U2, U3, U4, since
``∫ exp(-(z1/5)^8) dz1 = 10 Gamma(9/8)``.

Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing Flows",
arXiv:1505.05770.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..validate import unknown_name
from .grid import Box, check_points_2d, integrate_2d


def _coords(z: Tensor, where: str) -> tuple[Tensor, Tensor]:
    z = check_points_2d(z, "z", where)
    return z[..., 0], z[..., 1]


def _log_sum_exp2(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))``, stable."""
    return torch.logaddexp(a, b)


def _w1(z1: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z1 / 4)


def _w2(z1: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)


def _w3(z1: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z1 - 1) / 0.3)


def U1(z: Tensor) -> Tensor:
    """``1/2 ((||z|| - 2)/0.4)^2 - log(exp(-1/2 ((z1-2)/0.6)^2) + exp(-1/2 ((z1+2)/0.6)^2))``.

    ``z``: shape ``(*, 2)``; returns ``(*)``. A ring of radius 2 with two bumps on the z1 axis.
    """
    z1, _ = _coords(z, "U1")
    ring = 0.5 * ((z.norm(dim=-1) - 2) / 0.4) ** 2
    return ring - _log_sum_exp2(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2)


def U2(z: Tensor) -> Tensor:
    """``1/2 ((z2 - w1)/0.4)^2`` with ``w1 = sin(2 pi z1 / 4)`` (not normalizable alone).

    ``z``: shape ``(*, 2)``; returns ``(*)``. A sine wave.
    """
    z1, z2 = _coords(z, "U2")
    return 0.5 * ((z2 - _w1(z1)) / 0.4) ** 2


def U3(z: Tensor) -> Tensor:
    """``-log(exp(-1/2 ((z2 - w1)/0.35)^2) + exp(-1/2 ((z2 - w1 + w2)/0.35)^2))``.

    ``w2 = 3 exp(-1/2 ((z1 - 1)/0.6)^2)``; not normalizable alone. ``z``: ``(*, 2)`` -> ``(*)``.
    A sine wave and a copy of it that splits off near ``z1 = 1``.
    """
    z1, z2 = _coords(z, "U3")
    d = z2 - _w1(z1)
    return -_log_sum_exp2(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + _w2(z1)) / 0.35) ** 2)


def U4(z: Tensor) -> Tensor:
    """``-log(exp(-1/2 ((z2 - w1)/0.4)^2) + exp(-1/2 ((z2 - w1 + w3)/0.35)^2))``.

    ``w3 = 3 sigmoid((z1 - 1)/0.3)``; not normalizable alone. ``z``: ``(*, 2)`` -> ``(*)``.
    A sine wave and a copy of it shifted down by up to 3 for ``z1 > 1``.
    """
    z1, z2 = _coords(z, "U4")
    d = z2 - _w1(z1)
    return -_log_sum_exp2(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + _w3(z1)) / 0.35) ** 2)


def envelope(z: Tensor) -> Tensor:
    """``(z1 / 5)^8``: the wall added to U2-U4 to make them normalizable (module docstring)."""
    z1, _ = _coords(z, "envelope")
    return (z1 / 5) ** 8


# ∫ exp(-(z1/5)^8) dz1 over the real line
_ENVELOPE_MASS = 10 * math.gamma(9 / 8)


class Energy:
    """A 2-D target density ``p(z) = exp(-U(z)) / Z``, optionally with an envelope.

    Args:
        name: the registry name, e.g. ``"U1"``.
        fn: the energy ``U`` of the paper, ``(*, 2) -> (*)``.
        with_envelope: add :func:`envelope` ``(z1/5)^8`` to ``U`` (needed for U2-U4).
        z2_mass: for an enveloped energy, the integral of ``exp(-U)`` over ``z2`` (the
            same for every ``z1``); then ``Z = z2_mass * 10 Gamma(9/8)`` exactly.

    ``log_normalizer`` (``log Z``) is exact where ``z2_mass`` is given; otherwise it is
    computed on first use, by the midpoint rule (:func:`~nfcourse.datasets.integrate_2d`)
    on ``[-6, 6]^2`` with step 0.01, and cached. For U1 that box leaves out a mass below
    1e-12 relative (``||z|| > 6`` is 10 ring widths out) and the step is 1/40 of the
    narrowest width (0.4); a step of 0.02 or a box of ``[-9, 9] x [-10, 10]`` changes it by
    < 1e-13. Values: ``log Z`` = 1.877502 (U1), 2.245210 (U2), 2.804825 (U3), 2.873818 (U4).
    """

    bounds: Box = ((-4.0, 4.0), (-4.0, 4.0))
    box: Box = ((-6.0, 6.0), (-6.0, 6.0))
    step: float = 0.01

    def __init__(
        self,
        name: str,
        fn: Callable[[Tensor], Tensor],
        with_envelope: bool = False,
        z2_mass: float | None = None,
    ):
        self.name = name
        self.fn = fn
        self.with_envelope = with_envelope
        self._z2_mass = z2_mass
        self._log_z: float | None = None

    def energy(self, z: Tensor) -> Tensor:
        """``U(z)`` (plus the envelope if any) for ``z`` of shape ``(*, 2)``; returns ``(*)``."""
        z = check_points_2d(z, "z", f"{self.name}.energy")
        u = self.fn(z)
        return u + envelope(z) if self.with_envelope else u

    @property
    def log_normalizer(self) -> float:
        """``log Z = log ∫ exp(-U(z)) dz`` (see the class docstring for how)."""
        if self._log_z is None:
            if self._z2_mass is not None and self.with_envelope:
                self._log_z = math.log(self._z2_mass * _ENVELOPE_MASS)
            else:
                z_value = integrate_2d(lambda z: torch.exp(-self.energy(z)), self.box, self.step)
                self._log_z = math.log(z_value)
        return self._log_z

    def log_prob(self, z: Tensor) -> Tensor:
        """``log p(z) = -U(z) - log Z`` for ``z`` of shape ``(*, 2)``; returns ``(*)``."""
        return -self.energy(z) - self.log_normalizer

    def __repr__(self) -> str:
        wall = " + (z1/5)^8" if self.with_envelope else ""
        return f"Energy({self.name}{wall})"


_SQRT_2PI = math.sqrt(2 * math.pi)

ENERGIES: dict[str, Energy] = {
    "U1": Energy("U1", U1),
    "U2": Energy("U2", U2, with_envelope=True, z2_mass=0.4 * _SQRT_2PI),
    "U3": Energy("U3", U3, with_envelope=True, z2_mass=0.7 * _SQRT_2PI),
    "U4": Energy("U4", U4, with_envelope=True, z2_mass=0.75 * _SQRT_2PI),
}


def names() -> list[str]:
    """The energy names: ``["U1", "U2", "U3", "U4"]``."""
    return list(ENERGIES)


def get(name: str) -> Energy:
    """The target ``name`` (``"U1"`` ... ``"U4"``), normalizable (U2-U4 with the envelope).

    Raises :class:`~nfcourse.validate.UnknownNameError` (a ``KeyError``) listing the names.
    """
    if name not in ENERGIES:
        raise unknown_name("energy", name, names())
    return ENERGIES[name]
