"""Checks of lesson 09 (conditional flows): a conditional affine coupling layer, and the
credibility of a true parameter under a posterior known by its samples.

The check drives the learner's class ``cls(mask, context_dim, hidden)``, with
``forward(z, context)`` and ``inverse(x, context)``, in float64, its network's
weights redrawn at random (a layer near the identity hides sign bugs), with the
global random state left as it was. What holds for any coupling layer is checked
with lesson 04's machinery, for a fixed context; what is new here is checked
first, each with its own hint: the layer reads the context, leaves it out of its
output, gives the same answer for one context shared by a batch as for that
context repeated, lets gradients reach the context, and reads it in the inverse
the same way as in the forward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...data.simulators import sample_credibility
from ...layers.coupling import alternating_mask, half_mask
from ...testing import autograd_jacobian
from ._core import Mistake, exercise
from ._tools import as_tensor, close, gradient_hint
from .lesson04 import (
    _INVERSE_HINTS,
    _check_gradients,
    _check_pass_through,
    _check_shapes,
    _check_structure,
    _close,
    _compare_ladj,
    _inverse_candidates,
    _pair,
    _randomize,
)

__all__ = ["conditional_coupling", "credibility"]

_HIDDEN = (16, 16)
_N = 64

# what the conditioner must read, said once for every hint
_READS = (
    "the conditioner reads the coordinates that pass through and the context: "
    "self.net(torch.cat([z_a, context], -1))"
)


class _Fixed(nn.Module):
    """The learner's layer with one context fixed: ``forward(z)``, ``inverse(x)``."""

    def __init__(self, layer: nn.Module, context: Tensor):
        super().__init__()
        self.layer, self.context = layer, context

    def forward(self, z: Tensor):
        return self.layer(z, self.context)

    def inverse(self, x: Tensor):
        return self.layer.inverse(x, self.context)


def _call(method, t: Tensor, context: Tensor, where: str, returns: str):
    """``method(t, context)``; a method without a context argument is named as such."""
    try:
        out = method(t, context)
    except TypeError as error:
        if "positional argument" not in str(error):
            raise
        raise Mistake(
            f"{where}(z, context) raised TypeError: {error}.",
            f"a conditional layer takes the context as a second argument: "
            f"`def {where}(self, {'x' if where == 'inverse' else 'z'}, context):`.",
        ) from None
    return _pair(out, where, returns)


def _check_output_shape(out: Tensor, t: Tensor, c: int, where: str) -> None:
    n, d = t.shape
    if out.shape == (n, d + c):
        raise Mistake(
            f"{where} returned points of shape {tuple(out.shape)} for input of shape {(n, d)} "
            f"and a context of {c} values: the context came out with the points.",
            "the context is not transformed and not returned, it only goes into the "
            f"conditioner: {_READS}. The output has the D coordinates of the input.",
        )


def _check_reads_context(layer, t: Tensor, c: Tensor, other: Tensor, b: Tensor, where: str):
    """The transformed coordinates must change when the context does (random weights)."""
    method = layer if where == "forward" else layer.inverse
    with torch.no_grad():
        one, ladj_one = method(t, c)
        two, ladj_two = method(t, other)
    if _close(one, two) and _close(ladj_one, ladj_two):
        if where == "inverse":
            raise Mistake(
                "inverse gives the same output for two different contexts: it ignores the "
                "context, so it cannot undo forward, which reads it.",
                "read the context in the inverse exactly as in forward: "
                "self.net(torch.cat([x_a, context], -1)), with x_a = z_a.",
            )
        raise Mistake(
            "forward gives the same output for two different contexts: the layer ignores "
            "its context, so the flow learns one density for all contexts.",
            f"{_READS}; build the network with D_a + context_dim inputs, "
            "nf.mlp(d_a + context_dim, 2 * d_b, hidden).",
        )


