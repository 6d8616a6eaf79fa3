"""Conditional layers: coupling and autoregressive layers whose networks also read a context.

A conditional flow models a density ``p(x | c)`` of data ``x`` (``D``
coordinates) given a context ``c`` (``C`` values: a class, a parameter, an
observation). Each layer is a bijection of ``x`` *for every fixed* ``c``; the
context only enters the conditioner networks::

    x = f(z; c),   log p(x | c) = log p_Z(f^{-1}(x; c)) + log|det d f^{-1}(x; c) / dx|.

The context is never transformed and has no Jacobian of its own: the
determinant is the one with respect to ``x`` (or ``z``) alone, so a coupling
or autoregressive layer keeps its triangular Jacobian and its cheap ``ladj``
whatever the network does with ``c``.

- :class:`ConditionalAffineCoupling`: RealNVP's coupling, its network fed
  ``(z_a, c)`` instead of ``z_a``.
- :class:`ConditionalMAF`: MAF with a :class:`ConditionalMADE`, whose first
  hidden layer and output also read ``c`` through unmasked linear maps: every
  output depends on the whole context, output ``i`` still only on ``x_<i``.
- :class:`Conditioned`: a conditional layer with its context fixed, which is an
  ordinary layer (the property battery of the tests runs on it).

Shapes: ``z``, ``x`` are ``(*, D)`` and ``context`` is ``(*, C)``; the two
leading shapes broadcast, so one context ``(C,)`` serves a whole batch
``(N, D)``, and one point ``(D,)`` can be scored under many contexts ``(M, C)``.

References:
    Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive Flow for
    Density Estimation", arXiv:1705.07057 (conditional MAF)
    Winkler, Worrall, Hoogeboom, Welling (2019), "Learning Likelihoods with
    Conditional Normalizing Flows", arXiv:1912.00042
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nets import MADE, mlp
from ..validate import as_model_dtype, check_dim, check_int, check_points
from .base import Layer, check_layer, is_conditional
from .coupling import AffineCoupling, check_mask
from .elementwise import SCALE_BOUND, affine_forward, affine_inverse, check_scale_bound, read_affine


def check_context(context: object, context_dim: int, where: str) -> Tensor:
    """A context of shape ``(*, C)`` for a conditional layer or flow (``None`` is an error)."""
    if context is None:
        raise ValueError(
            f"{where}: this is conditional: it needs `context`, a tensor of shape "
            f"(..., {context_dim}) (one context for all points, or one per point), got None. "
            f"Pass it, e.g. flow.log_prob(x, context=c) or layer(z, c)."
        )
    if isinstance(context, Tensor) and context.dim() > 0 and context.shape[-1] != context_dim:
        raise ValueError(
            f"{where}: `context` must have shape (..., {context_dim}): C = {context_dim} "
            f"context value(s) in the last dimension, as the layers were built "
            f"(context_dim={context_dim}); got shape {tuple(context.shape)}. For a 1-D "
            f"context of N points use c[:, None]; otherwise build the flow with "
            f"context_dim={context.shape[-1]}."
        )
    return check_points(context, context_dim, "context", where)


def broadcast(t: Tensor, context: Tensor, where: str) -> tuple[Tensor, Tensor]:
    """Points ``(*, D)`` and a context ``(*, C)`` expanded to one common leading shape."""
    try:
        batch = torch.broadcast_shapes(t.shape[:-1], context.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"{where}: the context's leading shape {tuple(context.shape[:-1])} does not "
            f"broadcast against the points' {tuple(t.shape[:-1])}. Pass one context of shape "
            f"(C,) for all points, or one per point: shape (N, C) for points (N, D)."
        ) from None
    return t.expand(*batch, t.shape[-1]), context.expand(*batch, context.shape[-1])


def points_and_context(layer: Layer, t: Tensor, context: object, name: str):
    """A conditional layer's input and context, validated, in its dtype, broadcast."""
    where = type(layer).__name__
    t = layer.check(t, name)
    c = as_model_dtype(check_context(context, layer.context_dim, where), layer, "context", where)
    return broadcast(t, c, where)


def _check_context_dim(context_dim: object, where: str) -> int:
    return check_int(context_dim, "context_dim", where, meaning="the number C of context values")


