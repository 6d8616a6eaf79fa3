"""Conditional densities and a simulator whose posterior is known exactly (lesson 09).

:class:`Banana`, a density of ``x`` (2-D) whose shape depends on a parameter
``c`` (1-D), with an exact ``log p(x | c)``::

    x_1 ~ N(0, 1),    x_2 | x_1 ~ N(c (x_1^2 - 1), s^2).

For ``c = 0`` it is an axis-aligned Gaussian; as ``|c|`` grows it bends into a
banana, opening upwards for ``c > 0`` and downwards for ``c < 0``. The map
``(x_1, x_2) -> (x_1, x_2 - c (x_1^2 - 1))`` has Jacobian determinant 1, so the
conditional entropy is the same for every ``c``:
``H(x | c) = 1/2 log(2 pi e) + 1/2 log(2 pi e s^2)``, the best NLL any model can reach.

:class:`SquareSimulator`, a simulator of data ``x`` (2-D) from parameters
``theta`` (2-D) whose posterior is bimodal::

    theta ~ N(0, I),    x_1 = theta_1^2 + s e_1,    x_2 = theta_1 + theta_2 + s e_2,

with ``e ~ N(0, I)``. The first observation cannot tell ``theta_1`` from
``-theta_1``: for ``x_1`` well above 0 the posterior has two modes, near
``theta_1 = +- sqrt(x_1)``, each with ``theta_2`` near ``x_2 - theta_1``; for
``x_1`` near or below 0 they merge into one. No Gaussian fits two modes. The
likelihood is Gaussian, so ``log p(theta, x)`` is exact, and the posterior
``p(theta | x) = p(theta, x) / p(x)`` is exact up to the quadrature of the
evidence ``p(x)`` on a grid (:class:`GridPosterior`): the prior's mass outside
the box ``[-6, 6]^2`` is below ``4e-9``, and the midpoint rule on a smooth
integrand that vanishes at the box's edges converges faster than any power of
the step (:func:`~nfcourse.data.grid.integrate_2d`).

Data never import flows or pictures (docs/architecture.md): the lesson does the
fitting and the plotting.

Reference: simulation-based inference with conditional flows as in Papamakarios
and Murray (2016), "Fast epsilon-free Inference of Simulation Models with
Bayesian Conditional Density Estimation", arXiv:1605.06376; Cranmer, Brehmer,
Louppe (2020), "The frontier of simulation-based inference", arXiv:1911.01429.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..validate import check_int, check_number, check_points, make_generator

_LOG_2PI = math.log(2 * math.pi)


def _log_normal(t: Tensor, mean: Tensor, std: float) -> Tensor:
    return -0.5 * ((t - mean) / std) ** 2 - math.log(std) - 0.5 * _LOG_2PI


def _generator(seed: int | None, where: str) -> torch.Generator | None:
    return make_generator(seed, None, where, torch.device("cpu"))


class Banana:
    """A 2-D density bent by a parameter ``c`` (module docstring), with an exact log-density.

    Args:
        noise: ``s``, the spread of ``x_2`` around the curve.
        context_range: ``(lo, hi)``; :meth:`sample` draws ``c ~ U(lo, hi)``.
    """

    dim = 2
    context_dim = 1

    def __init__(self, noise: float = 0.5, context_range: tuple[float, float] = (-1.5, 1.5)):
        self.noise = check_number(noise, "noise", "Banana", positive=True, example="0.5")
        lo, hi = (float(v) for v in context_range)
        if not lo < hi:
            raise ValueError(
                f"Banana: `context_range` must be (lo, hi) with lo < hi, got {(lo, hi)}."
            )
        self.context_range = (lo, hi)

    def sample_given(self, n: int, context: float | Tensor, seed: int | None = None) -> Tensor:
        """``n`` points ``(n, 2)`` from ``p(x | c)``: one ``c`` for all, or one per point ``(n,)``
        or ``(n, 1)``."""
        n = check_int(n, "n", "Banana.sample_given")
        gen = _generator(seed, "Banana.sample_given")
        c = torch.as_tensor(context, dtype=torch.float32).reshape(-1)
        x1 = torch.randn(n, generator=gen)
        x2 = c * (x1**2 - 1) + self.noise * torch.randn(n, generator=gen)
        return torch.stack([x1, x2], -1)

    def sample(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs: points ``x`` ``(n, 2)`` and their contexts ``c ~ U(lo, hi)``, ``(n, 1)``."""
        n = check_int(n, "n", "Banana.sample")
        gen = _generator(seed, "Banana.sample")
        lo, hi = self.context_range
        c = lo + (hi - lo) * torch.rand(n, 1, generator=gen)
        seed_x = int(torch.randint(2**62, (), generator=gen)) if gen is not None else None
        return self.sample_given(n, c[:, 0], seed_x), c

    def log_prob(self, x: Tensor, context: float | Tensor) -> Tensor:
        """``log p(x | c)``: ``x`` ``(*, 2)``, ``c`` a number or ``(*, 1)``; returns ``(*)``."""
        x = check_points(x, 2, "x", "Banana.log_prob")
        c = torch.as_tensor(context, dtype=x.dtype)
        c = c[..., 0] if c.dim() > 0 else c
        x1, x2 = x[..., 0], x[..., 1]
        return _log_normal(x1, torch.zeros_like(x1), 1.0) + _log_normal(
            x2, c * (x1**2 - 1), self.noise
        )

    def entropy(self) -> float:
        """``H(x | c)`` in nats, the same for every ``c`` (module docstring)."""
        return 0.5 * (1 + _LOG_2PI) + 0.5 * (1 + _LOG_2PI) + math.log(self.noise)

    def __repr__(self) -> str:
        return f"Banana(noise={self.noise}, context_range={self.context_range})"


