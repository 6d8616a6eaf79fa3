"""The blog post's ``torch.distributions.transforms`` examples, made real.

The blog post calls ``T.PlanarTransform``, ``T.RadialTransform``, ``T.CouplingTransform``,
``T.AutoregressiveTransform`` and ``T.AffineTransform(..., scale_tril=...)`` with
``import torch.distributions.transforms as T``. None of these exist in PyTorch (its
``AffineTransform`` is elementwise and takes no ``scale_tril``: errata 1). This module
provides them as real :class:`torch.distributions.Transform` s, so that with
``import nfcourse.transforms as T`` the blog post's examples run inside
:class:`torch.distributions.TransformedDistribution`, and its bad arguments get an error
that says why and what to write instead (:mod:`nfcourse.transforms.diagnose`).

One adapter, :class:`LayerTransform`, turns any course layer into a ``Transform``; each
named transform checks the blog post's arguments and wraps the layer, or the functional
form of a layer (:class:`MapLayer`), that computes its map. The math is in
:mod:`nfcourse.layers`.

Every transform acts on vectors: ``domain = codomain = independent(real, 1)``, so a base
such as ``Normal(torch.zeros(2), torch.ones(2))`` (batch shape 2) is reinterpreted as one
2-D distribution. Torch's names for the two sides are ``x`` (input) and ``y`` (output);
here, as in the rest of the course, the input is the base point ``z`` and the output the
data point ``x``:

- ``t(z)`` (``_call``) is the generative direction, used by ``sample``;
- ``t.inv(x)`` (``_inverse``) is the normalizing direction, used by ``log_prob``;
- ``t.log_abs_det_jacobian(z, x)`` is ``log|det dx/dz|``, shape ``(*)`` for points ``(*, D)``.

Parameters are the tensors (or the network) you pass: the transforms are not modules, so to
train one, optimize your tensors or ``transform_net.parameters()``. A ``log_prob`` that
depends on trainable parameters carries gradients, so plot it under ``torch.no_grad()`` (or
``.detach()`` it): the blog post's ``plot_dist`` passes it straight to matplotlib, which
refuses tensors that require grad.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ..layers import MAF, AffineCoupling
from ..layers.elementwise import SCALE_BOUND
from ..layers.planar import constrain_u, planar_forward, planar_inverse
from ..layers.radial import radial_forward, radial_inverse
from ..nets import MADE
from ..validate import check_points
from . import diagnose
from .diagnose import check_autoregressive

__all__ = [
    "MADE",  # re-exported so that the blog post's namespace (T) can build an autoregressive net
    "AffineTransform",
    "AutoregressiveTransform",
    "CouplingTransform",
    "LayerTransform",
    "MapLayer",
    "PlanarTransform",
    "RadialTransform",
    "check_autoregressive",
]


# --- the adapter ---------------------------------------------------------------------------------


class MapLayer:
    """A layer made of two functions and the tensors they read.

    ``MapLayer(forward, inverse, *args, dim=D)`` computes ``forward(z, *args) -> (x, ladj)``
    and ``inverse(x, *args) -> (z, ladj)``: the course's functional forms
    (:func:`~nfcourse.layers.planar.planar_forward`, ...) with the tensors given to a
    transform. ``parameters()`` are those tensors, as a module's would be.
    """

    def __init__(self, forward: Callable, inverse: Callable, *args: object, dim: int | None):
        self._forward, self._inverse, self.args, self.dim = forward, inverse, args, dim

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(z, *self.args)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse(x, *self.args)

    def parameters(self) -> list[Tensor]:
        return [a for a in self.args if isinstance(a, Tensor)]


class LayerTransform(Transform):
    """A course layer as a :class:`torch.distributions.Transform` of vectors ``(*, D)``.

    ``t(z) = layer(z)[0]``, ``t.inv(x) = layer.inverse(x)[0]`` and
    ``t.log_abs_det_jacobian(z, x) = log|det dx/dz|``, the layer's ``ladj``. So in
    ``TransformedDistribution(base, [t])``,

        log p(x) = log p_base(z) - log|det dx/dz|,    z = layer.inverse(x)[0],

    and ``rsample`` is ``layer(base.rsample())[0]``. Nothing is cached: each call
    evaluates the layer (torch's ``cache_size=1`` would hand back a stale result for
    the same data tensor after an optimizer step), so ``log_prob`` costs two passes.
    The ``ladj`` comes from ``z`` by the layer's ``forward``, or with ``ladj_from="x"``
    from ``x`` by its ``inverse``: for a layer whose forward is the costly direction
    (MAF: ``D`` passes).

    Args:
        layer: a course layer (:mod:`nfcourse.layers`: ``forward(z) -> (x, ladj)``,
            ``inverse(x) -> (z, ladj)``) or a :class:`MapLayer`. ``t.dim`` is its
            ``dim`` (``None``: any ``D``).
        ladj_from: ``"z"`` (default) or ``"x"``, see above.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, layer: nn.Module | MapLayer, ladj_from: str = "z"):
        super().__init__()
        where = type(self).__name__
        if not all(hasattr(layer, a) for a in ("__call__", "inverse", "parameters")):
            raise TypeError(
                f"{where}: `layer` must be a course layer, with forward(z) -> (x, ladj), "
                f"inverse(x) -> (z, ladj) and parameters(), got {type(layer).__name__}. "
                "E.g. LayerTransform(nfcourse.MAF(2))."
            )
        if ladj_from not in ("z", "x"):
            raise ValueError(f"{where}: `ladj_from` must be 'z' or 'x', got {ladj_from!r}.")
        self.layer, self.ladj_from = layer, ladj_from
        self.dim: int | None = getattr(layer, "dim", None)

    def _points(self, t: Tensor, name: str) -> Tensor:
        where = type(self).__name__
        t = check_points(t, None, name, where)
        if self.dim is not None and t.shape[-1] != self.dim:
            raise ValueError(
                f"{where}: `{name}` must have shape (..., {self.dim}) (coordinates in the last "
                f"dimension), got shape {tuple(t.shape)}: this transform acts on "
                f"D = {self.dim} coordinates."
            )
        return t

    def _call(self, z: Tensor) -> Tensor:
        return self.layer(self._points(z, "z"))[0]

    def _inverse(self, x: Tensor) -> Tensor:
        return self.layer.inverse(self._points(x, "x"))[0]

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        if self.ladj_from == "x":
            return -self.layer.inverse(self._points(x, "x"))[1]
        return self.layer(self._points(z, "z"))[1]

    def __repr__(self) -> str:
        layer = f"{type(self.layer).__name__}, " if type(self) is LayerTransform else ""
        return f"{type(self).__name__}({layer}D={self.dim if self.dim is not None else 'any'})"