def _check_broadcast(layer, z: Tensor, c: Tensor) -> None:
    """One context of shape (C,) for a whole batch gives what that context repeated gives."""
    shared = c[0]
    try:
        with torch.no_grad():
            out, ladj = layer(z, shared)
    except Exception as error:  # noqa: BLE001 - the learner's error, shown in the message
        raise Mistake(
            f"forward(z, context) fails when one context of shape {tuple(shared.shape)} serves "
            f"the whole batch z of shape {tuple(z.shape)}: {type(error).__name__}: {error}",
            "the context is not broadcast over the batch: torch.cat needs the same leading "
            "shape, so expand it first: context = context.expand(*z_a.shape[:-1], -1). That "
            "serves one context for all points as well as one per point.",
        ) from None
    with torch.no_grad():
        ref, ref_ladj = layer(z, shared.expand(len(z), -1))
    if not (_close(out, ref) and _close(ladj, ref_ladj)):
        raise Mistake(
            f"forward(z, context) with one context of shape {tuple(shared.shape)} differs from "
            "forward with that context repeated for every point.",
            "broadcast the context over the batch with context.expand(*z_a.shape[:-1], -1), "
            "not by reshaping or repeating it along another dimension.",
        )


def _check_context_gradient(cls, layer, z: Tensor, c: Tensor, b: Tensor) -> None:
    """Autograd must see the transformed coordinates depend on the context.

    A context computed by a network (an embedding of an observation) trains only
    through this gradient.
    """
    pts, ctx = z[:4], c[:4].clone().requires_grad_(True)
    x, _ = layer(pts, ctx)
    (grad,) = torch.autograd.grad(x[:, b].sum(), ctx, allow_unused=True)
    eps = 1e-6
    with torch.no_grad():
        numeric = torch.stack(
            [
                (layer(pts, ctx + eps * e)[0][:, b] - layer(pts, ctx - eps * e)[0][:, b]).sum(-1)
                for e in torch.eye(ctx.shape[-1], dtype=ctx.dtype)
            ],
            -1,
        ) / (2 * eps)
    if grad is None or not torch.allclose(grad, numeric, atol=1e-5, rtol=1e-4):
        raise Mistake(
            "no gradient (or a wrong one) flows from the output back to the context, although "
            "the output depends on it: a network that computes the context (an embedding of "
            "the data, trained with the flow) would never learn.",
            gradient_hint(cls, "the context", "a network that computes it cannot train"),
        )