class GridPosterior:
    """The exact posterior ``p(theta | x_o)`` of a simulator, normalized on a grid.

    Attributes:
        observation: ``x_o``, shape ``(2,)``.
        log_evidence: ``log p(x_o)`` by the midpoint rule.
        points: the grid's cell centres ``(M, 2)``, float64; ``cell`` the area of a cell.
        log_p: ``log p(theta | x_o)`` at the points.
    """

    dim = 2

    def __init__(self, simulator: SquareSimulator, observation: Tensor, box: float, step: float):
        self.simulator = simulator
        self.observation = torch.as_tensor(observation, dtype=torch.float64).reshape(2)
        n = math.ceil(2 * box / step)
        h = 2 * box / n
        ticks = -box + h * (torch.arange(n, dtype=torch.float64) + 0.5)
        self.points = torch.cartesian_prod(ticks, ticks)
        self.cell = h * h
        log_joint = simulator.log_joint(self.points, self.observation)
        self.log_evidence = (torch.logsumexp(log_joint, 0) + math.log(self.cell)).item()
        self.log_p = log_joint - self.log_evidence

    def log_prob(self, theta: Tensor) -> Tensor:
        """``log p(theta | x_o)``, exact (the evidence by quadrature); ``(*, 2) -> (*)``."""
        theta = check_points(theta, 2, "theta", "GridPosterior.log_prob")
        obs = self.observation.to(theta.dtype)
        return self.simulator.log_joint(theta, obs) - self.log_evidence

    def moments(self) -> tuple[Tensor, Tensor]:
        """The posterior mean ``(2,)`` and covariance ``(2, 2)``, on the grid."""
        w = (self.log_p.exp() * self.cell)[:, None]
        mean = (w * self.points).sum(0)
        centred = self.points - mean
        return mean, (w * centred).T @ centred

    def credibility(self, theta: Tensor) -> Tensor:
        """The exact posterior mass where the density is higher than at ``theta`` ``(*, 2)``.

        ``theta`` lies in the highest-density region of level ``alpha`` exactly
        when this is below ``alpha``: for ``theta`` drawn from the posterior it is
        uniform on (0, 1), the basis of a coverage test.
        """
        level = self.log_prob(theta.double()).reshape(-1)
        p = (self.log_p.exp() * self.cell).sort().values  # ascending
        cum_above = p.flip(0).cumsum(0).flip(0)  # mass of the cells from index i up
        idx = torch.searchsorted(self.log_p.sort().values, level, right=True)
        above = torch.where(idx < len(p), cum_above[idx.clamp(max=len(p) - 1)], 0.0)
        return above.reshape(theta.shape[:-1])

    def mass(self, inside: Tensor) -> float:
        """The exact posterior mass of the grid cells where ``inside`` ``(M,)`` is true."""
        return (self.log_p.exp() * self.cell)[inside].sum().item()


