"""Autoregressive layers: MADE, the masked network, and the flows built on it, MAF and IAF.

An autoregressive map transforms coordinate ``i`` with parameters that depend
only on the coordinates *before* it in some order. Its Jacobian is triangular
in that order, so ``ladj`` is the sum of the log-derivatives on the diagonal.

A plain MLP is not autoregressive (every output sees every input; the seed's
``Linear(2, 2)`` example has a full Jacobian, so the log-det formula it relies
on does not hold). MADE cuts connections with fixed masks so that one pass of
the network gives every coordinate's parameters at once, each from the right
inputs only.

References:
    Germain, Gregor, Murray, Larochelle (2015), "MADE: Masked Autoencoder for
    Distribution Estimation", arXiv:1502.03509
    Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive Flow for
    Density Estimation", arXiv:1705.07057
    Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling (2016), "Improving
    Variational Inference with Inverse Autoregressive Flow", arXiv:1606.04934
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Inverse, Layer, check_dim, check_points
from .coupling import (
    SCALE_BOUND,
    check_hidden,
    check_scale_bound,
    net_affine_forward,
    net_affine_inverse,
)


class MaskedLinear(nn.Linear):
    """A linear layer with some connections cut for good: ``y = x (W * M)^T + b``.

    ``mask`` ``M`` has the weight's shape ``(out_features, in_features)``;
    ``M[k, j] = 0`` removes the connection from input ``j`` to output ``k``
    (the weight stays but never acts, and its gradient is 0).
    """

    def __init__(self, mask: Tensor, bias: bool = True):
        if mask.dim() != 2:
            raise ValueError(
                "MaskedLinear: `mask` must have shape (out_features, in_features), got "
                f"shape {tuple(mask.shape)}."
            )
        super().__init__(mask.shape[1], mask.shape[0], bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _check_order(order: object, dim: int) -> Tensor:
    """The input degrees: ``order`` (a permutation of 1..D) or 1..D by default."""
    if order is None:
        return torch.arange(1, dim + 1)
    order = torch.as_tensor(order)
    if order.shape != (dim,) or not torch.equal(order.sort().values, torch.arange(1, dim + 1)):
        raise ValueError(
            f"MADE: `order` must be a permutation of 1..{dim} (the degree of each input "
            f"coordinate), got {order.tolist()}. For a random order use "
            f"torch.randperm({dim}) + 1; to reverse it, torch.arange({dim}, 0, -1)."
        )
    return order.long()


def _hidden_degrees(width: int, dim: int) -> Tensor:
    """Degrees of a hidden layer: cycle through 1..D-1, so every degree is used.

    A unit of degree ``d`` sees the inputs of degree ``<= d``. For D = 1 all
    units get degree 0: they see no input, and neither does the output.
    """
    if dim == 1:
        return torch.zeros(width, dtype=torch.long)
    return torch.arange(width) % (dim - 1) + 1


class MADE(nn.Module):
    """Masked autoencoder: an MLP ``(*, D) -> (*, params * D)`` that is autoregressive.

    Every unit has a *degree*: the inputs have ``order`` (default ``1..D``),
    hidden units cycle through ``1..D-1``, the outputs have the inputs'
    degrees again. A hidden unit of degree ``d`` sees the units of the layer
    below with degree ``<= d``; an output of degree ``d`` sees hidden units of
    degree ``< d`` (strictly). Hence output ``i`` depends only on inputs of
    strictly smaller degree: the product of the masks, :attr:`connectivity`,
    is strictly lower-triangular in degree order. One pass of the network
    gives every coordinate's parameters.

    The output is ``params`` consecutive blocks of ``D`` (so
    ``shift, log_scale = made(x).chunk(2, dim=-1)``), entry ``i`` of each block
    belonging to coordinate ``i``. All layers keep PyTorch's default (random)
    initialization, so a new MAF layer is a random map near the identity (see
    :func:`~nfcourse.coupling.mlp` for why not exactly the identity). For
    D = 1 the output depends on no input: it is a learned constant.

    Attributes:
        order: the input degrees, shape ``(D,)``.
        masks: the masks of the layers, input to output, each ``(out, in)``.

    Reference: Germain, Gregor, Murray, Larochelle (2015), "MADE: Masked
    Autoencoder for Distribution Estimation", arXiv:1502.03509
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        params: int = 2,
        order: Tensor | None = None,
    ):
        super().__init__()
        self.dim = check_dim(dim, "MADE")
        self.hidden = check_hidden(hidden, "MADE")
        if isinstance(params, bool) or not isinstance(params, int) or params < 1:
            raise ValueError(
                f"MADE: `params` must be a positive int (the number of values per "
                f"coordinate, e.g. 2 for a shift and a log-scale), got {params!r}."
            )
        self.params = params
        self.register_buffer("order", _check_order(order, dim))
        degrees = self.degrees
        masks = [d_out[:, None] >= d_in for d_in, d_out in pairwise(degrees[:-1])]
        masks.append(degrees[-1][:, None] > degrees[-2])  # strict: no output sees itself
        layers: list[nn.Module] = []
        for mask in masks:
            layers += [MaskedLinear(mask), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])

    @property
    def degrees(self) -> list[Tensor]:
        """The degrees of the units, layer by layer: inputs, hidden layers, outputs."""
        hidden = [_hidden_degrees(width, self.dim).to(self.order.device) for width in self.hidden]
        return [self.order, *hidden, self.order.repeat(self.params)]

    @property
    def masks(self) -> list[Tensor]:
        """The 0/1 masks of the layers, input to output; each has shape ``(out, in)``."""
        return [m.mask for m in self.net if isinstance(m, MaskedLinear)]

    @property
    def connectivity(self) -> Tensor:
        """The product of the masks, ``(params * D, D)``: entry ``(i, j)`` counts the paths
        from input ``j`` to output ``i``; 0 means output ``i`` cannot depend on input ``j``."""
        masks = self.masks
        paths = masks[0]
        for mask in masks[1:]:
            paths = mask @ paths
        return paths

    def forward(self, x: Tensor) -> Tensor:
        return self.net(check_points(x, self.dim, "x", "MADE"))


