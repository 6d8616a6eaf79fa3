"""Checks of lesson 04 (coupling flows): an affine coupling layer, a RealNVP stack.

Both checks drive the learner's code on inputs they choose, in float64, with
the global random state left as it was (a check never changes what the rest of
the notebook draws). The coupling check redraws every network weight at random
first: a layer at or near the identity (a zero-initialized last layer, or small
weights) has ladj close to 0, which would hide sign and scale bugs (FlowJAX #208).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...flow import Flow
from ...layers.coupling import AffineCoupling as _RefCoupling
from ...layers.coupling import alternating_mask, half_mask
from ...testing import autograd_jacobian, is_triangular
from ._core import Mistake, exercise
from ._tools import gradient_hint, gradients

__all__ = ["affine_coupling", "make_realnvp"]

_ATOL = 1e-8
_HIDDEN = (16, 16)


def _close(a: Tensor, b: Tensor, atol: float = _ATOL) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=1e-6))


def _coords(index: Tensor) -> str:
    return ", ".join(str(i) for i in index.tolist())


# ----------------------------------------------------------------------------
# Exercise 4.1: an affine coupling layer, both directions


def _randomize(layer: nn.Module, gen: torch.Generator) -> None:
    """Redraw every trainable parameter ~ 0.5 N(0, 1): a generic, non-identity layer."""
    params = [p for p in layer.parameters() if p.requires_grad]
    if not params:
        raise Mistake(
            "your layer has no trainable parameters.",
            "keep the conditioner network built once in __init__ (self.net = ...), so that "
            "its weights are registered with the layer and train with it.",
        )
    with torch.no_grad():
        for p in params:
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _pair(out: object, where: str, returns: str) -> tuple[Tensor, Tensor]:
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
        got = type(out).__name__ if not isinstance(out, tuple) else f"a tuple of {len(out)}"
        raise Mistake(
            f"{where} must return a pair of tensors {returns}, got {got}.",
            f"end {where} with `return {returns.strip('()')}`.",
        )
    return out


def _check_shapes(out: Tensor, ladj: Tensor, z: Tensor, where: str, d_b: int) -> None:
    n, d = z.shape
    if out.shape != z.shape:
        raise Mistake(
            f"{where} returned points of shape {tuple(out.shape)} for input of shape "
            f"{(n, d)}; expected {(n, d)}.",
            "return every coordinate, the mask-1 ones unchanged and the mask-0 ones "
            "transformed, in their original places (not only the transformed half).",
        )
    if ladj.shape == (n,):
        return
    if ladj.dim() == 0:
        hint = (
            "you reduced over the batch too: sum the log-scales over the coordinates only, "
            "log_scale.sum(-1), one value per sample."
        )
    elif ladj.shape in ((n, d_b), (n, d)):
        hint = (
            "sum the log-scales over the transformed coordinates: log_scale.sum(-1) gives "
            "one value per sample (the log-det of the whole Jacobian, not its diagonal)."
        )
    elif ladj.shape == (n, 1):
        hint = "drop the trailing dimension: log_scale.sum(-1), not sum(-1, keepdim=True)."
    else:
        hint = "ladj is log|det J|, one number per sample: log_scale.sum(-1)."
    raise Mistake(
        f"the ladj returned by {where} has shape {tuple(ladj.shape)} for {n} points; "
        f"expected ({n},).",
        hint,
    )


def _compare_ladj(ladj: Tensor, true: Tensor, where: str, d_b: int, d: int) -> None:
    """Name the likely mistake when ``ladj`` differs from ``true = log|det J|`` (autograd)."""
    if _close(ladj, true):
        return
    if _close(ladj, -true):
        raise Mistake(
            f"the ladj of {where} has the wrong sign: it is minus log|det J| of the map.",
            "forward scales by exp(s), so its ladj is +sum(s); inverse scales by exp(-s), "
            "so its ladj is -sum(s)."
            if where == "forward"
            else "inverse scales by exp(-s), so its ladj is -sum(s) (minus the forward one).",
        )
    for k, what in ((d_b, "transformed coordinates"), (d, "coordinates")):
        for sign in (1, -1):
            if k > 1 and _close(ladj * k, sign * true):
                raise Mistake(
                    f"the ladj of {where} is log|det J| divided by {k}, the number of {what}"
                    + (" (and with the wrong sign)." if sign < 0 else "."),
                    "use sum, not mean: the log of a determinant of a triangular matrix is the "
                    "sum of the logs of its diagonal entries.",
                )
    if not bool(ladj.abs().max() > 0):
        raise Mistake(
            f"the ladj of {where} is 0 everywhere, but with random network weights the layer "
            "changes volume.",
            "return the sum of the log-scales of the transformed coordinates, not zeros "
            "(ladj = 0 is the additive NICE layer, whose scale is 1).",
        )
    gap = (ladj - true).abs().max().item()
    raise Mistake(
        f"the ladj of {where} differs from log|det J| of the autograd Jacobian by up to "
        f"{gap:.3g}.",
        "the Jacobian is triangular with diagonal 1 (mask-1 coordinates) and exp(s) "
        "(transformed ones), so ladj = sum(s) in forward and -sum(s) in inverse, with s "
        "the (soft-clamped) log-scale the layer actually used.",
    )


def _check_pass_through(out: Tensor, inp: Tensor, a: Tensor, b: Tensor, where: str) -> None:
    """Mask-1 coordinates must be unchanged; mask-0 ones must change (random weights)."""
    changed = (out - inp).abs().amax(0) > _ATOL
    a_changed, b_changed = a[changed[a]], b[changed[b]]
    if len(a_changed) == len(a) and len(b_changed) == 0:
        raise Mistake(
            f"{where} changed the coordinates with mask 1 ({_coords(a)}) and left those with "
            f"mask 0 ({_coords(b)}) unchanged: the mask is applied to the wrong half.",
            "mask 1 = passes through unchanged and is the conditioner's input, mask 0 = "
            "transformed: z_a = z[..., self.mask], z_b = z[..., ~self.mask].",
        )
    if len(a_changed):
        raise Mistake(
            f"{where} changed coordinate(s) {_coords(a_changed)}, whose mask is 1: they must "
            "pass through unchanged.",
            "split with the mask itself (z[..., self.mask] and z[..., ~self.mask]), not with "
            "the first and second half of the coordinates, and put every coordinate back in "
            "its own place.",
        )
    if len(b_changed) < len(b):
        same = b[~changed[b]]
        raise Mistake(
            f"{where} left coordinate(s) {_coords(same)} (mask 0) unchanged although the "
            "network's weights are random: they must be transformed.",
            "transform every mask-0 coordinate: x_b = z_b * exp(log_scale) + shift, with "
            "(shift, log_scale) computed by the conditioner from z_a.",
        )


def _check_structure(layer_fn, pts: Tensor, a: Tensor, b: Tensor, where: str, sees: str) -> Tensor:
    """The Jacobian of a coupling map: rows of a = identity rows, block (b, b) diagonal."""
    J = autograd_jacobian(layer_fn, pts)  # (N, D, D)
    bb = J[:, b][:, :, b]
    off = bb - torch.diag_embed(bb.diagonal(dim1=-2, dim2=-1))
    if bool(off.abs().max() > 1e-10):
        tri = is_triangular(J)
        raise Mistake(
            f"in {where}, a transformed coordinate depends on another transformed coordinate "
            "(the (mask 0, mask 0) block of the autograd Jacobian is not diagonal"
            + ("; the Jacobian is not even triangular in any order)." if not tri else ")."),
            f"the conditioner must see only {sees}, the coordinates that pass through, never "
            "the ones it transforms: otherwise the Jacobian is not triangular, sum(log_scale) "
            "is not its log-det, and the inverse cannot recover the input in one pass.",
        )
    return J


def _numeric_jacobian(fn, pts: Tensor, eps: float = 1e-6) -> Tensor:
    """The Jacobian of ``fn`` at each point by central differences: ``(N, D, D)``, as autograd."""
    n, d = pts.shape
    step = eps * torch.eye(d, dtype=pts.dtype)
    with torch.no_grad():
        plus = fn((pts[:, None, :] + step).reshape(-1, d)).reshape(n, d, d)
        minus = fn((pts[:, None, :] - step).reshape(-1, d)).reshape(n, d, d)
    return ((plus - minus) / (2 * eps)).transpose(1, 2)  # [n, i, j] = d out_i / d in_j


def _check_gradients(
    cls, layer: nn.Module, fn, pts: Tensor, J: Tensor, a: Tensor, b: Tensor, where: str
) -> None:
    """Gradients reach the conditioner's weights, and autograd sees x_b depend on the a's.

    A conditioner run under torch.no_grad(), or on a detached input, gives the right
    values, a triangular Jacobian and the right ladj: only gradients tell. With no
    gradient to its weights the layer cannot train; with the input detached, autograd's
    Jacobian (and every gradient that flows back through the layer) is wrong.
    """
    inp = "x_a" if where == "inverse" else "z_a"
    out, ladj = _pair(fn(pts), where, "(output, ladj)")
    g = torch.Generator().manual_seed(5)
    weights = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (out, ladj)]
    grads = gradients(layer, list(zip((out, ladj), weights, strict=True)))
    trainable = [n for n, p in layer.named_parameters() if p.requires_grad]
    missing = [n for n in trainable if grads[n] is None]
    if missing:
        some = len(missing) < len(trainable)
        raise Mistake(
            f"in {where}, no gradient reaches the conditioner's weights "
            f"({', '.join(missing) if some else 'none of them'}): the values are right, but "
            "training could never change them"
            + (" (or your layer holds parameters it never uses)." if some else "."),
            gradient_hint(cls, "the conditioner's weights", "training cannot move them"),
        )
    numeric = _numeric_jacobian(lambda p: fn(p)[0], pts)
    # a ReLU kink within eps of a point can spoil one point's differences: judge the majority
    off = (J - numeric).abs().amax((1, 2)) > 1e-5
    if int(off.sum()) > len(pts) // 2:
        cut = bool(J[:, b][:, :, a].abs().max() == 0) and bool(
            numeric[:, b][:, :, a].abs().max() > 1e-6
        )
        raise Mistake(
            f"in {where}, autograd's Jacobian differs from finite differences by up to "
            f"{(J - numeric).abs().max().item():.3g}"
            + (
                f": autograd sees no dependence of the transformed coordinates on {inp}, "
                "although they depend on it."
                if cut
                else "."
            ),
            gradient_hint(
                cls,
                f"{inp} through the conditioner" if cut else "every input",
                "every gradient that flows back through the layer (into the layers before it) "
                "is wrong",
            ),
        )


def _inverse_candidates(layer: nn.Module, x: Tensor, a: Tensor, b: Tensor) -> dict[str, Tensor]:
    """What typical wrong inverses return, from shift t and scale e^s read off ``forward``."""
    probe = x.clone()
    probe[:, b] = 0.0
    t = layer(probe)[0][:, b]  # forward with z_b = 0 gives the shift
    probe[:, b] = 1.0
    scale = layer(probe)[0][:, b] - t  # z_b = 1 gives exp(s) + t
    x_b = x[:, b]
    return {
        "(x_b - t) * exp(+s), with exp(+s) instead of exp(-s)": (x_b - t) * scale,
        "x_b * exp(-s) - t, undoing the shift after the scaling": x_b / scale - t,
        "(x_b + t) * exp(-s), adding the shift instead of subtracting it": (x_b + t) / scale,
        "x_b * exp(s) + t, the forward map again": x_b * scale + t,
    }


_INVERSE_HINTS = {
    "(x_b - t) * exp(+s), with exp(+s) instead of exp(-s)": (
        "undo the scaling: z_b = (x_b - shift) * exp(-log_scale)."
    ),
    "x_b * exp(-s) - t, undoing the shift after the scaling": (
        "undo the steps in reverse order: first subtract the shift, then divide by the "
        "scale: z_b = (x_b - shift) * exp(-log_scale)."
    ),
    "(x_b + t) * exp(-s), adding the shift instead of subtracting it": (
        "z_b = (x_b - shift) * exp(-log_scale)."
    ),
    "x_b * exp(s) + t, the forward map again": (
        "the inverse solves x_b = z_b * exp(s) + t for z_b: z_b = (x_b - t) * exp(-s)."
    ),
}


def _drive_coupling(cls, mask: Tensor, gen: torch.Generator) -> float:
    """Run every property on one mask; return the round-trip error."""
    d = mask.numel()
    a, b = mask.nonzero()[:, 0], (~mask).nonzero()[:, 0]
    layer = cls(mask.clone(), _HIDDEN)
    if not isinstance(layer, nn.Module):
        raise Mistake(
            f"AffineCoupling(mask, hidden) built a {type(layer).__name__}, not a torch.nn.Module.",
            "keep `class AffineCoupling(nn.Module)` and its __init__.",
        )
    layer = layer.double()
    _randomize(layer, gen)
    z = 1.5 * torch.randn(64, d, generator=gen, dtype=torch.float64)
    z_copy = z.clone()

    # forward: shapes, pass-through, triangular Jacobian, ladj
    x, ladj = _pair(layer(z), "forward", "(x, ladj)")
    if not torch.equal(z, z_copy):
        raise Mistake(
            "forward changed its input z in place.",
            "build a new tensor for the output (e.g. x = torch.empty_like(z), or torch.cat) "
            "instead of writing into z: the caller still needs z.",
        )
    _check_shapes(x, ladj, z, "forward", len(b))
    _check_pass_through(x, z, a, b, "forward")
    pts = z[:8]
    J = _check_structure(lambda p: layer(p)[0], pts, a, b, "forward", "z_a")
    _check_gradients(cls, layer, layer, pts, J, a, b, "forward")
    true = torch.linalg.slogdet(J).logabsdet
    _compare_ladj(ladj[:8], true, "forward", len(b), d)

    # inverse: shapes, pass-through, round trip, ladj
    x = x.detach()
    x_copy = x.clone()
    z_back, ladj_inv = _pair(layer.inverse(x), "inverse", "(z, ladj)")
    if not torch.equal(x, x_copy):
        raise Mistake(
            "inverse changed its input x in place.",
            "build a new tensor for the output instead of writing into x.",
        )
    _check_shapes(z_back, ladj_inv, x, "inverse", len(b))
    if not _close(z_back[:, a], x[:, a]):
        raise Mistake(
            "inverse changed coordinate(s) with mask 1: they pass through unchanged in both "
            "directions.",
            "x_a = z_a, so the inverse returns x[..., self.mask] as it is and recomputes the "
            "shift and log-scale from it.",
        )
    err = (z_back - z).abs().max().item()
    if err > 1e-7:
        for name, candidate in _inverse_candidates(layer, x, a, b).items():
            if _close(z_back[:, b], candidate, atol=1e-7):
                raise Mistake(
                    f"inverse(forward(z)) differs from z by up to {err:.3g}: your inverse "
                    f"computes z_b = {name}.",
                    _INVERSE_HINTS[name],
                )
        _check_structure(
            lambda p: layer.inverse(p)[0], x[:8], a, b, "inverse", "x_a (which equals z_a)"
        )
        raise Mistake(
            f"inverse(forward(z)) differs from z by up to {err:.3g}.",
            "the inverse sees x_a = z_a, so the conditioner gives the same shift t and "
            "log-scale s as in forward: z_a = x_a, z_b = (x_b - t) * exp(-s).",
        )
    J_inv = autograd_jacobian(lambda p: layer.inverse(p)[0], x[:8])
    _check_gradients(cls, layer, layer.inverse, x[:8], J_inv, a, b, "inverse")
    _compare_ladj(ladj_inv[:8], torch.linalg.slogdet(J_inv).logabsdet, "inverse", len(b), d)
    return err


@exercise("Exercise 4.1")
def affine_coupling(cls) -> str:
    """Check an affine coupling class ``cls(mask, hidden)`` with ``forward`` and ``inverse``.

    On three masks (D = 4 and D = 5, bool tensors), with the network's weights
    redrawn at random, in float64: output and ladj shapes, mask-1 coordinates
    unchanged, the conditioner seeing only them (the autograd Jacobian's
    transformed block is diagonal), ladj against ``slogdet`` of the autograd
    Jacobian in both directions, and the round trip.
    """
    masks = [alternating_mask(4, 0), half_mask(4, 1), alternating_mask(5, 1)]
    with torch.random.fork_rng(devices=[]):
        gen = torch.Generator().manual_seed(404)
        torch.manual_seed(404)  # the learner's layers draw their initial weights globally
        errors = [_drive_coupling(cls, m, gen) for m in masks]
    shown = ", ".join(str(m.int().tolist()) for m in masks)
    return (
        f"masks {shown} with random network weights: mask-1 coordinates unchanged, "
        "triangular Jacobian, ladj = log|det J| (autograd) in both directions, round trip "
        f"error {max(errors):.1e} (float64)."
    )


# ----------------------------------------------------------------------------
# Exercise 4.2: a RealNVP stack with alternating masks


def _hidden_widths(layer: nn.Module) -> list[int]:
    linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
    return [m.out_features for m in linears[:-1]]


def _is_coupling(layer: nn.Module, dim: int) -> bool:
    """nf.AffineCoupling, or the learner's own class of exercise 4.1 (a mask of D entries)."""
    if isinstance(layer, _RefCoupling):
        return True
    if type(layer).__module__.split(".")[0] in {"nfcourse", "torch"}:
        return False  # nf's other layers (Reverse, AdditiveCoupling...), torch's modules
    mask = getattr(layer, "mask", None)
    return (
        isinstance(mask, Tensor)
        and mask.shape == (dim,)
        and callable(getattr(layer, "inverse", None))
    )