def _drive(cls, mask: Tensor, c_dim: int, gen: torch.Generator) -> float:
    d = mask.numel()
    a, b = mask.nonzero()[:, 0], (~mask).nonzero()[:, 0]
    layer = cls(mask.clone(), c_dim, _HIDDEN)
    if not isinstance(layer, nn.Module):
        raise Mistake(
            f"ConditionalAffineCoupling(mask, context_dim, hidden) built a "
            f"{type(layer).__name__}, not a torch.nn.Module.",
            "keep `class ConditionalAffineCoupling(nn.Module)` and its __init__.",
        )
    layer = layer.double()
    _randomize(layer, gen)
    z = 1.5 * torch.randn(_N, d, generator=gen, dtype=torch.float64)
    c = torch.randn(_N, c_dim, generator=gen, dtype=torch.float64)
    other = torch.randn(_N, c_dim, generator=gen, dtype=torch.float64)
    z_copy, c_copy = z.clone(), c.clone()

    # forward, one context per point: shapes, pass-through, reads the context
    x, ladj = _call(layer, z, c, "forward", "(x, ladj)")
    if not (torch.equal(z, z_copy) and torch.equal(c, c_copy)):
        raise Mistake(
            "forward changed its input z or the context in place.",
            "build new tensors (torch.empty_like(z), torch.cat) instead of writing into "
            "the arguments: the caller still needs them.",
        )
    _check_output_shape(x, z, c_dim, "forward")
    _check_shapes(x, ladj, z, "forward", len(b))
    _check_pass_through(x, z, a, b, "forward")
    _check_reads_context(layer, z, c, other, b, "forward")
    _check_broadcast(layer, z, c)

    # forward with one context: the coupling's properties (lesson 04's checks)
    fixed = _Fixed(layer, c[0])
    pts = z[:8]
    J = _check_structure(lambda p: fixed(p)[0], pts, a, b, "forward", "z_a (and the context)")
    _check_gradients(cls, layer, fixed, pts, J, a, b, "forward")
    _compare_ladj(fixed(pts)[1], torch.linalg.slogdet(J).logabsdet, "forward", len(b), d)
    _check_context_gradient(cls, layer, z, c, b)

    # inverse, one context per point
    x = x.detach()
    z_back, ladj_inv = _call(layer.inverse, x, c, "inverse", "(z, ladj)")
    _check_output_shape(z_back, x, c_dim, "inverse")
    _check_shapes(z_back, ladj_inv, x, "inverse", len(b))
    if not _close(z_back[:, a], x[:, a]):
        raise Mistake(
            "inverse changed coordinate(s) with mask 1: they pass through unchanged in both "
            "directions.",
            "x_a = z_a: the inverse returns x[..., self.mask] as it is and recomputes the "
            "shift and log-scale from it and the context.",
        )
    err = (z_back - z).abs().max().item()
    if err > 1e-7:
        _check_reads_context(layer, x, c, other, b, "inverse")
        x0 = fixed(z[:8])[0].detach()
        z0 = fixed.inverse(x0)[0]
        for name, candidate in _inverse_candidates(fixed, x0, a, b).items():
            if _close(z0[:, b], candidate, atol=1e-7):
                raise Mistake(
                    f"inverse(forward(z, c), c) differs from z by up to {err:.3g}: your "
                    f"inverse computes z_b = {name}.",
                    _INVERSE_HINTS[name],
                )
        raise Mistake(
            f"inverse(forward(z, c), c) differs from z by up to {err:.3g}, although the "
            "inverse reads the context.",
            "forward and inverse must give the conditioner the same input in the same order, "
            "torch.cat([x_a, context], -1) in the inverse as torch.cat([z_a, context], -1) in "
            "forward (x_a = z_a), so that it returns the same shift and log-scale; then "
            "z_b = (x_b - shift) * exp(-log_scale).",
        )
    xs = x[:8]
    J_inv = autograd_jacobian(lambda p: fixed.inverse(p)[0], xs)
    _check_gradients(cls, layer, fixed.inverse, xs, J_inv, a, b, "inverse")
    _compare_ladj(fixed.inverse(xs)[1], torch.linalg.slogdet(J_inv).logabsdet, "inverse", len(b), d)
    return err


@exercise("Exercise 9.1")
def conditional_coupling(cls) -> str:
    """Check a class ``cls(mask, context_dim, hidden)`` with ``forward(z, context)`` and
    ``inverse(x, context)``.

    On two masks and context sizes, with random network weights, in float64:
    the output has the input's shape (the context is not returned), the mask-1
    coordinates pass through, the output changes with the context, one context
    of shape ``(C,)`` serves a whole batch, the Jacobian in ``z`` is triangular
    with ``ladj = log|det J|`` in both directions, gradients reach the weights,
    the input and the context, and the inverse undoes forward.
    """
    cases = [(alternating_mask(4, 0), 2), (half_mask(5, 1), 3)]
    with torch.random.fork_rng(devices=[]):
        gen = torch.Generator().manual_seed(909)
        torch.manual_seed(909)  # the learner's layers draw their initial weights globally
        errors = [_drive(cls, mask, c, gen) for mask, c in cases]
    shown = ", ".join(f"{m.int().tolist()} with C = {c}" for m, c in cases)
    return (
        f"masks {shown}, random weights: the context is read and not returned, one "
        "context serves a batch, triangular Jacobian in z, "
        "ladj = log|det J| (autograd) both ways, gradients reach the context, round trip "
        f"error {max(errors):.1e} (float64)."
    )


# ----------------------------------------------------------------------------
# Exercise 9.2: the credibility of the true parameter, from samples


