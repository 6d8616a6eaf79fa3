"""Autoregressive layers: MAF and IAF, built on the masked network MADE.

An autoregressive map transforms coordinate ``i`` with parameters that depend
only on the coordinates *before* it in some order. Its Jacobian is triangular
in that order, so ``ladj`` is the sum of the log-derivatives on the diagonal.
The conditioner, :class:`~nfcourse.nets.MADE`, gives every coordinate's
parameters in one pass, each from the right inputs only.

References:
    Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive Flow for
    Density Estimation", arXiv:1705.07057
    Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling (2016), "Improving
    Variational Inference with Inverse Autoregressive Flow", arXiv:1606.04934
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nets import MADE, autoregressive_problems
from ..validate import check_dim
from .base import Inverse, Layer
from .elementwise import SCALE_BOUND, affine_forward, affine_inverse, check_scale_bound, read_affine


class Autoregressive(Layer):
    """Template of an autoregressive layer: one MADE, a map per coordinate, D passes to sample.

    The network reads the *data* side: ``h = made(x)`` gives every coordinate's
    parameters, those of coordinate ``i`` from the coordinates before it in
    ``order``. A subclass supplies only its elementwise map in the normalizing
    direction, ``_untransform(x, h) -> (z, ladj)``, and its inverse
    ``_transform(z, h) -> (x, ladj)``; the class attribute ``params`` is the
    number of network outputs per coordinate (``made`` returns ``params``
    consecutive blocks of ``D``).

    - ``inverse`` (density, ``x -> z``): one MADE pass, since ``x`` is known.
    - ``forward`` (sampling, ``z -> x``): ``D`` sequential MADE passes; after
      pass ``k`` the coordinates of degree ``<= k`` are final, since they only
      need those of smaller degree, fixed by the passes before.

    Args:
        dim: the number of coordinates D.
        hidden: hidden layer sizes of the default :class:`~nfcourse.nets.MADE`.
        order: the degree of each input coordinate (a permutation of 1..D).
        net: a module ``(*, D) -> (*, params * D)`` to use instead of a new MADE
            (``hidden`` and ``order`` are then ignored); stored as ``self.made``.
            It must be autoregressive in some order, for the ``D`` passes of
            ``forward`` to invert ``inverse``: this is checked when the layer is
            built (:func:`~nfcourse.nets.autoregressive_problems`).

    Shapes: ``z`` and ``x`` are ``(*, D)``; ``ladj`` is ``(*)``.
    """

    params: int = 2

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        net: nn.Module | None = None,
    ):
        super().__init__()
        where = type(self).__name__
        self.dim = check_dim(dim, where)
        if net is not None and not isinstance(net, nn.Module):
            raise TypeError(
                f"{where}: `net` must be a torch.nn.Module built once, got {type(net).__name__}; "
                f"e.g. net=MADE({dim}, hidden=(64, 64), params={self.params})."
            )
        if net is not None:
            problems = autoregressive_problems(net, dim, self.params)
            if problems:
                raise ValueError(
                    f"{where}: `net` must be autoregressive, mapping (..., {dim}) to "
                    f"(..., {self.params * dim}): {self.params} values for each coordinate, "
                    "those of coordinate i depending only on the coordinates before i in one "
                    f"order. This network is not: {'; '.join(problems)}. Without that the "
                    "log-determinant formula is wrong and sampling does not invert the "
                    f"density. Use net=MADE({dim}, hidden=(64, 64), params={self.params})."
                )
        self.made = MADE(dim, hidden, params=self.params, order=order) if net is None else net

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        x = torch.zeros_like(z)
        for _ in range(self.dim):  # after pass k, coordinates of degree <= k are final
            x, ladj = self._transform(z, self.made(x))
        return x, ladj

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        return self._untransform(x, self.made(x))

    def _transform(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def _untransform(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError


class MAF(Autoregressive):
    """Masked autoregressive flow: ``x_i = z_i * exp(s_i(x_<i)) + m_i(x_<i)``.

    ``x_<i`` are the coordinates of smaller degree in ``order``; ``m`` and ``s``
    come from one :class:`~nfcourse.nets.MADE`, whose output is read in the
    normalizing direction, ``z = x exp(r(x)) + q(x)``, with ``r`` soft-clamped to
    ``(-scale_bound, scale_bound)`` (:func:`~nfcourse.layers.elementwise.read_affine`;
    so ``s = -r`` and ``m = -q exp(-r)``). The Jacobian is triangular in degree
    order with diagonal ``exp(s_i)``, so ``ladj = sum_i s_i``; ``exp(s) > 0``
    makes the layer invertible.

    Cost (see :class:`Autoregressive`): the density (``inverse``) in one MADE
    pass, ``z = (x - m(x)) * exp(-s(x))``; sampling (``forward``) in ``D``
    passes. So MAF suits density estimation; its inverse, :class:`IAF`, suits
    sampling. Stack MAFs with different orders (e.g. reversed,
    ``torch.arange(D, 0, -1)``) so that every coordinate conditions on every other.

    Args: as for :class:`Autoregressive`; ``net`` maps ``(*, D) -> (*, 2D)`` (a
    shift block, then a raw log-scale block).

    Reference: Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive
    Flow for Density Estimation", arXiv:1705.07057
    """

    params = 2

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        scale_bound: float = SCALE_BOUND,
        net: nn.Module | None = None,
    ):
        super().__init__(dim, hidden, order, net)
        self.scale_bound = check_scale_bound(scale_bound, "MAF")

    def _transform(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_inverse(z, *read_affine(h, self.scale_bound))

    def _untransform(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_forward(x, *read_affine(h, self.scale_bound))


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
