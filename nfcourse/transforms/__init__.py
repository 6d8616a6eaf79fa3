"""The seed's ``torch.distributions.transforms`` examples, made real.

The seed calls ``T.PlanarTransform``, ``T.RadialTransform``, ``T.CouplingTransform``,
``T.AutoregressiveTransform`` and ``T.AffineTransform(..., scale_tril=...)`` with
``import torch.distributions.transforms as T``. None of these exist in PyTorch
(its ``AffineTransform`` is elementwise and takes no ``scale_tril``: errata 1).
This module provides them as real :class:`torch.distributions.Transform` s, so
that with ``import nfcourse.transforms as T`` the seed's examples run inside
:class:`torch.distributions.TransformedDistribution`, and the seed's bad
arguments get an error that says why and what to write instead (a line after
``Write instead:`` that runs as it is, with ``T`` being this module).

Every transform acts on vectors: ``domain = codomain = independent(real, 1)``,
so a base such as ``Normal(torch.zeros(2), torch.ones(2))`` (batch shape 2) is
reinterpreted as one 2-D distribution. Torch's names for the two sides are
``x`` (input) and ``y`` (output); here, as in the rest of the course, the input
is the base point ``z`` and the output the data point ``x``:

- ``t(z)`` (``_call``) is the generative direction, used by ``sample``;
- ``t.inv(x)`` (``_inverse``) is the normalizing direction, used by ``log_prob``;
- ``t.log_abs_det_jacobian(z, x)`` is ``log|det dx/dz|``, shape ``(*)`` for points ``(*, D)``.

The math is not repeated here: each class composes the course's layers and
functions (:mod:`nfcourse.layers`).
Parameters are the tensors (or the network) you pass: the transforms are not
modules, so to train one, optimize your tensors or ``transform_net.parameters()``.
A ``log_prob`` that depends on trainable parameters carries gradients, so
plot it under ``torch.no_grad()`` (or ``.detach()`` it): the seed's ``plot_dist``
passes it straight to matplotlib, which refuses tensors that require grad.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ..layers import MAF, AffineCoupling
from ..layers.coupling import check_mask
from ..layers.elementwise import SCALE_BOUND
from ..layers.planar import constrain_u, planar_forward, planar_inverse
from ..layers.radial import radial_forward, radial_inverse
from ..nets import MADE
from ..testing import autograd_jacobian, is_triangular
from ..validate import check_points

__all__ = [
    "MADE",  # re-exported so that the seed's namespace (T) can build an autoregressive net
    "AffineTransform",
    "AutoregressiveTransform",
    "CouplingTransform",
    "PlanarTransform",
    "RadialTransform",
    "check_autoregressive",
]

_T = "T is nfcourse.transforms: import nfcourse.transforms as T"


# --- helpers: validation and code in error messages ---------------------------------------------


def _num(v: float) -> str:
    return repr(float(f"{v:.6g}"))


def _code(t: Tensor) -> str:
    """Python code that rebuilds a small tensor, for the ``Write instead:`` lines."""
    t = t.detach().cpu()
    if not t.is_floating_point():
        return f"torch.tensor({t.tolist()})"
    dtype = "" if t.dtype == torch.float32 else f", dtype=torch.{str(t.dtype).split('.')[-1]}"
    if t.dim() == 1 and t.numel() and not t.any():
        return f"torch.zeros({t.numel()}{dtype})"

    def nested(v):
        return f"[{', '.join(nested(e) for e in v)}]" if isinstance(v, list) else _num(v)

    return f"torch.tensor({nested(t.tolist())}{dtype})"


def _write_instead(code: str) -> str:
    return f"Write instead:\n    {code}\n({_T}.)"


def _tensor(value: object, name: str, where: str) -> Tensor:
    """A floating-point tensor from ``value`` (the same object when it already is one)."""
    if isinstance(value, Tensor):
        return value if value.is_floating_point() else value.to(torch.get_default_dtype())
    if isinstance(value, (int, float, list, tuple)) and not isinstance(value, bool):
        return torch.as_tensor(value, dtype=torch.get_default_dtype())
    raise TypeError(
        f"{where}: `{name}` must be a torch.Tensor, got {type(value).__name__}. "
        f"Pass e.g. {name}=torch.tensor(...)."
    )


def _finite(t: Tensor, name: str, where: str) -> None:
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{where}: `{name}` must be finite, got {t.detach().tolist()}.")


def _scalar(t: Tensor, name: str, where: str) -> Tensor:
    if t.shape not in ((), (1,)):
        raise ValueError(
            f"{where}: `{name}` must be a scalar tensor (shape () or (1,)), got shape "
            f"{tuple(t.shape)}. Pass e.g. {name}=torch.tensor([1.])."
        )
    _finite(t, name, where)
    return t


def _vector(t: Tensor, name: str, where: str, dim: int | None = None) -> Tensor:
    if t.dim() != 1 or (dim is not None and t.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(D,), one entry per coordinate"
        raise ValueError(f"{where}: `{name}` must have shape {want}, got shape {tuple(t.shape)}.")
    _finite(t, name, where)
    return t


class _VectorTransform(Transform):
    """Base class: a bijection of ``R^D`` acting on the last dimension of ``(*, D)``.

    Subclasses set ``dim`` (``None``: any ``D``) and implement ``_call(z) -> x``,
    ``_inverse(x) -> z`` and ``log_abs_det_jacobian(z, x)``, of shape ``(*)``.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    dim: int | None = None

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(D={self.dim if self.dim is not None else 'any'})"


