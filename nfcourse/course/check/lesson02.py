"""Checks of lesson 02 (elementwise and linear flows).

- Exercise 2.1, :func:`affine_layer`: a class ``Affine(dim)`` with parameters
  ``shift`` and ``log_scale`` of shape ``(D,)``, ``forward(z) -> (x, ladj)`` with
  ``x = z * exp(log_scale) + shift`` and ``ladj = sum(log_scale)`` per sample, and
  ``inverse(x) -> (z, ladj)``.
- Exercise 2.2, :func:`train_loop`: ``train(flow, data, steps, lr, batch_size)``,
  the maximum-likelihood loop (Adam on the minibatch mean NLL), returning the
  loss of every step.

Each check compares the learner's code with the reference (``nfcourse``) on
inputs it chooses, recognizes the typical wrong variants to name the mistake,
and answers in well under a second.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ... import testing
from ...flow import Flow
from ...layers.elementwise import Affine as _ReferenceAffine
from ...layers.elementwise import affine_forward, affine_inverse
from ._core import Mistake, exercise
from ._tools import close as _close
from ._tools import pair as _pair

__all__ = ["affine_layer", "train_loop"]


# --- helpers ---------------------------------------------------------------------------------


def _ladj_shape(ladj: Tensor, points: Tensor, method: str) -> None:
    """ladj must hold one value per point: shape ``points.shape[:-1]``."""
    want = points.shape[:-1]
    if ladj.shape == want:
        return
    n, d = tuple(want), points.shape[-1]
    if ladj.shape == points.shape:
        hint = (
            "you returned one log-derivative per coordinate: the log-determinant of the "
            "diagonal Jacobian is their sum over the last dimension, `.sum(-1)`."
        )
    elif ladj.dim() == 0 or ladj.shape in ((1,), (d,)):
        hint = (
            "your ladj does not have one value per sample (a scalar, or one value per "
            "coordinate): sum log_scale to a scalar and expand it to the batch, e.g. "
            "`self.log_scale.sum().expand(z.shape[:-1])`, or "
            "`self.log_scale.expand_as(z).sum(-1)`."
        )
    else:
        hint = (
            "ladj needs one value per sample: shape z.shape[:-1]. Use the last dimension "
            "(`.sum(-1)`, `z.shape[:-1]`) rather than `dim=1` or `z.shape[0]`, so that any "
            "leading batch shape works."
        )
    raise Mistake(
        f"{method} returned ladj of shape {tuple(ladj.shape)} for points of shape "
        f"{tuple(points.shape)}; expected shape {n} (one value per sample).",
        hint,
    )


def _parameter(layer: nn.Module, name: str, dim: int) -> nn.Parameter:
    params = dict(layer.named_parameters(recurse=False))
    value = getattr(layer, name, None)
    if name not in params:
        if isinstance(value, Tensor):
            hint = (
                f"wrap it: `self.{name} = nn.Parameter(torch.zeros(dim))`. A plain tensor "
                "is invisible to flow.parameters(), so the optimizer would never train it."
            )
        elif name == "log_scale" and isinstance(getattr(layer, "scale", None), Tensor):
            hint = (
                "store the log of the scale, `log_scale`, not the scale: exp(log_scale) is "
                "positive for every value the optimizer reaches, so the layer can never "
                "become singular (a scale of 0 flattens the data) or flip sign."
            )
        else:
            hint = f"in __init__: `self.{name} = nn.Parameter(torch.zeros(dim))`."
        raise Mistake(f"Affine({dim}) has no parameter `{name}`.", hint)
    if params[name].shape != (dim,):
        raise Mistake(
            f"Affine({dim}).{name} has shape {tuple(params[name].shape)}, expected ({dim},).",
            "one value per coordinate: `nn.Parameter(torch.zeros(dim))`.",
        )
    return params[name]


# --- Exercise 2.1 ----------------------------------------------------------------------------


@exercise("Exercise 2.1")
def affine_layer(Affine) -> str:  # noqa: N803 - the learner's class
    """Check an elementwise affine layer class ``Affine(dim)``.

    Against :class:`nfcourse.Affine` in float64 with shift and log-scale set to
    values of both signs; recognizes: forward and inverse swapped, the log-scale
    used as a scale, the shift applied before the scale, the ladj per
    coordinate / a scalar / with the wrong sign / a mean / a sum of scales, an
    inverse that does not undo the forward pass, parameters without gradients,
    and a layer that does not start as the identity.
    """
    if not isinstance(Affine, type):
        raise Mistake(
            f"check.affine_layer expects your class itself, got {type(Affine).__name__}.",
            "pass the class, not an instance: `check.affine_layer(Affine)`.",
        )
    dim = 3
    fresh = Affine(dim)
    if not isinstance(fresh, nn.Module):
        raise Mistake(
            "Affine must be a torch.nn.Module.",
            "write `class Affine(nn.Module):` and call `super().__init__()` first in __init__.",
        )
    _parameter(fresh, "shift", dim)
    _parameter(fresh, "log_scale", dim)

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(5, dim, generator=gen, dtype=torch.float64)
    shift = torch.tensor([0.7, -1.2, 0.3], dtype=torch.float64)
    log_scale = torch.tensor([0.5, -0.3, 0.4], dtype=torch.float64)
    layer = Affine(dim).double()
    with torch.no_grad():
        layer.shift.copy_(shift)
        layer.log_scale.copy_(log_scale)
    scale = log_scale.exp()
    x_ref, ladj_ref = affine_forward(z, shift, log_scale)
    n_ladj = ladj_ref.shape

    # forward: the data point
    x, ladj = _pair(layer(z), "forward(z)", "x")
    if not _close(x, x_ref):
        variants = [
            (
                affine_inverse(z, shift, log_scale)[0],
                "forward is the generative direction z -> x: x = z * exp(log_scale) + shift. "
                "You wrote the normalizing direction (x - shift) * exp(-log_scale): that is "
                "inverse().",
            ),
            (
                z * log_scale + shift,
                "log_scale is the log of the scale: multiply by exp(log_scale), not by "
                "log_scale itself.",
            ),
            (z * (-log_scale).exp() + shift, "multiply by exp(log_scale), not exp(-log_scale)."),
            (
                (z + shift) * scale,
                "scale first, then shift: x = z * exp(log_scale) + shift, not "
                "(z + shift) * exp(log_scale).",
            ),
        ]
        hint = next((h for v, h in variants if _close(x, v)), "")
        if not hint and isinstance(x, Tensor) and x.shape != z.shape:
            hint = f"x must have the shape of z, {tuple(z.shape)}; got {tuple(x.shape)}."
        raise Mistake(
            "forward(z) does not give x = z * exp(log_scale) + shift (tried D = 3, "
            "shift and log_scale of both signs).",
            hint
            or "x = z * torch.exp(self.log_scale) + self.shift; the parameters "
            "broadcast over the batch.",
        )
    _ladj_shape(ladj, z, "forward(z)")
    if not _close(ladj, ladj_ref):
        variants = [
            (
                -ladj_ref,
                "the ladj has the wrong sign: the forward map multiplies by exp(log_scale), "
                "so it stretches volumes by exp(sum(log_scale)): ladj = +sum(log_scale).",
            ),
            (
                log_scale.mean().expand(n_ladj),
                "you averaged the log-scales: the log-determinant of a diagonal Jacobian is "
                "the sum of the log-derivatives over the coordinates, not their mean.",
            ),
            (
                scale.sum().expand(n_ladj),
                "you summed the scales: ladj is log|det J| = sum(log(scale)) = sum(log_scale).",
            ),
            (
                scale.prod().expand(n_ladj),
                "you returned the determinant itself: ladj is its log, sum(log_scale).",
            ),
            (
                torch.zeros(n_ladj, dtype=torch.float64),
                "the ladj is zero, as for a map that preserves volume; a scale changes "
                "volumes by exp(sum(log_scale)).",
            ),
        ]
        hint = next((h for v, h in variants if _close(ladj, v)), "")
        raise Mistake(
            f"forward(z) returned ladj {ladj.detach().flatten()[:1].tolist()}..., expected "
            f"sum(log_scale) = {ladj_ref[0].item():.4f} for every sample.",
            hint or "ladj = log|det dx/dz| = sum_i log_scale_i, the same for every sample.",
        )

    # inverse: undoes forward, ladj is minus the forward one
    z_back, ladj_inv = _pair(layer.inverse(x_ref), "inverse(x)", "z")
    if not _close(z_back, z):
        variants = [
            ((x_ref - shift) * scale, "divide by the scale: z = (x - shift) * exp(-log_scale)."),
            (
                x_ref * (-log_scale).exp() - shift,
                "subtract the shift first, then divide: z = (x - shift) * exp(-log_scale).",
            ),
            (
                x_ref * scale + shift,
                "inverse must undo forward (x -> z); you applied the forward map again.",
            ),
            ((x_ref - shift) / log_scale, "divide by exp(log_scale), not by log_scale."),
        ]
        hint = next((h for v, h in variants if _close(z_back, v)), "")
        raise Mistake(
            "inverse(forward(z)) does not give back z.",
            hint
            or "solve x = z * exp(log_scale) + shift for z: z = (x - shift) * exp(-log_scale).",
        )
    _ladj_shape(ladj_inv, x_ref, "inverse(x)")
    if not _close(ladj_inv, -ladj_ref):
        variants = [
            (
                ladj_ref,
                "the inverse's ladj has the wrong sign: inverse divides by the scale, so its "
                "ladj is minus the forward one, -sum(log_scale).",
            ),
            (
                -log_scale.mean().expand(n_ladj),
                "you averaged the log-scales: sum them over the coordinates, -sum(log_scale).",
            ),
        ]
        hint = next((h for v, h in variants if _close(ladj_inv, v)), "")
        raise Mistake(
            "inverse(x) returned the wrong ladj: expected -sum(log_scale) = "
            f"{-ladj_ref[0].item():.4f} for every sample.",
            hint or "the inverse's ladj is minus the forward's: -sum(log_scale).",
        )

    # the oracle: ladj against log|det| of the autograd Jacobian, both directions
    for direction in ("forward", "inverse"):
        err = testing.ladj_error(layer, z if direction == "forward" else x_ref, direction)
        if not err < 1e-5:
            raise Mistake(
                f"{direction}: ladj differs from log|det| of the autograd Jacobian by {err:.2g}.",
                "compute x and ladj from the parameters with torch operations only "
                "(no .item(), no NumPy), so that they are the map you apply.",
            )

    # any leading batch shape
    zz = z.reshape(1, 5, dim).expand(2, 5, dim)
    xx, ll = _pair(layer(zz), "forward(z)", "x")
    if xx.shape != zz.shape:
        raise Mistake(
            f"forward(z) on points of shape {tuple(zz.shape)} returned x of shape "
            f"{tuple(xx.shape)}.",
            "work on the last dimension only, so that any leading batch shape works.",
        )
    _ladj_shape(ll, zz, "forward(z)")

    # gradients reach both parameters (through x and through ladj)
    layer.zero_grad(set_to_none=True)
    x, ladj = layer(z)
    (x.sum() + ladj.sum()).backward()
    want_shift = torch.full((dim,), float(len(z)), dtype=torch.float64)
    want_log_scale = (z * scale).sum(0) + len(z)
    for name, want in (("shift", want_shift), ("log_scale", want_log_scale)):
        grad = getattr(layer, name).grad
        if grad is None or not _close(grad, want):
            raise Mistake(
                f"the gradient of x.sum() + ladj.sum() with respect to `{name}` is "
                f"{None if grad is None else grad.tolist()}, expected {want.tolist()}.",
                "use the parameters themselves in forward (not .data, .detach(), .item() "
                "or a copy made in __init__), so that training can move them.",
            )

    # starts as the identity
    z32 = z.float()
    x0, l0 = fresh(z32)
    if not (_close(x0, z32, 1e-5) and _close(l0, torch.zeros(5), 1e-5)):
        raise Mistake(
            "a new Affine(3) is not the identity map.",
            "initialize shift and log_scale with zeros: a flow then starts as its base "
            "distribution, and training moves it from there.",
        )
    return (
        "forward, inverse and both ladj agree with nf.Affine and with the autograd Jacobian "
        "(D = 3, float64), for any batch shape; gradients reach shift and log_scale."
    )


# --- Exercise 2.2 ----------------------------------------------------------------------------

# The test problem: a 2-D Gaussian with a diagonal covariance, fitted by an elementwise
# affine flow. The data are standardized exactly, so the maximum-likelihood answer is known
# in closed form: shift = MEAN, exp(log_scale) = STD, and the smallest NLL is the entropy
# of N(MEAN, diag(STD^2)).
_MEAN = (2.0, -1.0)
_STD = (0.5, 1.5)
_N, _BATCH, _STEPS, _LR = 256, 64, 150, 0.05


class _WatchedFlow(Flow):
    """An :class:`nfcourse.Flow` that records the batches its ``log_prob`` sees."""

    def __init__(self, layers):
        super().__init__(layers)
        self.batches: list[Tensor] = []

    def log_prob(self, x: Tensor) -> Tensor:
        self.batches.append(x.detach().clone())
        return super().log_prob(x)


def _problem() -> tuple[Tensor, float]:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(_N, 2, generator=gen)
    x = (x - x.mean(0)) / x.std(0, correction=0)
    data = x * torch.tensor(_STD) + torch.tensor(_MEAN)
    best = sum(0.5 * math.log(2 * math.pi * math.e) + math.log(s) for s in _STD)
    return data, best


def _losses(out: object, steps: int) -> list[float]:
    if out is None:
        raise Mistake(
            "train(...) returned None.",
            "collect the loss of every step in a list (`losses.append(loss.item())`) and "
            "`return losses` at the end.",
        )
    if isinstance(out, Tensor):
        out = out.detach().flatten().tolist()
    try:
        values = [float(v) for v in out]
    except (TypeError, ValueError):
        raise Mistake(
            f"train(...) returned a {type(out).__name__}, not a list of numbers.",
            "return the list of the losses, one float per step (`loss.item()`).",
        ) from None
    if len(values) != steps:
        raise Mistake(
            f"train(..., steps={steps}) returned {len(values)} losses, expected {steps}.",
            "one optimizer step per loop iteration, and one recorded loss per step.",
        )
    return values


class _Optimizers:
    """The torch optimizers that take steps while the learner's loop runs, in order.

    A pre-hook on every optimizer's ``step`` (torch's own registry), so the learner's
    code is left exactly as written: whichever way it names the class, every step shows.
    """

    def __init__(self):
        self.seen: dict[int, torch.optim.Optimizer] = {}  # id -> optimizer (kept alive)
        self.first_lr: dict[int, float] = {}
        self.steps = 0

    def __call__(self, optimizer, args, kwargs) -> None:
        self.steps += 1
        if id(optimizer) not in self.seen:
            self.seen[id(optimizer)] = optimizer
            self.first_lr[id(optimizer)] = float(optimizer.param_groups[0]["lr"])


def _check_optimizer(watch: _Optimizers, flow: Flow) -> None:
    """One torch.optim.Adam over all of the flow's parameters, created once, with lr."""
    optimizers = list(watch.seen.values())
    if not optimizers:
        raise Mistake(
            "the parameters changed, but no torch.optim optimizer took a step.",
            "create one optimizer before the loop, `optimizer = torch.optim.Adam("
            "flow.parameters(), lr=lr)`, and call `optimizer.step()` in every step.",
        )
    kinds = sorted({type(o).__name__ for o in optimizers})
    if any(type(o) is not torch.optim.Adam for o in optimizers):
        raise Mistake(
            f"the loop trained with {', '.join(kinds)}, not torch.optim.Adam.",
            "use Adam, as the exercise asks: `torch.optim.Adam(flow.parameters(), lr=lr)`. It "
            "scales each parameter's step by a running estimate of the size of its gradient, "
            "so one learning rate suits parameters whose gradients differ by orders of "
            "magnitude; the lessons' learning rates are chosen for it.",
        )
    if len(optimizers) > 1:
        every = " (a new one at every step)" if len(optimizers) == watch.steps else ""
        raise Mistake(
            f"{len(optimizers)} different Adam optimizers took the {watch.steps} steps{every}.",
            "create the optimizer once, before the loop. Adam keeps running averages of each "
            "parameter's gradient and squared gradient from step to step; a new Adam forgets "
            "them, so every step is its first: a step of size lr in the direction of the "
            "gradient's sign, whatever its size.",
        )
    [adam] = optimizers
    trained = {id(p) for group in adam.param_groups for p in group["params"]}
    left = [name for name, p in flow.named_parameters() if id(p) not in trained]
    if left:
        raise Mistake(
            f"the optimizer does not train {', '.join(left)}.",
            "give it all the flow's parameters: `torch.optim.Adam(flow.parameters(), lr=lr)`.",
        )
    lr = watch.first_lr[id(adam)]
    if not math.isclose(lr, _LR, rel_tol=1e-6):
        raise Mistake(
            f"the optimizer's learning rate is {lr:g}, but train was called with lr={_LR}.",
            "pass `lr` to the optimizer (`torch.optim.Adam(flow.parameters(), lr=lr)`) "
            "rather than a number of your own.",
        )