# --- affine --------------------------------------------------------------------------------------


def _log_abs_det(A: Tensor, kind: str, t: Tensor) -> Tensor:
    """``log|det A|`` for each point of ``t`` ``(*, D)``: shape ``(*)``."""
    if kind == "scale":
        return A.abs().log().expand(t.shape).sum(-1)
    if kind == "scale_tril":
        return A.diagonal().abs().log().sum().expand(t.shape[:-1])
    return torch.linalg.slogdet(A).logabsdet.expand(t.shape[:-1])


def _affine_forward(z: Tensor, loc: Tensor, A: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """``x = loc + A z`` (``A = diag(scale)`` for ``kind="scale"``); ``ladj = log|det A|``."""
    return loc + (A * z if kind == "scale" else z @ A.mT), _log_abs_det(A, kind, z)


def _affine_inverse(x: Tensor, loc: Tensor, A: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """``z = A^{-1} (x - loc)``, a triangular solve for ``scale_tril``; ``ladj = -log|det A|``."""
    r = x - loc
    if kind == "scale":
        return r / A, -_log_abs_det(A, kind, x)
    flat = r.reshape(-1, r.shape[-1])  # (N, D): solve z A^T = r for all rows at once
    if kind == "scale_tril":
        z = torch.linalg.solve_triangular(A.mT, flat, upper=True, left=False)
    else:
        z = torch.linalg.solve(A.mT, flat, left=False)
    return z.reshape(r.shape), -_log_abs_det(A, kind, x)


class AffineTransform(LayerTransform):
    """``x = loc + A z`` for an invertible ``A``, given in one of three forms.

    - ``scale`` (shape ``()`` or ``(D,)``, no zero entry): ``A = diag(scale)``,
      elementwise as in torch's ``AffineTransform``; ``ladj = sum_i log|scale_i|``.
    - ``scale_tril`` (``(D, D)``, lower-triangular, nonzero diagonal):
      ``ladj = sum_i log|L_ii|``, the log-det of a triangular matrix. This is
      how ``scale_tril`` is meant everywhere in torch (a Cholesky factor, as in
      ``MultivariateNormal``): ``N(loc, L L^T)`` for a standard normal base.
    - ``matrix`` (``(D, D)``, any invertible matrix): ``ladj = log|det A|`` by
      ``slogdet``; the inverse is a linear solve (an LU factorization per call).

    ``loc`` has shape ``()`` or ``(D,)``. Inverse: ``z = A^{-1} (x - loc)``
    (by a triangular solve for ``scale_tril``). Tensors with ``requires_grad``
    receive gradients. A singular ``A`` (zero determinant) is refused: the map
    would flatten space and have no inverse, and there is no density (errata 4).

    Fixes errata 1 (torch's ``AffineTransform`` has no ``scale_tril``) and 2:
    the blog post's ``scale_tril=[[2., -2.], [2., 2.]]`` is not lower-triangular (it
    is a rotation by 45 degrees times ``2 sqrt(2)``); such a matrix is refused with
    a message that gives the ``matrix=`` call, or the Cholesky factor for the
    Gaussian it was meant to give.
    """

    def __init__(
        self,
        loc: Tensor,
        scale: Tensor | None = None,
        scale_tril: Tensor | None = None,
        matrix: Tensor | None = None,
    ):
        self.kind, self.loc, self.A, dim = diagnose.affine_args(loc, scale, scale_tril, matrix)
        layer = MapLayer(_affine_forward, _affine_inverse, self.loc, self.A, self.kind, dim=dim)
        super().__init__(layer)


# --- planar and radial ---------------------------------------------------------------------------


def _constrained(planar_map: Callable) -> Callable:
    """``planar_map(t, u, w, b)`` with ``u_hat = constrain_u(u, w)`` in place of ``u``."""
    return lambda t, u, w, b: planar_map(t, constrain_u(u, w), w, b)


class PlanarTransform(LayerTransform):
    """Planar layer ``x = z + u tanh(w.z + b)`` (see :mod:`nfcourse.layers.planar`).

    ``ladj = log|1 + (w.u) tanh'(w.z + b)|`` (matrix determinant lemma), by
    :func:`~nfcourse.layers.planar.planar_forward`. Invertible iff ``w.u > -1``; the
    inverse has no closed form and is found numerically (a 1-D root find per
    point, :func:`~nfcourse.layers.planar.planar_inverse`), so ``log_prob`` works on
    any points, e.g. a plotting grid.

    Args:
        u, w: shape ``(D,)``; ``w`` is the normal of the hyperplane ``w.z + b = 0``.
        b: shape ``()`` or ``(1,)``.
        constrain: ``False`` (default): use ``u`` as given and refuse
            ``w.u <= -1``. ``True``: use ``u_hat = constrain_u(u, w)``
            (Rezende and Mohamed's reparameterization: it replaces the part of
            ``u`` along ``w`` so that ``w.u_hat > -1`` for any ``u``; it changes
            ``u`` even where the constraint already holds). Use it to train
            ``u`` freely.

    Fixes errata 5: the blog post's ``w = [0.]`` has the wrong shape (``(1,)`` for
    ``D = 2``), and ``w = 0`` would make ``tanh(w.z + b) = tanh(b)`` a constant,
    so the layer a mere translation (the identity for ``b = 0``); both are
    refused or explained with a corrected call.

    Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
    Flows", arXiv:1505.05770.
    """

    def __init__(self, u: Tensor, w: Tensor, b: Tensor, constrain: bool = False):
        self.u, self.w, self.b = diagnose.planar_args(u, w, b, constrain)
        self.constrain = bool(constrain)
        maps = [planar_forward, planar_inverse]
        if self.constrain:
            maps = [_constrained(m) for m in maps]
        super().__init__(MapLayer(*maps, self.u, self.w, self.b, dim=len(self.u)))

    @property
    def u_hat(self) -> Tensor:
        """The direction actually used: ``u``, or ``constrain_u(u, w)`` if ``constrain``."""
        return constrain_u(self.u, self.w) if self.constrain else self.u


class RadialTransform(LayerTransform):
    """Radial layer ``x = z + beta h(r) (z - z0)``, ``h = 1 / (alpha + r)``, ``r = ||z - z0||``.

    ``ladj = (D - 1) log(1 + beta h) + log(1 + beta h - beta r h^2)``; inverse in
    closed form (a quadratic in ``r``); see :mod:`nfcourse.layers.radial`, whose
    :func:`~nfcourse.layers.radial.radial_forward` and
    :func:`~nfcourse.layers.radial.radial_inverse` this composes.

    Args:
        z0: the centre, shape ``(D,)``.
        alpha: shape ``()`` or ``(1,)``, must be ``> 0``.
        beta: shape ``()`` or ``(1,)``, must be ``>= -alpha`` (``beta > 0`` pushes
            points away from ``z0``, ``beta < 0`` pulls them in). For trainable
            unconstrained parameters use ``nfcourse.layers.radial.constrain_alpha_beta``.

    Fixes the blog post's ``alpha = 0`` (which Rezende and Mohamed exclude): then
    ``h = 1/r`` and ``||x - z0|| = ||z - z0|| + beta``, so the map is singular at
    ``z0`` and no point lands within ``beta`` of ``z0``: a hole with no preimage
    (the blog post's "hole in the center" is this artefact, centred at ``z0``;
    errata 9).

    Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
    Flows", arXiv:1505.05770.
    """

    def __init__(self, z0: Tensor, alpha: Tensor, beta: Tensor):
        self.z0, self.alpha, self.beta = diagnose.radial_args(z0, alpha, beta)
        params = (self.z0, self.alpha, self.beta)
        super().__init__(MapLayer(radial_forward, radial_inverse, *params, dim=len(self.z0)))


# --- coupling and autoregressive -----------------------------------------------------------------


class CouplingTransform(LayerTransform):
    """RealNVP affine coupling ``x_a = z_a``, ``x_b = z_b * exp(s(z_a)) + t(z_a)``.

    ``mask`` (shape ``(D,)``, 0/1): coordinates ``a`` (mask 1) pass through and
    are the input of ``transform_net``; it returns, for the ``D_b`` coordinates
    ``b`` (mask 0), a shift block then a log-scale block: ``(*, D_a) -> (*, 2 D_b)``
    (for mask ``[1, 0]``: ``Linear(1, ...) ... Linear(..., 2)``). The Jacobian is
    triangular with diagonal ``exp(s)``: ``ladj = sum_b s(z_a)``. Both directions
    cost one pass of the network (the inverse sees ``x_a = z_a``). The network's
    output is read as in :class:`~nfcourse.layers.coupling.AffineCoupling`, which this
    wraps (``self.layer``): normalizing direction ``z_b = x_b exp(r) + q``, log-scale
    soft-clamped, ``r = B tanh(raw / B)`` with ``B = scale_bound`` (default 2).

    Fixes errata 6: the blog post's ``transform_net=lambda x: nn.Sequential(...)(x)``
    builds a new random network at every call (neither invertible nor
    trainable). Any non-module is refused with the corrected call (the same
    ``nn.Sequential``, built once); a module whose output changes between two
    calls on the same input is refused too.

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using
    Real NVP", arXiv:1605.08803
    """

    def __init__(self, mask: Tensor, transform_net: nn.Module, scale_bound: float = SCALE_BOUND):
        mask = diagnose.coupling_args(mask, transform_net)
        self.transform_net = transform_net
        super().__init__(AffineCoupling(mask, net=transform_net, scale_bound=scale_bound))


class AutoregressiveTransform(LayerTransform):
    """Affine autoregressive (MAF) layer ``x_i = z_i * exp(s_i(x_<i)) + m_i(x_<i)``.

    ``transform_net`` maps ``(*, D) -> (*, 2D)``: a shift block then a log-scale
    block, read as in :class:`~nfcourse.layers.autoregressive.MAF`, which this wraps as
    ``self.layer``, entry ``i`` of each block depending only on coordinates before ``i``
    in one fixed order, e.g. ``MADE(D, hidden=(16,))`` (re-exported here as ``T.MADE``).
    The Jacobian is then triangular with diagonal ``exp(s)``: ``ladj = sum_i s_i``.
    This is checked at construction (:func:`check_autoregressive`); ``D`` comes
    from ``dim``, else from the network (``net.dim``, or its first Linear layer).

    Cost, as in MAF: ``t.inv(x)`` (``log_prob``) is one network pass, since
    ``x`` is known; ``t(z)`` (``sample``) takes ``D`` sequential passes, each
    fixing the next coordinate in the order. ``log_abs_det_jacobian(z, x)`` is
    computed from ``x``: one pass (none right after ``t(z)`` or ``t.inv(x)``).

    Fixes errata 7 and 6: the blog post's network ``Linear(2, 2), Tanh(), Linear(2, 2)``
    is a plain MLP (not autoregressive: its Jacobian is full, so the log-det
    formula does not hold) with 2 outputs instead of 4, and it is built anew at
    every call inside a lambda. Both are refused with the corrected call.

    Reference: Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive
    Flow for Density Estimation", arXiv:1705.07057
    """

    def __init__(
        self, transform_net: nn.Module, dim: int | None = None, scale_bound: float = SCALE_BOUND
    ):
        dim = diagnose.autoregressive_args(transform_net, dim)
        self.transform_net = transform_net
        super().__init__(MAF(dim, net=transform_net, scale_bound=scale_bound), ladj_from="x")
