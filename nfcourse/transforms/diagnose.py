"""Checks of the transforms' arguments, and diagnoses of the blog post's bad ones.

The blog post's five examples each pass an argument that cannot work. Each transform of
:mod:`nfcourse.transforms` hands its arguments to one function here (:func:`affine_args`,
:func:`planar_args`, :func:`radial_args`, :func:`coupling_args`,
:func:`autoregressive_args`) before it builds anything. An error names the transform, the
argument, what was expected and what came, says why it cannot work, and, where one fix is
clear, ends with a line after ``Write instead:`` that runs as it is (``T`` being
:mod:`nfcourse.transforms`). The errata of the course design they explain:

1. ``torch.distributions.transforms`` has none of the blog post's four flow transforms, and
   its ``AffineTransform`` is elementwise and takes no ``scale_tril``.
2. ``scale_tril=[[2., -2.], [2., 2.]]`` is not lower-triangular: it is a rotation by 45
   degrees times a scale of ``2 sqrt(2)``. Refused, with the ``matrix=`` call that applies it
   and the Cholesky factor of the Gaussian it may have been meant to give.
4. A zero determinant (a singular matrix, a zero scale) is not fixed by an absolute value:
   the map has no inverse and the result no density. Refused.
5. ``PlanarTransform(u=[1, -1], w=[0], b=[0])``: ``w`` has the wrong shape, and ``w = 0``
   makes the layer a mere translation. A planar layer is invertible with a finite density
   iff ``w.u > -1``, a radial one iff ``alpha > 0`` and ``beta > -alpha``. The blog post's
   radial ``alpha = 0``, which Rezende and Mohamed exclude, tears a hole at ``z0``: the
   "hole in the center" of its picture (errata 9).
6. ``transform_net=lambda x: nn.Sequential(...)(x)`` builds a new random network at every
   call: neither invertible nor trainable. Any function is refused, with the network it
   builds (found by calling it) built once.
7. The autoregressive example's plain MLP is not autoregressive: its Jacobian is not
   triangular, so the log-det formula fails. :func:`check_autoregressive` tests a network
   with autograd and says which coordinates depend on what.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..layers.coupling import check_mask
from ..nets import (
    CHANGES,
    autoregressive_problems,
    is_deterministic,
    net_output,
    probe_points,
)
from ..validate import check_dim, check_scalar

_T = "T is nfcourse.transforms: import nfcourse.transforms as T"


# --- code in error messages ----------------------------------------------------------------------


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


# --- tensors given as arguments ------------------------------------------------------------------


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


def _finite(t: Tensor, name: str, where: str) -> Tensor:
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{where}: `{name}` must be finite, got {t.detach().tolist()}.")
    return t


def _scalar(value: object, name: str, where: str) -> Tensor:
    """A finite scalar tensor of shape ``()`` or ``(1,)``, kept in the shape it came in."""
    t = _tensor(value, name, where)
    check_scalar(t, name, where)
    return _finite(t, name, where)


def _coordinates(value: object, name: str, where: str) -> Tensor:
    """A finite vector of shape ``(D,)``: the parameter that tells a transform its ``D``."""
    t = _tensor(value, name, where)
    if t.dim() != 1:
        raise ValueError(
            f"{where}: `{name}` must have shape (D,), one entry per coordinate, got shape "
            f"{tuple(t.shape)}."
        )
    return _finite(t, name, where)


# --- affine: errata 1, 2 and 4 -------------------------------------------------------------------


def affine_args(
    loc: object, scale: object, scale_tril: object, matrix: object
) -> tuple[str, Tensor, Tensor, int | None]:
    """Check ``AffineTransform``'s arguments; return ``(kind, loc, A, D)``.

    ``kind`` names the one of ``scale``, ``scale_tril``, ``matrix`` that was given and ``A``
    is its tensor; ``D`` is ``None`` when a scalar ``scale`` and ``loc`` fit any ``D``.
    """
    where = "AffineTransform"
    given = {
        n: v
        for n, v in (("scale", scale), ("scale_tril", scale_tril), ("matrix", matrix))
        if v is not None
    }
    if len(given) != 1:
        raise ValueError(
            f"{where}: pass exactly one of `scale` (elementwise, shape () or (D,)), "
            "`scale_tril` (lower-triangular (D, D)) or `matrix` (any invertible (D, D)), "
            f"got {', '.join(given) or 'none'}. E.g. "
            "T.AffineTransform(loc=torch.zeros(2), matrix=torch.tensor([[1., 0.5], [0., 1.]]))."
        )
    [(kind, A)] = given.items()
    A, loc = _tensor(A, kind, where), _tensor(loc, "loc", where)
    _finite(A, kind, where)
    dim = _check_scale(A) if kind == "scale" else _check_matrix(kind, A, loc)
    if loc.dim() > 1 or (loc.dim() == 1 and dim is not None and len(loc) != dim):
        raise ValueError(
            f"{where}: `loc` must have shape ({dim or 'D'},) or (), got shape {tuple(loc.shape)}."
        )
    _finite(loc, "loc", where)
    return kind, loc, A, dim if dim is not None or loc.dim() == 0 else len(loc)


def _check_scale(A: Tensor) -> int | None:
    """An elementwise scale: shape ``()`` or ``(D,)``, no zero entry. Returns ``D`` or None."""
    if A.dim() > 1:
        raise ValueError(
            f"AffineTransform: `scale` is elementwise and must have shape () or (D,), got "
            f"shape {tuple(A.shape)}. For a matrix use matrix= (any invertible matrix) or "
            "scale_tril= (a lower-triangular one)."
        )
    if not bool((A.detach() != 0).all()):
        raise ValueError(
            f"AffineTransform: every entry of `scale` must be nonzero, got {A.tolist()}: a zero "
            "scale flattens a coordinate to a point, so the map has no inverse and the result "
            "no density (errata 4)."
        )
    return len(A) if A.dim() == 1 else None


def _check_matrix(kind: str, A: Tensor, loc: Tensor) -> int:
    """A ``scale_tril`` or ``matrix``: square, invertible, lower-triangular for ``scale_tril``."""
    where, a = "AffineTransform", A.detach()
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"{where}: `{kind}` must be a square matrix of shape (D, D), got shape "
            f"{tuple(a.shape)}."
        )
    s = torch.linalg.svdvals(a.double())
    singular = bool(s.min() <= s.max() * len(a) * torch.finfo(a.dtype).eps)
    why_singular = (
        "it is singular (determinant 0, or too close to 0 to invert in "
        f"{a.dtype}: singular values {[float(f'{v:.3g}') for v in s.tolist()]}). A singular "
        "linear map squashes space onto a lower-dimensional subspace: it has no inverse, "
        "and the result has no density (errata 4). Use an invertible matrix"
    )
    if kind == "matrix":
        if singular:
            raise ValueError(f"{where}: `matrix` = {a.tolist()} is not invertible: {why_singular}.")
        return len(a)
    if a.triu(1).any():
        raise ValueError(_not_triangular(a, loc, why_singular if singular else None))
    zero = (a.diagonal() == 0).nonzero()
    if len(zero):
        raise ValueError(
            f"{where}: the diagonal of `scale_tril` must be nonzero, got "
            f"{a.diagonal().tolist()}: entry {zero[0].item()} is 0, so det = "
            "product of the diagonal = 0: " + why_singular + "."
        )
    return len(a)


def _not_triangular(a: Tensor, loc: Tensor, why_singular: str | None) -> str:
    """Why a ``scale_tril`` with entries above the diagonal is refused (errata 2)."""
    i, j = (a.triu(1) != 0).nonzero()[0].tolist()
    msg = (
        "AffineTransform: `scale_tril` must be lower-triangular (every entry above the "
        f"diagonal zero, like a Cholesky factor), got {a.tolist()}, whose entry "
        f"[{i}, {j}] = {a[i, j].item():g} lies above the diagonal.{_rotation_note(a)} "
        "(torch's own AffineTransform is elementwise and takes no scale_tril at all, errata "
        "1.) For a triangular L the log-det is sum(log|diag L|); for this matrix that formula "
        "is wrong (errata 2). "
    )
    if why_singular:
        return msg + "Moreover " + why_singular + "."
    return (
        msg + "To apply this matrix as it is, pass it as `matrix` (any invertible "
        "matrix; log|det| by slogdet). "
        + _write_instead(f"T.AffineTransform(loc={_code(loc)}, matrix={_code(a)})")
        + " If you meant the Gaussian N(loc, A A^T), pass instead its "
        "lower-triangular Cholesky factor, scale_tril=torch.linalg.cholesky(A @ A.T): "
        "from a standard normal base it gives the same distribution (by another map)."
    )


def _rotation_note(A: Tensor) -> str:
    """For a 2x2 ``A`` that is a scaled rotation, say so (the blog post's matrix is one)."""
    if A.shape != (2, 2):
        return ""
    A = A.double()
    c = A[:, 0].norm()
    if c == 0 or not torch.allclose(A.T @ A, c**2 * torch.eye(2, dtype=A.dtype)) or A.det() < 0:
        return ""
    angle = math.degrees(math.atan2(A[1, 0].item(), A[0, 0].item()))
    c, c2 = c.item(), round(c.item() ** 2)
    exact = f" = sqrt({c2})" if abs(c**2 - c2) < 1e-9 and c != round(c) else ""
    return f" It is a rotation by {angle:.4g} degrees times a scale of {c:.4g}{exact}."


# --- planar and radial: errata 5 and 9 -----------------------------------------------------------


def planar_args(u: object, w: object, b: object, constrain: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Check ``PlanarTransform``'s arguments; return ``u, w, b`` as tensors.

    ``w`` must have the shape ``(D,)`` of ``u``; unless ``constrain``, ``w.u > -1``.
    """
    where = "PlanarTransform"
    u = _coordinates(u, "u", where)
    w, b = _tensor(w, "w", where), _scalar(b, "b", where)
    if w.shape != u.shape:
        w_fix = u.detach().clone() if u.detach().any() else torch.ones_like(u)
        zero = (
            " It is also zero: with w = 0, tanh(w.z + b) = tanh(b) is a constant, so the "
            "layer would be a mere translation by u tanh(b) (the identity when b = 0)."
            if not w.detach().any()
            else ""
        )
        raise ValueError(
            f"{where}: `w` must have shape ({len(u)},), the shape of `u` (one entry per "
            f"coordinate: w is the normal of the hyperplane w.z + b = 0), got shape "
            f"{tuple(w.shape)}.{zero} (errata 5.) One valid choice is w = u, which "
            "makes w.u = |u|^2 > -1 (invertible) and pushes points apart along u, away "
            "from the hyperplane. "
            + _write_instead(f"T.PlanarTransform(u={_code(u)}, w={_code(w_fix)}, b={_code(b)})")
        )
    _finite(w, "w", where)
    wu = (u.detach() * w.detach()).sum().item()
    if not (constrain or wu > -1):
        raise ValueError(
            f"{where}: the layer x = z + u tanh(w.z + b) is invertible only if "
            f"w.u > -1, got w.u = {wu:.6g}. (Along w it maps a = w.z to "
            "a + (w.u) tanh(a + b), whose slope 1 + (w.u) tanh' must stay positive; "
            "below -1 the map folds space onto itself, and at exactly -1 its Jacobian "
            "is singular on the hyperplane.) Choose u with w.u > -1, or let the layer "
            "use u_hat = nfcourse.layers.planar.constrain_u(u, w), which moves u along w "
            "until w.u_hat > -1. "
            + _write_instead(
                f"T.PlanarTransform(u={_code(u)}, w={_code(w)}, b={_code(b)}, constrain=True)"
            )
        )
    return u, w, b


def radial_args(z0: object, alpha: object, beta: object) -> tuple[Tensor, Tensor, Tensor]:
    """Check ``RadialTransform``'s arguments (``alpha > 0``, ``beta >= -alpha``); return them."""
    where = "RadialTransform"
    z0 = _coordinates(z0, "z0", where)
    alpha, beta = _scalar(alpha, "alpha", where), _scalar(beta, "beta", where)
    a, c = alpha.detach().reshape(()).item(), beta.detach().reshape(()).item()
    if a > 0 and c >= -a:
        return z0, alpha, beta
    a_fix = abs(a) or 1.0
    c_fix = c if c >= -a_fix else -a_fix / 2
    fixed = (
        "(For trainable parameters, nfcourse.layers.radial.constrain_alpha_beta maps "
        "any real numbers to valid ones.) "
        + _write_instead(
            f"T.RadialTransform(z0={_code(z0)}, alpha={_code(alpha.new_full(alpha.shape, a_fix))}"
            f", beta={_code(beta.new_full(beta.shape, c_fix))})"
        )
    )
    if a > 0:
        raise ValueError(
            f"{where}: the layer is invertible only if beta >= -alpha, got beta = {c:g} < "
            f"-alpha = {-a:g}: the radius map r -> r (alpha + beta + r) / (alpha + r) would "
            "decrease near z0, folding the points near z0 through it. " + fixed
        )
    raise ValueError(
        f"{where}: `alpha` must be > 0 (Rezende and Mohamed, 2015), got alpha = {a:g}. "
        + _why_alpha(a, c)
        + "Use alpha > 0 and beta >= -alpha. "
        + fixed
    )


def _why_alpha(a: float, c: float) -> str:
    """What goes wrong with ``alpha = a <= 0`` and ``beta = c``."""
    if a < 0:
        return f"With alpha < 0, h(r) = 1/(alpha + r) is infinite at r = {-a:g}. "
    if c == 0:
        return "(With beta = 0 too, the layer is the identity, but alpha = 0 is excluded.) "
    undefined = (
        "With alpha = 0, h(r) = 1/r and ||x - z0|| = ||z - z0|| + beta: the map is undefined at z0"
    )
    if c < 0:
        return (
            f"{undefined}, and the points within |beta| = {-c:g} of z0 are folded through it "
            "onto points that already have a preimage. "
        )
    return (
        f"{undefined} and tears space open there: points near z0 land at distance about "
        f"beta = {c:g} from it, in every direction, so no point lands within {c:g} of z0: a "
        "hole with no preimage, where the density is 0 (the blog post's 'hole' is this "
        "artefact, centred at z0). "
    )


# --- networks: built once, deterministic, the right shape (errata 6) -----------------------------


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


# --- coupling: errata 6 --------------------------------------------------------------------------


def coupling_args(mask: object, transform_net: object) -> Tensor:
    """Check ``CouplingTransform``'s arguments; return the mask as a bool tensor ``(D,)``.

    ``transform_net`` must be a module, built once, mapping ``(N, D_a)`` to ``(N, 2 D_b)``
    deterministically (``D_a``, ``D_b``: the numbers of ones and zeros in the mask).
    """
    where = "CouplingTransform"
    mask = check_mask(mask, where)
    d_a, width = int(mask.sum()), 2 * int((~mask).sum())
    probe = probe_points(transform_net, d_a)

    def fixed(net_code: str | None = None) -> str:
        net_code = net_code or (
            f"torch.nn.Sequential(torch.nn.Linear({d_a}, 16), torch.nn.Tanh(), "
            f"torch.nn.Linear(16, {width}))"
        )
        return _write_instead(
            f"T.CouplingTransform(mask=torch.tensor({mask.int().tolist()}), "
            f"transform_net={net_code})"
        )

    def problem(net: nn.Module) -> str:
        out, wrong = net_output(net, probe, width)
        return wrong or ("" if is_deterministic(net, probe, out) else CHANGES)

    if not isinstance(transform_net, nn.Module):
        changes, module = _inspect_function(transform_net, probe)
        code = _module_code(module) if module is not None and not problem(module) else None
        raise _not_a_module(transform_net, where, changes, fixed(code))
    wrong = problem(transform_net)
    if wrong:
        raise ValueError(
            f"{where}: `transform_net` must map (..., {d_a}) (the coordinates with mask 1) "
            f"to (..., {width}) (a shift then a log-scale for each of the {width // 2} "
            f"coordinates with mask 0), but {wrong}. " + fixed()
        )
    return mask


# --- autoregressive: errata 7 and 6 --------------------------------------------------------------


def _net_dim(net: object) -> int | None:
    """``D`` as the network tells it: a ``dim`` attribute (MADE) or its first Linear layer."""
    dim = getattr(net, "dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if isinstance(net, nn.Module):
        first = next((m for m in net.modules() if isinstance(m, nn.Linear)), None)
        return first.in_features if first is not None else None
    return None


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
    problems = autoregressive_problems(net, dim)
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


def autoregressive_args(transform_net: object, dim: int | None) -> int:
    """Check ``AutoregressiveTransform``'s arguments; return ``D``.

    ``D`` is ``dim``, else what the network tells (``net.dim``, or its first Linear layer);
    ``transform_net`` must be a module that passes :func:`check_autoregressive`.
    """
    where = "AutoregressiveTransform"
    if dim is not None:
        dim = check_dim(dim, where)
    if not isinstance(transform_net, nn.Module):
        d = dim if dim is not None else _guess_dim(transform_net)
        changes, module = None, None
        if d is not None:
            changes, module = _inspect_function(transform_net, probe_points(None, d))
        problems = autoregressive_problems(module, d) if module is not None else []
        built_once = (
            f" Built once, this network would still be wrong: {'; '.join(problems)}. "
            "Its Jacobian is then not triangular, so the log-det formula of an "
            "autoregressive layer does not hold (errata 7): it needs masks (MADE)."
            if problems
            else ""
        )
        fixed = _write_instead(f"T.AutoregressiveTransform(transform_net={_made_code(d)})")
        raise _not_a_module(transform_net, where, changes, fixed, built_once)
    dim = dim if dim is not None else _net_dim(transform_net)
    if dim is None:
        raise ValueError(
            f"{where}: cannot tell the number of coordinates D from `transform_net` (it "
            "has no `dim` attribute and no Linear layer): pass dim=D."
        )
    check_autoregressive(transform_net, dim, where)
    return dim
