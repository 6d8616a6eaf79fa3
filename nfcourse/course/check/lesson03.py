"""Checks of lesson 03 (planar and radial flows).

- Exercise 3.1, :func:`planar_layer`: a class ``Planar(dim)`` with parameters ``u, w``
  (shape ``(D,)``) and ``b`` (a scalar), a ``u_hat`` property (or method) with
  ``u_hat = u + (m(w.u) - w.u) w / ||w||^2``, ``m(a) = -1 + softplus(a)``, so that
  ``w.u_hat > -1``, and ``forward(z) -> (x, ladj)`` with
  ``x = z + u_hat tanh(w.z + b)``, ``ladj = log|1 + (w.u_hat) tanh'(w.z + b)|``.
  Only the forward direction is asked (the planar inverse is numerical).
- Exercise 3.2, :func:`radial_layer`: a class ``Radial(dim)`` with parameters ``z0``
  (``(D,)``), ``alpha_raw`` and ``beta_raw`` (scalars), an ``alpha_beta`` property (or
  method) returning ``alpha = softplus(alpha_raw)``, ``beta = -alpha + softplus(beta_raw)``,
  and ``forward(z) -> (x, ladj)`` with ``x = z + beta h(r) (z - z0)``,
  ``h = 1 / (alpha + r)``, ``ladj = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r)``;
  optionally ``inverse(x) -> (z, ladj)`` in closed form.

Each check compares the learner's layer, in float64, with :mod:`nfcourse.layers.planar` /
:mod:`nfcourse.layers.radial` and with the autograd Jacobian, on parameters far from the
initialization (a layer near the identity hides sign errors), recognizes the typical
wrong variants to name the mistake, and answers in well under a second.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import testing
from ...layers.planar import constrain_u, planar_forward
from ...layers.radial import constrain_alpha_beta, radial_forward, radial_inverse
from ._core import Mistake, _is_stub, exercise
from ._tools import close as _close
from ._tools import first_match as _first_match
from ._tools import gradient_hint, gradients
from ._tools import pair as _pair

__all__ = ["planar_layer", "radial_layer"]

_F64 = torch.float64
_TOL = 1e-7


# --- helpers ---------------------------------------------------------------------------------


def _build(cls: object, dim: int, names: tuple[str, ...], shapes: dict[str, tuple]) -> nn.Module:
    """``cls(dim)`` in float64, checked to hold the named parameters with the right shapes."""
    if not isinstance(cls, type):
        raise Mistake(
            f"pass the class itself, not {type(cls).__name__} object.",
            "leave out the parentheses (check.planar_layer(Planar)): the check builds layers "
            "of several sizes itself.",
        )
    layer = cls(dim)
    if not isinstance(layer, nn.Module):
        raise Mistake(
            f"{cls.__name__}({dim}) is not a torch.nn.Module.",
            "subclass nn.Module and call super().__init__() first in __init__.",
        )
    params = dict(layer.named_parameters())
    for name in names:
        if name not in params:
            what = "missing" if not hasattr(layer, name) else "not an nn.Parameter"
            raise Mistake(
                f"{cls.__name__}({dim}).{name} is {what}.",
                f"keep the parameters of the given __init__: self.{name} = nn.Parameter(...), "
                "so that an optimizer trains them and the check can set them.",
            )
        want = shapes[name]
        if tuple(params[name].shape) not in want:
            raise Mistake(
                f"{cls.__name__}({dim}).{name} has shape {tuple(params[name].shape)}, expected "
                f"{' or '.join(str(w) for w in want)}.",
                "keep the parameters of the given __init__.",
            )
    return layer.to(_F64)


def _set(layer: nn.Module, **values: Tensor) -> None:
    with torch.no_grad():
        for name, value in values.items():
            getattr(layer, name).copy_(value)


def _attr(layer: nn.Module, name: str) -> object:
    """A property's value, or the result of calling a method of that name."""
    value = getattr(layer, name)
    return value() if callable(value) and not isinstance(value, Tensor) else value