# --- affine --------------------------------------------------------------------------------------


def _rotation_note(A: Tensor) -> str:
    """For a 2x2 ``A`` that is a scaled rotation, say so (the seed's matrix is one)."""
    if A.shape != (2, 2):
        return ""
    A = A.detach().double()
    c = A[:, 0].norm()
    if c == 0 or not torch.allclose(A.T @ A, c**2 * torch.eye(2, dtype=A.dtype)) or A.det() < 0:
        return ""
    angle = math.degrees(math.atan2(A[1, 0].item(), A[0, 0].item()))
    c, c2 = c.item(), round(c.item() ** 2)
    exact = f" = sqrt({c2})" if abs(c**2 - c2) < 1e-9 and c != round(c) else ""
    return f" It is a rotation by {angle:.4g} degrees times a scale of {c:.4g}{exact}."


class AffineTransform(_VectorTransform):
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
    the seed's ``scale_tril=[[2., -2.], [2., 2.]]`` is not lower-triangular (it is
    a rotation by 45 degrees times ``2 sqrt(2)``); such a matrix is refused with
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
        super().__init__()
        where = "AffineTransform"
        given = [
            (n, v)
            for n, v in (("scale", scale), ("scale_tril", scale_tril), ("matrix", matrix))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"{where}: pass exactly one of `scale` (elementwise, shape () or (D,)), "
                "`scale_tril` (lower-triangular (D, D)) or `matrix` (any invertible (D, D)), "
                f"got {', '.join(n for n, _ in given) or 'none'}. E.g. "
                "T.AffineTransform(loc=torch.zeros(2), matrix=torch.tensor([[1., 0.5], [0., 1.]]))."
            )
        self.kind, A = given[0][0], _tensor(given[0][1], given[0][0], where)
        loc = _tensor(loc, "loc", where)
        _finite(A, self.kind, where)
        if self.kind == "scale":
            if A.dim() > 1:
                raise ValueError(
                    f"{where}: `scale` is elementwise and must have shape () or (D,), got "
                    f"shape {tuple(A.shape)}. For a matrix use matrix= (any invertible "
                    "matrix) or scale_tril= (a lower-triangular one)."
                )
            if not bool((A.detach() != 0).all()):
                raise ValueError(
                    f"{where}: every entry of `scale` must be nonzero, got {A.tolist()}: a zero "
                    "scale flattens a coordinate to a point, so the map has no inverse and "
                    "the result no density (errata 4)."
                )
            self.dim = A.shape[0] if A.dim() == 1 else None
        else:
            if A.dim() != 2 or A.shape[0] != A.shape[1]:
                raise ValueError(
                    f"{where}: `{self.kind}` must be a square matrix of shape (D, D), got shape "
                    f"{tuple(A.shape)}."
                )
            self.dim = A.shape[0]
            self._check_matrix(A, loc)
        if loc.dim() > 1 or (loc.dim() == 1 and self.dim is not None and len(loc) != self.dim):
            D = self.dim if self.dim is not None else "D"
            raise ValueError(
                f"{where}: `loc` must have shape ({D},) or (), got shape {tuple(loc.shape)}."
            )
        _finite(loc, "loc", where)
        self.dim = self.dim if self.dim is not None or loc.dim() == 0 else loc.shape[0]
        self.loc, self.A = loc, A

    def _check_matrix(self, A: Tensor, loc: Tensor) -> None:
        where, a = "AffineTransform", A.detach()
        smax, smin = (s := torch.linalg.svdvals(a.double())).max(), s.min()
        singular = bool(smin <= smax * A.shape[0] * torch.finfo(A.dtype).eps)
        why_singular = (
            "it is singular (determinant 0, or too close to 0 to invert in "
            f"{A.dtype}: singular values {[float(f'{v:.3g}') for v in s.tolist()]}). A singular "
            "linear map squashes space onto a lower-dimensional subspace: it has no inverse, "
            "and the result has no density (errata 4). Use an invertible matrix"
        )
        if self.kind == "scale_tril":
            above = a.triu(1) != 0
            if above.any():
                i, j = above.nonzero()[0].tolist()
                msg = (
                    f"{where}: `scale_tril` must be lower-triangular (every entry above the "
                    f"diagonal zero, like a Cholesky factor), got {a.tolist()}, whose entry "
                    f"[{i}, {j}] = {a[i, j].item():g} lies above the diagonal."
                    f"{_rotation_note(a)} (torch's own AffineTransform is elementwise and "
                    "takes no scale_tril at all, errata 1.) For a triangular L the log-det is "
                    "sum(log|diag L|); for this matrix that formula is wrong (errata 2). "
                )
                if singular:
                    raise ValueError(msg + "Moreover " + why_singular + ".")
                raise ValueError(
                    msg + "To apply this matrix as it is, pass it as `matrix` (any invertible "
                    "matrix; log|det| by slogdet). "
                    + _write_instead(f"T.AffineTransform(loc={_code(loc)}, matrix={_code(a)})")
                    + " If you meant the Gaussian N(loc, A A^T), pass instead its "
                    "lower-triangular Cholesky factor, scale_tril=torch.linalg.cholesky(A @ A.T): "
                    "from a standard normal base it gives the same distribution (by another map)."
                )
            zero = (a.diagonal() == 0).nonzero()
            if len(zero):
                raise ValueError(
                    f"{where}: the diagonal of `scale_tril` must be nonzero, got "
                    f"{a.diagonal().tolist()}: entry {zero[0].item()} is 0, so det = "
                    "product of the diagonal = 0: " + why_singular + "."
                )
        elif singular:
            raise ValueError(f"{where}: `matrix` = {a.tolist()} is not invertible: {why_singular}.")

    def _ladj(self, z: Tensor) -> Tensor:
        if self.kind == "scale":
            return self.A.abs().log().expand(z.shape).sum(-1)
        if self.kind == "scale_tril":
            ladj = self.A.diagonal().abs().log().sum()
        else:
            ladj = torch.linalg.slogdet(self.A).logabsdet
        return z.new_zeros(z.shape[:-1]) + ladj

    def _call(self, z: Tensor) -> Tensor:
        z = self._points(z, "z")
        if self.kind == "scale":
            return self.loc + self.A * z
        return self.loc + z @ self.A.mT

    def _inverse(self, x: Tensor) -> Tensor:
        x = self._points(x, "x")
        r = x - self.loc
        if self.kind == "scale":
            return r / self.A
        flat = r.reshape(-1, r.shape[-1])  # (N, D): solve z A^T = r for all rows at once
        if self.kind == "scale_tril":
            z = torch.linalg.solve_triangular(self.A.mT, flat, upper=True, left=False)
        else:
            z = torch.linalg.solve(self.A.mT, flat, left=False)
        return z.reshape(r.shape)

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        return self._ladj(self._points(z, "z"))


