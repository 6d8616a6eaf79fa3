"""Checks of lesson 10 (continuous flows): the flow-matching loss, an Euler sampler, and
Hutchinson's trace estimator.

The learner's code draws its own random numbers (``x0``, ``t``, the probes), so the checks
do not compare with a reference draw. They hand the learner's code a *spy* velocity field
that records every call ``field(x, t)``: from the recorded times and points the check
reconstructs what the code drew, recomputes the loss from it, and compares. The sampler is
deterministic and is compared with the reference Euler steps; the recorded times say which
step went wrong. Hutchinson's estimator is judged statistically, on a linear field whose
trace is known: no bias beyond a few standard errors, one probe per point.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._core import Mistake, exercise

__all__ = ["euler_sampler", "fm_loss", "hutchinson"]

F64 = torch.float64


def _column(t: object, x: Tensor) -> Tensor:
    """The time(s) a learner passed, as a column ``(N, 1)`` for points ``x`` ``(N, D)``."""
    t = torch.as_tensor(t, dtype=x.dtype)
    if t.dim() == x.dim() and t.shape[-1] == 1:
        return t.expand(*x.shape[:-1], 1)
    if t.numel() == 1:
        return t.reshape(()).expand(*x.shape[:-1], 1)
    if t.shape == x.shape[:-1]:
        return t[..., None]
    raise Mistake(
        f"your code called field(x, t) with t of shape {tuple(t.shape)} for x of shape "
        f"{tuple(x.shape)}.",
        "pass one time per point, t of shape (N, 1) (or (N,)), or one number for all points.",
    )


class _Spy(nn.Module):
    """A velocity field ``v(x, t) = tanh(x W^T) (1 + t) + b t`` that records its calls."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(dim, dim, generator=g, dtype=F64))
        self.b = nn.Parameter(torch.randn(dim, generator=g, dtype=F64))
        self.calls: list[tuple[Tensor, Tensor]] = []

    def value(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.tanh(x @ self.W.T) * (1 + t) + self.b * t

    def forward(self, x: Tensor, t: object) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise Mistake(
                f"your code called field(x, t) with x of shape {got}.",
                "call the field on the batch of points, x of shape (N, D).",
            )
        t = _column(t, x)
        self.calls.append((x.detach().to(F64), t.detach().to(F64)))
        return self.value(x.to(F64), t.to(F64)).to(x.dtype)


def _scalar(out: object, what: str) -> Tensor:
    if not isinstance(out, Tensor) or not out.is_floating_point():
        raise Mistake(
            f"{what} returned {type(out).__name__}, not a float tensor.",
            "return the loss as a tensor (a scalar), so that .backward() can train on it.",
        )
    if out.numel() != 1:
        raise Mistake(
            f"{what} returned a tensor of shape {tuple(out.shape)}, not a scalar.",
            "average the squared errors over the examples: one number, the loss. Sum over the "
            "coordinates first (the squared norm), then .mean() over the examples.",
        )
    return out.reshape(())


def _standard_normal(z: Tensor) -> bool:
    finite = torch.isfinite(z).all()
    return bool(finite) and z.mean().abs().item() < 0.15 and abs(z.std().item() - 1) < 0.15


# --- Exercise 10.1: the flow-matching loss -------------------------------------------------------


@exercise("Exercise 10.1")
def fm_loss(fn: Callable[[nn.Module, Tensor], Tensor]) -> str:
    """Check ``flow_matching_loss(field, x1) -> scalar`` for the straight-line path."""
    n, dim = 4096, 2
    g = torch.Generator().manual_seed(10)
    x1 = torch.tensor([3.0, -2.0], dtype=F64) + 0.5 * torch.randn(n, dim, generator=g, dtype=F64)
    spy = _Spy(dim, seed=11)
    loss = _scalar(fn(spy, x1.clone()), "flow_matching_loss")
    if not spy.calls:
        raise Mistake(
            "your loss never called field(x_t, t).",
            "the loss compares the network's velocity at (x_t, t) with the target: "
            "call field(xt, t).",
        )
    xt, t = spy.calls[-1]
    if xt.shape != x1.shape:
        raise Mistake(
            f"field was called with x of shape {tuple(xt.shape)} for data of shape "
            f"{tuple(x1.shape)}.",
            "x_t has the shape of the data: one point per example.",
        )
    t = t[:, 0]
    if t.min() < 0 or t.max() > 1:
        raise Mistake(
            f"your t runs from {t.min().item():.3g} to {t.max().item():.3g}.",
            "t must be uniform on [0, 1]: t = torch.rand(n, 1), not torch.randn.",
        )
    if bool((t == t[0]).all()):
        raise Mistake(
            f"every example got the same time t = {t[0].item():.3g}.",
            "t is sampled once per batch: draw one t per example, t = torch.rand(n, 1), so that "
            "every batch teaches the field at many times (one t per batch makes each step "
            "learn one time only, a much noisier gradient).",
        )
    tc = t[:, None]
    x0 = (xt - tc * x1) / (1 - tc)  # the x0 of the right path x_t = (1 - t) x0 + t x1
    if not _standard_normal(x0):
        if _standard_normal((xt - (1 - tc) * x1) / tc):
            raise Mistake(
                "your x_t is t x0 + (1 - t) x1: at t = 0 it is the data, at t = 1 the noise.",
                "interpolating with t and 1 - t swapped: x_t = (1 - t) x0 + t x1, so that the "
                "path starts at the base sample (t = 0) and ends at the data (t = 1), the "
                "direction in which the sampler integrates.",
            )
        raise Mistake(
            "the points your code gave the field are not x_t = (1 - t) x0 + t x1 with "
            "x0 ~ N(0, I) and the t it passed.",
            "draw x0 = torch.randn_like(x1) (standard normal, not torch.rand), one t per "
            "example, and give the field x_t = (1 - t) * x0 + t * x1 with the same t.",
        )
    with torch.no_grad():
        v = spy.value(xt, tc)
    u = x1 - x0
    per_coordinate = (v - u).square()
    ref = per_coordinate.sum(-1).mean()
    value = loss.detach().double()
    if torch.isclose(value, ref, rtol=1e-6, atol=1e-9):
        if not loss.requires_grad:
            raise Mistake(
                "the loss has the right value but carries no gradient to the field's parameters.",
                "compute it with torch operations on field(xt, t), without .detach(), "
                ".item() or torch.no_grad().",
            )
        return (
            f"your loss equals the straight-line flow-matching loss of the x0 and t your code "
            f"drew ({n} examples, one t each, x_t = (1 - t) x0 + t x1, target x1 - x0, "
            "squared norm averaged over examples), and it carries gradients."
        )
    variants = [
        (
            (v - (x0 - x1)).square().sum(-1).mean(),
            "target velocity sign: the point moves from x0 (t = 0) to x1 (t = 1), so its velocity "
            "is x1 - x0, not x0 - x1.",
        ),
        (
            per_coordinate.mean(),
            "mean vs sum over dimensions: you averaged over the coordinates too. The loss is the "
            "squared norm ||v - (x1 - x0)||^2, a sum over the D coordinates, averaged over "
            "examples: ((v - u) ** 2).sum(-1).mean().",
        ),
        (
            (v - (x1 - xt)).square().sum(-1).mean(),
            "the target is x1 - x0, the velocity of the straight line, not x1 - x_t (which is "
            "(1 - t) times it).",
        ),
        (
            per_coordinate.sum(-1).sum(),
            "average over the examples (.mean()), not a sum: the loss should not grow with the "
            "batch size.",
        ),
        (
            (v - u).square().sum(-1).sqrt().mean(),
            "square the norm: the loss is ||v - (x1 - x0)||^2, not ||v - (x1 - x0)||.",
        ),
    ]
    for variant, hint in variants:
        if torch.isclose(value, variant, rtol=1e-6, atol=1e-9):
            raise Mistake(
                f"your loss is {value.item():.6g}; with the x0 and t your code drew it "
                f"should be {ref.item():.6g}.",
                hint,
            )
    raise Mistake(
        f"your loss is {value.item():.6g}; with the x0 and t your code drew it should be "
        f"{ref.item():.6g}.",
        "loss = ((field(xt, t) - (x1 - x0)) ** 2).sum(-1).mean() with xt = (1 - t) * x0 + t * x1.",
    )


# --- Exercise 10.2: an Euler sampler -------------------------------------------------------------


def euler_reference(field: Callable, z: Tensor, steps: int) -> Tensor:
    """``steps`` Euler steps of size ``1 / steps`` from ``t = 0`` to ``t = 1``."""
    x, dt = z, 1.0 / steps
    for k in range(steps):
        x = x + dt * field(x, torch.tensor(k * dt, dtype=z.dtype))
    return x


def _times(spy: _Spy) -> list[float]:
    """The time of each recorded call (one number; a per-point time must be the same for all)."""
    out = []
    for _, t in spy.calls:
        if not bool((t == t.reshape(-1)[0]).all()):
            raise Mistake(
                "your sampler called the field with different times for different points.",
                "all points are at the same time t_k at step k.",
            )
        out.append(t.reshape(-1)[0].item())
    return out


@exercise("Exercise 10.2")
def euler_sampler(fn: Callable[[nn.Module, Tensor, int], Tensor]) -> str:
    """Check ``euler_sample(field, z, steps) -> x`` (at t = 1) against the reference steps."""
    g = torch.Generator().manual_seed(12)
    for steps, n in ((8, 64), (5, 3)):
        z = torch.randn(n, 2, generator=g, dtype=F64)
        spy = _Spy(2, seed=13)
        x = fn(spy, z.clone(), steps)
        if not isinstance(x, Tensor) or x.shape != z.shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise Mistake(
                f"euler_sample returned {got}; expected the points at t = 1, shape "
                f"{tuple(z.shape)}.",
                "return x after the last step (not the list of all the steps).",
            )
        times = _times(spy)
        expected = [k / steps for k in range(steps)]
        if len(times) != steps:
            raise Mistake(
                f"with steps = {steps} your sampler called the field {len(times)} times "
                f"(at t = {', '.join(f'{t:.3g}' for t in times[:10])}).",
                f"off-by-one number of steps: take exactly `steps` steps, for k in "
                f"range(steps), at t_k = k / steps: {steps} evaluations, from t = 0 to "
                f"t = {steps - 1}/{steps}; the last step lands on t = 1."
                if abs(len(times) - steps) == 1
                else "take exactly `steps` Euler steps, one evaluation of the field each.",
            )
        if steps > 1 and times[0] > times[-1]:
            raise Mistake(
                f"your sampler went through the times {', '.join(f'{t:.3g}' for t in times)}.",
                "wrong time direction: sampling runs from t = 0 (noise) to t = 1 (data), "
                "t_k = k / steps, going up.",
            )
        if steps > 1 and all(abs(a - k / (steps - 1)) < 1e-6 for k, a in enumerate(times)):
            raise Mistake(
                f"your sampler evaluated the field at t = 0, ..., 1 in {steps} points: "
                f"{', '.join(f'{t:.3g}' for t in times)}.",
                "wrong dt: torch.linspace(0, 1, steps) makes steps - 1 intervals of "
                "1 / (steps - 1). With dt = 1 / steps the times are t_k = k / steps, "
                "k = 0, ..., steps - 1 (torch.linspace(0, 1, steps + 1)[:-1]).",
            )
        if all(abs(a - (k + 1) / steps) < 1e-6 for k, a in enumerate(times)):
            raise Mistake(
                f"your sampler evaluated the field at t = {', '.join(f'{t:.3g}' for t in times)}.",
                "explicit Euler evaluates the field at the start of each step: "
                "x_{k+1} = x_k + dt v(x_k, t_k) with t_k = k / steps (the first at t = 0).",
            )
        if not all(abs(a - b) < 1e-6 for a, b in zip(times, expected, strict=True)):
            raise Mistake(
                f"your sampler evaluated the field at t = {', '.join(f'{t:.3g}' for t in times)}"
                f"; with steps = {steps} Euler evaluates at t_k = k / steps: "
                f"{', '.join(f'{t:.3g}' for t in expected)}.",
                "t_k = k * dt with dt = 1 / steps, for k in range(steps).",
            )
        # the reference steps at the learner's own times (a float32 time is fine)
        xd = x.detach().double()
        with torch.no_grad():
            ref, backwards, big = z.clone(), z.clone(), z.clone()
            for tk in times:
                tk = torch.tensor(tk, dtype=F64)
                ref = ref + spy.value(ref, tk) / steps
                backwards = backwards - spy.value(backwards, tk) / steps
                big = big + spy.value(big, tk)
        if torch.allclose(xd, ref, atol=1e-9, rtol=1e-9):
            continue
        if torch.allclose(xd, backwards, atol=1e-9):
            raise Mistake(
                "your steps go against the field: x - dt v.",
                "wrong time direction: time increases, x_{k+1} = x_k + dt v(x_k, t_k).",
            )
        if torch.allclose(xd, big, atol=1e-9):
            raise Mistake(
                f"your sampler takes steps of size 1 with steps = {steps}.",
                "wrong dt: the steps cover [0, 1], so dt = 1 / steps: x = x + dt * field(x, t).",
            )
        raise Mistake(
            f"with steps = {steps} your points at t = 1 differ from {steps} Euler steps by up to "
            f"{(xd - ref).abs().max().item():.3g}.",
            "x_{k+1} = x_k + dt * field(x_k, t_k), with the x of the previous step (not z).",
        )
    return (
        "your sampler takes `steps` Euler steps of size 1 / steps at t_k = k / steps from "
        "t = 0 to 1 and lands on the reference points (steps = 8 and 5)."
    )


# --- Exercise 10.3: Hutchinson's estimator -------------------------------------------------------


class _Linear(nn.Module):
    """``v(x, t) = x A^T``: its Jacobian is A at every point, its divergence tr A."""

    def __init__(self, A: Tensor):
        super().__init__()
        self.A = A

    def forward(self, x: Tensor, t: object) -> Tensor:
        return x @ self.A.T


def _estimates(fn: Callable, field: nn.Module, x: Tensor) -> Tensor:
    out = fn(field, x.clone(), 0.5)
    if not isinstance(out, Tensor) or out.shape != x.shape[:-1]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise Mistake(
            f"hutchinson_divergence returned {got} for x of shape {tuple(x.shape)}; "
            f"expected one estimate per point, shape {tuple(x.shape[:-1])}.",
            "return one estimate per point, not their mean or sum over the batch."
            if isinstance(out, Tensor) and out.numel() == 1
            else "sum eps * (eps^T J) over the coordinates only: (eps * vjp).sum(-1).",
        )
    return out.detach().double()


@exercise("Exercise 10.3")
def hutchinson(fn: Callable[[nn.Module, Tensor, float], Tensor]) -> str:
    """Check ``hutchinson_divergence(field, x, t) -> (N,)``: unbiased, one probe per point."""
    A = torch.tensor([[1.5, 1.0, -0.3], [0.2, -0.5, 0.7], [1.5, 0.1, 1.2]], dtype=F64)
    S = (A + A.T) / 2
    trace = A.trace().item()
    field = _Linear(A)
    n = 20_000
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(14), dtype=F64)
    first, second = _estimates(fn, field, x), _estimates(fn, field, x)
    if bool((first == first[0]).all()):
        if abs(first[0].item() - trace) < 1e-9 and abs(second[0].item() - trace) < 1e-9:
            raise Mistake(
                "your estimates are exactly the trace at every point, every call.",
                "that is the exact divergence; the exercise asks for the estimator: "
                "one random probe eps per point and eps^T J eps, one vector-Jacobian "
                "product.",
            )
        raise Mistake(
            "all your estimates in one call are the same number.",
            "probe reused across samples: draw a fresh probe for every point, eps of the shape "
            "of x (N, D), not one eps of shape (D,) shared by the batch; else the errors of "
            "all points are the same and do not average out.",
        )
    if torch.equal(first, second):
        raise Mistake(
            "two calls gave exactly the same estimates.",
            "the probes must be new random draws at every call (no fixed seed inside "
            "the function): the estimator is unbiased only on average over probes.",
        )
    gaussian_var = 2 * S.square().sum().item()
    se = math.sqrt(gaussian_var / n)  # the larger of the two probes' variances
    mean = first.mean().item()
    if abs(mean - trace) > 6 * se:
        message = (
            f"the mean of your {n} estimates is {mean:.4f}, the trace is {trace:.4f} "
            f"({abs(mean - trace) / se:.0f} standard errors away): the estimator is "
            "biased."
        )
        uniform = (A.diagonal().sum() / 3 + (A.sum() - A.diagonal().sum()) / 4).item()
        if abs(mean - uniform) < 6 * se:
            raise Mistake(
                message,
                "probe not Rademacher/Gaussian: torch.rand is uniform on "
                "[0, 1), whose E[eps eps^T] is not the identity. Use Rademacher "
                "signs, torch.randint(0, 2, x.shape) * 2 - 1, or torch.randn_like(x).",
            )
        if abs(mean) < 6 * se:
            raise Mistake(
                message,
                "finish the product: (eps^T J) is a vector; the estimate is "
                "its dot product with the same eps, (eps * vjp).sum(-1).",
            )
        raise Mistake(
            message,
            "estimate = eps^T J eps with E[eps eps^T] = I: vjp = "
            "torch.autograd.grad(v, x, eps)[0]; return (vjp * eps).sum(-1).",
        )
    var = first.var().item()
    rademacher_var = gaussian_var - 2 * S.diagonal().square().sum().item()
    probe = (
        "a Rademacher probe's"
        if abs(var / rademacher_var - 1) < 0.1
        else "a Gaussian probe's"
        if abs(var / gaussian_var - 1) < 0.1
        else "neither probe's"
    )
    return (
        f"unbiased: the mean of {n} estimates is {mean:.3f} for a trace of {trace:.3f} "
        f"(standard error {se:.3f}); one probe per point, new at every call; their variance "
        f"{var:.2f} is {probe} (Rademacher {rademacher_var:.2f}, Gaussian "
        f"{gaussian_var:.2f})."
    )