class ConditionalAffineCoupling(AffineCoupling):
    """RealNVP's affine coupling with a context: the network reads ``(z_a, c)``.

    ``net`` maps ``(*, D_a + C) -> (*, 2 * D_b)``, read as in
    :class:`~nfcourse.layers.coupling.AffineCoupling`::

        inverse:  z_b = x_b * exp(r(x_a, c)) + q(x_a, c),     ladj = sum_b r(x_a, c),
        forward:  x_b = (z_b - q(z_a, c)) * exp(-r(z_a, c)),  ladj = -sum_b r(z_a, c).

    For a fixed ``c`` it is an affine coupling layer; ``c`` is not transformed.

    Args:
        mask: as for AffineCoupling (1 = passes through and conditions).
        context_dim: ``C``, the number of context values.
        hidden: hidden sizes of the default network ``mlp(D_a + C, 2 * D_b, hidden)``.
        net: a module ``(*, D_a + C) -> (*, 2 * D_b)`` to use instead; it receives
            ``torch.cat([z_a, c], -1)``.
        scale_bound: the soft bound of the log-scale.
    """

    conditional = True

    def __init__(
        self,
        mask: Tensor,
        context_dim: int,
        hidden: Sequence[int] = (64, 64),
        net: nn.Module | None = None,
        scale_bound: float = SCALE_BOUND,
    ):
        where = type(self).__name__
        # set before the parent's __init__, which checks the network against it
        self.context_dim = _check_context_dim(context_dim, where)
        m = check_mask(mask, where)
        if net is None:
            net = mlp(int(m.sum()) + self.context_dim, 2 * int((~m).sum()), hidden)
        super().__init__(mask, hidden, net, scale_bound)

    def _check_net(self, net: object) -> nn.Module:
        where, d_in = type(self).__name__, len(self._a) + self.context_dim
        example = f"nfcourse.nets.mlp({d_in}, {self._out_features})"
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"{where}: `net` must be a torch.nn.Module built once, got "
                f"{type(net).__name__}; e.g. net={example}."
            )
        first = next((m for m in net.modules() if isinstance(m, nn.Linear)), None)
        if first is not None and first.in_features != d_in:
            raise ValueError(
                f"{where}: `net` reads the {len(self._a)} coordinates with mask 1 and the "
                f"{self.context_dim} context values ({d_in} inputs), but its first Linear "
                f"layer has in_features={first.in_features}. Build it with {d_in} inputs, "
                f"e.g. {example}."
            )
        return net

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, c = points_and_context(self, z, context, "z")
        z_a, z_b = self._split(z)
        x_b, ladj = self._transform(z_b, self._conditioner(torch.cat([z_a, c], -1)))
        return self._merge_parts(z_a, x_b), ladj

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, c = points_and_context(self, x, context, "x")
        x_a, x_b = self._split(x)
        z_b, ladj = self._untransform(x_b, self._conditioner(torch.cat([x_a, c], -1)))
        return self._merge_parts(x_a, z_b), ladj


class ConditionalMADE(nn.Module):
    """A :class:`~nfcourse.nets.MADE` whose first hidden layer and output also read a context.

    ``h_1 = relu(M_1 x + W c)`` and ``out = M_K h_{K-1} + V c``, with ``M_1``,
    ``M_K`` the MADE's masked first and last layers and ``W``, ``V`` full
    (unmasked) linear maps. Output ``i`` depends on ``x_<i`` (in the MADE's
    order) and on all of ``c``; the Jacobian with respect to ``x`` keeps MADE's
    strictly triangular connectivity (``made.connectivity``). The direct map
    ``V`` matters: the outputs of the first coordinate in the order see no
    hidden unit that the context reaches (they see no hidden unit at all), so
    without it their shift and scale would ignore the context.

    Shapes: ``(*, D)`` and ``(*, C)`` (same leading shape) to ``(*, params * D)``.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        hidden: Sequence[int] = (64, 64),
        params: int = 2,
        order: Tensor | None = None,
    ):
        super().__init__()
        self.made = MADE(dim, hidden, params=params, order=order)
        c = _check_context_dim(context_dim, "ConditionalMADE")
        self.context = nn.Linear(c, self.made.hidden[0])
        self.context_out = nn.Linear(c, params * self.made.dim, bias=False)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        first, *rest = self.made.net
        h = first(x) + self.context(context)
        for layer in rest:
            h = layer(h)
        return h + self.context_out(context)


class ConditionalMAF(Layer):
    """MAF with a context: ``x_i = z_i * exp(s_i(x_<i, c)) + m_i(x_<i, c)``.

    The shift and log-scale come from one :class:`ConditionalMADE`, read in the
    normalizing direction as in :class:`~nfcourse.layers.autoregressive.MAF`
    (``z = x exp(r) + q``, ``r`` soft-clamped). For a fixed ``c`` it is a MAF:
    the density (``inverse``) in one pass, sampling (``forward``) in ``D``
    passes. With ``D = 1`` the layer is an affine map whose shift and scale are
    functions of ``c`` alone.

    Args:
        dim: ``D``. context_dim: ``C``. hidden, order, scale_bound: as for MAF.
    """

    conditional = True

    def __init__(
        self,
        dim: int,
        context_dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        scale_bound: float = SCALE_BOUND,
    ):
        super().__init__()
        where = type(self).__name__
        self.dim = check_dim(dim, where)
        self.context_dim = _check_context_dim(context_dim, where)
        self.made = ConditionalMADE(self.dim, self.context_dim, hidden, params=2, order=order)
        self.scale_bound = check_scale_bound(scale_bound, where)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, c = points_and_context(self, z, context, "z")
        x = torch.zeros_like(z)
        for _ in range(self.dim):  # after pass k, coordinates of degree <= k are final
            x, ladj = affine_inverse(z, *read_affine(self.made(x, c), self.scale_bound))
        return x, ladj

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, c = points_and_context(self, x, context, "x")
        return affine_forward(x, *read_affine(self.made(x, c), self.scale_bound))


class Conditioned(Layer):
    """A conditional layer with its context fixed: the ordinary layer ``z -> f(z; c)``.

    The context (shape ``(C,)``, or ``(*, C)`` broadcasting against the inputs)
    is a buffer: it follows ``.to(...)`` and ``.double()``.
    """

    def __init__(self, layer: nn.Module, context: Tensor):
        super().__init__()
        self.layer = check_layer(layer, "Conditioned: `layer`")
        if not is_conditional(layer):
            raise TypeError(
                f"Conditioned: `layer` ({type(layer).__name__}) is not conditional: it reads "
                "no context. Use the layer itself."
            )
        self.dim = getattr(layer, "dim", None)
        context = check_context(context, layer.context_dim, "Conditioned")
        self.register_buffer("context", context.detach().clone())

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer(self.check(z), self.context)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer.inverse(self.check(x, "x"), self.context)