# --- planar --------------------------------------------------------------------------------------


class PlanarTransform(_VectorTransform):
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

    Fixes errata 5: the seed's ``w = [0.]`` has the wrong shape (``(1,)`` for
    ``D = 2``), and ``w = 0`` would make ``tanh(w.z + b) = tanh(b)`` a constant,
    so the layer a mere translation (the identity for ``b = 0``); both are
    refused or explained with a corrected call.

    Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
    Flows", arXiv:1505.05770.
    """

    def __init__(self, u: Tensor, w: Tensor, b: Tensor, constrain: bool = False):
        super().__init__()
        where = "PlanarTransform"
        u = _vector(_tensor(u, "u", where), "u", where)
        w, b = _tensor(w, "w", where), _scalar(_tensor(b, "b", where), "b", where)
        self.dim = D = u.shape[0]
        if w.shape != (D,):
            w_fix = u.detach().clone() if u.detach().any() else torch.ones_like(u)
            zero = (
                " It is also zero: with w = 0, tanh(w.z + b) = tanh(b) is a constant, so the "
                "layer would be a mere translation by u tanh(b) (the identity when b = 0)."
                if not w.detach().any()
                else ""
            )
            raise ValueError(
                f"{where}: `w` must have shape ({D},), the shape of `u` (one entry per "
                f"coordinate: w is the normal of the hyperplane w.z + b = 0), got shape "
                f"{tuple(w.shape)}.{zero} (errata 5.) One valid choice is w = u, which "
                "makes w.u = |u|^2 > -1 (invertible) and pushes points apart along u, away "
                "from the hyperplane. "
                + _write_instead(f"T.PlanarTransform(u={_code(u)}, w={_code(w_fix)}, b={_code(b)})")
            )
        _finite(w, "w", where)
        self.u, self.w, self.b, self.constrain = u, w, b, bool(constrain)
        if not constrain:
            wu = (u.detach() * w.detach()).sum().item()
            if not wu > -1:
                raise ValueError(
                    f"{where}: the layer x = z + u tanh(w.z + b) is invertible only if "
                    f"w.u > -1, got w.u = {wu:.6g}. (Along w it maps a = w.z to "
                    "a + (w.u) tanh(a + b), whose slope 1 + (w.u) tanh' must stay positive; "
                    "below -1 the map folds space onto itself, and at exactly -1 its Jacobian "
                    "is singular on the hyperplane.) Choose u with w.u > -1, or let the layer "
                    "use u_hat = nfcourse.layers.planar.constrain_u(u, w), which moves u along w "
                    "until w.u_hat > -1. "
                    + _write_instead(
                        f"T.PlanarTransform(u={_code(u)}, w={_code(w)}, b={_code(b)}, "
                        "constrain=True)"
                    )
                )

    @property
    def u_hat(self) -> Tensor:
        """The direction actually used: ``u``, or ``constrain_u(u, w)`` if ``constrain``."""
        return constrain_u(self.u, self.w) if self.constrain else self.u

    def _call(self, z: Tensor) -> Tensor:
        return planar_forward(self._points(z, "z"), self.u_hat, self.w, self.b)[0]

    def _inverse(self, x: Tensor) -> Tensor:
        return planar_inverse(self._points(x, "x"), self.u_hat, self.w, self.b)[0]

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        return planar_forward(self._points(z, "z"), self.u_hat, self.w, self.b)[1]


# --- radial --------------------------------------------------------------------------------------


class RadialTransform(_VectorTransform):
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

    Fixes the seed's ``alpha = 0`` (which Rezende and Mohamed exclude): then
    ``h = 1/r`` and ``||x - z0|| = ||z - z0|| + beta``, so the map is singular at
    ``z0`` and no point lands within ``beta`` of ``z0``: a hole with no preimage
    (the seed's "hole in the center" is this artefact, centred at ``z0``; errata 9).

    Reference: Rezende and Mohamed (2015), "Variational Inference with Normalizing
    Flows", arXiv:1505.05770.
    """

    def __init__(self, z0: Tensor, alpha: Tensor, beta: Tensor):
        super().__init__()
        where = "RadialTransform"
        z0 = _vector(_tensor(z0, "z0", where), "z0", where)
        alpha = _scalar(_tensor(alpha, "alpha", where), "alpha", where)
        beta = _scalar(_tensor(beta, "beta", where), "beta", where)
        a, c = alpha.detach().reshape(()).item(), beta.detach().reshape(()).item()
        a_fix = a if a > 0 else (abs(a) if a < 0 else 1.0)
        c_fix = c if c >= -a_fix else -a_fix / 2

        def fix() -> str:
            alpha_fix, beta_fix = (
                alpha.new_full(alpha.shape, a_fix),
                beta.new_full(beta.shape, c_fix),
            )
            code = (
                f"T.RadialTransform(z0={_code(z0)}, alpha={_code(alpha_fix)}, "
                f"beta={_code(beta_fix)})"
            )
            return (
                "(For trainable parameters, nfcourse.layers.radial.constrain_alpha_beta maps "
                "any real numbers to valid ones.) " + _write_instead(code)
            )

        if not a > 0:
            if a < 0:
                why = f"With alpha < 0, h(r) = 1/(alpha + r) is infinite at r = {-a:g}. "
            elif c > 0:
                why = (
                    "With alpha = 0, h(r) = 1/r and ||x - z0|| = ||z - z0|| + beta: the map is "
                    "undefined at z0 and tears space open there: points near z0 land at "
                    f"distance about beta = {c:g} from it, in every direction, so no point lands "
                    f"within {c:g} of z0: a hole with no preimage, where the density is 0 (the "
                    "seed's 'hole' is this artefact, centred at z0). "
                )
            elif c < 0:
                why = (
                    "With alpha = 0, h(r) = 1/r and ||x - z0|| = ||z - z0|| + beta: the map is "
                    f"undefined at z0, and the points within |beta| = {-c:g} of z0 are folded "
                    "through it onto points that already have a preimage. "
                )
            else:
                why = "(With beta = 0 too, the layer is the identity, but alpha = 0 is excluded.) "
            raise ValueError(
                f"{where}: `alpha` must be > 0 (Rezende and Mohamed, 2015), got alpha = {a:g}. "
                + why
                + "Use alpha > 0 and beta >= -alpha. "
                + fix()
            )
        if not c >= -a:
            raise ValueError(
                f"{where}: the layer is invertible only if beta >= -alpha, got beta = {c:g} < "
                f"-alpha = {-a:g}: the radius map r -> r (alpha + beta + r) / (alpha + r) would "
                "decrease near z0, folding the points near z0 through it. " + fix()
            )
        self.dim = z0.shape[0]
        self.z0, self.alpha, self.beta = z0, alpha, beta

    def _call(self, z: Tensor) -> Tensor:
        return radial_forward(self._points(z, "z"), self.z0, self.alpha, self.beta)[0]

    def _inverse(self, x: Tensor) -> Tensor:
        return radial_inverse(self._points(x, "x"), self.z0, self.alpha, self.beta)[0]

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        return radial_forward(self._points(z, "z"), self.z0, self.alpha, self.beta)[1]


