"""Spline layers: monotonic rational-quadratic splines (neural spline flows).

An affine layer moves each coordinate along a straight line; a spline bends
it. On the interval ``[-B, B]`` the map is a monotonic rational-quadratic
spline with ``K`` bins; outside it, the identity ("linear tails").

**Knots.** A conditioner gives ``3K - 1`` unconstrained numbers per
coordinate: ``K`` for the widths, ``K`` for the heights, ``K - 1`` for the
derivatives at the inner knots. Widths and heights go through a softmax, so
they are positive and sum to 1, then each gets a minimum share
(``w = m + (1 - mK) softmax(u)``, so no bin collapses), and their cumulative
sums, scaled to ``[-B, B]``, are the knots ``(x_k, y_k)``, ``k = 0..K``. The
derivatives are ``d = m + softplus(v + c)``, positive, with ``c`` chosen so
that ``v = 0`` gives ``d = 1``; the two end derivatives are fixed to 1, so the
spline meets the identity tails with the same slope (the map is C^1 and its
log-derivative has no jump at ``+-B``).

**One bin.** In bin ``k`` with width ``w = x_{k+1} - x_k``, height
``h = y_{k+1} - y_k``, slope ``s = h / w``, end derivatives ``d0, d1`` and
``xi = (x - x_k) / w`` in ``[0, 1]``::

    y = y_k + h (s xi^2 + d0 xi (1 - xi)) / (s + (d0 + d1 - 2 s) xi (1 - xi))

    dy/dx = s^2 (d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2)
            / (s + (d0 + d1 - 2 s) xi (1 - xi))^2,

positive whenever ``s, d0, d1 > 0``: the map is strictly increasing.

**Inverse.** Given ``y`` in bin ``k``, ``xi`` solves the quadratic
``a xi^2 + b xi + c = 0`` with ``dy = y - y_k``, ``e = d0 + d1 - 2 s``::

    a = h (s - d0) + dy e,    b = h d0 - dy e,    c = -s dy,

and its root in ``[0, 1]`` is taken in the form ``xi = 2c / (-b - sqrt(b^2 - 4ac))``.
The textbook ``(-b + sqrt(...)) / 2a`` divides by ``a``, which is 0 in a straight bin
and tiny in a nearly straight one, where it returns NaN or loses most of its digits;
this form has no such division. (Where ``b < 0`` it loses a few digits to
cancellation, which in float32 is below the bin's own conditioning.) Round-off can
make ``b^2 - 4ac`` slightly negative at a bin's edge; it is clamped at 0.

**Numerical care.** Points outside ``[-B, B]`` are clamped before the spline is
evaluated, and the identity is selected for them afterwards: the branch that
``torch.where`` does not take still runs, and a NaN there (from a point far
outside any bin) would poison the gradient. A point exactly on a knot belongs
to the bin on its right (``xi = 0``) and gets the same value from both sides.

References:
    Durkan, Bekasov, Murray, Papamakarios (2019), "Neural Spline Flows", arXiv:1906.04032
    Gregory and Delbourgo (1982), "Piecewise rational quadratic interpolation to
    monotonic data", IMA Journal of Numerical Analysis 2(2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validate import check_int, check_number
from .autoregressive import Autoregressive
from .coupling import Coupling

BINS = 8  # bins of a spline
BOUND = 5.0  # the spline acts on [-BOUND, BOUND], the identity outside
MIN_BIN = 1e-3  # the smallest share of the interval a bin can get (width and height)
MIN_DERIVATIVE = 1e-3  # the smallest derivative at a knot


def knots(raw: Tensor, bound: float = BOUND) -> tuple[Tensor, Tensor, Tensor]:
    """Knots and derivatives of a spline from ``3K - 1`` unconstrained numbers.

    ``raw`` of shape ``(*, 3K - 1)``: widths, heights, inner derivatives.
    Returns ``(xs, ys, ds)``, each ``(*, K + 1)``: the knots' positions, their
    values (both increasing from ``-bound`` to ``bound``) and the derivatives
    there (the two ends equal to 1).
    """
    bins = (raw.shape[-1] + 1) // 3
    u_w, u_h, v = raw[..., :bins], raw[..., bins : 2 * bins], raw[..., 2 * bins :]
    one = torch.ones_like(v[..., :1])
    shift = math.log(math.expm1(1 - MIN_DERIVATIVE))  # softplus(v + shift) = 1 - m at v = 0
    ds = torch.cat([one, MIN_DERIVATIVE + F.softplus(v + shift), one], dim=-1)
    return _cumulative(u_w, bound), _cumulative(u_h, bound), ds


def _cumulative(u: Tensor, bound: float) -> Tensor:
    """Bin sizes ``m + (1 - mK) softmax(u)`` summed into ``K + 1`` knots on ``[-bound, bound]``."""
    sizes = MIN_BIN + (1 - MIN_BIN * u.shape[-1]) * torch.softmax(u, dim=-1)
    inner = torch.cumsum(sizes, dim=-1)[..., :-1]  # the last sum is 1 up to round-off: use 1
    zero, one = torch.zeros_like(u[..., :1]), torch.ones_like(u[..., :1])
    return bound * (2 * torch.cat([zero, inner, one], dim=-1) - 1)


def bin_forward(
    xi: Tensor, y0: Tensor, h: Tensor, s: Tensor, d0: Tensor, d1: Tensor
) -> tuple[Tensor, Tensor]:
    """The spline within one bin at ``xi`` in ``[0, 1]``: ``y`` and ``log dy/dx``.

    ``y0``: the bin's lower value; ``h``: its height; ``s = h / w``: its slope;
    ``d0, d1``: the derivatives at its ends (all broadcast against ``xi``).
    """
    t = xi * (1 - xi)
    den = s + (d0 + d1 - 2 * s) * t
    y = y0 + h * (s * xi.square() + d0 * t) / den
    log_dy = 2 * s.log() + (d1 * xi.square() + 2 * s * t + d0 * (1 - xi).square()).log()
    return y, log_dy - 2 * den.log()


def bin_inverse(
    y: Tensor, y0: Tensor, h: Tensor, s: Tensor, d0: Tensor, d1: Tensor
) -> Tensor:
    """The ``xi`` in ``[0, 1]`` where ``bin_forward(xi, ...)`` gives ``y``: the stable root."""
    dy = y - y0
    e = d0 + d1 - 2 * s
    a = h * (s - d0) + dy * e
    b = h * d0 - dy * e
    c = -s * dy
    disc = (b.square() - 4 * a * c).clamp_min(0)  # round-off at a bin's edge
    return (2 * c / (-b - disc.sqrt())).clamp(0, 1)


def _bin(t: Tensor, edges: Tensor) -> Tensor:
    """The bin of each ``t`` among the ``K + 1`` increasing ``edges``: an index in ``0..K-1``."""
    return (t[..., None] >= edges[..., 1:-1]).sum(-1, keepdim=True)


def spline(
    x: Tensor, raw: Tensor, bound: float = BOUND, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """The monotonic rational-quadratic spline (or its inverse), elementwise, identity tails.

    ``x`` of shape ``(*)``, ``raw`` of shape ``(*, 3K - 1)`` (see :func:`knots`).
    Returns ``(y, log|dy/dx|)``, each of shape ``(*)``: per coordinate, not summed.
    """
    inside = (x >= -bound) & (x <= bound)
    t = x.clamp(-bound, bound)  # the spline branch never sees a point outside: no NaN
    xs, ys, ds = knots(raw, bound)
    k = _bin(t, ys if inverse else xs)

    def at(v: Tensor, j: Tensor) -> Tensor:
        return v.gather(-1, j)[..., 0]

    x0, y0, d0, d1 = at(xs, k), at(ys, k), at(ds, k), at(ds, k + 1)
    w, h = at(xs, k + 1) - x0, at(ys, k + 1) - y0
    s = h / w
    if inverse:
        xi = bin_inverse(t, y0, h, s, d0, d1)
        out, log_d = x0 + xi * w, -bin_forward(xi, y0, h, s, d0, d1)[1]
    else:
        out, log_d = bin_forward((t - x0) / w, y0, h, s, d0, d1)
    return torch.where(inside, out, x), torch.where(inside, log_d, torch.zeros_like(log_d))


def _check_spline(bins: object, bound: object, where: str) -> tuple[int, float]:
    bins = check_int(bins, "bins", where, smallest=2, meaning="the number of spline bins")
    return bins, check_number(bound, "bound", where, positive=True, example=str(BOUND))


class _Splines:
    """What spline layers share: one spline per coordinate, read as the normalizing map.

    ``_raw(t, h)`` arranges a network output ``h`` as ``(*, D_t, 3K - 1)`` for the
    points ``t``; the network's spline maps data to noise (density in one pass), and
    the layer's generative direction is its inverse.
    """

    bins: int
    bound: float

    def _raw(self, t: Tensor, h: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _spline(self, t: Tensor, h: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        y, log_d = spline(t, self._raw(t, h), self.bound, inverse)
        return y, log_d.sum(-1)

    def _transform(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, h, inverse=True)

    def _untransform(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(x, h, inverse=False)


class SplineCoupling(_Splines, Coupling):
    """A coupling layer whose transformed part moves along a spline set by the other part.

    ``x_a = z_a`` passes through and feeds the network; each transformed
    coordinate gets its own spline, with ``3K - 1`` parameters from
    ``net(x_a)``. As for :class:`~nfcourse.layers.coupling.AffineCoupling`, the
    network's spline is the normalizing map: ``inverse`` (density) is
    ``z_b = spline(x_b; net(x_a))``, ``forward`` (sampling) its inverse; both
    one pass, ``ladj`` the sum of the log-derivatives.

    Args:
        mask, hidden, net: as for :class:`~nfcourse.layers.coupling.Coupling`;
            ``net`` maps ``(*, D_a) -> (*, (3K - 1) D_b)``.
        bins: the number of bins K (at least 2).
        bound: the spline acts on ``[-bound, bound]``, the identity outside.

    Reference: Durkan, Bekasov, Murray, Papamakarios (2019), "Neural Spline
    Flows", arXiv:1906.04032
    """

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (64, 64),
        net: nn.Module | None = None,
        bins: int = BINS,
        bound: float = BOUND,
    ):
        self.bins, self.bound = _check_spline(bins, bound, "SplineCoupling")
        super().__init__(mask, hidden, net, params=3 * self.bins - 1)

    def _raw(self, t: Tensor, h: Tensor) -> Tensor:
        return h.unflatten(-1, (t.shape[-1], self.params))  # the net's own layout


class SplineAutoregressive(_Splines, Autoregressive):
    """An autoregressive layer whose coordinates move along splines: MAF with splines.

    Coordinate ``i`` gets a spline whose ``3K - 1`` parameters come from the
    coordinates before it (one :class:`~nfcourse.nets.MADE`). The network's
    spline is the normalizing map, ``z_i = spline(x_i; made(x)_i)``: the
    density in one pass, sampling in ``D`` (see
    :class:`~nfcourse.layers.autoregressive.Autoregressive`).

    Args:
        dim, hidden, order, net: as for :class:`~nfcourse.layers.autoregressive.Autoregressive`;
            ``net`` maps ``(*, D) -> (*, (3K - 1) D)`` in ``3K - 1`` blocks of ``D``.
        bins: the number of bins K (at least 2).
        bound: the spline acts on ``[-bound, bound]``, the identity outside.

    Reference: Durkan, Bekasov, Murray, Papamakarios (2019), "Neural Spline
    Flows", arXiv:1906.04032
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Tensor | None = None,
        net: nn.Module | None = None,
        bins: int = BINS,
        bound: float = BOUND,
    ):
        self.bins, self.bound = _check_spline(bins, bound, "SplineAutoregressive")
        self.params = 3 * self.bins - 1
        super().__init__(dim, hidden, order, net)

    def _raw(self, t: Tensor, h: Tensor) -> Tensor:
        # MADE gives params blocks of D; entry i of each block belongs to coordinate i
        return h.unflatten(-1, (self.params, t.shape[-1])).transpose(-1, -2)