class MAF(Layer):
    """Masked autoregressive flow: ``x_i = z_i * exp(s_i(x_<i)) + m_i(x_<i)``.

    ``x_<i`` are the coordinates of smaller degree in ``order``; ``m`` and ``s``
    come from one :class:`MADE`, whose output is read in the normalizing
    direction, ``z = x exp(r(x)) + q(x)``, with ``r`` soft-clamped to
    ``(-scale_bound, scale_bound)`` (:func:`~nfcourse.coupling.net_affine_inverse`;
    so ``s = -r`` and ``m = -q exp(-r)``). The Jacobian is triangular
    in degree order with diagonal ``exp(s_i)``, so ``ladj = sum_i s_i``;
    ``exp(s) > 0`` makes the layer invertible.

    Cost: the parameters are functions of ``x``, the output.

    - ``inverse`` (density, ``x -> z``) is cheap: ``x`` is known, so one MADE
      pass gives all ``m, s`` and ``z = (x - m(x)) * exp(-s(x))``,
      ``ladj = -sum s(x)``.
    - ``forward`` (sampling, ``z -> x``) costs ``D`` sequential MADE passes:
      pass ``k`` fixes the coordinates of degree ``k``, which only need those
      of smaller degree, fixed by the passes before.

    So MAF suits density estimation; its inverse, :class:`IAF`, suits sampling.
    Stack MAFs with different orders (e.g. reversed, ``torch.arange(D, 0, -1)``)
    so that every coordinate conditions on every other.

    Args:
        net: optional module ``(*, D) -> (*, 2D)`` (shift block, then raw
            log-scale block) used instead of a new :class:`MADE` (``hidden``
            and ``order`` are then ignored); it is stored as ``self.made``. It
            must be autoregressive in some order, which MAF does not check
            (:class:`nfcourse.transforms.AutoregressiveTransform` does): the
            ``D`` passes of ``forward`` then invert ``inverse`` exactly.

    Shapes: ``z`` and ``x`` are ``(*, D)``; ``ladj`` is ``(*)``.

    Reference: Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive
    Flow for Density Estimation", arXiv:1705.07057
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        scale_bound: float = SCALE_BOUND,
        net: nn.Module | None = None,
    ):
        super().__init__()
        self.dim = check_dim(dim, "MAF")
        if net is not None and not isinstance(net, nn.Module):
            raise TypeError(
                f"MAF: `net` must be a torch.nn.Module built once, got {type(net).__name__}; "
                f"e.g. net=MADE({dim}, hidden=(64, 64))."
            )
        self.made = MADE(dim, hidden, params=2, order=order) if net is None else net
        self.scale_bound = check_scale_bound(scale_bound, "MAF")

    def _transform(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return net_affine_forward(z, h, self.scale_bound)

    def _untransform(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return net_affine_inverse(x, h, self.scale_bound)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        x = torch.zeros_like(z)
        for _ in range(self.dim):  # after pass k, coordinates of degree <= k are final
            x, ladj = self._transform(z, self.made(x))
        return x, ladj

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        return self._untransform(x, self.made(x))


class IAF(Inverse):
    """Inverse autoregressive flow: the inverse of a :class:`MAF`.

    ``forward`` (sampling, ``z -> x``) is the MAF's cheap direction:
    ``x_i = (z_i - m_i(z_<i)) * exp(-s_i(z_<i))``, one MADE pass, with
    ``ladj = -sum_i s_i(z)``. This *is* an IAF: an affine autoregressive map
    whose scale ``exp(-s_i)`` and shift ``-m_i exp(-s_i)`` are computed from
    the *input* ``z`` (Kingma et al.'s ``x = z * sigma(z) + mu(z)``), so sampling
    and the log-density of the samples are cheap (variational inference).
    ``inverse`` (density of given data, ``x -> z``) is the MAF's sampling loop:
    ``D`` sequential MADE passes.

    Written as ``Inverse(MAF(...))``, not a copy: the MAF is ``iaf.layer``.
    Arguments as for :class:`MAF`.

    Reference: Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling (2016),
    "Improving Variational Inference with Inverse Autoregressive Flow", arXiv:1606.04934
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        scale_bound: float = SCALE_BOUND,
    ):
        super().__init__(MAF(dim, hidden, order, scale_bound))
