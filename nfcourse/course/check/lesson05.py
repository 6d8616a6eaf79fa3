"""Checks of lesson 05 (autoregressive flows): MADE's masks and MAF's sampling loop.

Both checks run the learner's code on networks the check builds (small
:class:`nfcourse.MADE` s, one with a permuted order, in float64) and compare
with the reference rule and with properties: a strictly lower-triangular
connectivity for the masks; for the sampling loop, that the one-pass inverse
of MAF gives back ``z`` and that ``ladj`` matches the autograd Jacobian. A
wrong answer is compared with the typical mistakes to name the likely one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ...nets import MADE
from ...testing import autograd_ladj
from ._core import Mistake, exercise

__all__ = ["made_masks", "maf_sample"]

F64 = torch.float64


# --- Exercise 5.1: MADE's masks -------------------------------------------------------------------


def _rule(degrees: list[Tensor], hidden: str, output: str) -> list[Tensor]:
    """Masks from degrees with the given comparisons (">=", ">", "<=", "<") as 0./1."""
    ops = {">=": torch.ge, ">": torch.gt, "<=": torch.le, "<": torch.lt}
    masks = []
    for k, (d_in, d_out) in enumerate(zip(degrees[:-1], degrees[1:], strict=True)):
        op = ops[output if k == len(degrees) - 2 else hidden]
        masks.append(op(d_out[:, None], d_in[None, :]).to(F64))
    return masks


def _made_cases() -> list[tuple[str, MADE]]:
    return [
        ("D = 2, hidden (3,), 2 outputs per coordinate", MADE(2, hidden=(3,), params=2)),
        ("D = 3, hidden (5, 4), 1 output per coordinate", MADE(3, hidden=(5, 4), params=1)),
        (
            "D = 4, hidden (5, 6), order [3, 1, 4, 2], 2 outputs per coordinate",
            MADE(4, hidden=(5, 6), params=2, order=torch.tensor([3, 1, 4, 2])),
        ),
    ]


def _as_masks(out: object, degrees: list[Tensor], case: str) -> list[Tensor]:
    """The learner's masks as float64 tensors, after checking count, shapes and values."""
    n = len(degrees) - 1
    if isinstance(out, Tensor) or not isinstance(out, (list, tuple)):
        raise Mistake(
            f"made_masks returned a {type(out).__name__}; expected a list of {n} masks "
            f"({case}).",
            "return a Python list with one 0/1 tensor per weight matrix: input -> hidden 1, "
            "hidden -> hidden, ..., last hidden -> output, i.e. len(degrees) - 1 masks.",
        )
    if len(out) != n:
        raise Mistake(
            f"made_masks returned {len(out)} masks for {len(degrees)} layers of units; "
            f"expected {n} ({case}).",
            "one mask per pair of consecutive layers: zip(degrees[:-1], degrees[1:]).",
        )
    masks = []
    for k, mask in enumerate(out):
        shape = (len(degrees[k + 1]), len(degrees[k]))
        try:
            mask = torch.as_tensor(mask).detach().to(F64)
        except (TypeError, ValueError, RuntimeError):
            raise Mistake(
                f"mask {k + 1} is a {type(mask).__name__}, not a tensor ({case}).",
                "build each mask as a tensor, e.g. (d_out[:, None] >= d_in[None, :]).float().",
            ) from None
        if mask.shape != shape:
            transposed = mask.shape == shape[::-1]
            raise Mistake(
                f"mask {k + 1} has shape {tuple(mask.shape)}; expected {shape} = "
                f"(units of the next layer, units of the previous layer) ({case}).",
                "the mask is transposed: it multiplies a weight of shape (out, in), like "
                "nn.Linear.weight, so rows are the next layer's units: "
                "d_out[:, None] compared with d_in[None, :]."
                if transposed
                else "compare every unit of the next layer with every unit of the previous "
                "one by broadcasting: d_out[:, None] >= d_in[None, :] has shape "
                "(len(d_out), len(d_in)).",
            )
        if not ((mask == 0) | (mask == 1)).all():
            raise Mistake(
                f"mask {k + 1} holds values other than 0 and 1 ({case}).",
                "a mask keeps (1) or cuts (0) a connection: turn the comparison into "
                "numbers with .float().",
            )
        masks.append(mask)
    return masks


def _connectivity(masks: list[Tensor]) -> Tensor:
    paths = masks[0]
    for mask in masks[1:]:
        paths = mask @ paths
    return paths


