"""The conditioners: the networks inside coupling and autoregressive layers.

A conditioner computes the parameters of a layer's elementwise map (a shift
and a log-scale, or a spline's knots) from the coordinates the layer is
allowed to look at. :func:`mlp` sees its whole input (a coupling layer feeds
it only the coordinates that pass through); :class:`MADE` sees all
coordinates but, through fixed masks, lets output ``i`` depend only on the
inputs before ``i`` in some order: one pass gives an autoregressive layer
every coordinate's parameters.

A plain MLP is not autoregressive (every output sees every input; the blog
post's ``Linear(2, 2)`` example has a full Jacobian, so the log-det formula it
relies on does not hold).

References:
    Germain, Gregor, Murray, Larochelle (2015), "MADE: Masked Autoencoder for
    Distribution Estimation", arXiv:1502.03509
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .testing import autograd_jacobian, is_triangular
from .validate import as_model_dtype, check_dim, check_hidden, check_int, check_points, dtype_device


def mlp(
    in_features: int,
    out_features: int,
    hidden: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """A multilayer perceptron ``(*, in_features) -> (*, out_features)``, ReLU between layers.

    Every layer keeps PyTorch's default (random) initialization, the last one
    included, so a new coupling layer is a random map close to, but not, the
    identity. Zeroing the last layer would make it exactly the identity, but
    then the hidden layers get no gradient at the first step and learn slowly;
    with a network read as ``x = z exp(s) + t`` that start stalled training
    (docs/benchmarks.md, "What made the difference"). The random start trains
    well with either reading.
    """
    sizes = (
        check_int(in_features, "in_features", "mlp"),
        *check_hidden(hidden, "mlp"),
        check_int(out_features, "out_features", "mlp"),
    )
    layers: list[nn.Module] = []
    for n_in, n_out in pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), activation()]
    return nn.Sequential(*layers[:-1])  # no activation after the output layer


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
    :func:`mlp` for why not exactly the identity). For
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
        params = check_int(
            params, "params", "MADE", meaning="the number of values per coordinate, e.g. 2"
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
        return self.net(as_model_dtype(check_points(x, self.dim, "x", "MADE"), self, "x", "MADE"))


# --- inspecting a network a learner passes in ---------------------------------------------------


def probe_points(net: object, d_in: int, n: int = 8, seed: int = 0) -> Tensor:
    """``n`` random points of ``d_in`` coordinates, in the dtype and on the device of ``net``."""
    dtype, device = dtype_device(net)
    g = torch.Generator().manual_seed(seed)
    return (1.5 * torch.randn(n, d_in, generator=g, dtype=dtype)).to(device)


CHANGES = (
    "it gives different outputs for the same input on two calls (does it build a new network "
    "inside forward, or use dropout in training mode? Build layers in __init__; call .eval() "
    "for dropout)"
)


def net_output(
    net: nn.Module, probe: Tensor, width: int | None = None
) -> tuple[Tensor | None, str]:
    """``net(probe)`` if it is a batch ``(N, width)`` (``width=None``: any), else what is wrong."""
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:
        return None, f"it fails on input of shape {tuple(probe.shape)}: {err}"
    if (
        not isinstance(out, Tensor)
        or out.dim() != 2
        or out.shape[0] != probe.shape[0]
        or (width is not None and out.shape[1] != width)
    ):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return None, f"it maps input of shape {tuple(probe.shape)} to {got}"
    return out, ""


def is_deterministic(net: nn.Module, probe: Tensor, out: Tensor) -> bool:
    """Whether a second call of ``net`` on ``probe`` gives ``out`` again."""
    with torch.no_grad():
        again = net(probe)
    return isinstance(again, Tensor) and torch.allclose(out, again)


def randomized(net: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``net`` with every trainable parameter redrawn: its structure, not its values.

    A zero-initialized output layer (a learner's network may have one) hides every
    dependence; and what training may change is what must keep the autoregressive structure.
    """
    try:
        net = copy.deepcopy(net)
    except Exception:
        return net
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


def autoregressive_problems(net: nn.Module, dim: int, params: int = 2) -> list[str]:
    """What stops ``net`` from being an autoregressive conditioner ``(*, D) -> (*, params * D)``.

    Checked with autograd at a few random points, with the trainable parameters
    redrawn at random (:func:`randomized`, so that a zero-initialized layer hides
    nothing): ``params`` blocks of ``D`` outputs, the same output for the same
    input, and the union over the blocks of "entry ``i`` depends on input ``j``"
    nilpotent: no entry depends on its own coordinate, and the dependences have
    no cycle (:func:`nfcourse.testing.is_triangular`), i.e. one order of the
    coordinates makes the Jacobian strictly triangular. An empty list: no problem.
    """
    probe = probe_points(net, dim)
    out, wrong = net_output(net, probe)
    if wrong:
        return [wrong]
    k = out.shape[-1]
    problems = []
    if k != params * dim:
        problems.append(
            f"it returns {k} values per point, not {params} * D = {params * dim} ({params} "
            "for each coordinate)"
        )
    if not is_deterministic(net, probe, out):
        return [*problems, CHANGES]
    if k % dim:
        return problems
    with torch.enable_grad():
        jac = autograd_jacobian(randomized(net), probe.detach())  # (N, k, D)
    # "the parameters of coordinate i depend on input j", over all output blocks and points
    pattern = (jac.abs() > 0).any(0).reshape(k // dim, dim, dim).any(0)  # (D, D)
    if pattern.diagonal().any():
        own = pattern.diagonal().nonzero()[:, 0].tolist()
        problems.append(
            f"the parameters of coordinate(s) {own} depend on that coordinate itself"
        )
    if not is_triangular(pattern[None].double(), tol=0.5):
        deps = "; ".join(f"{i} <- {pattern[i].nonzero()[:, 0].tolist()}" for i in range(dim))
        problems.append(
            "its dependences (coordinate <- inputs its parameters use: "
            f"{deps if dim <= 6 else '...'}) form a cycle, so no order of the coordinates "
            "makes them depend only on earlier ones"
        )
    return problems
