"""Coupling layers: NICE (additive) and RealNVP (affine).

A binary ``mask`` of shape ``(D,)`` splits the coordinates in two groups:
``a`` (mask 1) passes through unchanged and is the input of a network, the
*conditioner*; ``b`` (mask 0) is transformed elementwise, with parameters
computed by the network from ``a``::

    x_a = z_a,    x_b = g(z_b; net(z_a)).

Ordered as ``(a, b)``, the Jacobian is block lower-triangular,

    [[ I,              0           ],
     [ d x_b / d z_a,  diag(g'(z_b)) ]],

so ``ladj = sum log|g'(z_b)|``: the network is never differentiated and can be
any function at all. The inverse is *one pass* too: ``x_a = z_a`` is known, so
the network sees the same input as in the forward pass, and ``g`` is inverted
elementwise. Both directions cost one evaluation of the network. (The blog
post says coupling layers are hard to invert; they are not. The triangular Jacobian
is what makes their log-det cheap.)

One layer leaves ``a`` unchanged: stack layers with complementary masks
(``alternating_mask(D, 0)``, ``alternating_mask(D, 1)``, ...) so that every
coordinate gets transformed.

References:
    Dinh, Krueger, Bengio (2014), "NICE: Non-linear Independent Components
    Estimation", arXiv:1410.8516
    Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using Real NVP",
    arXiv:1605.08803
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..nets import mlp
from ..validate import as_index_tensor, check_int
from .base import Layer
from .elementwise import SCALE_BOUND, affine_forward, affine_inverse, check_scale_bound, read_affine


def check_mask(mask: object, where: str) -> Tensor:
    """Validate a coupling mask and return it as a bool tensor of shape ``(D,)``."""
    hint = "Build one with alternating_mask(D) or half_mask(D)."
    mask = as_index_tensor(mask, "mask", where, hint)
    if mask.dim() != 1:
        raise ValueError(
            f"{where}: `mask` must be a 1-D tensor of shape (D,), one 0/1 entry per "
            f"coordinate, got shape {tuple(mask.shape)}. {hint}"
        )
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError(
            f"{where}: `mask` must contain only 0 and 1 (1 = passes through and conditions, "
            f"0 = transformed), got values {sorted(set(mask.tolist()))}. {hint}"
        )
    mask = mask.bool()
    if mask.all() or not mask.any():
        why = "no 0: nothing is transformed" if mask.all() else "no 1: the network sees nothing"
        raise ValueError(
            f"{where}: `mask` must contain at least one 1 and at least one 0, got "
            f"{mask.int().tolist()} with {why}. A coupling layer needs D >= 2; {hint}"
        )
    return mask


def _check_mask_args(dim: object, parity: object, where: str) -> None:
    meaning = "a coupling layer splits the coordinates in two non-empty groups; for D = 1 use "
    check_int(dim, "dim", where, smallest=2, meaning=meaning + "an elementwise layer or MAF")
    if parity not in (0, 1) or isinstance(parity, bool):
        raise ValueError(f"{where}: `parity` must be 0 or 1, got {parity!r}.")


def alternating_mask(dim: int, parity: int = 0) -> Tensor:
    """Every other coordinate passes through: ``mask[i] = 1`` iff ``i % 2 == parity``.

    ``alternating_mask(5, 0) = [1, 0, 1, 0, 1]`` and ``alternating_mask(5, 1)``
    is its complement (a 1-D checkerboard). Alternate the parity from layer to
    layer so that every coordinate is transformed.
    """
    _check_mask_args(dim, parity, "alternating_mask")
    return torch.arange(dim) % 2 == parity


def half_mask(dim: int, parity: int = 0) -> Tensor:
    """The first ``D // 2`` coordinates pass through (``parity=1``: the complement).

    ``half_mask(5, 0) = [1, 1, 0, 0, 0]``, ``half_mask(5, 1) = [0, 0, 1, 1, 1]``.
    """
    _check_mask_args(dim, parity, "half_mask")
    return (torch.arange(dim) < dim // 2) != bool(parity)


class Coupling(Layer):
    """Template of a coupling layer: split by the mask, run the conditioner, merge.

    A subclass supplies only its elementwise map of the transformed part,
    ``_transform(z_b, h) -> (x_b, ladj)`` and its inverse
    ``_untransform(x_b, h) -> (z_b, ladj)``, where ``h = net(z_a)`` has shape
    ``(*, params * D_b)``; ``params`` (a class attribute, or an argument) is the
    number of network outputs per transformed coordinate.

    Args:
        mask: shape ``(D,)``, 0/1 or bool; 1 = passes through and conditions,
            0 = transformed. At least one of each.
        hidden: hidden layer sizes of the default network ``mlp(D_a, params * D_b, hidden)``.
        net: a module ``(*, D_a) -> (*, params * D_b)`` to use instead (``hidden``
            is then ignored).

    Shapes: ``z`` and ``x`` are ``(*, D)``; ``ladj`` is ``(*)``.
    """

    params: int = 1

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (64, 64),
        net: nn.Module | None = None,
        params: int | None = None,
    ):
        super().__init__()
        if params is not None:
            self.params = params
        mask = check_mask(mask, type(self).__name__)
        self.dim = mask.numel()
        a, b = mask.nonzero()[:, 0], (~mask).nonzero()[:, 0]
        self.register_buffer("mask", mask)
        self.register_buffer("_a", a, persistent=False)
        self.register_buffer("_b", b, persistent=False)
        # cat([t_a, t_b])[..., _merge] puts every coordinate back in its place
        self.register_buffer("_merge", torch.cat([a, b]).argsort(), persistent=False)
        self.net = mlp(len(a), self._out_features, hidden) if net is None else self._check_net(net)

    def _check_net(self, net: object) -> nn.Module:
        where, d_a = type(self).__name__, len(self._a)
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"{where}: `net` must be a torch.nn.Module built once, got "
                f"{type(net).__name__}. A function that builds a new network at each call "
                "is a different map every time: neither invertible nor trainable. "
                f"Build it once, e.g. net=nfcourse.nets.mlp({d_a}, {self._out_features})."
            )
        first = next((m for m in net.modules() if isinstance(m, nn.Linear)), None)
        if first is not None and first.in_features != d_a:
            raise ValueError(
                f"{where}: `net` must take the {d_a} coordinates with mask 1 as input, but its "
                f"first Linear layer has in_features={first.in_features}. Build it with "
                f"{d_a} inputs, e.g. nfcourse.nets.mlp({d_a}, {self._out_features})."
            )
        return net

    @property
    def _out_features(self) -> int:
        return self.params * len(self._b)

    def _conditioner(self, t_a: Tensor) -> Tensor:
        h = self.net(t_a)
        if h.shape != (*t_a.shape[:-1], self._out_features):
            raise ValueError(
                f"{type(self).__name__}: `net` must map (..., {len(self._a)}) to "
                f"(..., {self._out_features}) ({self.params} value(s) for each of the "
                f"{len(self._b)} transformed coordinates), got output shape {tuple(h.shape)} "
                f"from input shape {tuple(t_a.shape)}. Build it with {self._out_features} "
                f"outputs, e.g. nfcourse.nets.mlp({len(self._a)}, {self._out_features})."
            )
        return h

    def _split(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return t.index_select(-1, self._a), t.index_select(-1, self._b)

    def _merge_parts(self, t_a: Tensor, t_b: Tensor) -> Tensor:
        return torch.cat([t_a, t_b], dim=-1).index_select(-1, self._merge)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        z_a, z_b = self._split(z)
        x_b, ladj = self._transform(z_b, self._conditioner(z_a))
        return self._merge_parts(z_a, x_b), ladj

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        x_a, x_b = self._split(x)
        z_b, ladj = self._untransform(x_b, self._conditioner(x_a))
        return self._merge_parts(x_a, z_b), ladj

    def _transform(self, z_b: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def _untransform(self, x_b: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError


class AdditiveCoupling(Coupling):
    """NICE's additive coupling: ``x_a = z_a``, ``x_b = z_b + t(z_a)``.

    ``ladj = 0``: the Jacobian is unit triangular, so the layer preserves
    volume (a flow of these alone cannot change the density's overall spread;
    NICE ends with an elementwise scaling). Inverse in one pass:
    ``z_b = x_b - t(x_a)``. Each direction costs one evaluation of ``t``.
    ``net`` maps ``(*, D_a) -> (*, D_b)``; see :class:`Coupling` for the arguments.

    Reference: Dinh, Krueger, Bengio (2014), "NICE: Non-linear Independent
    Components Estimation", arXiv:1410.8516
    """

    params = 1

    def _transform(self, z_b: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
        return z_b + shift, z_b.new_zeros(z_b.shape[:-1])

    def _untransform(self, x_b: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
        return x_b - shift, x_b.new_zeros(x_b.shape[:-1])


class AffineCoupling(Coupling):
    """RealNVP's affine coupling: ``x_a = z_a`` and ``x_b`` an affine map of ``z_b`` set by ``z_a``.

    ``net`` maps ``(*, D_a) -> (*, 2 * D_b)``: a shift block ``q`` then a raw
    log-scale block, read in the normalizing direction as the RealNVP paper
    writes it (:func:`~nfcourse.layers.elementwise.read_affine`)::

        inverse:  z_b = x_b * exp(r(x_a)) + q(x_a),     ladj = sum_b r(x_a),
        forward:  x_b = (z_b - q(z_a)) * exp(-r(z_a)),  ladj = -sum_b r(z_a).

    That is the textbook ``x_b = z_b * exp(s) + t`` with ``s = -r`` and
    ``t = -q exp(-r)`` (:mod:`nfcourse.layers.elementwise` says why the library
    reads it this way). ``ladj`` is the log of the triangular Jacobian's
    diagonal; ``exp(r) > 0`` makes the layer invertible for any network, and
    each direction costs one evaluation of it.

    The log-scale is soft-clamped, ``r = B tanh(raw / B)`` with
    ``B = scale_bound`` (default 2: one layer scales by a factor in
    ``(0.14, 7.4)``). Near 0 the clamp is the identity; it only stops a single
    layer from exploding, which is what turns training into NaNs. It is
    symmetric, so the layer can expand as well as contract, and stacked layers
    reach any scale.

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using
    Real NVP", arXiv:1605.08803
    """

    params = 2

    def __init__(
        self,
        mask: Tensor,
        hidden: Sequence[int] = (64, 64),
        net: nn.Module | None = None,
        scale_bound: float = SCALE_BOUND,
    ):
        super().__init__(mask, hidden, net)
        self.scale_bound = check_scale_bound(scale_bound, "AffineCoupling")

    def _transform(self, z_b: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_inverse(z_b, *read_affine(h, self.scale_bound))

    def _untransform(self, x_b: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_forward(x_b, *read_affine(h, self.scale_bound))
