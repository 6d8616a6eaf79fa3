"""Checks of lesson 08 (variational inference): the ELBO estimator, the log-mean-exp of
importance weights and their effective sample size.

The ELBO check runs the learner's estimator on a Gaussian guide (a flow with one
:class:`~nfcourse.layers.Affine` layer, moved off the identity) and a Gaussian target
scaled by a known ``Z``, so the exact ELBO, ``log Z - KL(q || p)``, is in closed form. It
draws the learner's samples and the reference's under the same seed, so a right answer
agrees to round-off, in value and in gradient; a wrong one is compared with the typical
mistakes to name the likely one. The importance-sampling checks feed log-weights of
ordinary size and of size 1000 (where ``exp`` overflows) and -1000 (where it underflows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ...flow import Flow
from ...layers import Affine
from ._core import Mistake, exercise
from ._tools import close

__all__ = ["effective_sample_size", "elbo_estimate", "log_mean_exp"]

F64 = torch.float64
TOL = 1e-9
LOG_Z = 1.7  # the log evidence of the check's target
_M = torch.tensor([0.5, -1.0], dtype=F64)
_S = torch.tensor([0.8, 1.5], dtype=F64)


def _target(x: Tensor) -> Tensor:
    """``log p~(x) = log Z + log N(x; M, diag(S^2))``."""
    z = (x - _M) / _S
    return LOG_Z - 0.5 * z.square().sum(-1) - _S.log().sum() - math.log(2 * math.pi)


def _guide() -> Flow:
    layer = Affine(2).double()
    with torch.no_grad():
        layer.shift.copy_(torch.tensor([0.2, -0.4], dtype=F64))
        layer.log_scale.copy_(torch.tensor([-0.1, 0.3], dtype=F64))
    return Flow([layer]).double()


def _exact_elbo(flow: Flow) -> float:
    layer = flow.transform.layers[0]
    mu, sigma = layer.shift.detach(), layer.log_scale.detach().exp()
    kl = (torch.log(_S / sigma) + (sigma**2 + (mu - _M) ** 2) / (2 * _S**2) - 0.5).sum()
    return LOG_Z - kl.item()


def _scalar(out: object, name: str, n: int, per_sample: str) -> Tensor:
    """The learner's scalar result as a tensor (keeping its graph), or a Mistake."""
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return torch.tensor(float(out), dtype=F64)
    if not isinstance(out, Tensor) or not out.is_floating_point():
        got = f"a tensor of dtype {out.dtype}" if isinstance(out, Tensor) else type(out).__name__
        raise Mistake(
            f"{name} returned {got}; expected one number (a float tensor).",
            "return a torch scalar, e.g. `values.mean()`.",
        )
    if out.numel() == n and n > 1:
        raise Mistake(
            f"{name} returned {out.numel()} values, one per sample; expected one number.",
            per_sample,
        )
    if out.numel() != 1:
        raise Mistake(
            f"{name} returned a tensor of shape {tuple(out.shape)}; expected one number.",
            "reduce to a scalar: a mean over the samples.",
        )
    return out.reshape(())


# --- Exercise 8.1: the ELBO from sample_and_log_prob ---------------------------------------------


def _reference(flow: Flow, n: int, seed: int, detached: bool = False) -> tuple[Tensor, Tensor]:
    """The ELBO estimate under ``seed`` and its gradient (flattened), right or with the
    samples detached from the parameters (``flow.sample`` then ``flow.log_prob``)."""
    flow.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    if detached:
        x = flow.sample(n)
        log_q = flow.log_prob(x)
    else:
        x, log_q = flow.sample_and_log_prob(n)
    value = (_target(x) - log_q).mean()
    value.backward()
    grad = torch.cat([p.grad.flatten() for p in flow.parameters()])
    flow.zero_grad(set_to_none=True)
    return value.detach(), grad


def _parts(flow: Flow, n: int, seed: int) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        torch.manual_seed(seed)
        x, log_q = flow.sample_and_log_prob(n)
        return _target(x), log_q


_ELBO_MISTAKES = [
    (
        lambda lp, lq: (lq - lp).mean(),
        "your value is minus the ELBO",
        "the sign is flipped: mean(log q(x) - log p~(x)) is the loss that fit_reverse_kl minimizes "
        "(the KL minus log Z). The ELBO is its negative, mean(log p~(x) - log q(x)), and it lies "
        "below log Z.",
    ),
    (
        lambda lp, lq: lp.mean(),
        "your value is the mean of log p~(x) alone",
        "log p instead of log p - log q: the ELBO is E_q[log p~(x) - log q(x)]. Without the "
        "-log q(x) term (the entropy of q) nothing stops q from collapsing onto the mode of p.",
    ),
    (
        lambda lp, lq: (lp + lq).mean(),
        "your value adds log q(x) instead of subtracting it",
        "log q(x) enters with a minus sign: mean(log p~(x) - log q(x)).",
    ),
    (
        lambda lp, lq: (lp - lq).sum(),
        "your value is the sum over the samples, n times the ELBO",
        "average over the samples (`.mean()`), do not sum: the ELBO is an expectation, and a sum "
        "grows with n.",
    ),
]


