"""Linear layers: a learnable invertible matrix, and fixed permutations.

A linear map ``x = W z + b`` has the constant Jacobian ``W``, so
``ladj = log|det W|`` for every point. Mixing coordinates this way cannot
create new modes (an affine image of a Gaussian is a Gaussian), but between
coupling or autoregressive layers it decides which coordinates talk to which.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..validate import as_index_tensor, check_dim
from .base import Layer


class LULinear(Layer):
    """Learnable linear layer ``x = W z + b`` that stays invertible: ``W = L U``.

    ``L`` is lower-triangular with ones on the diagonal and ``U`` is
    upper-triangular with diagonal ``exp(log_diag)``, so

        det W = prod_i exp(log_diag_i) > 0,     ladj = sum_i log_diag_i,

    for any parameter values: the layer can never become singular. The inverse
    is two triangular solves, ``O(D^2)`` per point, instead of a general
    ``O(D^3)`` inversion. Starts as the identity. Every ``W`` whose leading
    principal minors are all positive has this form (reflections, with
    ``det W < 0``, do not, and a flow never needs them: combine with a
    :class:`Permutation` for other orderings).

    Reference: Kingma and Dhariwal (2018), "Glow: Generative Flow with
    Invertible 1x1 Convolutions", arXiv:1807.03039.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim, "LULinear")
        self.lower = nn.Parameter(torch.zeros(dim, dim))  # strictly lower part of L
        self.upper = nn.Parameter(torch.zeros(dim, dim))  # strictly upper part of U
        self.log_diag = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.dim, dtype=self.lower.dtype, device=self.lower.device)
        L = self.lower.tril(-1) + eye
        U = self.upper.triu(1) + torch.diag(self.log_diag.exp())
        return L, U

    def weight(self) -> Tensor:
        """The matrix ``W = L U``."""
        L, U = self._factors()
        return L @ U

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        x = z @ self.weight().T + self.bias
        return x, self.log_diag.sum().expand(z.shape[:-1])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        L, U = self._factors()
        rhs = (x - self.bias).reshape(-1, self.dim).T  # (D, N)
        y = torch.linalg.solve_triangular(L, rhs, upper=False, unitriangular=True)
        z = torch.linalg.solve_triangular(U, y, upper=True).T.reshape(x.shape)
        return z, -self.log_diag.sum().expand(x.shape[:-1])


class Permutation(Layer):
    """Fixed reordering of the coordinates: ``x_i = z_{perm[i]}``; ``ladj = 0``.

    A permutation matrix has determinant +-1, so the volume does not change.
    Between coupling or autoregressive layers it lets every coordinate be
    transformed and every coordinate condition the others.
    """

    def __init__(self, perm):
        super().__init__()
        hint = "In reverse order use Reverse(D); in a random order, torch.randperm(D)."
        perm = as_index_tensor(perm, "perm", "Permutation", hint)
        n = perm.numel()
        if perm.dim() != 1 or n == 0 or perm.is_floating_point() or not torch.equal(
            perm.sort().values, torch.arange(n)
        ):
            raise ValueError(
                "Permutation: `perm` must be a 1-D sequence holding each of 0, ..., D-1 "
                f"exactly once, got {perm.tolist()}. {hint}"
            )
        self.dim = n
        self.register_buffer("perm", perm.long())
        self.register_buffer("inverse_perm", torch.argsort(perm).long())

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        return z[..., self.perm], z.new_zeros(z.shape[:-1])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        return x[..., self.inverse_perm], x.new_zeros(x.shape[:-1])


class Reverse(Permutation):
    """Reverse the order of the coordinates: ``x_i = z_{D-1-i}``; ``ladj = 0``."""

    def __init__(self, dim: int):
        super().__init__(torch.arange(check_dim(dim, "Reverse") - 1, -1, -1))