def _check_all_data_used(batches: list[Tensor], data: Tensor) -> None:
    """Random minibatches reach every row of the data (when they surely would)."""
    if not batches or any(b.dim() != 2 or b.shape[-1] != data.shape[-1] for b in batches):
        return
    seen = torch.cat(batches)[:20_000]  # plenty to judge, and a bounded comparison below
    n, draws = len(data), len(seen)
    # with uniform draws, the expected number of rows never drawn is n (1 - 1/n)^draws;
    # judge only when it is below one in a million
    if n * (1 - 1 / n) ** draws > 1e-6:
        return
    match = (seen[:, None, :] == data[None, :, :]).all(-1)  # (draws, n)
    if match.any(1).float().mean() < 0.9:  # the loop changed the points: nothing to say
        return
    used = match.any(0)
    if bool(used.all()):
        return
    k = int(used.sum())
    if bool(used[:k].all()):
        if k == n - 1:
            hint = (
                "torch.randint(high, size) draws from 0 to high - 1 already: "
                "`torch.randint(len(data), (batch_size,))`, without a - 1."
            )
        else:
            hint = (
                "draw the row indices from all of data: the first argument of torch.randint "
                "is the (excluded) upper bound of the indices, "
                "`torch.randint(len(data), (batch_size,))`, not batch_size or a fixed number."
            )
        what = f"only the first {k} of the {n} rows of data"
    else:
        hint = (
            "draw each minibatch from all the rows: "
            "`batch = data[torch.randint(len(data), (batch_size,))]`."
        )
        what = f"only {k} of the {n} rows of data"
    raise Mistake(
        f"in {draws} drawn points, flow.log_prob saw {what}: the loop used only part of the "
        "data, so it fits that part.",
        hint,
    )


