"""Real posteriors in 2-D, with a reference normalizer (the evidence) by quadrature.

A Bayesian logistic regression with an intercept ``a`` and a slope ``b``,
``theta = (a, b)``, for labels ``y_i`` in {0, 1} at inputs ``x_i``:

    prior:       theta ~ N(0, s^2 I)
    likelihood:  P(y_i = 1 | x_i, theta) = sigmoid(a + b x_i)
    log p~(theta) = log N(theta; 0, s^2 I) + sum_i log sigmoid((2 y_i - 1)(a + b x_i))

``p~`` is the joint density ``p(theta, y | x)``; its integral over ``theta`` is the
evidence ``Z = p(y | x)``, and ``p~ / Z`` is the posterior. When the classes are
(almost) separated by a threshold on ``x``, every steep enough slope explains the
data, and only the prior stops ``b`` from growing: the posterior is a skewed wedge
along the line ``a = -c b`` (``c`` the threshold), not an ellipse, and no Gaussian
fits it well (lesson 08).

The evidence is computed on first use by the midpoint rule (as
:func:`~nfcourse.data.grid.integrate_2d`, in one pass) on the box ``[-8 s, 8 s]^2``: since the
likelihood is at most 1, the posterior mass outside the box is at most the prior's,
``P(|a| > 8s or |b| > 8s) < 3e-15``, divided by ``Z`` (about 0.04 for the lesson's
data); the step is ``s / 25``, and halving it changes ``log Z`` by less than 1e-10
(tests/test_posteriors.py): for a smooth integrand that vanishes at the box's edges the
midpoint rule converges faster than any power of the step. The same
grid gives the posterior's mean and covariance (:meth:`LogisticRegression.moments`).

Reference: the construction is the textbook one, e.g. Bishop (2006), "Pattern
Recognition and Machine Learning", section 4.5 (Bayesian logistic regression and its
Laplace approximation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .grid import Box, check_points_2d

# The lesson's data: ten inputs, labelled 1 exactly where x > 0.25 (separable).
X = (-2.1, -1.5, -1.1, -0.7, -0.2, 0.05, 0.45, 0.8, 1.3, 1.9)
Y = (0, 0, 0, 0, 0, 0, 1, 1, 1, 1)


class LogisticRegression:
    """The posterior of a 2-parameter Bayesian logistic regression (module docstring).

    Args:
        x: the inputs, a sequence of numbers.
        y: their labels, each 0 or 1.
        prior_scale: the prior's standard deviation ``s`` for ``a`` and for ``b``.

    Functions of ``theta`` take shape ``(*, 2)`` (columns ``a``, ``b``) and return ``(*)``;
    they follow the dtype of ``theta``.
    """

    dim = 2
    names = ("intercept a", "slope b")

    def __init__(self, x, y, prior_scale: float = 5.0):
        self.x = torch.as_tensor(x, dtype=torch.float64).flatten()
        self.y = torch.as_tensor(y, dtype=torch.float64).flatten()
        if self.x.numel() != self.y.numel() or self.x.numel() == 0:
            raise ValueError(
                f"LogisticRegression: `x` and `y` must hold the same positive number of values, "
                f"got {self.x.numel()} and {self.y.numel()}."
            )
        if not bool(((self.y == 0) | (self.y == 1)).all()):
            raise ValueError(f"LogisticRegression: `y` must hold 0s and 1s, got {y!r}.")
        if not (isinstance(prior_scale, (int, float)) and prior_scale > 0):
            raise ValueError(
                f"LogisticRegression: `prior_scale` must be a positive number, got {prior_scale!r}."
            )
        self.prior_scale = float(prior_scale)
        self.box: Box = ((-8 * self.prior_scale, 8 * self.prior_scale),) * 2
        self.step = self.prior_scale / 25
        self._cache: tuple[float, Tensor, Tensor] | None = None

    def log_prior(self, theta: Tensor) -> Tensor:
        """``log N(theta; 0, s^2 I)``."""
        theta = check_points_2d(theta, "theta", "LogisticRegression.log_prior")
        s = self.prior_scale
        return -0.5 * (theta / s).square().sum(-1) - math.log(2 * math.pi * s * s)

    def log_likelihood(self, theta: Tensor) -> Tensor:
        """``sum_i log sigmoid((2 y_i - 1)(a + b x_i))``, computed with ``logsigmoid``."""
        theta = check_points_2d(theta, "theta", "LogisticRegression.log_likelihood")
        x, sign = self.x.to(theta), (2 * self.y - 1).to(theta)
        logits = theta[..., :1] + theta[..., 1:] * x  # (*, N)
        return F.logsigmoid(sign * logits).sum(-1)

    def log_joint(self, theta: Tensor) -> Tensor:
        """The unnormalized log posterior ``log p~(theta) = log prior + log likelihood``."""
        return self.log_prior(theta) + self.log_likelihood(theta)

    @property
    def log_evidence(self) -> float:
        """``log Z = log ∫ p~(theta) dtheta`` by quadrature (module docstring), cached."""
        return self._quadrature()[0]

    def log_prob(self, theta: Tensor) -> Tensor:
        """The normalized log posterior ``log p~(theta) - log Z``."""
        return self.log_joint(theta) - self.log_evidence

    def moments(self) -> tuple[Tensor, Tensor]:
        """The posterior mean ``(2,)`` and covariance ``(2, 2)``, by quadrature (float64)."""
        _, mean, cov = self._quadrature()
        return mean.clone(), cov.clone()

    def _quadrature(self, step: float | None = None) -> tuple[float, Tensor, Tensor]:
        """``log Z``, the mean and the covariance by the midpoint rule on ``self.box``.

        Computed once with ``step=None`` (the default ``self.step``) and cached; another
        ``step`` recomputes (for the convergence test). The integrand is scaled by its
        largest value on the grid before ``exp``, so nothing under- or overflows.
        """
        if step is None and self._cache is not None:
            return self._cache
        step = self.step if step is None else step
        (a0, a1), (b0, b1) = self.box
        n_a, n_b = math.ceil((a1 - a0) / step), math.ceil((b1 - b0) / step)
        h_a, h_b = (a1 - a0) / n_a, (b1 - b0) / n_b
        a = a0 + h_a * (torch.arange(n_a, dtype=torch.float64) + 0.5)
        b = b0 + h_b * (torch.arange(n_b, dtype=torch.float64) + 0.5)
        theta = torch.stack(torch.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
        log_p = self.log_joint(theta)
        log_z = torch.logsumexp(log_p, 0).item() + math.log(h_a * h_b)
        weights = torch.softmax(log_p, 0)  # the posterior mass of each cell
        mean = weights @ theta
        centred = theta - mean
        cov = (centred * weights[:, None]).T @ centred
        result = (log_z, mean, cov)
        if step == self.step:
            self._cache = result
        return result

    def __repr__(self) -> str:
        return f"LogisticRegression(N={self.x.numel()}, prior_scale={self.prior_scale:g})"


def logistic_regression(prior_scale: float = 5.0) -> LogisticRegression:
    """The posterior of lesson 08: the ten points :data:`X`, :data:`Y` of this module."""
    return LogisticRegression(X, Y, prior_scale)
