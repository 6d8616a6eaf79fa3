"""Gaussian mixtures in D dimensions: tabular data with an exact density.

The 2-D data sets (:mod:`nfcourse.data.datasets`) show what a flow does on the plane; these
mixtures ask whether what works there still works with more coordinates. A mixture is
fixed by its ``seed``: the same arguments give the same density on every machine.

    p(x) = sum_k w_k N(x; mu_k, Sigma_k),    k = 1..K,

drawn once from a private generator seeded with ``seed``:

- weights ``w_k`` proportional to ``1 + u_k``, ``u_k ~ Uniform(0, 1)`` (between 1/(2K)
  and 2/K: no component is negligible);
- means ``mu_k = spread * N(0, I_D) / sqrt(D)``, so that two means lie about
  ``spread * sqrt(2)`` apart whatever D (default 3: about 4.2 apart);
- covariances ``Sigma_k = Q_k diag(s_k^2) Q_k^T`` with ``Q_k`` a random rotation (the Q
  of the QR decomposition of a Gaussian matrix, signs fixed) and standard deviations
  ``s_k`` log-uniform in ``[0.3, 1]``: correlated, elongated components, from 1.4 to 14
  of their own standard deviations apart, so that the components overlap in places and
  the density is far from any one Gaussian.

``log_prob`` is exact: a logsumexp over the components of Gaussian log-densities,
computed in float64 with the Cholesky factors. The entropy
``H(p) = -E_p[log p(x)]`` has no closed form; :meth:`Mixture.entropy_estimate` estimates
it by Monte Carlo from a large sample (10^6 points by default, from its own seed) and
gives the standard error of that mean. It lies between ``sum_k w_k H(N_k)`` and that
plus ``H(w)`` (the entropy of the weights), which the tests check. As a benchmark's
floor, the estimate's standard error (about 0.002 nats at D = 16) adds the same offset
to every model's gap, so it cancels from differences between models.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..validate import (
    allocation,
    check_dim,
    check_finite,
    check_float_dtype,
    check_int,
    check_number,
    check_points,
    make_generator,
)

COMPONENTS = 8
SPREAD = 3.0
STD_RANGE = (0.3, 1.0)
ENTROPY_SAMPLES = 1_000_000
_CHUNK = 100_000


class Mixture:
    """A fixed random Gaussian mixture in ``dim`` dimensions (see the module docstring).

    Args:
        dim: the number of coordinates D.
        components: the number of Gaussians K.
        seed: fixes the mixture (weights, means, covariances).
        spread: the scale of the means (two means lie about ``spread * sqrt(2)`` apart).

    The interface of the 2-D data sets: ``sample(n, seed=None, generator=None,
    dtype=torch.float32)``, ``log_prob(x)`` for ``x`` of shape ``(*, D)``, and
    ``entropy()`` (here a Monte Carlo estimate, with its standard error from
    :meth:`entropy_estimate`). ``weights``, ``means`` and ``scale_tril`` hold the
    parameters in float64.
    """

    def __init__(
        self, dim: int, components: int = COMPONENTS, seed: int = 0, spread: float = SPREAD
    ):
        where = "Mixture"
        self.dim = check_dim(dim, where)
        self.components = check_int(
            components, "components", where, meaning="the number of Gaussians K"
        )
        self.seed = check_int(seed, "seed", where, smallest=0)
        self.spread = check_number(spread, "spread", where, positive=True, example="3.0")
        self.name = f"mixture_{self.dim}d"
        d, k, f64 = self.dim, self.components, torch.float64
        gen = torch.Generator().manual_seed(self.seed)
        w = 1 + torch.rand(k, generator=gen, dtype=f64)
        self.weights = w / w.sum()
        self.means = self.spread * torch.randn(k, d, generator=gen, dtype=f64) / math.sqrt(d)
        low, high = (math.log(s) for s in STD_RANGE)
        stds = (low + (high - low) * torch.rand(k, d, generator=gen, dtype=f64)).exp()
        q, r = torch.linalg.qr(torch.randn(k, d, d, generator=gen, dtype=f64))
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]  # a uniform rotation
        cov = q @ torch.diag_embed(stds**2) @ q.transpose(-1, -2)
        self.covariances = 0.5 * (cov + cov.transpose(-1, -2))
        self.scale_tril = torch.linalg.cholesky(self.covariances)
        self._entropy: dict[int, tuple[float, float]] = {}

    def __repr__(self) -> str:
        return (
            f"Mixture(dim={self.dim}, components={self.components}, seed={self.seed}, "
            f"spread={self.spread:g})"
        )

    def distribution(self) -> torch.distributions.Distribution:
        """The mixture as a ``torch.distributions.MixtureSameFamily`` (float64)."""
        D = torch.distributions
        return D.MixtureSameFamily(
            D.Categorical(probs=self.weights),
            D.MultivariateNormal(self.means, scale_tril=self.scale_tril),
        )

    def sample(
        self,
        n: int,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` i.i.d. points, shape ``(n, D)``: a component ``k ~ w``, then
        ``mu_k + L_k eps`` with ``L_k`` the Cholesky factor of ``Sigma_k``.

        ``seed``, ``generator`` and ``dtype`` as for the 2-D data sets: with ``seed`` a
        private generator (torch's global random state untouched), with ``generator``
        that one, with neither torch's global generator. Drawn in float64.
        """
        where = f"{self.name}.sample"
        n = check_int(n, "n", where, smallest=0, meaning="the number of points")
        dtype = check_float_dtype(dtype, where)
        gen = make_generator(seed, generator, where)
        with torch.no_grad(), allocation(where, n):
            cdf = self.weights.cumsum(0)
            u = torch.rand(n, generator=gen, dtype=torch.float64)
            k = torch.searchsorted(cdf, u, right=True).clamp(max=self.components - 1)
            eps = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)
            x = self.means[k] + (self.scale_tril[k] @ eps[:, :, None])[..., 0]
            return x.to(dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` for ``x`` of shape ``(*, D)``; shape ``(*)`` in ``x.dtype``.

        ``logsumexp_k [log w_k + log N(x; mu_k, Sigma_k)]``, in float64.
        """
        where = f"{self.name}.log_prob"
        x = check_finite(check_points(x, self.dim, "x", where), "x", where)
        flat = x.reshape(-1, self.dim).double()
        out = (
            torch.cat([self._log_prob(part) for part in flat.split(_CHUNK)])
            if len(flat)
            else (flat.new_zeros(0))
        )
        return out.reshape(x.shape[:-1]).to(x.dtype)

    def _log_prob(self, x: Tensor) -> Tensor:
        """``(N, D)`` float64 -> ``(N,)``, no checks."""
        diff = (x[:, None, :] - self.means).transpose(0, 1)  # (K, N, D)
        white = torch.linalg.solve_triangular(self.scale_tril, diff.transpose(-1, -2), upper=False)
        half_log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,)
        log_normal = (
            -0.5 * white.pow(2).sum(-2)
            - half_log_det[:, None]
            - 0.5 * self.dim * math.log(2 * math.pi)
        )  # (K, N)
        return torch.logsumexp(self.weights.log()[:, None] + log_normal, dim=0)

    def entropy_estimate(self, n: int = ENTROPY_SAMPLES) -> tuple[float, float]:
        """``(H, se)``: the mean of ``-log p`` over ``n`` samples and its standard error.

        The samples come from a generator seeded by the mixture's seed (not the data's),
        so the estimate is the same on every call; it is cached per ``n``.
        """
        n = check_int(n, "n", f"{self.name}.entropy_estimate", smallest=2, meaning="samples")
        if n not in self._entropy:
            gen = torch.Generator().manual_seed(1_000_003 * (self.seed + 1))
            total, total_sq, left = 0.0, 0.0, n
            with torch.no_grad():
                while left:
                    m = min(left, _CHUNK)
                    nlp = -self._log_prob(self.sample(m, generator=gen, dtype=torch.float64))
                    total, total_sq, left = (
                        total + nlp.sum().item(),
                        total_sq + nlp.pow(2).sum().item(),
                        left - m,
                    )
            mean = total / n
            var = max(total_sq / n - mean**2, 0.0) * n / (n - 1)
            self._entropy[n] = (mean, math.sqrt(var / n))
        return self._entropy[n]

    def entropy(self) -> float:
        """The differential entropy in nats, estimated (see :meth:`entropy_estimate`)."""
        return self.entropy_estimate()[0]

    def entropy_bounds(self) -> tuple[float, float]:
        """``(sum_k w_k H(N_k), sum_k w_k H(N_k) + H(w))``: the entropy lies in between."""
        half_log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        h_k = 0.5 * self.dim * (1 + math.log(2 * math.pi)) + half_log_det
        low = (self.weights * h_k).sum().item()
        return low, low - (self.weights * self.weights.log()).sum().item()


def mixture(dim: int, components: int = COMPONENTS, seed: int = 0) -> Mixture:
    """A fixed random Gaussian mixture in ``dim`` dimensions (see :class:`Mixture`)."""
    return Mixture(dim, components, seed)
