"""Checks of lesson 01 (change of variables).

- Exercise 1.1, :func:`log_density_exp`: ``log_density_exp(x)``, the log-density of
  ``X = exp(Z)`` with ``Z ~ N(0, 1)`` (the log-normal), elementwise on a tensor ``x``
  of any shape: ``log p_X(x) = log p_Z(ln x) - ln x`` for ``x > 0`` and ``-inf``
  for ``x <= 0`` (density 0 outside the range of ``exp``).
- Exercise 1.2, :func:`log_abs_det_2x2`: ``log_abs_det_2x2(J)``, ``log|det J|`` of
  2x2 matrices ``J`` of shape ``(*, 2, 2)``, shape ``(*)``, from ``det = ad - bc``;
  ``-inf`` for a singular matrix.
- Exercise 1.3, :func:`linear_log_density`: ``linear_log_density(x, A, b)``, the
  log-density of ``X = A Z + b`` with ``Z ~ N(0, I_2)`` at points ``x`` of shape
  ``(N, 2)``: ``log p_Z(A^{-1}(x - b)) - log|det A|``.

Each check compares the learner's function with the reference on inputs it
chooses (float64), recognizes the typical wrong variants to name the mistake,
and answers in a few milliseconds.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._core import Mistake, exercise
from ._tools import as_tensor
from ._tools import close as _close
from ._tools import first_match as _first_match

__all__ = ["linear_log_density", "log_abs_det_2x2", "log_density_exp"]

LOG_2PI = math.log(2 * math.pi)
INF = math.inf


def _as_tensor(out: object, what: str) -> Tensor:
    return as_tensor(
        out,
        what,
        "compute with torch operations (torch.log, torch.where, ...) on the input tensor and "
        "return the resulting tensor; `math` functions work on plain numbers only.",
    )


# --- helpers ---------------------------------------------------------------------------------


def _shape(out: Tensor, want: Tensor, what: str, hint: str) -> None:
    if out.shape != want.shape:
        raise Mistake(f"{what} must have shape {tuple(want.shape)}, got {tuple(out.shape)}.", hint)


def _first_gap(out: Tensor, want: Tensor) -> int:
    """The index (flat) of the largest disagreement, NaN and infinities included."""
    gap = (out - want).abs()
    gap = torch.where(torch.isnan(gap) | torch.isinf(gap), torch.full_like(gap, INF), gap)
    gap = torch.where(out == want, torch.zeros_like(gap), gap)  # equal infinities
    return int(gap.flatten().argmax())


def _short(error: Exception, limit: int = 120) -> str:
    """The first line of an error message, cut to ``limit`` characters."""
    text = (str(error).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _round(values: Tensor) -> list:
    return [round(v, 3) for v in values.tolist()] if values.dim() else round(values.item(), 3)


# --- Exercise 1.1 ----------------------------------------------------------------------------


def _log_normal_z(z: Tensor) -> Tensor:
    return -0.5 * z * z - 0.5 * LOG_2PI


@exercise("Exercise 1.1")
def log_density_exp(log_density) -> str:
    """Check ``log_density(x)``: log-density of ``X = exp(Z)``, ``Z ~ N(0, 1)``, elementwise."""
    x = torch.tensor([0.05, 0.3, 0.7, 1.0, 1.6, 2.5, 4.0, 9.0], dtype=torch.float64)
    lx = x.log()
    want = _log_normal_z(lx) - lx
    out = _as_tensor(log_density(x.clone()), "log_density(x)")
    _shape(
        out,
        want,
        f"log_density(x) for x of shape {tuple(x.shape)}",
        "the density acts elementwise: return one log-density per entry of x, with x's "
        "shape (no sum, no mean).",
    )
    if not _close(out, want):
        variants = [
            (
                _log_normal_z(lx),
                "you returned log p_Z(ln x) only: the Jacobian term is missing. "
                "Z = ln X, and |dz/dx| = 1/x, so add log(1/x) = -ln x.",
            ),
            (
                _log_normal_z(lx) + lx,
                "the log-Jacobian has the wrong sign: log|dz/dx| = "
                "log(1/x) = -ln x, so subtract ln x (a density divides by how much the map "
                "stretches, |dx/dz| = e^z = x).",
            ),
            (
                want.exp(),
                "you returned the density p_X(x); the exercise asks for the "
                "log-density log p_X(x) (leave out the exp).",
            ),
            (
                -x,
                "that is the log-density of the *exponential* distribution, e^{-x}: the blog "
                "post's claim. exp of a standard normal is log-normal: log p_Z(ln x) - ln x.",
            ),
            (
                _log_normal_z(x) - x,
                "you evaluated the base density at x itself. The base point "
                "is z = ln x (the inverse of exp): log p_Z(ln x) - ln x.",
            ),
            (
                _log_normal_z(x.exp()) - x,
                "you applied the forward map exp to x; the density of "
                "X needs the *inverse* map z = ln x: log p_Z(ln x) - ln x.",
            ),
            (
                _log_normal_z(x.exp()) + x,
                "you applied the forward map exp to x; the density of "
                "X needs the *inverse* map z = ln x: log p_Z(ln x) - ln x.",
            ),
            (
                -lx * lx - 0.5 * LOG_2PI - lx,
                "log p_Z(z) = -z^2/2 - log(2 pi)/2: you left out the 1/2 in front of z^2.",
            ),
            (
                -0.5 * lx * lx - lx,
                "you left out the normalizing constant -log(2 pi)/2 of the standard normal.",
            ),
            (
                _log_normal_z(x.log10()) - x.log10(),
                "use the natural logarithm (torch.log), not log10.",
            ),
        ]
        hint = _first_match(out, variants) or (
            "log p_X(x) = log p_Z(z) + log|dz/dx| with z = ln x and dz/dx = 1/x. Compare at "
            "x = 1, where it equals log p_Z(0) = -log(2 pi)/2 = -0.918939."
        )
        i = _first_gap(out, want)
        raise Mistake(
            f"at x = {x[i].item():g} the log-density is {want[i].item():.6f}, your function "
            f"gave {out[i].item():.6f}.",
            hint,
        )
    # points outside the range of exp, mixed with points inside, in a 2-D batch
    xb = torch.tensor([[-2.0, 0.0, 1.0], [2.0, -0.5, 0.5]], dtype=torch.float64)
    lxb = xb.clamp_min(1e-300).log()
    wantb = torch.where(xb > 0, _log_normal_z(lxb) - lxb, torch.full_like(xb, -INF))
    try:
        raw = log_density(xb.clone())
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - the learner's code decides what it raises
        raise Mistake(
            f"log_density(x) raised {type(error).__name__} for x holding values <= 0 "
            f"({_short(error)}).",
            "x <= 0 lies outside the range of exp: no z maps there, so the density is 0 and "
            "the log-density -inf. Return -inf there instead of raising, e.g. "
            "torch.where(x > 0, <your formula>, torch.full_like(x, -torch.inf)).",
        ) from None
    outb = _as_tensor(raw, "log_density(x)")
    _shape(
        outb,
        wantb,
        "log_density(x) for x of shape (2, 3)",
        "return one value per entry of x, whatever x's shape: do not drop or filter the "
        "entries x <= 0; give them -inf.",
    )
    if not _close(outb, wantb):
        inside, outside = xb > 0, xb <= 0
        if not _close(outb[inside], wantb[inside]):
            i = _first_gap(outb[inside], wantb[inside])
            raise Mistake(
                f"for x of shape (2, 3) your values at x > 0 differ (at x = "
                f"{xb[inside][i].item():g}: expected {wantb[inside][i].item():.6f}, got "
                f"{outb[inside][i].item():.6f}).",
                "compute elementwise, so that the shape of x does not matter.",
            )
        bad = outb[outside]
        if torch.isnan(bad).any():
            hint = (
                "ln x is NaN for x < 0 (and -inf for x = 0, where -inf + inf gives NaN). The "
                "density there is 0, so the log-density is -inf: "
                "torch.where(x > 0, <your formula>, torch.full_like(x, -torch.inf))."
            )
        else:
            hint = (
                "no z maps to x <= 0 (exp is always positive), so the density there is 0 and "
                "the log-density -inf (not a finite number, not +inf)."
            )
        raise Mistake(
            f"at x = {_round(xb[outside])} the log-density must be -inf, your function gave "
            f"{_round(bad)}.",
            hint,
        )
    return "log p_X(x) = log p_Z(ln x) - ln x (the log-normal) at 8 points, and -inf where x <= 0."


# --- Exercise 1.2 ----------------------------------------------------------------------------


def _matrices() -> Tensor:
    """2x2 test matrices: general ones, negative determinants, a rotation-scale."""
    return torch.tensor(
        [
            [[2.0, 0.5], [-0.3, 1.2]],
            [[0.5, 1.5], [2.0, 0.4]],  # det < 0
            [[2.0, -2.0], [2.0, 2.0]],  # the blog post's: a rotation by 45 degrees, scale 2 sqrt 2
            [[-1.3, 0.7], [0.2, 0.9]],  # det < 0
            [[0.3, -0.8], [1.1, 0.25]],
        ],
        dtype=torch.float64,
    )


@exercise("Exercise 1.2")
def log_abs_det_2x2(log_abs_det) -> str:
    """Check ``log_abs_det(J)``: ``log|det J|`` for ``J`` of shape ``(*, 2, 2)``, shape ``(*)``."""
    J = _matrices()
    a, b, c, d = J[:, 0, 0], J[:, 0, 1], J[:, 1, 0], J[:, 1, 1]
    det = a * d - b * c
    want = det.abs().log()
    out = _as_tensor(log_abs_det(J.clone()), "log_abs_det(J)")
    if out.shape != want.shape:
        if out.numel() == 1:
            hint = "return one value per matrix, not one number for the whole batch."
        else:
            hint = (
                "index the entries with J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1] "
                "so that the result has one value per matrix, shape J.shape[:-2]."
            )
        raise Mistake(
            f"for J of shape {tuple(J.shape)} (5 matrices) the result must have shape (5,), "
            f"got {tuple(out.shape)}.",
            hint,
        )
    if not _close(out, want):
        negative = det < 0
        if torch.isnan(out[negative]).all() and _close(out[~negative], want[~negative]):
            hint = (
                "the absolute value is missing: two of the test matrices have det < 0 (the map "
                "flips orientation, like a mirror), and the log of a negative number is NaN. "
                "Volume change is |det J|: use log(|ad - bc|)."
            )
        else:
            hint = _first_match(
                out,
                [
                    (det, "you returned det J; the exercise asks for log|det J|."),
                    (det.abs(), "you returned |det J|; take its log: log|det J|."),
                    (
                        (a * d + b * c).abs().log(),
                        "the determinant of [[a, b], [c, d]] is ad - bc (minus, not plus).",
                    ),
                    (
                        (a + d).abs().log(),
                        "a + d, the sum of the diagonal, is the *trace*, not the "
                        "determinant: det = ad - bc.",
                    ),
                    (
                        (a * d).abs().log(),
                        "the product of the diagonal is the determinant only for a "
                        "triangular matrix: det = ad - bc.",
                    ),
                    (
                        a.abs().log() + d.abs().log(),
                        "the product of the diagonal is the determinant "
                        "only for a triangular matrix: det = ad - bc.",
                    ),
                    (
                        (a * b - c * d).abs().log(),
                        "pair the entries across the diagonals: det [[a, b], [c, d]] = ad - bc.",
                    ),
                    (det.abs().log10(), "use the natural logarithm (torch.log), not log10."),
                    (
                        0.5 * det.abs().log(),
                        "you halved it: log|det J| itself, not log sqrt|det J|.",
                    ),
                ],
            ) or (
                "log|det J| = log|ad - bc| with a = J[..., 0, 0], b = J[..., 0, 1], "
                "c = J[..., 1, 0], d = J[..., 1, 1]."
            )
        i = _first_gap(out, want)
        raise Mistake(
            f"for J = {J[i].tolist()} (det = {det[i].item():.4g}) log|det J| = "
            f"{want[i].item():.6f}, your function gave {out[i].item():.6f}.",
            hint,
        )
    # any leading batch shape, a single matrix, and a singular one
    gen = torch.Generator().manual_seed(1)
    Jb = torch.randn(3, 4, 2, 2, generator=gen, dtype=torch.float64)
    wantb = torch.linalg.slogdet(Jb).logabsdet
    outb = _as_tensor(log_abs_det(Jb.clone()), "log_abs_det(J)")
    if not _close(outb, wantb):
        raise Mistake(
            f"for J of shape (3, 4, 2, 2) the result must be log|det| of each of the 12 "
            f"matrices, shape (3, 4); got shape {tuple(outb.shape)}"
            + ("." if outb.shape != wantb.shape else " with other values."),
            "index with J[..., 0, 0] etc. (not J[:, 0, 0]) so that any leading batch shape works.",
        )
    single = torch.tensor([[3.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    outs = _as_tensor(log_abs_det(single.clone()), "log_abs_det(J)")
    if not _close(outs.reshape(()) if outs.numel() == 1 else outs, torch.tensor(math.log(2.0))):
        raise Mistake(
            f"for the single matrix J = {single.tolist()} (det = 2) the result must be log 2 = "
            f"0.693147, got {_round(outs)}.",
            "a single matrix has shape (2, 2): J[..., 0, 0] works for it as well.",
        )
    singular = torch.tensor([[[1.0, 2.0], [0.5, 1.0]]], dtype=torch.float64)
    outz = _as_tensor(log_abs_det(singular.clone()), "log_abs_det(J)")
    if not (outz.numel() == 1 and outz.flatten()[0].item() == -INF):
        raise Mistake(
            f"for the singular J = {singular[0].tolist()} (det = 0) log|det J| must be -inf, "
            f"got {_round(outz.flatten())}.",
            "det = 0: the map squashes the plane onto a line and has no inverse; log 0 = -inf "
            "says so. Do not add a small epsilon or clamp: that would hide it.",
        )
    return (
        "log|ad - bc| matches slogdet on 18 matrices (negative determinants and any batch "
        "shape included), and a singular matrix gives -inf."
    )


# --- Exercise 1.3 ----------------------------------------------------------------------------


def _standard_normal_2d(z: Tensor) -> Tensor:
    return -0.5 * z.pow(2).sum(-1) - LOG_2PI


@exercise("Exercise 1.3")
def linear_log_density(log_density) -> str:
    """Check ``log_density(x, A, b)``: the density of ``X = A Z + b``, ``Z ~ N(0, I_2)``."""
    gen = torch.Generator().manual_seed(3)
    x = 2 * torch.randn(7, 2, generator=gen, dtype=torch.float64)
    cases = [
        (
            torch.tensor([[1.5, 0.8], [-0.4, 0.6]], dtype=torch.float64),  # det > 0, not symmetric
            torch.tensor([0.5, -1.0], dtype=torch.float64),
        ),
        (
            torch.tensor([[0.3, 1.2], [1.0, 0.7]], dtype=torch.float64),  # det < 0
            torch.tensor([-0.7, 0.2], dtype=torch.float64),
        ),
    ]
    for A, b in cases:
        detA = torch.linalg.det(A)
        lad = detA.abs().log()
        Ainv = torch.linalg.inv(A)
        z = (x - b) @ Ainv.T
        want = _standard_normal_2d(z) - lad
        what = f"log_density(x, A, b) for x of shape {tuple(x.shape)}"
        out = _as_tensor(log_density(x.clone(), A.clone(), b.clone()), what)
        if out.shape != want.shape:
            if out.shape == x.shape:
                hint = (
                    "you returned one value per coordinate: the log-density of the standard "
                    "normal sums over the coordinates, `.sum(-1)`."
                )
            elif out.numel() == 1:
                hint = "return one log-density per point (per row of x), not a single number."
            else:
                hint = "return one log-density per point: shape (N,) for x of shape (N, 2)."
            raise Mistake(
                f"{what} must have shape {tuple(want.shape)}, got {tuple(out.shape)}.", hint
            )
        if _close(out, want):
            continue
        base = _standard_normal_2d(z)
        variants = [
            (
                base,
                "the Jacobian term is missing: subtract log|det A| (the linear map "
                "stretches every area by |det A|, so the density is divided by it).",
            ),
            (
                base + lad,
                "the log-Jacobian has the wrong sign: the map multiplies areas by "
                "|det A|, so the density is *divided* by it: subtract log|det A|.",
            ),
            (want.exp(), "you returned the density; the exercise asks for the log-density."),
            (
                _standard_normal_2d((x - b) @ A.T) - lad,
                "you applied A to x - b; the base point "
                "is found with the *inverse*: z = A^{-1}(x - b), e.g. "
                "torch.linalg.solve(A, (x - b).T).T.",
            ),
            (
                _standard_normal_2d((x - b) @ A.T) + lad,
                "you applied A to x - b; the base point "
                "is found with the *inverse*: z = A^{-1}(x - b), and the log-Jacobian term is "
                "-log|det A|.",
            ),
            (
                _standard_normal_2d((x - b) @ Ainv) - lad,
                "the inverse is applied transposed. The "
                "points are the rows of x, so z = (x - b) @ A^{-1}.T (A^{-1} acting on each row "
                "as a column vector), or torch.linalg.solve(A, (x - b).T).T.",
            ),
            (
                _standard_normal_2d(x @ Ainv.T) - lad,
                "subtract the shift b first: z = A^{-1}(x - b).",
            ),
            (
                _standard_normal_2d(x @ Ainv.T - b) - lad,
                "undo the steps in reverse order: first "
                "subtract b, then apply A^{-1}: z = A^{-1}(x - b).",
            ),
            (
                -0.5 * z.pow(2).sum(-1) - lad,
                "the 2-D standard normal has the normalizing "
                "constant -log(2 pi) (that is, -(D/2) log(2 pi) with D = 2).",
            ),
            (
                -0.5 * z.pow(2).sum(-1) - 0.5 * LOG_2PI - lad,
                "the constant of the 2-D standard "
                "normal is -(D/2) log(2 pi) = -log(2 pi) with D = 2, not -log(2 pi)/2.",
            ),
            (base - detA.abs(), "subtract the *log* of |det A|, not |det A| itself."),
        ]
        if detA < 0 and torch.isnan(out).all():
            hint = (
                f"here det A = {detA.item():.4g} < 0 (the map flips orientation) and the log of "
                "a negative number is NaN: the Jacobian term is -log|det A|, with the absolute "
                "value (torch.linalg.slogdet(A).logabsdet, or detA.abs().log())."
            )
        else:
            hint = _first_match(out, variants) or (
                "log p_X(x) = log p_Z(z) - log|det A| with z = A^{-1}(x - b) and log p_Z the "
                "2-D standard normal: -||z||^2/2 - log(2 pi)."
            )
        i = _first_gap(out, want)
        raise Mistake(
            f"with A = {A.tolist()} (det A = {detA.item():.4g}), b = {b.tolist()}: at x = "
            f"{_round(x[i])} the log-density is {want[i].item():.6f}, your function gave "
            f"{out[i].item():.6f}.",
            hint,
        )
    return (
        "log p_Z(A^{-1}(x - b)) - log|det A| matches MultivariateNormal(b, A A^T) for two "
        "matrices, one with det A < 0."
    )