def _check_shapes(x: Tensor, ladj: Tensor, z: Tensor, method: str, name: str = "x") -> None:
    if x.shape != z.shape:
        raise Mistake(
            f"{method}: {name} has shape {tuple(x.shape)} for input of shape {tuple(z.shape)}.",
            f"{name} must have the input's shape. A per-point scalar s of shape (N,) multiplies "
            "a vector as s[..., None] * vector.",
        )
    if ladj.shape != z.shape[:-1]:
        if ladj.shape == z.shape[:-1] + (1,):
            hint = "drop the last dimension: no keepdim=True, or .squeeze(-1)."
        elif ladj.dim() == 0:
            hint = (
                "you reduced over the batch (a .sum() or .mean() too many): keep one value "
                "per point."
            )
        else:
            hint = (
                "ladj has one value per point, shape z.shape[:-1]: take dot products over the "
                "last dimension (z @ w or (z * w).sum(-1), .norm(dim=-1)), not dim=1."
            )
        raise Mistake(
            f"{method}: ladj has shape {tuple(ladj.shape)} for input of shape "
            f"{tuple(z.shape)}, expected {tuple(z.shape[:-1])} (one value per point).",
            hint,
        )


def _autograd(cls: type, layer: nn.Module, z: Tensor, what: str) -> None:
    """ladj against log|det| of the autograd Jacobian of the learner's own map.

    Runs after x and ladj matched the reference: a gap here means that autograd
    does not see the map the layer applies (part of it computed from detached tensors).
    """
    _, ladj = layer(z)
    expected = testing.autograd_ladj(lambda p: layer(p)[0], z)
    if not _close(ladj, expected, 1e-6):
        raise Mistake(
            f"{what}: x and ladj are right, but log|det J| of your map from autograd is "
            f"{[round(v, 6) for v in expected.tolist()]}, not ladj = "
            f"{[round(v, 6) for v in ladj.detach().tolist()]}: autograd does not see the map "
            "you apply.",
            gradient_hint(
                cls, "the input z", "a flow of such layers computes wrong gradients for the "
                "layers before it"
            ),
        )


def _check_gradients(
    cls: type, layer: nn.Module, z: Tensor, method: str, reference: Callable, names: tuple
) -> None:
    """Gradients of a weighted sum of output and ladj reach each parameter as in the reference.

    ``reference(params)`` applies nfcourse's functional form to leaf copies of the
    named parameters. Catches a layer that gives the right values from detached
    parameters (``self.u.data``, a detached ``alpha_beta``): it passes every value
    check, and then cannot train.
    """
    g = torch.Generator().manual_seed(5)
    out, ladj = _pair(getattr(layer, method)(z), method, "x")
    weights = [torch.randn(t.shape, generator=g, dtype=_F64) for t in (out, ladj)]
    got = gradients(layer, list(zip((out, ladj), weights, strict=True)))
    leaves = {n: getattr(layer, n).detach().clone().requires_grad_() for n in names}
    ref_out, ref_ladj = reference(leaves)
    ((ref_out * weights[0]).sum() + (ref_ladj * weights[1]).sum()).backward()
    for name in names:
        grad, want = got[name], leaves[name].grad
        if grad is not None and _close(grad, want, 1e-6):
            continue
        if grad is None or not bool(grad.abs().max() > 0):
            message = (
                f"{method}: no gradient reaches the parameter `{name}` (after backward through "
                f"the output and ladj its .grad is {'None' if grad is None else 'zero'}), so "
                "training could never move it."
            )
        else:
            message = (
                f"{method}: the gradient with respect to `{name}` is {grad.tolist()}, but "
                f"through the map it is {want.tolist()}: part of the computation is hidden "
                "from autograd."
            )
        raise Mistake(message, gradient_hint(cls, f"`{name}`"))


def _override(cls: type, name: str, fn: Callable) -> type | None:
    """A subclass of ``cls`` whose ``name`` (a property or a method) returns ``fn(self)``."""
    static = inspect.getattr_static(cls, name, None)
    if isinstance(static, property):
        return type(f"{cls.__name__}Check", (cls,), {name: property(fn)})
    if callable(static):
        return type(f"{cls.__name__}Check", (cls,), {name: lambda self: fn(self)})
    return None


# --- Exercise 3.1: the planar layer ------------------------------------------------------------


_PLANAR_SHAPES = {"u": [(2,), (3,)], "w": [(2,), (3,)], "b": [(), (1,)]}