_VARIANTS = [
    (
        (">=", ">="),
        "the output layer must compare strictly: an output of degree d sees the hidden units "
        "of degree < d (d_out > d_in). With >= an output sees units of its own degree, which "
        "see its own input, so x_d's shift and scale would depend on x_d itself: the Jacobian "
        "gets a non-zero diagonal term from the network, and ladj = sum of log-scales is wrong.",
    ),
    (
        (">", ">"),
        "hidden layers must compare with >= (only the output layer is strict): a hidden unit of "
        "degree d may see the units below with degree <= d. With > a unit of degree 1 sees no "
        "input at all, and allowed connections go missing (output d no longer sees input d - 1).",
    ),
    (
        (">", ">="),
        "the two rules are swapped: hidden layers use >= (a unit of degree d sees degrees <= d), "
        "the output layer uses > (an output must not see its own input).",
    ),
    (
        ("<=", "<"),
        "the comparison points the wrong way: a unit of degree d sees units of SMALLER degree "
        "(d_out[:, None] >= d_in[None, :]), so that outputs depend on earlier coordinates.",
    ),
    (
        ("<", "<="),
        "the comparisons point the wrong way and are swapped: use d_out[:, None] >= "
        "d_in[None, :] in hidden layers and d_out[:, None] > d_in[None, :] at the output.",
    ),
]


def _diagnose_masks(
    masks: list[Tensor], degrees: list[Tensor], expected: list[Tensor], case: str
) -> None:
    """Raise a Mistake unless ``masks`` equal ``expected`` (the reference MADE's masks)."""
    if all(torch.equal(m, e) for m, e in zip(masks, expected, strict=True)):
        return
    for (hidden, output), hint in _VARIANTS:
        variant = _rule(degrees, hidden, output)
        if all(torch.equal(m, v) for m, v in zip(masks, variant, strict=True)):
            rules = f"'{hidden}' in hidden layers and '{output}' at the output"
            raise Mistake(f"your masks follow {rules} ({case}).", hint)
    # not a known variant: say what the connectivity shows, then where the masks differ
    conn = _connectivity(masks)
    d_in, d_out = degrees[0], degrees[-1]
    forbidden = (conn > 0) & (d_out[:, None] <= d_in[None, :])
    if forbidden.any():
        o, j = forbidden.nonzero()[0].tolist()
        raise Mistake(
            f"with your masks output {o} (degree {int(d_out[o])}; indices from 0) depends on "
            f"input {j} "
            f"(degree {int(d_in[j])}): the connectivity is not strictly lower-triangular in "
            f"degree order ({case}).",
            "an output of degree d may only depend on inputs of degree < d: use >= in hidden "
            "layers and a strict > at the output layer.",
        )
    missing = (conn == 0) & (d_out[:, None] > d_in[None, :])
    if missing.any():
        o, j = missing.nonzero()[0].tolist()
        raise Mistake(
            f"with your masks output {o} (degree {int(d_out[o])}; indices from 0) cannot see "
            f"input {j} "
            f"(degree {int(d_in[j])}), although a smaller degree is allowed ({case}).",
            "an allowed connection is cut somewhere: a hidden unit of degree d must see every "
            "unit below of degree <= d (>=, not >), and an output of degree d every hidden "
            "unit of degree < d.",
        )
    for k, (mask, exp) in enumerate(zip(masks, expected, strict=True)):
        if not torch.equal(mask, exp):
            r, c = (mask != exp).nonzero()[0].tolist()
            rule = "d_out > d_in (strict)" if k == len(masks) - 1 else "d_out >= d_in"
            raise Mistake(
                f"mask {k + 1} differs from the degree rule at entry ({r}, {c}): unit {r} of "
                f"degree {int(degrees[k + 1][r])} and unit {c} of degree {int(degrees[k][c])} "
                f"below, you have {int(mask[r, c])}, the rule {rule} gives {int(exp[r, c])} "
                f"({case}).",
                "build every mask from the degrees alone, by broadcasting: "
                "d_out[:, None] >= d_in[None, :] (hidden), d_out[:, None] > d_in[None, :] "
                "(output); masks[k] compares degrees[k + 1] with degrees[k].",
            )