# --- networks: built once, deterministic, the right shape ----------------------------------------


def _dtype_device(net: object) -> tuple[torch.dtype, torch.device]:
    p = next(net.parameters(), None) if isinstance(net, nn.Module) else None
    if p is None:
        return torch.get_default_dtype(), torch.device("cpu")
    return p.dtype, p.device


def _probe(net: object, d_in: int, n: int = 8, seed: int = 0) -> Tensor:
    dtype, device = _dtype_device(net)
    g = torch.Generator().manual_seed(seed)
    return (1.5 * torch.randn(n, d_in, generator=g, dtype=dtype)).to(device)


def _module_code(module: nn.Module) -> str | None:
    """Code that builds a module like ``module`` (Sequential of Linear and activations)."""

    def one(m: nn.Module) -> str | None:
        if type(m) is nn.Linear:
            bias = "" if m.bias is not None else ", bias=False"
            return f"torch.nn.Linear({m.in_features}, {m.out_features}{bias})"
        name = type(m).__name__
        if (
            getattr(nn, name, None) is type(m)
            and not any(True for _ in m.parameters())
            and repr(m) == f"{name}()"
        ):
            return f"torch.nn.{name}()"
        return None

    if type(module) is not nn.Sequential:
        return one(module)
    parts = [one(m) for m in module]
    return None if None in parts else f"torch.nn.Sequential({', '.join(parts)})"