@exercise("Exercise 8.1")
def elbo_estimate(fn: Callable[[Flow, Callable[[Tensor], Tensor], int], Tensor]) -> str:
    """Check ``elbo_estimate(flow, log_density, n) -> ELBO`` (a scalar with gradients)."""
    flow, n, seed = _guide(), 4096, 0
    ref, ref_grad = _reference(flow, n, seed)
    torch.manual_seed(seed)
    out = fn(flow, _target, n)
    per_sample = (
        "average over the samples: the ELBO is one number, the mean of log p~(x) - log q(x)."
    )
    value = _scalar(out, "elbo_estimate", n, per_sample)
    exact = _exact_elbo(flow)
    lp, lq = _parts(flow, n, seed)
    if not close(value, ref, TOL):
        for variant, what, hint in _ELBO_MISTAKES:
            if close(value, variant(lp, lq), TOL):
                raise Mistake(f"{what}: {value.item():.4f}; the ELBO here is {exact:.4f}.", hint)
        se = (lp - lq).std().item() / math.sqrt(n)
        if abs(value.item() - exact) > 6 * se:
            raise Mistake(
                f"your ELBO is {value.item():.4f}; the exact one is {exact:.4f} (log Z = {LOG_Z} "
                f"minus KL(q || p)), and {n} samples give it within about {se:.3f}.",
                "draw x and log q(x) with `flow.sample_and_log_prob(n)`, then return "
                "`(log_density(x) - log_q).mean()`.",
            )
        note = " (from other draws than the reference's, within Monte Carlo error)"
    else:
        note = ""
    # gradients: the reparameterization carries them from the samples to the parameters
    if not value.requires_grad:
        raise Mistake(
            "your ELBO carries no gradient, so an optimizer could not improve the flow with it.",
            "samples detached from the reparameterization: draw with `flow.sample_and_log_prob(n)`"
            " (or `flow.rsample`), not `flow.sample` or under `torch.no_grad()`, and keep "
            "`.detach()` / `.item()` out of the estimate.",
        )
    flow.zero_grad(set_to_none=True)
    value.backward()
    grads = [p.grad for p in flow.parameters()]
    if any(g is None for g in grads):
        raise Mistake(
            "gradients do not reach all of the flow's parameters.",
            "compute the estimate from the flow's own samples and log-densities.",
        )
    grad = torch.cat([g.flatten() for g in grads])
    flow.zero_grad(set_to_none=True)
    if not note and not close(grad, ref_grad, 1e-7):
        _, detached = _reference(flow, n, seed, detached=True)
        if close(grad, detached, 1e-7):
            raise Mistake(
                "the value is right, but its gradient is not the ELBO's: your samples x carry "
                "no gradient, only log q(x) does.",
                "samples detached from the reparameterization: `flow.sample(n)` draws without "
                "gradients, so the gradient misses how moving the parameters moves x. Use "
                "`x, log_q = flow.sample_and_log_prob(n)`: x = f(z) with z ~ N(0, I), "
                "differentiable in the parameters.",
            )
        raise Mistake(
            "the value is right, but its gradient differs from the ELBO's.",
            "use `x, log_q = flow.sample_and_log_prob(n)` and return "
            "`(log_density(x) - log_q).mean()`.",
        )
    return (
        f"your ELBO is {value.item():.4f}{note}, the exact one log Z - KL(q || p) = {exact:.4f} "
        f"(log Z = {LOG_Z}); its gradient reaches the parameters through the samples "
        "(the reparameterization)."
    )


# --- Exercise 8.2: log-mean-exp --------------------------------------------------------------