@exercise("Exercise 5.1")
def made_masks(fn: Callable[[list[Tensor]], list[Tensor]]) -> str:
    """Check ``made_masks(degrees) -> [mask_1, ..., mask_{L+1}]`` against nfcourse.MADE."""
    cases = _made_cases()
    for case, made in cases:
        degrees = [d.clone() for d in made.degrees]
        masks = _as_masks(fn([d.clone() for d in degrees]), degrees, case)
        _diagnose_masks(masks, degrees, [m.to(F64) for m in made.masks], case)
    return (
        f"your masks equal nfcourse.MADE's on {len(cases)} networks (one with a permuted "
        "order); their product, the connectivity, is strictly lower-triangular in degree order "
        "and keeps every allowed path."
    )


# --- Exercise 5.2: MAF's sampling loop ----------------------------------------------------------


def _perturbed_made(dim: int, hidden: tuple[int, ...], order: list[int] | None, seed: int) -> MADE:
    """A MADE in float64 with every parameter redrawn: not the identity it starts as."""
    made = MADE(dim, hidden=hidden, params=2, order=None if order is None else torch.tensor(order))
    made = made.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in made.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g, dtype=F64))
    return made


def _params(made: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    shift, log_scale = made(x).chunk(2, dim=-1)
    return shift, log_scale


def _loop(made: nn.Module, z: Tensor, passes: int, step: str = "right", feed: str = "x"):
    """Variants of the sampling loop: the right one and typical mistakes.

    Returns ``(x, log-scales of the last pass, log-scales summed over all passes)``.
    """
    x = torch.zeros_like(z)
    total = torch.zeros_like(z)
    log_scale = torch.zeros_like(z)
    for _ in range(passes):
        shift, log_scale = _params(made, z if feed == "z" else x)
        total = total + log_scale
        if step == "right":
            x = z * log_scale.exp() + shift
        elif step == "exp(-s)":
            x = z * (-log_scale).exp() + shift
        elif step == "inverse":
            x = (z - shift) * (-log_scale).exp()
    return x, log_scale, total


def _index_order_loop(made: nn.Module, z: Tensor) -> Tensor:
    """Filling coordinate 0, then 1, ... (right only when the order is 1..D)."""
    x = torch.zeros_like(z)
    for i in range(z.shape[-1]):
        shift, log_scale = _params(made, x)
        x = x.clone()
        x[..., i] = z[..., i] * log_scale[..., i].exp() + shift[..., i]
    return x


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-8, rtol=1e-6)


def _call(fn: Callable, made: nn.Module, z: Tensor, case: str) -> tuple[Tensor, Tensor]:
    z_before = z.clone()
    out = fn(made, z)
    if not torch.equal(z, z_before):
        raise Mistake(
            f"maf_sample changed its argument z in place ({case}).",
            "build x in a new tensor (x = torch.zeros_like(z)) and never write into z.",
        )
    if isinstance(out, Tensor) or not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise Mistake(
            f"maf_sample returned a {type(out).__name__}; expected a pair (x, ladj) ({case}).",
            "like every layer of the course, return the output and its log-det: "
            "return x, ladj.",
        )
    x, ladj = out
    if not isinstance(x, Tensor) or x.shape != z.shape:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise Mistake(
            f"x has shape {got}; expected {tuple(z.shape)}, the shape of z ({case}).",
            "x_i = z_i * exp(s_i) + m_i keeps the shape of z: (N, D).",
        )
    if not isinstance(ladj, Tensor) or ladj.shape != z.shape[:-1]:
        got = tuple(ladj.shape) if isinstance(ladj, Tensor) else type(ladj).__name__
        raise Mistake(
            f"ladj has shape {got}; expected {tuple(z.shape[:-1])}, one value per point "
            f"({case}).",
            "ladj = log_scale.sum(-1): sum over the coordinates (the last dimension), "
            "not over the batch.",
        )
    return x, ladj


def _counted(fn: Callable, made: nn.Module, z: Tensor) -> tuple[object, list[Tensor]]:
    """``fn(made, z)`` and the input of every network pass it made."""
    inputs: list[Tensor] = []
    hook = made.register_forward_hook(lambda _, args, __: inputs.append(args[0].detach().clone()))
    try:
        return fn(made, z), inputs
    finally:
        hook.remove()