def _batch_kwarg(train) -> dict:
    """``{"batch_size": _BATCH}`` if ``train`` takes that argument (the exercise asks for it)."""
    try:
        params = inspect.signature(train).parameters
    except (TypeError, ValueError):
        return {"batch_size": _BATCH}
    takes = "batch_size" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    return {"batch_size": _BATCH} if takes else {}


@exercise("Exercise 2.2")
def train_loop(train) -> str:
    """Check a maximum-likelihood training loop ``train(flow, data, steps, lr, batch_size)``.

    Runs it for 150 steps on a 2-D Gaussian with a known answer (an elementwise
    affine flow, 256 points, minibatches of 64). Recognizes: nothing returned,
    the wrong number of losses, gradients accumulated across steps (no
    ``zero_grad``), no minibatches or the same one every step, the loss summed
    instead of averaged, the log-likelihood maximized the wrong way (the NLL
    goes up), parameters that never move, and a fit that does not converge.
    """
    data, best = _problem()
    layer = _ReferenceAffine(2)
    flow = _WatchedFlow([layer])
    start_nll = -flow.log_prob(data).mean().item()
    flow.batches.clear()
    start = [p.detach().clone() for p in flow.parameters()]

    accumulated = []

    def watch(p: Tensor):
        def hook(grad: Tensor) -> None:
            # runs before this step's gradient is added to p.grad: it must be empty
            if p.grad is not None and bool(p.grad.abs().sum() > 0):
                accumulated.append(True)

        return hook

    handles = [p.register_hook(watch(p)) for p in flow.parameters()]
    optimizers = _Optimizers()
    handles.append(register_optimizer_step_pre_hook(optimizers))
    try:
        with torch.random.fork_rng(devices=[]):  # the check's draws leave the notebook's alone
            torch.manual_seed(0)
            out = train(flow, data, steps=_STEPS, lr=_LR, **_batch_kwarg(train))
    finally:
        for h in handles:
            h.remove()
    losses = _losses(out, _STEPS)

    with torch.no_grad():
        end_nll = -Flow([layer]).log_prob(data).mean().item()
    moved = any(
        not torch.equal(a, b.detach()) for a, b in zip(start, flow.parameters(), strict=True)
    )
    if not moved:
        raise Mistake(
            "the flow's parameters did not change during training.",
            "create the optimizer on the flow's parameters, "
            "`torch.optim.Adam(flow.parameters(), lr=lr)`, and call `optimizer.step()` "
            "after `loss.backward()` in every step.",
        )
    _check_optimizer(optimizers, flow)
    if accumulated:
        raise Mistake(
            "gradients accumulated from one step to the next.",
            "call `optimizer.zero_grad()` in every step before `loss.backward()`: "
            "backward() adds to .grad, so without it each step follows the sum of all "
            "past gradients.",
        )
    if not math.isfinite(end_nll) or end_nll > start_nll:
        raise Mistake(
            f"the NLL of the data went up during training, from {start_nll:.3f} to "
            f"{end_nll:.3f} nats.",
            "minimize the negative log-likelihood, `loss = -flow.log_prob(batch).mean()`: "
            "the optimizer minimizes the loss, so without the minus sign it makes the data "
            "less likely.",
        )
    sizes = {b.shape[0] for b in flow.batches}
    if flow.batches and sizes == {_N}:
        raise Mistake(
            f"every call to flow.log_prob received all {_N} points, for batch_size={_BATCH}.",
            "draw a minibatch each step, e.g. "
            "`batch = data[torch.randint(len(data), (batch_size,))]`.",
        )
    if len(flow.batches) > 2 and all(torch.equal(b, flow.batches[0]) for b in flow.batches):
        raise Mistake(
            "flow.log_prob received the same minibatch at every step.",
            "draw a new random minibatch inside the loop, e.g. "
            "`batch = data[torch.randint(len(data), (batch_size,))]`.",
        )
    _check_all_data_used(flow.batches, data)
    first = losses[0]
    if first > 5 * start_nll:
        raise Mistake(
            f"the first recorded loss is {first:.1f}, but the NLL per point at the start is "
            f"{start_nll:.3f} nats.",
            "average over the minibatch, `-flow.log_prob(batch).mean()`, not `.sum()`: a "
            "summed loss grows with the batch size, so it cannot be compared across batch "
            "sizes or with the entropy, and its gradient scale changes with batch_size.",
        )
    if abs(first + start_nll) < 0.5 * start_nll:
        raise Mistake(
            f"the recorded losses are negative (the first is {first:.3f}); the NLL at the "
            f"start is {start_nll:.3f}.",
            "record the loss you minimize, the NLL `-log_prob.mean()`, not the log-likelihood.",
        )
    if abs(first - start_nll) > 0.5 * start_nll:
        raise Mistake(
            f"the first recorded loss is {first:.3f}; the NLL per point at the start is "
            f"{start_nll:.3f}.",
            "record `loss.item()` with loss = -flow.log_prob(batch).mean(), one per step.",
        )
    if end_nll > best + 0.05:
        raise Mistake(
            f"after {_STEPS} steps at lr={_LR} the NLL is {end_nll:.3f}; the maximum-"
            f"likelihood fit reaches {best:.3f}.",
            "follow the steps of the exercise: one Adam created before the loop with `lr`, "
            "then in each of the `steps` steps a new random minibatch from all of data, the "
            "mean NLL, zero_grad, backward, step.",
        )
    return (
        f"{_STEPS} steps took the NLL from {start_nll:.3f} to {end_nll:.3f} nats "
        f"(best possible {best:.3f}); the loss of every step was returned."
    )