def _planar_params(dim: int, seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "u": 1.3 * torch.randn(dim, dtype=_F64, generator=g),
        "w": 1.1 * torch.randn(dim, dtype=_F64, generator=g),
        "b": torch.tensor(0.4, dtype=_F64),
    }


def _check_u_hat(cls: type) -> None:
    layer = _build(cls, 2, ("u", "w", "b"), _PLANAR_SHAPES)
    w = torch.tensor([1.2, -1.6], dtype=_F64)  # |w| = 2, so |w| and |w|^2 differ
    for u, case in ((-5 * w, "u = -5 w"), (torch.tensor([1.9, 0.7], dtype=_F64), "a valid u")):
        _set(layer, u=u, w=w, b=torch.tensor(0.0, dtype=_F64).reshape(layer.b.shape))
        u_hat = _attr(layer, "u_hat")
        if not isinstance(u_hat, Tensor) or u_hat.shape != (2,):
            got = tuple(u_hat.shape) if isinstance(u_hat, Tensor) else type(u_hat).__name__
            raise Mistake(
                f"u_hat must be a tensor of shape (D,) = (2,), got {got}.",
                "return u moved along w: u + (m - w.u) * w / (w @ w).",
            )
        wu_hat = float(w @ u_hat.detach().to(_F64))
        expected = constrain_u(u, w)
        wu = float(w @ u)
        if _close(u_hat, u):
            if wu <= -1:
                raise Mistake(
                    f"for {case} (w.u = {wu:g}) your u_hat is u itself: w.u_hat = {wu_hat:g} "
                    "<= -1, and the layer folds the plane.",
                    "the constraint is missing: set u_hat = u + (m(w.u) - w.u) w / ||w||^2 with "
                    "m(a) = -1 + softplus(a), which makes w.u_hat = m(w.u) > -1 for any u.",
                )
            raise Mistake(
                f"for {case} (w.u = {wu:.4g} > -1) your u_hat is u itself; Rezende and Mohamed's "
                f"u_hat has w.u_hat = -1 + softplus(w.u) = {float(w @ expected):.4g}.",
                "apply the reparameterization to every u, not only to those that break the "
                "constraint: a smooth map of u is what lets gradient descent move u freely.",
            )
        if not wu_hat > -1:
            raise Mistake(
                f"for {case} (w.u = {wu:g}) your u_hat has w.u_hat = {wu_hat:.6g} <= -1: the "
                "constraint is not enforced.",
                "u_hat = u + (m(w.u) - w.u) w / ||w||^2 with m(a) = -1 + softplus(a): then "
                "w.u_hat = m(w.u), and softplus > 0. Check the sign of (m - w.u).",
            )
        if _close(u_hat, expected):
            continue
        m = -1 + F.softplus(w @ u)
        variants = [
            (
                u + (m - wu) * w / w.norm(),
                "divide by ||w||^2 = w @ w, not by ||w||: dotting "
                "with w must give w.u + (m - w.u) = m.",
            ),
            (
                u + (F.softplus(w @ u) - wu) * w / (w @ w),
                "m(a) = -1 + softplus(a): you left out "
                "the -1 (then w.u_hat > 0, which needlessly forbids pulling points towards the "
                "hyperplane).",
            ),
            (
                u + (wu - m) * w / (w @ w),
                "the correction is (m - w.u) w / ||w||^2: you have it the other way round.",
            ),
        ]
        hint = _first_match(u_hat, variants) or (
            "use exactly u_hat = u + (m(w.u) - w.u) w / ||w||^2 with m(a) = -1 + softplus(a) "
            "(F.softplus), as in Rezende and Mohamed (2015), appendix A.1."
        )
        raise Mistake(
            f"for {case}, u_hat = {u_hat.detach().tolist()}, expected {expected.tolist()}.", hint
        )