def _check_passes_per_batch(fn: Callable, made: nn.Module, z: Tensor, passes: int, case: str):
    """The number of network passes must not depend on the batch size: D for any N."""
    n, dim = z.shape
    few = z[:2].clone()
    _, inputs = _counted(fn, made, few)
    if len(inputs) == passes:
        return
    if passes == n and len(inputs) == len(few):
        what = (
            f"once per point, {n} times for {n} points and {len(few)} times for {len(few)} "
            f"(D = {dim}): it runs over the batch, not over the coordinates"
        )
    else:
        what = (
            f"{passes} times for {n} points but {len(inputs)} times for {len(few)} (D = {dim}): "
            "the number of passes depends on the batch size"
        )
    raise Mistake(
        f"your loop called the network {what} ({case}).",
        "loop over the D coordinates, `for _ in range(z.shape[-1])`, not over the points "
        "(range(len(z)) or z.shape[0]), and pass the whole batch to the network at each "
        "pass: D passes are needed whatever the batch size, so with fewer points than "
        "coordinates a loop over the batch stops too early (and with more, it wastes passes).",
    )


def _one_pass_look_alike(inputs: list[Tensor], made: nn.Module, case: str) -> None:
    """x is what one pass from x = 0 gives, after several passes: say why."""
    if len(inputs) <= 1:
        return
    degrees = made.order.tolist()
    new = [i for i in range(made.dim) if not torch.equal(inputs[1][:, i], inputs[0][:, i])]
    if len(new) == 1 and degrees[new[0]] != 1:
        i = new[0]
        raise Mistake(
            f"your first pass filled coordinate {i} (from 0), of degree {degrees[i]}, before the "
            f"coordinates of smaller degree it depends on: x is what one pass from x = 0 "
            f"gives ({case}).",
            "fill the coordinates in increasing degree, the coordinate of degree 1 first: "
            "coordinate i needs those of smaller degree to be final already (in the order "
            "1, 2, ..., D that is range(D), not reversed(range(D))). Simpler: recompute "
            "every coordinate at every pass; after pass k those of degree <= k are final.",
        )
    if all(torch.equal(t, inputs[0]) for t in inputs):
        raise Mistake(
            f"the network saw the same input at each of its {len(inputs)} passes: x is what "
            f"one pass from x = 0 gives ({case}).",
            "keep the x you build between passes and feed it back: create x = "
            "torch.zeros_like(z) once, before the loop (not inside it), and call made(x) "
            "with the x of the previous pass.",
        )


def _diagnose_x(x: Tensor, made: nn.Module, z: Tensor, case: str, inputs: list[Tensor]) -> None:
    """Raise a Mistake naming the likely error when x is not the right sample."""
    dim = z.shape[-1]
    one_pass = _loop(made, z, 1)[0]
    if _close(x, one_pass):
        _one_pass_look_alike(inputs, made, case)
    checks = [
        (
            one_pass,
            "only the first coordinate (in the order) is right: after one pass only the "
            "coordinate of degree 1 is final, the others were computed from a half-built x",
            "one pass is not enough: repeat it D times, feeding the x built so far back into "
            "the network (pass k fixes the coordinate of degree k). That is the cost of MAF's "
            "sampling direction.",
        ),
        (
            _loop(made, z, 1, feed="z")[0],
            "x was computed in one go from m(z) and s(z): the network saw z (or an x that "
            "still equalled z)",
            "the network must see the x being built, x_i = z_i exp(s_i(x_<i)) + m_i(x_<i), "
            "and that takes D passes: call made(x), not made(z), and repeat. Parameters "
            "computed from z give an IAF-style map, not the inverse of this MAF's density map.",
        ),
        (
            _loop(made, z, dim, step="exp(-s)")[0],
            "x was built with exp(-s)",
            "sampling multiplies by exp(s): x = z * exp(s) + m. The division, "
            "z = (x - m) * exp(-s), is the inverse (density) direction.",
        ),
        (
            _loop(made, z, dim, step="inverse")[0],
            "x was built with the inverse formula (z - m) * exp(-s)",
            "that formula maps data to noise (MAF's one-pass inverse). Sampling solves it "
            "for x: x = z * exp(s) + m.",
        ),
        (
            _loop(made, z, dim - 1)[0] if dim > 1 else None,
            "every coordinate but the last one (in the order) is right",
            "one pass short: D passes are needed, since pass k fixes the coordinate of degree "
            "k. Loop over range(D), D = z.shape[-1].",
        ),
    ]
    for variant, what, hint in checks:
        if variant is not None and _close(x, variant):
            raise Mistake(f"{what} ({case}).", hint)


