"""Two-dimensional toy datasets for density estimation, generated in torch.

Every dataset is an object with

- ``sample(n, seed=None, generator=None, dtype=torch.float32)``: ``n`` i.i.d. points,
  shape ``(n, 2)``. All randomness comes from torch, never from NumPy's global state:
  with neither ``seed`` nor ``generator`` the global torch generator is used (so a
  ``torch.manual_seed`` in a notebook's first cell makes every draw reproducible); with
  ``seed`` a private generator is used and the global state is left untouched; with
  ``generator`` that generator is used (and advanced).
- ``log_prob(x)``: the log-density at points ``x`` of shape ``(*, 2)``, shape ``(*)``,
  where it is known; otherwise a ``NotImplementedError`` that says which datasets have one.
- ``entropy()``: the differential entropy ``H(p) = -∫ p(x) log p(x) dx`` in nats, or
  ``None`` where the density is unknown. It is the best expected test NLL any model ``q``
  can reach, since ``E_p[-log q(x)] = H(p) + KL(p || q) >= H(p)``.
- ``bounds``: a box ``((x1_min, x1_max), (x2_min, x2_max))`` for plots.

How the entropies are computed. The checkerboard's is exact (``log 32``). The others are
integrals of ``-p log p`` by the midpoint rule on a fine grid (:func:`integrate_2d`), from
the density formula alone: deterministic, cached after the first call, and precise to
better than ``1e-8`` nats (each docstring says how this was checked; a Monte Carlo
estimate from 10^6 samples would carry a standard error near 1e-3). They are deliberately
*not* Monte Carlo means of ``-log_prob`` over the dataset's own samples: such an estimate
agrees with the mean log-density of fresh samples whatever the density formula is, so it
could not reveal a formula that does not match the sampler. The grid value can: the mean
of ``-log_prob`` over samples is ``H(p) + KL(p || q)`` when the formula ``q`` is wrong, and
its grid entropy is ``H(q)``.

Datasets: ``moons``, ``eight_gaussians``, ``checkerboard``, ``gaussian_mixture``, ``rings``
(with densities) and ``pinwheel``, ``two_spirals`` (samplers only). Entropies with the
default arguments, in nats: moons 0.289234, eight_gaussians 2.831578, checkerboard
``log 32`` = 3.465736, gaussian_mixture 2.920093, rings 2.623183. Use :func:`get` to
build one by name and :func:`names` to list them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..validate import (
    allocation,
    check_finite,
    check_float_dtype,
    check_int,
    check_number,
    make_generator,
    unknown_name,
)
from .grid import Box, check_points_2d, gauss_legendre, integrate_2d, neg_p_log_p

# --- the datasets ----------------------------------------------------------------------


class Dataset:
    """Base class of a 2-D toy dataset (see the module docstring for the interface).

    Subclasses implement ``_sample(n, generator) -> (n, 2) float64`` and, where the
    density is known, ``_log_prob(x: (N, 2) float64) -> (N,)`` and ``_entropy_grid()``
    (the box and step of the entropy integral), and set ``has_density = True``.
    """

    name: str = "dataset"
    bounds: Box = ((-4.0, 4.0), (-4.0, 4.0))
    has_density: bool = False
    _entropy: float | None = None

    def sample(
        self,
        n: int,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` i.i.d. points, shape ``(n, 2)``.

        Args:
            n: the number of points.
            seed: draw from a private generator seeded with it (reproducible on its own;
                torch's global random state is not touched).
            generator: draw from this generator instead. With neither, torch's global
                generator is used (reproducible after ``torch.manual_seed``).
            dtype: the floating-point dtype of the result (points are drawn in float64).
        """
        where = f"{self.name}.sample"
        n = check_int(n, "n", where, smallest=0, meaning="the number of points")
        dtype = check_float_dtype(dtype, where)
        gen = make_generator(seed, generator, where)
        with torch.no_grad(), allocation(where, n):
            return self._sample(n, gen).to(dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` for ``x`` of shape ``(*, 2)``; returns shape ``(*)`` in ``x.dtype``.

        Computed in float64 internally.
        """
        where = f"{self.name}.log_prob"
        if not self.has_density:
            raise NotImplementedError(
                f"{where}: this dataset has no closed-form density, so it has no log_prob "
                "(and no entropy). Datasets with a known density: "
                f"{', '.join(names(with_density=True))}."
            )
        x = check_finite(check_points_2d(x, "x", where), "x", where)
        flat = x.reshape(-1, 2).double()
        return self._log_prob(flat).reshape(x.shape[:-1]).to(x.dtype)

    def entropy(self) -> float | None:
        """The differential entropy ``-∫ p log p`` in nats, or ``None`` without a density.

        Computed once by :func:`integrate_2d` from the density formula and cached.
        """
        if not self.has_density:
            return None
        if self._entropy is None:
            box, step = self._entropy_grid()
            with torch.no_grad():
                self._entropy = integrate_2d(self._entropy_integrand, box, step)
        return self._entropy

    def _entropy_integrand(self, x: Tensor) -> Tensor:
        return neg_p_log_p(self._log_prob(x))

    def _sample(self, n: int, gen: torch.Generator | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _log_prob(self, x: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _entropy_grid(self) -> tuple[Box, float]:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}()"


def _randn(n: int, gen: torch.Generator | None) -> Tensor:
    return torch.randn(n, 2, generator=gen, dtype=torch.float64)


def _rand(n: int, gen: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=gen, dtype=torch.float64)


def _randint(high: int, n: int, gen: torch.Generator | None) -> Tensor:
    return torch.randint(0, high, (n,), generator=gen)


def _unit(angle: Tensor) -> Tensor:
    """Unit vectors ``(cos a, sin a)``, shape ``(*, 2)``."""
    return torch.stack([angle.cos(), angle.sin()], -1)


def _log_normal_2d(sq_dist: Tensor, std: float) -> Tensor:
    """``log N(x; c, std^2 I_2)`` from ``||x - c||^2``."""
    return -0.5 * sq_dist / std**2 - math.log(2 * math.pi * std**2)


class Moons(Dataset):
    """scikit-learn's two moons, centered, with isotropic Gaussian noise.

    Generative definition: an arc ``k ~ Bernoulli(1/2)`` and ``t ~ Uniform(0, pi)``, the
    point ``c_k(t) - (1/2, 1/4)`` on the outer arc ``c_0(t) = (cos t, sin t)`` or the inner
    arc ``c_1(t) = (1 - cos t, 1/2 - sin t)``, plus noise ``noise * N(0, I_2)``. Not
    rescaled: the arcs span ``[-1.5, 1.5] x [-0.75, 0.75]``.

    Density: a continuous mixture of Gaussians along the arcs,

        p(x) = 1/(2 pi) sum_{k=0,1} ∫_0^pi N(x; c_k(t) - (1/2, 1/4), noise^2 I) dt,

    computed by composite Gauss-Legendre quadrature over ``t`` and a logsumexp over the
    nodes: 8 nodes on each panel, panels one noise width long (the arcs move at unit
    speed), refined geometrically towards ``t = 0`` and ``t = pi`` where, for points
    beyond the arcs' ends, the integrand falls off steeply. Checked against a midpoint
    rule with 10^6 nodes per arc (noise 0.05 and 0.02): error < 1e-9 nats at points near
    the arcs and < 1e-8 relative far from them. Cost: about ``16 (pi / noise + 32)``
    Gaussians per point (1520 for noise 0.05); available for ``noise >= 1e-3``.

    Entropy: ``integrate_2d`` of ``-p log p`` over the arcs' box widened by ``10 noise``,
    step ``noise / 2``, skipping grid points farther than ``10 noise`` from both arcs
    (halving the step or integrating everywhere changes it by < 1e-9): 0.289234 nats for
    noise 0.05 (0.4 s the first time), -0.643806 for noise 0.02 (2.4 s), -1.342629 for
    noise 0.01 (12 s; the cost grows like ``1 / noise^2``).
    """

    name = "moons"
    bounds = ((-2.0, 2.0), (-1.5, 1.5))
    has_density = True

    min_noise = 1e-3  # below it the quadrature needs too many nodes

    def __init__(self, noise: float = 0.05):
        self.noise = check_number(noise, "noise", "moons", positive=True)
        self._nodes: tuple[Tensor, Tensor] | None = None

    def _quadrature(self) -> tuple[Tensor, Tensor]:
        """The quadrature nodes on both arcs ``(M, 2)`` and their log-weights ``(M,)``."""
        if self.noise < self.min_noise:
            raise ValueError(
                f"moons.log_prob: the density of moons(noise={self.noise}) would need more "
                f"than {16 * math.ceil(math.pi / self.min_noise)} quadrature nodes per point; "
                f"it is available for noise >= {self.min_noise}. Sampling works at any noise."
            )
        if self._nodes is None:
            t, w = gauss_legendre(0.0, math.pi, self.noise)
            centers = torch.cat([self._arc(torch.full_like(t, k), t) for k in (0, 1)])
            # log of weight / (2 pi) at each node of each arc: t-density 1/pi, arc 1/2
            self._nodes = centers, (w.log() - math.log(2 * math.pi)).repeat(2)
        return self._nodes

    @staticmethod
    def _arc(k: Tensor, t: Tensor) -> Tensor:
        outer = torch.stack([t.cos(), t.sin()], -1)
        inner = torch.stack([1 - t.cos(), 0.5 - t.sin()], -1)
        shift = torch.tensor([0.5, 0.25], dtype=t.dtype)
        return torch.where(k[:, None] > 0, inner, outer) - shift

    def _sample(self, n, gen):
        k = _randint(2, n, gen)
        t = math.pi * _rand(n, gen)
        return self._arc(k, t) + self.noise * _randn(n, gen)

    def _log_prob(self, x):
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: the ||x||^2 term leaves the logsumexp,
        # the rest is one matrix product (float64, so the cancellation costs < 1e-9 nats)
        s2 = self.noise**2
        centers, log_w = (t.to(x.device) for t in self._quadrature())
        bias = (log_w - 0.5 * centers.pow(2).sum(-1) / s2)[None]
        rows = max(1, 2**21 // len(centers))
        out = [
            torch.logsumexp(torch.addmm(bias, xb, centers.T / s2), dim=-1)
            - 0.5 * xb.pow(2).sum(-1) / s2
            for xb in x.split(rows)
        ]
        return (torch.cat(out) if out else x.new_zeros(0)) - math.log(2 * math.pi * s2)

    def _distance_to_arcs(self, x: Tensor) -> Tensor:
        """The distance from points ``(N, 2)`` to the nearer of the two (noiseless) arcs."""
        out = x + torch.tensor([0.5, 0.25], dtype=x.dtype, device=x.device)
        inn = torch.tensor([1.0, 0.5], dtype=x.dtype, device=x.device) - out  # mirrored
        dists = []
        for y in (out, inn):  # both are the upper unit half circle in these coordinates
            to_ends = torch.minimum(
                (y - y.new_tensor([1.0, 0.0])).norm(dim=-1),
                (y + y.new_tensor([1.0, 0.0])).norm(dim=-1),
            )
            dists.append(torch.where(y[:, 1] >= 0, (y.norm(dim=-1) - 1).abs(), to_ends))
        return torch.minimum(*dists)

    def _entropy_integrand(self, x: Tensor) -> Tensor:
        # only within 10 noise of an arc: elsewhere p < exp(-50) max p, negligible
        near = self._distance_to_arcs(x) < 10 * self.noise
        out = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        out[near] = neg_p_log_p(self._log_prob(x[near]))
        return out

    def _entropy_grid(self):
        m = 10 * self.noise
        return ((-1.5 - m, 1.5 + m), (-0.75 - m, 0.75 + m)), self.noise / 2

    def __repr__(self) -> str:
        return f"moons(noise={self.noise})"


class EightGaussians(Dataset):
    """An equal mixture of 8 isotropic Gaussians with centers on a circle.

    Generative definition: ``k ~ Uniform{0, ..., 7}``,
    ``x = radius (cos(pi k / 4), sin(pi k / 4)) + std N(0, I_2)``. Density (exact):

        p(x) = 1/8 sum_k N(x; radius (cos(pi k / 4), sin(pi k / 4)), std^2 I).

    Defaults ``radius = 2 sqrt 2``, ``std = 0.5 / sqrt 2``: neighbouring centers are about
    6 std apart. Entropy: ``integrate_2d`` of ``-p log p`` on the square
    ``[-(radius + 10 std), radius + 10 std]^2`` with step ``std / 2`` (halving the step or
    widening the box changes it by < 1e-9): 2.831578 nats for the defaults, a little
    below ``log 8 + log(2 pi e std^2) = 2.838`` (the value for components that do not
    overlap at all).
    """

    name = "eight_gaussians"
    has_density = True

    def __init__(self, radius: float = 2 * 2**0.5, std: float = 0.5 / 2**0.5):
        self.radius = check_number(radius, "radius", "eight_gaussians", positive=True)
        self.std = check_number(std, "std", "eight_gaussians", positive=True)
        self._centers = self.radius * _unit(torch.arange(8, dtype=torch.float64) * math.pi / 4)

    @property
    def centers(self) -> torch.Tensor:
        """The eight components' means, shape ``(8, 2)`` (float64; a copy)."""
        return self._centers.clone()

    def _sample(self, n, gen):
        k = _randint(8, n, gen)
        return self._centers[k] + self.std * _randn(n, gen)

    def _log_prob(self, x):
        sq = (x[:, None, :] - self._centers.to(x.device)).pow(2).sum(-1)  # (N, 8)
        return torch.logsumexp(_log_normal_2d(sq, self.std), -1) - math.log(8)

    def _entropy_grid(self):
        r = self.radius + 10 * self.std
        return ((-r, r), (-r, r)), self.std / 2

    def __repr__(self) -> str:
        return f"eight_gaussians(radius={self.radius}, std={self.std})"


class Checkerboard(Dataset):
    """Uniform on the 8 black squares (side 2) of a 4 x 4 board covering ``[-4, 4]^2``.

    Square ``(i, j)`` is ``[-4 + 2i, -2 + 2i] x [-4 + 2j, -2 + 2j]``, ``i, j = 0..3``; it is
    black when ``i + j`` is even (the corner square at ``(-4, -4)`` is black). Edges count
    as black (a set of measure zero, but float32 rounding can put samples there).
    Generative definition: ``j ~ Uniform{0..3}``, ``i = 2 Uniform{0, 1} + (j mod 2)``,
    ``x = (-4 + 2i, -4 + 2j) + 2 Uniform[0, 1)^2``. Density (exact): ``1/32`` on the black
    squares (total area 32) and 0 elsewhere, so ``log p = -log 32`` or ``-inf``, and the
    entropy is exactly ``log 32 = 3.4657`` nats.
    """

    name = "checkerboard"
    has_density = True

    def _sample(self, n, gen):
        j = _randint(4, n, gen)
        i = 2 * _randint(2, n, gen) + j % 2
        corner = torch.stack([i, j], -1).double() * 2 - 4
        return corner + 2 * torch.rand(n, 2, generator=gen, dtype=torch.float64)

    def _log_prob(self, x):
        # Squares are taken as closed, so that a sample rounded onto an edge (e.g. to
        # 4.0 in float32) still scores -log 32: a point on an edge lies in the square
        # below (ceil(u) - 1) and the one above (floor(u)); elsewhere they coincide.
        u = (x + 4) / 2
        black = torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)
        for i in (u[..., 0].ceil() - 1, u[..., 0].floor()):
            for j in (u[..., 1].ceil() - 1, u[..., 1].floor()):
                on_board = (i >= 0) & (i <= 3) & (j >= 0) & (j <= 3)
                black |= on_board & ((i + j) % 2 == 0)
        return torch.where(black, x.new_full((), -math.log(32.0)), x.new_full((), -math.inf))

    def entropy(self) -> float:
        """Exactly ``log 32``: uniform on a region of area 32."""
        return math.log(32.0)


class GaussianMixture(Dataset):
    """A fixed mixture of 3 correlated 2-D Gaussians.

    ``p(x) = sum_k w_k N(x; mu_k, Sigma_k)`` with

    ====  =====  ==============  ==============================
    k     w_k    mu_k            Sigma_k
    ====  =====  ==============  ==============================
    0     0.5    (-1.5, -1.0)    [[1.0, 0.7], [0.7, 0.8]]
    1     0.3    (1.5, 1.5)      [[0.5, -0.3], [-0.3, 0.4]]
    2     0.2    (2.0, -2.0)     [[0.3, 0.2], [0.2, 0.3]]
    ====  =====  ==============  ==============================

    Generative definition: ``k ~ Categorical(w)``, ``x = mu_k + L_k N(0, I_2)`` with
    ``L_k`` the Cholesky factor of ``Sigma_k``. Density exact
    (``torch.distributions.MixtureSameFamily``). Entropy: ``integrate_2d`` of ``-p log p``
    on ``[-11, 11]^2`` (about 10 standard deviations beyond every mean) with step 0.08
    (a quarter of the smallest standard deviation, 0.316): 2.920093 nats (halving the step
    or widening the box changes it by < 1e-9).
    """

    name = "gaussian_mixture"
    has_density = True
    weights = (0.5, 0.3, 0.2)
    means = ((-1.5, -1.0), (1.5, 1.5), (2.0, -2.0))
    covariances = (((1.0, 0.7), (0.7, 0.8)), ((0.5, -0.3), (-0.3, 0.4)), ((0.3, 0.2), (0.2, 0.3)))

    def __init__(self):
        f64 = torch.float64
        self._weights = torch.tensor(self.weights, dtype=f64)
        self._means = torch.tensor(self.means, dtype=f64)
        self._scale_tril = torch.linalg.cholesky(torch.tensor(self.covariances, dtype=f64))

    def distribution(self, device: torch.device | str = "cpu") -> torch.distributions.Distribution:
        """The mixture as a ``torch.distributions.MixtureSameFamily`` (float64)."""
        D = torch.distributions
        return D.MixtureSameFamily(
            D.Categorical(probs=self._weights.to(device)),
            D.MultivariateNormal(self._means.to(device), scale_tril=self._scale_tril.to(device)),
        )

    def _sample(self, n, gen):
        # torch.distributions cannot take a generator: draw the two steps by hand,
        # the component by inverting the cumulative weights
        cdf = self._weights.cumsum(0)
        k = torch.searchsorted(cdf, _rand(n, gen), right=True).clamp(max=len(cdf) - 1)
        eps = _randn(n, gen)
        return self._means[k] + (self._scale_tril[k] @ eps[:, :, None])[..., 0]

    def _log_prob(self, x):
        return self.distribution(x.device).log_prob(x)

    def _entropy_grid(self):
        return ((-11.0, 11.0), (-11.0, 11.0)), 0.08


class Rings(Dataset):
    """Four concentric noisy rings of radii 0.75, 1.5, 2.25, 3.

    Generative definition: ``k ~ Uniform{1, 2, 3, 4}``, ``theta ~ Uniform(0, 2 pi)``,
    ``x = 0.75 k (cos theta, sin theta) + noise N(0, I_2)`` (each ring holds a quarter of
    the points, so the inner rings are denser). Density (exact): averaging the Gaussian
    over ``theta`` gives a modified Bessel function ``I_0``; with ``r = ||x||``, ``r_k = 0.75 k``,

        p(x) = 1/4 sum_k exp(-(r - r_k)^2 / (2 noise^2)) i0e(r r_k / noise^2) / (2 pi noise^2),

    where ``i0e(z) = exp(-z) I_0(z)`` (``torch.special.i0e``). Entropy: ``integrate_2d`` of
    ``-p log p`` on ``[-(3 + 10 noise), 3 + 10 noise]^2``, step ``noise / 2`` (halving the
    step or widening the box changes it by < 1e-8): 2.623183 nats for noise 0.08.
    """

    name = "rings"
    has_density = True

    def __init__(self, noise: float = 0.08):
        self.noise = check_number(noise, "noise", "rings", positive=True)
        self._radii = 0.75 * torch.arange(1, 5, dtype=torch.float64)

    def _sample(self, n, gen):
        r = self._radii[_randint(4, n, gen)]
        theta = 2 * math.pi * _rand(n, gen)
        return r[:, None] * _unit(theta) + self.noise * _randn(n, gen)

    def _log_prob(self, x):
        r = x.norm(dim=-1, keepdim=True)  # (N, 1)
        radii, s2 = self._radii.to(x.device), self.noise**2
        terms = -0.5 * (r - radii) ** 2 / s2 + torch.special.i0e(r * radii / s2).log()
        return torch.logsumexp(terms, -1) - math.log(4 * 2 * math.pi * s2)

    def _entropy_grid(self):
        r = 3 + 10 * self.noise
        return ((-r, r), (-r, r)), self.noise / 2

    def __repr__(self) -> str:
        return f"rings(noise={self.noise})"


class Pinwheel(Dataset):
    """Curled Gaussian arms: the pinwheel of Johnson et al. (2016).

    Generative definition: ``k ~ Uniform{0, ..., arms - 1}``, ``a ~ N(1, 0.3^2)`` (along
    the arm), ``b ~ N(0, 0.1^2)`` (across it), ``phi = 2 pi k / arms + 0.25 exp(a)``, and
    ``x = 2 R(phi) (a, b)`` with ``R(phi)`` the rotation by ``phi``: points farther out are
    rotated more, which curls each stretched Gaussian into an arm.
    No closed-form density (``(a, b) -> x`` is not invertible in closed form).

    Reference: Johnson et al. (2016), "Composing graphical models with neural networks
    for structured representations and fast inference", arXiv:1603.06277.
    """

    name = "pinwheel"

    def __init__(self, arms: int = 5):
        self.arms = check_int(arms, "arms", "pinwheel")

    def _sample(self, n, gen):
        k = _randint(self.arms, n, gen)
        ab = _randn(n, gen) * torch.tensor([0.3, 0.1], dtype=torch.float64)
        ab[:, 0] += 1.0
        phi = 2 * math.pi * k / self.arms + 0.25 * ab[:, 0].exp()
        c, s = phi.cos(), phi.sin()
        return 2 * torch.stack([c * ab[:, 0] - s * ab[:, 1], s * ab[:, 0] + c * ab[:, 1]], -1)

    def __repr__(self) -> str:
        return f"pinwheel(arms={self.arms})"


class TwoSpirals(Dataset):
    """Two interleaved noisy spirals, each the other rotated by 180 degrees.

    Generative definition: ``u ~ Uniform(0, 1)``, ``t = 3 pi sqrt(u)`` (about uniform along
    the arc, whose length grows like ``t^2``), a sign ``s = +-1`` with probability 1/2, and
    ``x = s (3.5 / (3 pi)) t (cos t, sin t) + noise N(0, I_2)``: one and a half turns out
    to radius 3.5, arms 1.17 apart. No closed-form density.
    """

    name = "two_spirals"

    def __init__(self, noise: float = 0.1):
        self.noise = check_number(noise, "noise", "two_spirals", positive=True)

    def _sample(self, n, gen):
        t = 3 * math.pi * _rand(n, gen).sqrt()
        sign = 2.0 * _randint(2, n, gen) - 1
        curve = (sign * 3.5 / (3 * math.pi) * t)[:, None] * _unit(t)
        return curve + self.noise * _randn(n, gen)

    def __repr__(self) -> str:
        return f"two_spirals(noise={self.noise})"


# --- the factories and the registry ----------------------------------------------------


def moons(noise: float = 0.05) -> Moons:
    """Two moons (see :class:`Moons`)."""
    return Moons(noise)


def eight_gaussians(radius: float = 2 * 2**0.5, std: float = 0.5 / 2**0.5) -> EightGaussians:
    """Eight Gaussians on a circle (see :class:`EightGaussians`)."""
    return EightGaussians(radius, std)


def checkerboard() -> Checkerboard:
    """Uniform on the black squares of a 4 x 4 board (see :class:`Checkerboard`)."""
    return Checkerboard()


def gaussian_mixture() -> GaussianMixture:
    """Three correlated Gaussians (see :class:`GaussianMixture`)."""
    return GaussianMixture()


def rings(noise: float = 0.08) -> Rings:
    """Four concentric rings (see :class:`Rings`)."""
    return Rings(noise)


def pinwheel(arms: int = 5) -> Pinwheel:
    """Curled Gaussian arms (see :class:`Pinwheel`)."""
    return Pinwheel(arms)


def two_spirals(noise: float = 0.1) -> TwoSpirals:
    """Two interleaved spirals (see :class:`TwoSpirals`)."""
    return TwoSpirals(noise)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "moons": moons,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "gaussian_mixture": gaussian_mixture,
    "rings": rings,
    "pinwheel": pinwheel,
    "two_spirals": two_spirals,
}


def names(with_density: bool = False) -> list[str]:
    """The dataset names, or only those with a known density."""
    return [k for k, make in DATASETS.items() if not with_density or make().has_density]


def get(name: str, **kwargs) -> Dataset:
    """Build a dataset by name, e.g. ``get("moons", noise=0.1)``.

    Raises :class:`UnknownNameError` (a ``KeyError``) listing the valid names.
    """
    if name not in DATASETS:
        raise unknown_name("dataset", name, names())
    return DATASETS[name](**kwargs)