def _planar_variants(z, u, u_hat, w, b) -> list[tuple[Tensor, str]]:
    s = z @ w + b
    wu_hat, wu = w @ u_hat, w @ u
    t = torch.tanh(s)
    good = 1 + wu_hat * (1 - t**2)
    return [
        (-good.log(), "the sign is flipped: forward returns +log|det dx/dz|."),
        (good, "you returned the determinant itself; ladj is its log: torch.log(...)."),
        (
            (1 + wu_hat * (1 - t)).abs().log(),
            "wrong derivative of tanh: tanh'(s) = 1 - tanh(s)^2 (you forgot the square).",
        ),
        (
            (1 + wu_hat * (1 - torch.tanh(z @ w) ** 2)).abs().log(),
            "tanh' is evaluated at s = w.z + b: you left out b.",
        ),
        (
            (1 + wu_hat / torch.cosh(s)).abs().log(),
            "wrong derivative of tanh: tanh'(s) = "
            "1 / cosh(s)^2 = 1 - tanh(s)^2 (you forgot the square).",
        ),
        (
            (1 + wu_hat * t**2).abs().log(),
            "wrong derivative of tanh: tanh'(s) = 1 - tanh(s)^2, not tanh(s)^2.",
        ),
        (
            (1 + (1 - t**2)).abs().log(),
            "the matrix determinant lemma gives "
            "det(I + u_hat w^T tanh') = 1 + (w.u_hat) tanh': you left out the factor w.u_hat.",
        ),
        ((1 + wu * (1 - t**2)).abs().log(), "use w.u_hat in the log-det, not w.u (the raw u)."),
        (
            (1 + (u_hat @ u_hat) * (1 - t**2)).abs().log(),
            "the factor is the dot product w.u_hat, not ||u_hat||^2.",
        ),
    ]


def _check_planar_forward(cls: type) -> None:
    for dim, seed in ((2, 0), (3, 1)):
        layer = _build(cls, dim, ("u", "w", "b"), _PLANAR_SHAPES)
        p = _planar_params(dim, seed)
        _set(layer, u=p["u"], w=p["w"], b=p["b"].reshape(layer.b.shape))
        u_hat = constrain_u(p["u"], p["w"])
        z = 1.5 * torch.randn(6, dim, dtype=_F64, generator=torch.Generator().manual_seed(seed))
        x, ladj = _pair(layer(z), "forward", "x")
        _check_shapes(x, ladj, z, "forward")
        x_ref, ladj_ref = planar_forward(z, u_hat, p["w"], p["b"])
        if not _close(x, x_ref):
            s = z @ p["w"] + p["b"]
            variants = [
                (
                    z + p["u"] * torch.tanh(s)[:, None],
                    "the map uses u_hat (the constrained "
                    "direction), not the raw u: x = z + self.u_hat * tanh(w.z + b).",
                ),
                (
                    z + u_hat * torch.tanh(z @ p["w"])[:, None],
                    "you left out b: x = z + u_hat tanh(w.z + b).",
                ),
                (z - u_hat * torch.tanh(s)[:, None], "the sign: x = z + u_hat tanh(w.z + b)."),
            ]
            hint = _first_match(x, variants) or (
                "x = z + u_hat * tanh(s)[..., None] with s = z @ w + b, one s per point."
            )
            raise Mistake(f"forward: x differs from the planar map (D = {dim}).", hint)
        if not _close(ladj, ladj_ref):
            hint = _first_match(ladj, _planar_variants(z, p["u"], u_hat, p["w"], p["b"])) or (
                "ladj = log|1 + (w.u_hat) tanh'(w.z + b)| with tanh'(s) = 1 - tanh(s)^2, by the "
                "matrix determinant lemma det(I + a c^T) = 1 + c.a."
            )
            raise Mistake(
                f"forward: ladj = {ladj.detach().tolist()[:3]}..., expected "
                f"{ladj_ref.tolist()[:3]}... (D = {dim}).",
                hint,
            )
        _autograd(cls, layer, z[:3], "forward")
        _check_leading_batch(
            layer, z, "work on the last dimension only (z @ w, [..., None]), so that any leading "
            "batch shape works."
        )
    _check_gradients(
        cls,
        layer,
        z,
        "forward",
        lambda p: planar_forward(z, constrain_u(p["u"], p["w"]), p["w"], p["b"].reshape(())),
        ("u", "w", "b"),
    )