@exercise("Exercise 5.2")
def maf_sample(fn: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]) -> str:
    """Check ``maf_sample(made, z) -> (x, ladj)``, MAF's D-pass sampling loop."""
    cases = [
        ("D = 3, order 1, 2, 3", _perturbed_made(3, (8,), None, seed=0)),
        ("D = 4, order [3, 1, 4, 2]", _perturbed_made(4, (8, 8), [3, 1, 4, 2], seed=1)),
    ]
    passes_used = []
    natural_ok = False
    jacobian_checked = True
    for k, (case, made) in enumerate(cases):
        # 11 points: not D, D + 1 or 2D, so that a loop over the batch shows in the count
        z = torch.randn(11, made.dim, generator=torch.Generator().manual_seed(10 + k), dtype=F64)
        (x, ladj), inputs = _counted(lambda m, p, c=case: _call(fn, m, p, c), made, z)
        passes_used.append(len(inputs))
        _check_passes_per_batch(fn, made, z, len(inputs), case)
        shift, log_scale = _params(made, x.detach())
        z_back = (x.detach() - shift) * (-log_scale).exp()  # MAF's one-pass inverse
        if not _close(z_back, z):
            _diagnose_x(x.detach(), made, z, case, inputs)
            if natural_ok and _close(x.detach(), _index_order_loop(made, z)):
                raise Mistake(
                    f"x is right for the order 1, 2, 3 but not for the order [3, 1, 4, 2] "
                    f"({case}).",
                    "you filled coordinate 0, then 1, ...: the network's order is "
                    "made.order (coordinate i has degree made.order[i]), so fill them in the "
                    "order of made.order.argsort(), or simply recompute every coordinate at "
                    "every pass: after pass k those of degree <= k are final.",
                )
            wrong = (z_back - z).abs().amax(0) > 1e-6
            degrees = made.order.tolist()
            first = min((i for i in range(made.dim) if wrong[i]), key=lambda i: degrees[i])
            raise Mistake(
                f"x is not the sample of z: MAF's inverse (x - m(x)) * exp(-s(x)) does not give "
                f"back z; the first wrong coordinate in the order is {first} (degree "
                f"{degrees[first]}) ({case}).",
                "start from x = torch.zeros_like(z); then D times: shift, log_scale = "
                "made(x).chunk(2, dim=-1); x = z * log_scale.exp() + shift.",
            )
        natural_ok = natural_ok or k == 0
        expected = log_scale.sum(-1)
        if not _close(ladj.detach(), expected):
            _, first_pass, _ = _loop(made, z, 1)
            _, _, summed = _loop(made, z, made.dim)
            if _close(ladj.detach(), -expected):
                hint = ("the sign is flipped: sampling multiplies by exp(s), so "
                        "log|det dx/dz| = +sum(s); -sum(s) is the ladj of the inverse.")
            elif _close(ladj.detach(), summed.sum(-1)):
                hint = ("you added up the log-scales of every pass. The passes only compute the "
                        "parameters; the map is applied once, and its log-det is the sum of the "
                        "log-scales of the final x (those of the last pass).")
            elif _close(ladj.detach(), first_pass.sum(-1)):
                hint = ("these are the log-scales of the first pass, computed from a half-built "
                        "x; take those of the last pass (or one more pass on the final x).")
            else:
                hint = "ladj = log_scale.sum(-1), with the log-scales of the last pass."
            raise Mistake(
                f"x is right but ladj is not log|det dx/dz| = sum_i s_i(x) ({case}).", hint
            )
        jacobian_checked = jacobian_checked and x.requires_grad
        if x.requires_grad:  # the oracle: ladj against the autograd Jacobian of the learner's map
            with torch.enable_grad():
                error = (autograd_ladj(lambda p, m=made: fn(m, p)[0], z[:3]) - ladj[:3]).abs()
            if error.max() > 1e-8:  # pragma: no cover - x and ladj already matched the formula
                raise Mistake(
                    f"ladj differs from log|det| of the autograd Jacobian by {error.max():.2e} "
                    f"({case}).",
                    "compute x from z with differentiable operations only.",
                )
    passes = ", ".join(
        f"{p} times for D = {made.dim}" for p, (_, made) in zip(passes_used, cases, strict=True)
    )
    oracle = (
        "matches the autograd Jacobian"
        if jacobian_checked
        else "is right (your x carries no gradient, so the autograd Jacobian was not checked; "
        "without gradients a flow cannot be trained through its samples)"
    )
    return (
        f"x inverts MAF's one-pass density map on {len(cases)} networks (one with a permuted "
        f"order) and ladj = sum of the log-scales {oracle}; your loop called the network "
        f"{passes}."
    )
