"""Flows: a base distribution pushed through a stack of layers, and ready-made flows.

With ``x = f(z)``, ``z ~ p_Z`` and ``f = f_K o ... o f_1``, the change of
variables formula gives

    log p_X(x) = log p_Z(z) + sum_k log|det d f_k^{-1} / d z_k|,   z = f^{-1}(x)
               = log p_Z(z) - sum_k log|det d f_k / d z_{k-1}|.

``log_prob`` uses the first line (the layers' inverses: density estimation);
``sample_and_log_prob`` uses the second (only forward passes: variational
inference, where an inverse may be expensive or unavailable).

A flow with conditional layers (:mod:`nfcourse.layers.conditional`) is a
conditional density ``p(x | c)``: ``log_prob(x, context=c)``,
``sample(n, context=c)``. Its base stays ``p_Z``; only the layers read ``c``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Generator, Tensor, nn

from .layers import (
    IAF,
    MAF,
    AdditiveCoupling,
    Affine,
    AffineCoupling,
    Compose,
    ConditionalAffineCoupling,
    ConditionalMAF,
    LULinear,
    Planar,
    Radial,
    Reverse,
    alternating_mask,
)
from .layers.conditional import check_context
from .layers.spline import BINS, BOUND, SplineAutoregressive
from .validate import (
    allocation,
    as_model_dtype,
    check_count,
    check_dim,
    check_finite,
    check_generator,
    check_int,
    check_points,
)


class StandardNormal(nn.Module):
    """The standard normal ``N(0, I_D)``, as a module so that it follows ``.to(device)``.

    ``log p(z) = -||z||^2 / 2 - (D / 2) log(2 pi)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim, "StandardNormal")
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # device and dtype

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * z.pow(2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def rsample(self, shape: Sequence[int] = (), generator: Generator | None = None) -> Tensor:
        ref = self._ref
        return torch.randn(
            (*shape, self.dim), dtype=ref.dtype, device=ref.device, generator=generator
        )

    def sample(self, shape: Sequence[int] = (), generator: Generator | None = None) -> Tensor:
        with torch.no_grad():
            return self.rsample(shape, generator)


def _check_base(base: object) -> int | None:
    """A base distribution: ``log_prob`` and ``rsample``, one value per D-dimensional point.

    Returns its number of coordinates D where it says (``dim`` or ``event_shape``).
    """
    if not (callable(getattr(base, "log_prob", None)) and callable(getattr(base, "rsample", None))):
        raise TypeError(
            f"Flow: `base` must be a distribution with log_prob and rsample (e.g. "
            f"torch.distributions.MultivariateNormal, or None for a standard normal), got "
            f"{type(base).__name__}."
        )
    if isinstance(base, torch.distributions.Distribution):
        batch, event = tuple(base.batch_shape), tuple(base.event_shape)
        if event == () and len(batch) == 1:
            raise ValueError(
                f"Flow: `base` has batch shape {batch} and event shape (): its log_prob gives "
                f"one value per coordinate, not one per point (it is {batch[0]} independent "
                f"1-D distributions, not one distribution of {batch[0]}-D points). Wrap it: "
                "torch.distributions.Independent(base, 1)."
            )
        if batch != () or len(event) != 1:
            raise ValueError(
                f"Flow: `base` must be one distribution of points with D coordinates "
                f"(batch shape (), event shape (D,)), got batch shape {batch} and event "
                f"shape {event}."
            )
        return event[0]
    return getattr(base, "dim", None)


class Flow(nn.Module):
    """A normalizing flow: a base distribution and layers, ``x = f_K(...f_1(z))``.

    Args:
        layers: the layers in generative order (``f_1`` first), or one layer.
        base: ``None`` for a standard normal in ``dim`` dimensions, or any object
            with ``log_prob`` and ``rsample`` whose events have shape ``(D,)``
            (e.g. a ``torch.distributions.MultivariateNormal``).
        dim: the number of coordinates D; inferred from the layers when they know it.

    Shapes: ``log_prob`` takes ``(*, D)`` and returns ``(*)``; ``sample(n)``
    returns ``(n, D)``.

    Conditional flows (``flow.conditional``: some layer reads a context of
    ``flow.context_dim = C`` values) take ``context=`` in ``log_prob``, ``nll``,
    ``sample``, ``rsample``, ``sample_and_log_prob`` and ``stages``: shape
    ``(C,)`` for one context, or ``(*, C)``, broadcast against the points. With a
    context of shape ``(M, C)``, ``sample(n, context=c)`` returns ``(n, M, D)``:
    ``n`` samples for each of the ``M`` contexts.
    """

    def __init__(self, layers, base=None, dim: int | None = None):
        super().__init__()
        self.transform = layers if isinstance(layers, Compose) else Compose(
            *(layers if isinstance(layers, (list, tuple)) else [layers])
        )
        base_dim = None if base is None else _check_base(base)
        dim = next((d for d in (dim, self.transform.dim, base_dim) if d is not None), None)
        if dim is None:
            raise ValueError(
                "Flow: cannot tell the number of coordinates D from these layers; "
                "pass dim=D."
            )
        self.dim = check_dim(dim, "Flow")
        for what, d in (("layers", self.transform.dim), ("base", base_dim)):
            if d not in (None, self.dim):
                raise ValueError(
                    f"Flow: the {what} act{'s' if what == 'base' else ''} on D = {d} coordinates "
                    f"but the flow has D = {self.dim}. Build every part for the same D, e.g. "
                    f"a base MultivariateNormal(torch.zeros({self.dim}), torch.eye({self.dim}))."
                )
        self.base = StandardNormal(self.dim) if base is None else base
        self.conditional = self.transform.conditional
        self.context_dim = self.transform.context_dim

    def _context(self, context: object, where: str) -> Tensor | None:
        """The context for this flow: required by a conditional flow, refused by any other."""
        if not self.conditional:
            if context is not None:
                raise ValueError(
                    f"{where}: this flow is not conditional (none of its layers reads a "
                    f"context), but got `context` ({type(context).__name__}"
                    + (f" of shape {tuple(context.shape)}" if isinstance(context, Tensor) else "")
                    + "). Drop context=..., or build a conditional flow, e.g. "
                    f"nf.conditional_realnvp({self.dim}, context_dim=C)."
                )
            return None
        c = self.context_dim
        if context is None:
            raise ValueError(
                f"{where}: this flow is conditional: its layers read a context of C = {c} "
                f"value(s), and `context` is missing. Pass context=c, a tensor of shape ({c},) "
                f"for one context or (N, {c}) for one per point."
            )
        return as_model_dtype(check_context(context, c, where), self, "context", where)

    def _base_sample(self, shape: tuple[int, ...], generator: Generator | None) -> Tensor:
        if generator is None:
            return self.base.rsample(shape)
        if isinstance(self.base, StandardNormal):
            return self.base.rsample(shape, generator=generator)
        # torch.distributions take no generator: draw a seed from it and sample under
        # that seed, without disturbing the global random state
        seed = int(torch.randint(2**62, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.base.rsample(shape)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``log p(x)`` (``log p(x | context)``) by the change of variables formula through
        the layers' inverses.

        ``x`` of shape ``(*, D)`` in any floating dtype: it is converted to the flow's.
        """
        where = "Flow.log_prob"
        x = check_finite(check_points(x, self.dim, "x", where), "x", where)
        context = self._context(context, where)
        if context is not None:
            context = check_finite(context, "context", where)
        z, ladj = self.transform.inverse(as_model_dtype(x, self, "x", where), context)
        return self.base.log_prob(z) + ladj

    def nll(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood (nats per sample) of data ``x`` (given ``context``)."""
        return -self.log_prob(x, context).mean()

    def rsample(
        self, n=1, generator: Generator | None = None, *, context: Tensor | None = None
    ) -> Tensor:
        """Samples with gradients flowing to the parameters (reparameterization)."""
        return self.sample_and_log_prob(n, generator, context=context)[0]

    def sample(
        self, n=1, generator: Generator | None = None, *, context: Tensor | None = None
    ) -> Tensor:
        """``n`` samples, shape ``(n, D)`` (``(n, *context.shape[:-1], D)``), without gradients."""
        with torch.no_grad():
            return self.rsample(n, generator, context=context)

    def _shape(self, n: object, context: Tensor | None, where: str) -> tuple[int, ...]:
        shape = check_count(n, where)
        return shape if context is None else (*shape, *context.shape[:-1])

    def sample_and_log_prob(
        self, n=1, generator: Generator | None = None, *, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Samples and their log-densities from forward passes only (no inverse needed).

        ``log p(x) = log p_Z(z) - ladj_forward(z)``: the cheap path of variational inference.
        """
        where = "Flow.sample"
        context = self._context(context, where)
        shape = self._shape(n, context, where)
        generator = check_generator(generator, where)
        with allocation(where, math.prod(shape)):
            z = self._base_sample(shape, generator)
            x, ladj = self.transform(z, context)
            return x, self.base.log_prob(z) - ladj

    def stages(
        self, n=1000, generator: Generator | None = None, *, context: Tensor | None = None
    ) -> list[Tensor]:
        """Base samples and the points after every layer: ``[z_0, z_1, ..., z_K]``."""
        where = "Flow.stages"
        context = self._context(context, where)
        shape = self._shape(n, context, where)
        generator = check_generator(generator, where)
        with torch.no_grad(), allocation(where, math.prod(shape)):
            return self.transform.stages(self._base_sample(shape, generator), context)


# --- ready-made flows ---------------------------------------------------------------------
# Each builder returns a Flow with a standard normal base. Coupling and autoregressive
# stacks change which coordinates condition which from one layer to the next
# (alternating masks, reversed orders), since a single layer leaves some coordinates,
# or some dependencies, untouched.


def _check_layers(layers: object, where: str) -> int:
    return check_int(layers, "layers", where, meaning="the depth K")


def linear_flow(dim: int) -> Flow:
    """``x = W z + b`` with a learnable invertible ``W``: exactly the Gaussians ``N(b, W W^T)``."""
    return Flow([LULinear(check_dim(dim, "linear_flow"))])


def planar_flow(dim: int, layers: int = 8) -> Flow:
    """K planar layers (Rezende and Mohamed 2015)."""
    dim, k = check_dim(dim, "planar_flow"), _check_layers(layers, "planar_flow")
    return Flow([Planar(dim) for _ in range(k)])


def radial_flow(dim: int, layers: int = 8) -> Flow:
    """K radial layers (Rezende and Mohamed 2015)."""
    dim, k = check_dim(dim, "radial_flow"), _check_layers(layers, "radial_flow")
    return Flow([Radial(dim) for _ in range(k)])


def nice(dim: int, layers: int = 4, hidden: Sequence[int] = (64, 64)) -> Flow:
    """NICE: additive couplings with alternating masks, then a learnable elementwise scale.

    The couplings preserve volume (ladj = 0), so the final :class:`Affine` is
    what lets the flow change the overall spread (Dinh et al. 2014, section 3.3).
    """
    dim, k = check_dim(dim, "nice"), _check_layers(layers, "nice")
    couplings = [AdditiveCoupling(alternating_mask(dim, i % 2), hidden) for i in range(k)]
    return Flow([*couplings, Affine(dim)])


def realnvp(dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)) -> Flow:
    """RealNVP: ``layers`` affine couplings whose masks alternate, so every coordinate gets
    transformed.

    ``layers`` counts couplings, as the RealNVP paper does. A coupling moves half of the
    coordinates and a MAF layer all of them, so beyond two dimensions a RealNVP needs about
    twice the layers of a MAF to move each coordinate as often (the benchmark page's
    "Beyond two dimensions" measures it).
    """
    dim, k = check_dim(dim, "realnvp"), _check_layers(layers, "realnvp")
    return Flow([AffineCoupling(alternating_mask(dim, i % 2), hidden) for i in range(k)])


def _autoregressive(
    layer, dim: int, layers: int, hidden: Sequence[int], where: str, **options
) -> Flow:
    dim, k = check_dim(dim, where), _check_layers(layers, where)
    stack = []
    for i in range(k):
        if i > 0:
            stack.append(Reverse(dim))  # the next layer conditions in the other order
        stack.append(layer(dim, hidden, **options))
    return Flow(stack)


def maf(dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)) -> Flow:
    """MAF: affine autoregressive layers, order reversed between layers.

    Density in one pass per layer; sampling in D passes per layer.
    """
    return _autoregressive(MAF, dim, layers, hidden, "maf")


def iaf(dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)) -> Flow:
    """IAF: the inverse of MAF. Sampling (with log-densities) in one pass per layer;
    the density of external data in D passes per layer."""
    return _autoregressive(IAF, dim, layers, hidden, "iaf")


def nsf(
    dim: int,
    layers: int = 5,
    hidden: Sequence[int] = (64, 64),
    bins: int = BINS,
    bound: float = BOUND,
) -> Flow:
    """Neural spline flow: autoregressive rational-quadratic spline layers, order reversed
    between layers (Durkan et al. 2019).

    Each coordinate moves along a monotonic spline of ``bins`` bins on
    ``[-bound, bound]`` (the identity outside), its knots set by the coordinates
    before it. Density in one pass per layer; sampling in D passes per layer.
    """
    return _autoregressive(SplineAutoregressive, dim, layers, hidden, "nsf", bins=bins, bound=bound)


# --- conditional flows: p(x | c) ----------------------------------------------------------


def conditional_realnvp(
    dim: int, context_dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)
) -> Flow:
    """A conditional RealNVP: affine couplings with alternating masks whose networks read
    ``(x_a, c)`` (:class:`~nfcourse.layers.conditional.ConditionalAffineCoupling`); ``D >= 2``.

    ``flow.log_prob(x, context=c)`` is ``log p(x | c)``; ``flow.sample(n, context=c)``.
    """
    where = "conditional_realnvp"
    dim, k = check_dim(dim, where), _check_layers(layers, where)
    c = check_int(context_dim, "context_dim", where, meaning="the number C of context values")
    return Flow(
        [ConditionalAffineCoupling(alternating_mask(dim, i % 2), c, hidden) for i in range(k)]
    )


def conditional_maf(
    dim: int, context_dim: int, layers: int = 5, hidden: Sequence[int] = (64, 64)
) -> Flow:
    """A conditional MAF: :class:`~nfcourse.layers.conditional.ConditionalMAF` layers, order
    reversed between layers; any ``D >= 1``. Density in one pass per layer, sampling in ``D``.
    """
    c = check_int(
        context_dim, "context_dim", "conditional_maf", meaning="the number C of context values"
    )
    return _autoregressive(
        lambda d, hidden: ConditionalMAF(d, c, hidden), dim, layers, hidden, "conditional_maf"
    )