def _log_weights(seed: int, n: int = 500, shift: float = 0.0, scale: float = 2.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return shift + scale * torch.randn(n, generator=g, dtype=F64)


def _call(fn: Callable, log_w: Tensor, name: str, per_sample: str) -> Tensor:
    out = fn(log_w.clone())
    return _scalar(out, name, log_w.numel(), per_sample).detach().double()


_NAIVE_LME = (
    "log of mean of exp computed naively: exp(1000) overflows to inf (and exp(-1000) "
    "underflows to 0, whose log is -inf). Take the largest log-weight m out first: "
    "log mean exp(l) = m + log(mean(exp(l - m))), or torch.logsumexp(l, 0) - log(n)."
)


@exercise("Exercise 8.2")
def log_mean_exp(fn: Callable[[Tensor], Tensor]) -> str:
    """Check ``log_mean_exp(log_w) -> log((1/n) sum exp(log_w))`` on ordinary and extreme sizes."""
    per_sample = "reduce over the samples: one number, the log of the mean of the weights."
    cases = [
        ("log-weights of ordinary size", 0.0),
        ("log-weights near 1000", 1000.0),
        ("log-weights near -1000", -1000.0),
    ]
    for what, shift in cases:
        log_w = _log_weights(1, shift=shift)
        n = log_w.numel()
        ref = torch.logsumexp(log_w, 0) - math.log(n)
        got = _call(fn, log_w, "log_mean_exp", per_sample)
        if close(got, ref, TOL):
            continue
        if not torch.isfinite(got):
            raise Mistake(
                f"with {what} your result is {got.item()}; the right one is {ref.item():.4f}.",
                _NAIVE_LME,
            )
        if close(got, log_w.mean(), TOL):
            raise Mistake(
                f"with {what} you return the mean of the log-weights, {got.item():.4f}, not the "
                f"log of their mean, {ref.item():.4f}.",
                "that is the ELBO, E_q[log w], which is below log E_q[w] (Jensen's inequality). "
                "The evidence estimate is the log of the mean of the weights: "
                "torch.logsumexp(log_w, 0) - log(n).",
            )
        if close(got, ref + math.log(n), TOL):
            raise Mistake(
                f"with {what} your result is log n = {math.log(n):.3f} too large: the log of the "
                "sum of the weights, not of their mean.",
                "subtract log(n) after logsumexp: the mean is the sum divided by n.",
            )
        raise Mistake(
            f"with {what} your result is {got.item():.6g}; the right one is {ref.item():.6g}.",
            "log((1/n) sum_i exp(l_i)) = m + log((1/n) sum_i exp(l_i - m)) with m = max_i l_i.",
        )
    return (
        "your log-mean-exp equals the reference for log-weights of ordinary size and stays "
        "finite and exact near 1000 and -1000, where exp over- and underflows."
    )


# --- Exercise 8.3: the effective sample size -------------------------------------------------


def _ess_variants(log_w: Tensor) -> list[tuple[Tensor, str, str]]:
    w = log_w.exp()
    n = log_w.numel()
    wbar = torch.softmax(log_w, 0)
    ess = 1 / wbar.square().sum()
    return [
        (
            1 / w.square().sum(),
            "you return 1 / sum_i w_i^2 with the raw weights",
            "ESS formula with unnormalized weights: 1 / sum w^2 holds for weights normalized to "
            "sum to 1, wbar_i = w_i / sum_j w_j (torch.softmax(log_w, 0)); with raw weights it "
            "depends on their arbitrary scale. Equivalently (sum w)^2 / sum w^2.",
        ),
        (
            1 / ess,
            "you return sum wbar_i^2, one over the ESS",
            "that is 1 / ESS (between 1/n and 1): the ESS is 1 / sum_i wbar_i^2.",
        ),
        (
            ess / n,
            "you return ESS / n, the share of the samples that count",
            f"that is the efficiency ESS / n; return the ESS itself (between 1 and n = {n}).",
        ),
        (
            1 / wbar.sum(),
            "you return 1 / sum_i wbar_i, which is always 1",
            "square the normalized weights: ESS = 1 / sum_i wbar_i^2.",
        ),
    ]


@exercise("Exercise 8.3")
def effective_sample_size(fn: Callable[[Tensor], Tensor]) -> str:
    """Check ``effective_sample_size(log_w) -> (sum w)^2 / sum w^2`` from log-weights."""
    per_sample = "reduce over the samples: the ESS is one number between 1 and n."
    cases = [
        ("log-weights of ordinary size", _log_weights(2, n=300, scale=1.0)),
        ("equal log-weights", torch.full((200,), 0.7, dtype=F64)),
        (
            "one log-weight far above the rest",
            torch.cat([torch.zeros(1, dtype=F64), torch.full((99,), -50.0, dtype=F64)]),
        ),
        ("log-weights near 1000", _log_weights(3, n=300, shift=1000.0, scale=1.0)),
        ("log-weights near -1000", _log_weights(4, n=300, shift=-1000.0, scale=1.0)),
    ]
    for what, log_w in cases:
        ref = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0))
        got = _call(fn, log_w, "effective_sample_size", per_sample)
        if close(got, ref, 1e-8):
            continue
        for variant, message, hint in _ess_variants(log_w):
            if close(got, variant, 1e-8):
                raise Mistake(
                    f"with {what} {message}: {got.item():.4g} instead of {ref.item():.4g}.", hint
                )
        if not torch.isfinite(got) or abs(log_w.mean().item()) > 500:
            raise Mistake(
                f"with {what} your ESS is {got.item()}; the right one is {ref.item():.4f}.",
                "exp(1000) overflows and exp(-1000) underflows: normalize in log space first, "
                "wbar = torch.softmax(log_w, 0) (it subtracts the largest log-weight), then "
                "ESS = 1 / (wbar ** 2).sum().",
            )
        raise Mistake(
            f"with {what} your ESS is {got.item():.6g}; the right one is {ref.item():.6g}.",
            "ESS = (sum_i w_i)^2 / sum_i w_i^2 = 1 / sum_i wbar_i^2 with the normalized weights "
            "wbar = torch.softmax(log_w, 0): n for equal weights, 1 when one weight dominates.",
        )
    return (
        "your ESS is n for equal weights, 1 when one weight dominates, equals the reference "
        "in between, and does not depend on the weights' scale (log-weights near 1000 and "
        "-1000 included)."
    )