def _inspect_function(fn: Callable, probe: Tensor) -> tuple[bool | None, nn.Module | None]:
    """Call a non-module ``fn`` twice on ``probe``: does its output change, and which module
    computed it (the last module that ran, if it alone reproduces ``fn``'s output)?"""
    called: list[nn.Module] = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: called.append(m))
    try:
        with torch.no_grad():
            first = fn(probe)
            called_first = list(called)
            second = fn(probe)
    except Exception:
        return None, None
    finally:
        handle.remove()
    changes = not (
        isinstance(first, Tensor)
        and isinstance(second, Tensor)
        and first.shape == second.shape
        and torch.allclose(first, second)
    )
    module = called_first[-1] if called_first else None
    if module is not None:
        try:
            with torch.no_grad():
                if not torch.equal(module(probe), first):
                    module = None
        except Exception:
            module = None
    return changes, module


def _not_a_module(
    fn: object, where: str, changes: bool | None, fixed: str, more: str = ""
) -> TypeError:
    what = "a lambda" if getattr(fn, "__name__", "") == "<lambda>" else type(fn).__name__
    if changes:
        why = (
            "This one builds a new, randomly initialized network at every call (two calls on "
            "the same input gave different outputs): the map changes each time it is "
            "evaluated, so it is neither invertible (the inverse would not undo the forward "
            "pass, which used another network) nor trainable (the weights belong to no "
            "module you can optimize) (errata 6). Build the network once and pass it."
        )
    else:
        why = (
            "A function hides the network's parameters from the layer (they would not train "
            "with it); if it builds a network inside, the map even changes at every call "
            "(errata 6). Build the network once and pass the module itself."
        )
    return TypeError(
        f"{where}: `transform_net` must be a torch.nn.Module built once, got {what}. "
        f"{why}{more} {fixed}"
    )