def _check_leading_batch(layer: nn.Module, z: Tensor, hint: str) -> None:
    """Points of shape (2, 3, D) must give x of that shape and ladj of shape (2, 3)."""
    dim = z.shape[-1]
    folded = z.reshape(2, 3, dim)
    x2, ladj2 = _pair(layer(folded), "forward", "x")
    if x2.shape != folded.shape or ladj2.shape != (2, 3):
        raise Mistake(
            f"forward on points of shape (2, 3, {dim}) returned x of shape "
            f"{tuple(x2.shape)} and ladj of shape {tuple(ladj2.shape)}.",
            hint,
        )


def _check_planar_abs(cls: type) -> None:
    """With the constraint switched off (u_hat = u, w.u = -3), ladj must stay log|det|, not NaN."""
    unconstrained = _override(cls, "u_hat", lambda self: self.u)
    if unconstrained is None:
        return
    layer = _build(unconstrained, 2, ("u", "w", "b"), _PLANAR_SHAPES)
    w = torch.tensor([1.0, 0.0], dtype=_F64)
    _set(layer, u=-3 * w, w=w, b=torch.tensor(0.0, dtype=_F64).reshape(layer.b.shape))
    z = torch.tensor([[0.1, 0.3], [-0.4, 1.0], [2.5, -1.0]], dtype=_F64)
    _, ladj = layer(z)
    if torch.isnan(ladj.detach()).any():
        raise Mistake(
            "with the constraint switched off (the check made u_hat return u, with w.u = -3), "
            f"your ladj is {ladj.detach().tolist()}: NaN where 1 + (w.u) tanh' < 0.",
            "you forgot the absolute value: ladj = log|det J| = torch.log(torch.abs(...)). The "
            "constraint keeps the determinant positive, but ladj is defined with |.|.",
        )


@exercise("Exercise 3.1")
def planar_layer(cls: type) -> str:
    """Check a learner's ``Planar`` class (Exercise 3.1)."""
    _check_u_hat(cls)
    _check_planar_forward(cls)
    _check_planar_abs(cls)
    return (
        "u_hat keeps w.u_hat > -1 (also for u = -5 w), and x and ladj match nfcourse.layers.planar "
        "and the autograd Jacobian in float64, for D = 2 and 3."
    )


# --- Exercise 3.2: the radial layer ------------------------------------------------------------


_RADIAL_SHAPES = {"z0": [(2,), (3,)], "alpha_raw": [(), (1,)], "beta_raw": [(), (1,)]}


def _alpha_beta(layer: nn.Module) -> tuple[Tensor, Tensor]:
    out = _attr(layer, "alpha_beta")
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
        raise Mistake(
            f"alpha_beta must return a pair of tensors (alpha, beta), got {type(out).__name__}.",
            "end it with `return alpha, beta`.",
        )
    return out


def _set_radial(layer: nn.Module, z0: Tensor, alpha_raw: float, beta_raw: float) -> None:
    _set(
        layer,
        z0=z0,
        alpha_raw=torch.tensor(alpha_raw, dtype=_F64).reshape(layer.alpha_raw.shape),
        beta_raw=torch.tensor(beta_raw, dtype=_F64).reshape(layer.beta_raw.shape),
    )


def _check_alpha_beta(cls: type) -> None:
    layer = _build(cls, 2, ("z0", "alpha_raw", "beta_raw"), _RADIAL_SHAPES)
    for a_raw, b_raw in ((-2.0, -3.0), (0.5, 1.5), (1.0, -0.5)):
        _set_radial(layer, torch.zeros(2, dtype=_F64), a_raw, b_raw)
        alpha, beta = (t.detach().to(_F64).reshape(()) for t in _alpha_beta(layer))
        ra, rb = (torch.tensor(v, dtype=_F64) for v in (a_raw, b_raw))
        ref_alpha, ref_beta = constrain_alpha_beta(ra, rb)
        case = f"alpha_raw = {a_raw:g}, beta_raw = {b_raw:g}"
        if not (alpha > 0 and beta >= -alpha):
            missing = _close(alpha, ra) and _close(beta, rb)
            raise Mistake(
                f"for {case}: alpha = {alpha.item():.4g}, beta = {beta.item():.4g}, which breaks "
                "alpha > 0, beta >= -alpha.",
                ("the constraint is missing: you returned the raw values. " if missing else "")
                + "Use alpha = softplus(alpha_raw) and beta = -alpha + softplus(beta_raw).",
            )
        if _close(alpha, ref_alpha) and _close(beta, ref_beta):
            continue
        if not _close(alpha, ref_alpha):
            hint = (
                "alpha = softplus(alpha_raw) (F.softplus), not exp: the check compares with "
                "nfcourse.layers.radial exactly."
                if _close(alpha, ra.exp())
                else "alpha = F.softplus(alpha_raw)."
            )
        elif _close(beta, F.softplus(rb)):
            hint = (
                "beta = -alpha + softplus(beta_raw): you left out -alpha, so beta > 0 only and "
                "the layer can never pull points in."
            )
        else:
            hint = "beta = -alpha + F.softplus(beta_raw): then beta >= -alpha for any beta_raw."
        raise Mistake(
            f"for {case}: (alpha, beta) = ({alpha.item():.6g}, {beta.item():.6g}), expected "
            f"({ref_alpha.item():.6g}, {ref_beta.item():.6g}).",
            hint,
        )