def _credibility_inputs(m: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Log-densities of m samples for each of n posteriors, and of the n true parameters.

    Each column has its own scale (so that mixing columns shows), and the true values
    sit at different depths of their columns.
    """
    g = torch.Generator().manual_seed(seed)
    offsets = 3 * torch.randn(n, generator=g, dtype=torch.float64)
    samples = offsets + torch.randn(m, n, generator=g, dtype=torch.float64)
    true = offsets + 1.2 * torch.randn(n, generator=g, dtype=torch.float64)
    return samples, true


@exercise("Exercise 9.2")
def credibility(fn) -> str:
    """Check ``fn(log_q_samples (m, N), log_q_true (N,)) -> (N,)``: the fraction of each
    column's samples whose log-density is above the true parameter's."""
    checked = []
    for m, n, seed in ((64, 64, 2), (500, 40, 1), (300, 1, 3)):  # m = N first: broadcasting
        samples, true = _credibility_inputs(m, n, seed)
        samples_copy, true_copy = samples.clone(), true.clone()
        ref = sample_credibility(samples, true)
        out = fn(samples, true)
        if not (torch.equal(samples, samples_copy) and torch.equal(true, true_copy)):
            raise Mistake(
                "your function changed its inputs in place.",
                "compare without writing into the tensors: (log_q_samples > log_q_true).",
            )
        what = f"credibility(log_q_samples of shape {(m, n)}, log_q_true of shape {(n,)})"
        out = as_tensor(out, what, "return a tensor of N fractions, one per test pair.")
        if out.shape != ref.shape:
            if out.dim() == 0 or out.numel() == 1 and n > 1:
                hint = (
                    "return one credibility per test pair (average over the samples only, "
                    "dim 0): the coverage, the average over test pairs, comes later."
                )
            elif out.shape == (m,) or out.shape == (m, 1):
                hint = (
                    "average over the samples, dim 0 (the rows): each column holds the "
                    "samples of one test pair's posterior."
                )
            else:
                hint = "return one value per test pair: a tensor of shape (N,)."
            raise Mistake(f"{what} returned shape {tuple(out.shape)}; expected ({n},).", hint)
        if close(out, ref):
            checked.append((m, n))
            continue
        if close(out, 1 - ref):
            raise Mistake(
                f"{what} returned 1 minus the credibility: the fraction of samples where q is "
                "lower than at the true parameter.",
                "count the samples where q is HIGHER than at the true parameter, "
                "log_q_samples > log_q_true: the highest-density region of level alpha "
                "holds the true parameter when this mass is below alpha.",
            )
        if close(out, ref * m):
            raise Mistake(
                f"{what} returned counts (up to {m}), not fractions.",
                "divide by the number of samples, or take .mean(0) of the 0/1 comparisons: "
                "a credibility is a probability mass, in [0, 1].",
            )
        if m == n and close(out, (samples > true).double().mean(1)):
            raise Mistake(
                f"{what} averaged over the test pairs (dim 1) instead of over the samples.",
                "average over the samples, dim 0 (the rows): each column holds the samples of "
                "one test pair's posterior.",
            )
        if m == n and close(out, (samples > true[:, None]).double().mean(0)):
            raise Mistake(
                f"{what} compared sample j of each column with the true value of pair j: the "
                "true values were broadcast along the wrong dimension.",
                "log_q_true has one value per column (test pair): compare log_q_samples (m, N) "
                "with log_q_true (N,) directly, which broadcasts along the last dimension; "
                "not with log_q_true[:, None].",
            )
        raise Mistake(
            f"{what} differs from the fraction of samples above the true log-density by up to "
            f"{(out - ref).abs().max().item():.3g}.",
            "for each column n: the fraction of its m samples with log_q_samples[:, n] > "
            "log_q_true[n], i.e. (log_q_samples > log_q_true).double().mean(0).",
        )
    shown = ", ".join(f"m = {m}, N = {n}" for m, n in checked)
    return f"{shown}: the fraction of samples above the true log-density, one per test pair."