def _deterministic(net: nn.Module, probe: Tensor) -> bool:
    with torch.no_grad():
        a, b = net(probe), net(probe)
    return isinstance(a, Tensor) and torch.allclose(a, b)


_CHANGES = (
    "it gives different outputs for the same input on two calls (does it build a new network "
    "inside forward, or use dropout in training mode? Build layers in __init__; call .eval() "
    "for dropout)"
)


# --- coupling ------------------------------------------------------------------------------------


class CouplingTransform(_VectorTransform):
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

    Fixes errata 6: the seed's ``transform_net=lambda x: nn.Sequential(...)(x)``
    builds a new random network at every call (neither invertible nor
    trainable). Any non-module is refused with the corrected call (the same
    ``nn.Sequential``, built once); a module whose output changes between two
    calls on the same input is refused too.

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using
    Real NVP", arXiv:1605.08803
    """

    def __init__(self, mask: Tensor, transform_net: nn.Module, scale_bound: float = SCALE_BOUND):
        super().__init__()
        where = "CouplingTransform"
        mask = check_mask(mask, where)
        d_a, d_b = int(mask.sum()), int((~mask).sum())
        mask_code = f"torch.tensor({mask.int().tolist()})"
        probe = _probe(transform_net, d_a)
        generic = (
            f"torch.nn.Sequential(torch.nn.Linear({d_a}, 16), torch.nn.Tanh(), "
            f"torch.nn.Linear(16, {2 * d_b}))"
        )

        def fixed(net_code: str) -> str:
            code = f"T.CouplingTransform(mask={mask_code}, transform_net={net_code})"
            return _write_instead(code)

        if not isinstance(transform_net, nn.Module):
            changes, module = _inspect_function(transform_net, probe)
            code = _module_code(module) if module is not None else None
            if code is not None and self._problem(module, probe, d_b):
                code = None
            raise _not_a_module(transform_net, where, changes, fixed(code or generic))
        problem = self._problem(transform_net, probe, d_b)
        if problem:
            raise ValueError(
                f"{where}: `transform_net` must map (..., {d_a}) (the coordinates with mask 1) "
                f"to (..., {2 * d_b}) (a shift then a log-scale for each of the {d_b} "
                f"coordinates with mask 0), but {problem}. " + fixed(generic)
            )
        self.layer = AffineCoupling(mask, net=transform_net, scale_bound=scale_bound)
        self.transform_net, self.dim = transform_net, mask.numel()

    @staticmethod
    def _problem(net: nn.Module, probe: Tensor, d_b: int) -> str | None:
        try:
            with torch.no_grad():
                out = net(probe)
        except Exception as err:
            return f"it fails on input of shape {tuple(probe.shape)}: {err}"
        if not isinstance(out, Tensor) or out.shape != (probe.shape[0], 2 * d_b):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            return f"it maps input of shape {tuple(probe.shape)} to {got}"
        return None if _deterministic(net, probe) else _CHANGES

    def _call(self, z: Tensor) -> Tensor:
        return self.layer(self._points(z, "z"))[0]

    def _inverse(self, x: Tensor) -> Tensor:
        return self.layer.inverse(self._points(x, "x"))[0]

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        return self.layer(self._points(z, "z"))[1]


# --- autoregressive ------------------------------------------------------------------------------


def _net_dim(net: object) -> int | None:
    """``D`` as the network tells it: a ``dim`` attribute (MADE) or its first Linear layer."""
    dim = getattr(net, "dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if isinstance(net, nn.Module):
        first = next((m for m in net.modules() if isinstance(m, nn.Linear)), None)
        return first.in_features if first is not None else None
    return None


def _randomized(net: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``net`` with every trainable parameter redrawn: its structure, not its values.

    A zero-initialized output layer (a learner's network may have one) hides every
    dependence; and
    what training may change is what must keep the autoregressive structure.
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


def _autoregressive_problems(net: nn.Module, dim: int) -> list[str]:
    """What stops ``net`` from being an affine autoregressive conditioner ``(*, D) -> (*, 2D)``."""
    probe = _probe(net, dim)
    try:
        with torch.no_grad():
            out = net(probe)
    except Exception as err:
        return [f"it fails on input of shape {tuple(probe.shape)}: {err}"]
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != probe.shape[0]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return [f"it maps input of shape {tuple(probe.shape)} to {got}"]
    problems = []
    k = out.shape[-1]
    if k != 2 * dim:
        problems.append(
            f"it returns {k} values per point, not 2 * D = {2 * dim} (a shift then a "
            "log-scale for each coordinate)"
        )
    if not _deterministic(net, probe):
        return [*problems, _CHANGES]
    if k % dim:
        return problems
    test_net = _randomized(net)
    with torch.enable_grad():
        jac = autograd_jacobian(test_net, probe.detach())  # (N, k, D)
    # "the parameters of coordinate i depend on input j", over all output blocks and points
    pattern = (jac.abs() > 0).any(0).reshape(k // dim, dim, dim).any(0)  # (D, D)
    if pattern.diagonal().any():
        own = pattern.diagonal().nonzero()[:, 0].tolist()
        problems.append(
            f"the shift/log-scale of coordinate(s) {own} depend on that coordinate itself"
        )
    if not is_triangular(pattern[None].double(), tol=0.5):
        deps = "; ".join(f"{i} <- {pattern[i].nonzero()[:, 0].tolist()}" for i in range(dim))
        problems.append(
            "its dependences (coordinate <- inputs its shift/log-scale use: "
            f"{deps if dim <= 6 else '...'}) form a cycle, so no order of the coordinates "
            "makes them depend only on earlier ones"
        )
    return problems


def _made_code(dim: int | None) -> str:
    if dim is None:
        return "T.MADE(D, hidden=(16,)), with D your number of coordinates"
    return f"T.MADE({dim}, hidden=(16,))"


def check_autoregressive(net: nn.Module, dim: int, where: str = "check_autoregressive") -> None:
    """Raise a ``ValueError`` unless ``net`` is an affine autoregressive conditioner.

    Checks, with autograd at a few random points and with the trainable
    parameters redrawn at random (so that a zero-initialized layer hides
    nothing), that ``net`` maps ``(N, D)`` to ``(N, 2D)`` deterministically and
    that the union over both output blocks of "entry ``i`` depends on input
    ``j``" is nilpotent: no entry depends on its own coordinate, and the
    dependences have no cycle (:func:`nfcourse.testing.is_triangular`), i.e. one
    order of the coordinates makes the Jacobian strictly triangular.
    """
    problems = _autoregressive_problems(net, dim)
    if problems:
        raise ValueError(
            f"{where}: `transform_net` must be autoregressive, mapping (..., {dim}) to "
            f"(..., {2 * dim}): a shift then a log-scale for each coordinate, those of "
            "coordinate i depending only on coordinates before i in one fixed order. This "
            f"network is not: {'; '.join(problems)}. An affine autoregressive layer "
            "computes ladj = sum of the log-scales, the log-det of a triangular Jacobian; "
            "for a network that is not autoregressive the Jacobian is not triangular, that "
            "formula is wrong and the sampling loop does not invert the map (errata 7). A "
            "plain MLP never qualifies: masks must cut the forbidden connections (MADE). "
            + _write_instead(f"T.AutoregressiveTransform(transform_net={_made_code(dim)})")
        )


class AutoregressiveTransform(_VectorTransform):
    """Affine autoregressive (MAF) layer ``x_i = z_i * exp(s_i(x_<i)) + m_i(x_<i)``.

    ``transform_net`` maps ``(*, D) -> (*, 2D)``: a shift block then a log-scale
    block, read as in :class:`~nfcourse.layers.autoregressive.MAF`, which this wraps as
    ``self.layer``,
    entry ``i`` of each block depending only on coordinates before ``i`` in one
    fixed order, e.g. ``MADE(D, hidden=(16,))`` (re-exported here as ``T.MADE``).
    The Jacobian is then triangular with diagonal ``exp(s)``: ``ladj = sum_i s_i``.
    This is checked at construction (:func:`check_autoregressive`); ``D`` comes
    from ``dim``, else from the network (``net.dim``, or its first Linear layer).

    Cost, as in MAF: ``t.inv(x)`` (``log_prob``) is one network pass, since
    ``x`` is known; ``t(z)`` (``sample``) takes ``D`` sequential passes, each
    fixing the next coordinate in the order. ``log_abs_det_jacobian(z, x)`` is
    computed from ``x``: one pass.

    Fixes errata 7 and 6: the seed's network ``Linear(2, 2), Tanh(), Linear(2, 2)``
    is a plain MLP (not autoregressive: its Jacobian is full, so the log-det
    formula does not hold) with 2 outputs instead of 4, and it is built anew at
    every call inside a lambda. Both are refused with the corrected call.

    Reference: Papamakarios, Pavlakou, Murray (2017), "Masked Autoregressive
    Flow for Density Estimation", arXiv:1705.07057
    """

    def __init__(
        self, transform_net: nn.Module, dim: int | None = None, scale_bound: float = SCALE_BOUND
    ):
        super().__init__()
        where = "AutoregressiveTransform"
        if not isinstance(transform_net, nn.Module):
            d = dim if dim is not None else self._guess_dim(transform_net)
            changes, module = None, None
            if d is not None:
                changes, module = _inspect_function(transform_net, _probe(None, d))
            built_once = ""
            problems = _autoregressive_problems(module, d) if module is not None else []
            if problems:
                built_once = (
                    f" Built once, this network would still be wrong: {'; '.join(problems)}. "
                    "Its Jacobian is then not triangular, so the log-det formula of an "
                    "autoregressive layer does not hold (errata 7): it needs masks (MADE)."
                )
            code = f"T.AutoregressiveTransform(transform_net={_made_code(d)})"
            fixed = _write_instead(code)
            raise _not_a_module(transform_net, where, changes, fixed, built_once)
        dim = dim if dim is not None else _net_dim(transform_net)
        if dim is None:
            raise ValueError(
                f"{where}: cannot tell the number of coordinates D from `transform_net` (it "
                "has no `dim` attribute and no Linear layer): pass dim=D."
            )
        check_autoregressive(transform_net, dim, where)
        self.layer = MAF(dim, net=transform_net, scale_bound=scale_bound)
        self.transform_net, self.dim = transform_net, dim

    @staticmethod
    def _guess_dim(fn: Callable) -> int | None:
        """The input size a function accepts, if exactly one of 1..16 works."""
        works = []
        for d in range(1, 17):
            try:
                with torch.no_grad():
                    fn(torch.zeros(2, d))
                works.append(d)
            except Exception:
                pass
            if len(works) > 1:
                return None
        return works[0] if works else None

    def _call(self, z: Tensor) -> Tensor:
        return self.layer(self._points(z, "z"))[0]  # D sequential passes

    def _inverse(self, x: Tensor) -> Tensor:
        return self.layer.inverse(self._points(x, "x"))[0]  # one pass

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        return -self.layer.inverse(self._points(x, "x"))[1]  # one pass, from the output