def _radial_variants(z, z0, alpha, beta) -> list[tuple[Tensor, str]]:
    D = z.shape[-1]
    r = (z - z0).norm(dim=-1)
    h = 1 / (alpha + r)
    a, c = torch.log(1 + beta * h), torch.log(1 + beta * h - beta * r * h**2)
    good = (D - 1) * a + c
    wrong_hprime = "wrong h'(r): h(r) = 1 / (alpha + r) has h'(r) = -1 / (alpha + r)^2 = -h^2, "
    return [
        (-good, "the sign is flipped: forward returns +log|det dx/dz|."),
        (
            D * a + c,
            "the factor (1 + beta h) appears D - 1 times, not D: the Jacobian has "
            "eigenvalue 1 + beta h on the D - 1 directions orthogonal to z - z0, and "
            "1 + beta h + beta h'(r) r along it.",
        ),
        (
            a + c,
            "(D - 1) log(1 + beta h): you wrote the 2-D formula (D - 1 = 1). The check uses "
            "D = 3; take D from z.shape[-1].",
        ),
        (torch.exp(good), "you returned the determinant itself; ladj is its log."),
        (
            (D - 1) * a + torch.log(1 + beta * h + beta * r * h**2),
            wrong_hprime + "so the last term is log(1 + beta h - beta r h^2) (a minus sign).",
        ),
        (
            (D - 1) * a + torch.log((1 + beta * h - beta * r * h).abs()),
            wrong_hprime + "squared: 1 + beta h - beta r h^2.",
        ),
        (
            (D - 1) * a + torch.log(1 + beta * h - beta * h**2),
            "the term along z - z0 is 1 + beta h + beta h'(r) r: you left out the factor r.",
        ),
        (
            (D - 1) * a,
            "you left out the eigenvalue along z - z0: + log(1 + beta h + beta h'(r) r).",
        ),
    ]