def _check_not_shared(stack: list[nn.Module], call: str) -> None:
    """Every layer its own object, with its own weights."""
    first: dict[int, int] = {}
    for i, layer in enumerate(stack):
        j = first.setdefault(id(layer), i)
        if j != i:
            distinct = len({id(m) for m in stack})
            raise Mistake(
                f"in {call}, the same layer object appears twice (layers {j} and {i}): its "
                f"weights are shared, so the {len(stack)} layers have the parameters of only "
                f"{distinct}.",
                "build a new coupling for every layer inside the loop, e.g. "
                "[nf.AffineCoupling(nf.alternating_mask(dim, i % 2), hidden) for i in "
                "range(layers)], not [layer] * layers or [layer_a, layer_b] * k, which repeat "
                "the same objects.",
            )
    owner: dict[int, int] = {}
    for i, layer in enumerate(stack):
        for p in layer.parameters():
            j = owner.setdefault(id(p), i)
            if j != i:
                raise Mistake(
                    f"in {call}, layers {j} and {i} share parameters (the same conditioner "
                    "network): they are not trained independently.",
                    "give every coupling its own conditioner: nf.AffineCoupling(mask, hidden) "
                    "builds a new network each time it is called.",
                )


def _drive_realnvp(fn, dim: int, layers: int, hidden: tuple[int, ...]) -> None:
    call = f"make_realnvp({dim}, {layers}, hidden={hidden})"
    try:
        flow = fn(dim, layers, hidden=hidden)
    except ValueError as error:
        if "cannot tell the number of coordinates" not in str(error):
            raise
        raise Mistake(
            f"{call}: nf.Flow cannot tell the number of coordinates D from your layers "
            "(nf's layers record their dim; a class of your own, like your AffineCoupling "
            "from exercise 4.1, does not).",
            "tell it: nf.Flow([...], dim=dim). Your own AffineCoupling is fine here, and so "
            "is nf.AffineCoupling.",
        ) from None
    if not isinstance(flow, Flow):
        raise Mistake(
            f"{call} returned a {type(flow).__name__}, not an nf.Flow.",
            "wrap the list of layers in a flow: return nf.Flow([...]) (a standard normal "
            "base is the default).",
        )
    if flow.dim != dim:
        raise Mistake(
            f"{call} returned a flow on D = {flow.dim} coordinates, expected {dim}.",
            "build every mask with `dim` entries, e.g. nf.alternating_mask(dim, i % 2).",
        )
    stack = list(flow.transform.layers)
    others = sorted({type(m).__name__ for m in stack if not _is_coupling(m, dim)})
    if others:
        raise Mistake(
            f"{call} contains layers other than nf.AffineCoupling (or your own coupling "
            f"class): {', '.join(others)}.",
            "use only nf.AffineCoupling layers here (or your AffineCoupling from exercise "
            "4.1): alternating masks do the job that permutations would otherwise do.",
        )
    _check_not_shared(stack, call)
    if len(stack) != layers:
        raise Mistake(
            f"{call} has {len(stack)} coupling layers, expected {layers}.",
            "build exactly `layers` couplings: one per i in range(layers).",
        )
    masks = [m.mask.bool() for m in stack]
    if layers > 1 and all(torch.equal(m, masks[0]) for m in masks):
        never = (masks[0]).nonzero()[:, 0]
        raise Mistake(
            f"{call} uses the same mask {masks[0].int().tolist()} in every layer: coordinate(s) "
            f"{_coords(never)} pass through every layer unchanged, so the flow leaves them "
            "exactly standard normal.",
            "alternate the masks: layer i gets nf.alternating_mask(dim, i % 2), so the "
            "coordinates that pass through one layer are transformed by the next.",
        )
    for i in range(layers - 1):
        if not torch.equal(masks[i + 1], ~masks[i]):
            raise Mistake(
                f"in {call}, the mask of layer {i + 1} ({masks[i + 1].int().tolist()}) is not "
                f"the complement of the mask of layer {i} ({masks[i].int().tolist()}).",
                "alternate: layer i gets nf.alternating_mask(dim, i % 2), so what one layer "
                "leaves unchanged, the next one transforms.",
            )
    widths = _hidden_widths(stack[0])
    if widths != list(hidden):
        raise Mistake(
            f"{call} built conditioners with hidden widths {widths}, expected {list(hidden)}.",
            "pass `hidden` on: nf.AffineCoupling(mask, hidden).",
        )
    with torch.no_grad():
        lp = flow.log_prob(torch.randn(5, dim))
        x = flow.sample(5)
    if lp.shape != (5,) or not bool(torch.isfinite(lp).all()):
        raise Mistake(
            f"{call}.log_prob gave {lp} for 5 standard normal points.",
            "return nf.Flow([nf.AffineCoupling(...), ...]) of the couplings you built.",
        )
    if x.shape != (5, dim) or not bool(torch.isfinite(x).all()):
        raise Mistake(
            f"{call}.sample(5) gave {x}.",
            "return nf.Flow([nf.AffineCoupling(...), ...]) of the couplings you built.",
        )


@exercise("Exercise 4.2")
def make_realnvp(fn) -> str:
    """Check ``fn(dim, layers, hidden=...) -> nf.Flow`` of alternating affine couplings."""
    cases = [(2, 4, (8, 8)), (5, 3, (12,)), (3, 1, (8,))]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(404)
        for dim, layers, hidden in cases:
            _drive_realnvp(fn, dim, layers, hidden)
    shown = "; ".join(f"dim={d}, layers={k}" for d, k, _ in cases)
    return f"{shown}: the right number of couplings, masks alternating, hidden widths passed on."