class SquareSimulator:
    """The simulator of the module docstring: bimodal posteriors, known exactly.

    Args:
        noise: ``s``, the standard deviation of the noise of both observations.
    """

    dim = 2  # theta
    context_dim = 2  # x
    names = (r"$\theta_1$", r"$\theta_2$")

    def __init__(self, noise: float = 0.5):
        self.noise = check_number(noise, "noise", "SquareSimulator", positive=True, example="0.5")

    def simulate(self, theta: Tensor, seed: int | None = None) -> Tensor:
        """One observation ``x`` for each ``theta`` ``(n, 2)``: shape ``(n, 2)``."""
        theta = check_points(theta, 2, "theta", "SquareSimulator.simulate")
        gen = _generator(seed, "SquareSimulator.simulate")
        e = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
        mean = torch.stack([theta[..., 0] ** 2, theta[..., 0] + theta[..., 1]], -1)
        return mean + self.noise * e

    def sample_joint(self, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """``n`` simulated pairs: ``theta ~ N(0, I)`` and ``x ~ p(x | theta)``, each ``(n, 2)``."""
        n = check_int(n, "n", "SquareSimulator.sample_joint")
        gen = _generator(seed, "SquareSimulator.sample_joint")
        theta = torch.randn(n, 2, generator=gen)
        seed_x = int(torch.randint(2**62, (), generator=gen)) if gen is not None else None
        return theta, self.simulate(theta, seed_x)

    def log_prior(self, theta: Tensor) -> Tensor:
        return _log_normal(theta, torch.zeros_like(theta), 1.0).sum(-1)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """``log p(x | theta)``; ``theta`` and ``x`` ``(*, 2)`` broadcast; returns ``(*)``."""
        m1, m2 = theta[..., 0] ** 2, theta[..., 0] + theta[..., 1]
        return _log_normal(x[..., 0], m1, self.noise) + _log_normal(x[..., 1], m2, self.noise)

    def log_joint(self, theta: Tensor, x: Tensor) -> Tensor:
        """``log p(theta, x) = log p(theta) + log p(x | theta)``."""
        return self.log_prior(theta) + self.log_likelihood(theta, x)

    def posterior(self, observation: Tensor, box: float = 6.0, step: float = 0.03) -> GridPosterior:
        """The exact posterior ``p(theta | x_o)`` on ``[-box, box]^2``, grid spacing ``step``."""
        observation = check_points(torch.as_tensor(observation), 2, "observation", "posterior")
        if observation.numel() != 2:
            raise ValueError(
                f"SquareSimulator.posterior: `observation` must be one observation of shape (2,), "
                f"got shape {tuple(observation.shape)}; call it once per observation."
            )
        return GridPosterior(self, observation, box, step)

    def __repr__(self) -> str:
        return f"SquareSimulator(noise={self.noise})"


def sample_credibility(log_q_samples: Tensor, log_q_true: Tensor) -> Tensor:
    """The credibility of true parameters under approximations known by their samples.

    ``log_q_samples`` ``(m, N)``: the log-densities of ``m`` samples of each of ``N``
    approximate posteriors ``q(. | x_n)`` (as ``flow.sample_and_log_prob(m, context=x)``
    gives them); ``log_q_true`` ``(N,)``: ``log q(theta_n | x_n)`` of the true parameters.
    Returns ``(N,)``: the fraction of samples where ``q`` is higher than at ``theta_n``,
    a Monte Carlo estimate of the mass of ``q`` above ``theta_n``'s density (as
    :meth:`GridPosterior.credibility` computes it exactly for the exact posterior).
    """
    return (log_q_samples > log_q_true).double().mean(0)