def _check_radial_forward(cls: type) -> list[tuple[nn.Module, Tensor]]:
    layers = []
    cases = ((3, 0, 0.3, 0.8), (3, 1, 0.2, -1.0), (2, 2, -0.5, 2.0))  # expand, contract, 2-D
    for dim, seed, a_raw, b_raw in cases:
        layer = _build(cls, dim, ("z0", "alpha_raw", "beta_raw"), _RADIAL_SHAPES)
        g = torch.Generator().manual_seed(seed)
        z0 = torch.randn(dim, dtype=_F64, generator=g)
        _set_radial(layer, z0, a_raw, b_raw)
        alpha, beta = constrain_alpha_beta(*(torch.tensor(v, dtype=_F64) for v in (a_raw, b_raw)))
        z = (
            z0
            + torch.randn(6, dim, dtype=_F64, generator=g)
            * torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 0.3], dtype=_F64)[:, None]
        )
        x, ladj = _pair(layer(z), "forward", "x")
        _check_shapes(x, ladj, z, "forward")
        x_ref, ladj_ref = radial_forward(z, z0, alpha, beta)
        if not _close(x, x_ref):
            r = (z - z0).norm(dim=-1, keepdim=True)
            variants = [
                (
                    z + beta / (alpha + r**2) * (z - z0),
                    "r is the distance ||z - z0|| (.norm(dim=-1)), not its square.",
                ),
                (z + beta / (alpha + r) * (z0 - z), "x = z + beta h(r) (z - z0): you used z0 - z."),
                (
                    z + beta / (alpha + r) * z,
                    "x = z + beta h(r) (z - z0): the offset from z0, not z itself.",
                ),
            ]
            hint = _first_match(x, variants) or (
                "x = z + (beta * h)[..., None] * (z - z0) with h = 1 / (alpha + r), "
                "r = (z - z0).norm(dim=-1), and (alpha, beta) from alpha_beta."
            )
            raise Mistake(f"forward: x differs from the radial map (D = {dim}).", hint)
        if not _close(ladj, ladj_ref):
            hint = _first_match(ladj, _radial_variants(z, z0, alpha, beta)) or (
                "ladj = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r), "
                "h = 1 / (alpha + r), h'(r) = -h^2."
            )
            raise Mistake(
                f"forward: ladj = {[round(v, 6) for v in ladj.detach().tolist()[:3]]}..., "
                f"expected {[round(v, 6) for v in ladj_ref.tolist()[:3]]}... (D = {dim}).",
                hint,
            )
        _autograd(cls, layer, z[1:4], "forward")
        _check_leading_batch(
            layer, z, "work on the last dimension only (.norm(dim=-1), [..., None])."
        )
        layers.append((layer, z))
    layer, z = layers[0]
    _check_gradients(cls, layer, z, "forward", lambda p: radial_forward(z, *_radial(p)), _RADIAL)
    return layers


_RADIAL = ("z0", "alpha_raw", "beta_raw")


def _radial(p: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """``z0, alpha, beta`` from the raw parameters, by nfcourse's constraint."""
    return (p["z0"], *constrain_alpha_beta(p["alpha_raw"].reshape(()), p["beta_raw"].reshape(())))


def _check_radial_inverse(cls: type, layers: list[tuple[nn.Module, Tensor]]) -> str:
    """The optional inverse: skipped (with a note) if missing or still a stub."""
    if not callable(getattr(layers[0][0], "inverse", None)):
        return " (The optional inverse is not written.)"
    for layer, z in layers:
        x, ladj = layer(z)
        try:
            out = layer.inverse(x.detach())
        except NotImplementedError as error:
            if not _is_stub(error):
                raise
            return " (The optional inverse is not written yet.)"
        z_back, ladj_inv = _pair(out, "inverse", "z")
        _check_shapes(z_back, ladj_inv, x, "inverse", "z")
        dim = z.shape[-1]
        if not _close(z_back, z, 1e-6):
            raise Mistake(
                f"inverse(forward(z)) differs from z by up to "
                f"{(z_back.detach() - z).abs().max().item():.3g} (D = {dim}).",
                "with R = ||x - z0||, solve R = r (alpha + beta + r) / (alpha + r) for r >= 0: "
                "r^2 + (alpha + beta - R) r - alpha R = 0, take the non-negative root, then "
                "z = z0 + (x - z0) / (1 + beta h(r)).",
            )
        if not _close(ladj_inv, -ladj.detach(), 1e-6):
            hint = (
                "the inverse's ladj is minus the forward ladj at the matching z: you returned "
                "it with the wrong sign."
                if _close(ladj_inv, ladj.detach(), 1e-6)
                else "compute the forward ladj at the recovered radius r, and negate it."
            )
            raise Mistake(f"inverse: ladj is not -forward ladj (D = {dim}).", hint)
    layer, z = layers[0]
    x = layer(z)[0].detach()
    _check_gradients(cls, layer, x, "inverse", lambda p: radial_inverse(x, *_radial(p)), _RADIAL)
    return " The inverse undoes forward, and its ladj is minus forward's."


@exercise("Exercise 3.2")
def radial_layer(cls: type) -> str:
    """Check a learner's ``Radial`` class (Exercise 3.2)."""
    _check_alpha_beta(cls)
    layers = _check_radial_forward(cls)
    note = _check_radial_inverse(cls, layers)
    return (
        "alpha > 0 and beta >= -alpha for any raw values, and x and ladj match "
        "nfcourse.layers.radial and the autograd Jacobian in float64, for D = 2 and 3." + note
    )
