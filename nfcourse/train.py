"""Training loops: maximum likelihood (density estimation) and reverse KL (variational inference).

Maximum likelihood fits a flow ``q`` to data by minimizing the mean negative
log-likelihood (NLL, in nats per sample)

    NLL = -(1/N) sum_n log q(x_n),

whose expectation is ``H(p) + KL(p || q)``: it can never go below the entropy
``H(p)`` of the data distribution, so the entropy is the best NLL any model can
reach, and the gap to it is the KL divergence left to learn.

Variational inference fits a flow ``q`` to an unnormalized target
``p~ = Z p`` by minimizing ``E_q[log q(x) - log p~(x)] = KL(q || p) - log Z``,
which needs only samples of ``q`` and their log-densities (forward passes):
it goes below zero whenever ``log Z > 0``, and ``+ log Z`` gives the true KL.

Both loops run Adam (AdamW with ``weight_decay``) with a cosine learning-rate
decay to zero, record every step's loss, and stop with a
:class:`NonFiniteLossError` as soon as a loss is NaN or infinite.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .evaluate import (
    as_data,
    as_log_density,
    check_log_density_output,
    check_model,
    nll,
    reverse_kl,
)
from .flow import Flow
from .validate import (
    as_model_dtype,
    check_finite,
    check_int,
    check_number,
    check_points,
    dtype_device,
    make_generator,
)

__all__ = [
    "DivergenceWarning",
    "History",
    "NonFiniteLossError",
    "fit",
    "fit_reverse_kl",
    "minimize",
    "nll",
    "optimizer_settings",
    "reverse_kl",
]

# Losses are moved to Python, checked for NaN and shown on the bar once every
# _CHECK_EVERY steps (one synchronization per chunk, not per step).
_CHECK_EVERY = 10
# A loss more than _EXPLODED times the best loss's scale (at least 1 nat) above the best
# has exploded: orders of magnitude, not the noise of a minibatch or a bumpy stretch.
_EXPLODED = 100.0


class DivergenceWarning(UserWarning):
    """The training loss exploded (finite, but orders of magnitude above its best)."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite.

    Attributes:
        step: the first step (1-based) whose loss was not finite.
        value: that loss.
        restored_step: the parameters were reset to their values after this
            step (0: the initial parameters).
        history: the :class:`History` up to the last finite step.
    """

    def __init__(self, message: str, step: int, value: float, restored_step: int, history):
        super().__init__(message)
        self.step = step
        self.value = value
        self.restored_step = restored_step
        self.history = history


@dataclass(repr=False)
class History:
    """What a training run recorded.

    Attributes:
        step: the step numbers ``1, 2, ..., steps``.
        loss: the minibatch loss of every step, in nats, computed before that
            step's update: the NLL for :func:`fit`; ``E_q[log q - log p~]``
            (the reverse KL minus ``log Z``) for :func:`fit_reverse_kl`.
        val_step: the steps after which the validation NLL was measured.
        val_nll: the held-out NLL (nats) after those steps.
        val_seconds: wall time (s) since the start at each validation.
        seconds: total wall time (s) of the run.
        kind: ``"nll"`` or ``"reverse_kl"`` (what ``loss`` measures).
        restored_step: ``None``, or the step whose parameters the flow was given
            back because the run ended with an exploded loss (see :func:`fit`).
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    kind: str = "nll"
    restored_step: int | None = None

    @property
    def final_val_nll(self) -> float:
        """The last validation NLL (nats); an error if no ``val_data`` was given."""
        if not self.val_nll:
            raise ValueError(
                "History.final_val_nll: this run measured no validation NLL; pass "
                "val_data=... to fit(), or compute it afterwards with nll(flow, data)."
            )
        return self.val_nll[-1]

    @property
    def final_loss(self) -> float:
        """The mean training loss of the last 100 steps (smooths the minibatch noise)."""
        if not self.loss:
            raise ValueError("History.final_loss: no step was recorded.")
        tail = self.loss[-100:]
        return sum(tail) / len(tail)

    def __repr__(self) -> str:
        parts = [f"kind={self.kind!r}", f"steps={len(self.step)}"]
        if self.loss:
            parts.append(f"final_loss={self.final_loss:.4f}")
        if self.val_nll:
            parts.append(f"final_val_nll={self.final_val_nll:.4f}")
        parts.append(f"seconds={self.seconds:.1f}")
        return f"History({', '.join(parts)})"


# ----------------------------------------------------------------------------
# validation of arguments


@dataclass(frozen=True)
class _Settings:
    """The optimization settings both fits share, validated once (:func:`_settings`)."""

    where: str
    steps: int
    lr: float
    schedule: str | None
    weight_decay: float
    clip_grad: float | None
    progress: bool

    def learning_rates(self) -> list[float]:
        """The learning rate of every step: constant, or cosine decay from ``lr`` towards 0."""
        if self.schedule is None:
            return [self.lr] * self.steps
        return [0.5 * self.lr * (1 + math.cos(math.pi * i / self.steps)) for i in range(self.steps)]


def optimizer_settings(
    where: str, steps, lr, schedule, weight_decay, clip_grad, progress
) -> _Settings:
    """The optimization arguments of a fit, validated once; errors name ``where``."""
    if schedule not in (None, "cosine"):
        raise ValueError(f"{where}: `schedule` must be 'cosine' or None, got {schedule!r}.")
    if clip_grad is not None:
        clip_grad = check_number(clip_grad, "clip_grad", where, positive=True, example="1.0")
    weight_decay = check_number(weight_decay, "weight_decay", where, example="1e-4")
    if weight_decay < 0:
        raise ValueError(f"{where}: `weight_decay` must be >= 0, got {weight_decay!r}.")
    return _Settings(
        where=where,
        steps=check_int(steps, "steps", where),
        lr=check_number(lr, "lr", where, positive=True, example="1e-3"),
        schedule=schedule,
        weight_decay=weight_decay,
        clip_grad=clip_grad,
        progress=bool(progress),
    )


def _optimizer(params: list[Tensor], settings: _Settings):
    """Adam (AdamW with weight decay), the fused kernel where the device supports it."""
    if not params:
        raise ValueError(f"{settings.where}: the flow has no trainable parameters.")
    cls = torch.optim.AdamW if settings.weight_decay > 0 else torch.optim.Adam
    kwargs = {"lr": settings.lr, "weight_decay": settings.weight_decay}
    try:  # the fused kernel does the same update, ~15% faster per step on small flows
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, **kwargs)


# ----------------------------------------------------------------------------
# the shared loop


class _Loop:
    """Bookkeeping shared by both training loops: loss chunks, divergence, the best parameters.

    Every ``_CHECK_EVERY`` steps (and at the end) the pending losses are moved
    to Python in one go and checked. The parameters are snapshotted at each
    check and scored by the next step's loss, which is computed with exactly
    those parameters. The best-scored snapshot is kept, so that a run that
    diverges can be given back its best parameters:

    - a NaN or infinite loss stops the run with :class:`NonFiniteLossError`,
      the parameters restored to the best snapshot;
    - a finite loss that explodes, more than ``_EXPLODED`` times the best
      loss's scale above it, gives one :class:`DivergenceWarning`; if the run
      ends that far above its best, the best parameters are restored, with a
      second warning that says so.
    """

    def __init__(self, params: list[Tensor], settings: _Settings, kind: str):
        self.params, self.settings = params, settings
        self.steps, self.where = settings.steps, settings.where
        self.history = History(kind=kind)
        self.pending: list[Tensor] = []
        self.snapshot = self._take(0)  # (step, values), not scored yet
        self.best: tuple[float, tuple[int, list[Tensor]]] | None = None  # (score, snapshot)
        self.warned = False
        self.train_text = self.val_text = ""
        self.start = time.perf_counter()
        from tqdm.auto import tqdm  # here, not at import: in a notebook it loads ipywidgets

        self.bar = tqdm(
            total=self.steps, desc=self.where, disable=not settings.progress, dynamic_ncols=True
        )

    def _take(self, step: int) -> tuple[int, list[Tensor]]:
        return step, [p.detach().clone() for p in self.params]

    def _score(self, loss: float) -> None:
        """Score the current snapshot by ``loss``, the loss computed with its parameters."""
        if math.isfinite(loss) and (self.best is None or loss < self.best[0]):
            self.best = (loss, self.snapshot)

    def _restore(self) -> int:
        """Put the best snapshot's values back into the parameters; its step (0: the start)."""
        step, values = self.best[1] if self.best is not None else self.snapshot
        with torch.no_grad():
            for p, v in zip(self.params, values, strict=True):
                p.copy_(v)
        return step

    def _exploded(self, value: float) -> bool:
        if self.best is None:
            return False
        best = self.best[0]
        return value > best + _EXPLODED * max(1.0, abs(best))

    def check(self, step: int, advice: str) -> None:
        """Record the pending losses of steps up to ``step``; stop if one is not finite."""
        values = torch.stack(self.pending).tolist()
        self.pending.clear()
        first = step - len(values) + 1
        finite = next((k for k, v in enumerate(values) if not math.isfinite(v)), len(values))
        self._score(values[0])
        self.history.step.extend(range(first, first + finite))
        self.history.loss.extend(values[:finite])
        if finite < len(values):
            self._fail(first + finite, values[finite], advice)
        mean = sum(values) / len(values)
        if not self.warned and self._exploded(mean):
            self.warned = True
            warnings.warn(
                f"{self.where}: the training loss exploded to {mean:.4g} around step {step} "
                f"of {self.steps} (its best was {self.best[0]:.4g}). {advice}",
                DivergenceWarning,
                stacklevel=4,
            )
        self.snapshot = self._take(step)
        if not self.bar.disable:
            label = "NLL" if self.history.kind == "nll" else "loss"
            self.train_text = f"{label} {mean:.3f}"
            self.bar.set_postfix_str(self.train_text + self.val_text, refresh=False)
            self.bar.update(len(values))

    def _fail(self, step: int, value: float, advice: str) -> None:
        restored = self._restore()
        raise NonFiniteLossError(
            f"{self.where}: the training loss became {value} at step {step} of {self.steps}. "
            f"The flow's parameters were restored to their values after step {restored}, "
            f"where the loss was lowest. {advice}",
            step=step,
            value=value,
            restored_step=restored,
            history=self.history,
        )

    def validate(self, step: int, value: float) -> None:
        self.history.val_step.append(step)
        self.history.val_nll.append(value)
        self.history.val_seconds.append(time.perf_counter() - self.start)
        self.val_text = f", val NLL {value:.3f}"
        self.bar.set_postfix_str(self.train_text + self.val_text, refresh=False)

    def finish(self, advice: str) -> History:
        """Close the bar; if the run ended far above its best loss, restore the best parameters."""
        self.close()
        tail = self.history.loss[-_CHECK_EVERY:]
        if tail and self._exploded(sum(tail) / len(tail)):
            restored = self._restore()
            self.history.restored_step = restored
            warnings.warn(
                f"{self.where}: the run ended with a training loss of "
                f"{sum(tail) / len(tail):.4g}, far above its best ({self.best[0]:.4g}); the "
                f"flow's parameters were restored to their values after step {restored}. "
                f"{advice}",
                DivergenceWarning,
                stacklevel=3,
            )
        return self.history

    def close(self) -> None:
        self.bar.close()
        self.history.seconds = time.perf_counter() - self.start


def minimize(
    flow: nn.Module,
    objective: Callable[[int], tuple[Tensor, Tensor]],
    settings: _Settings,
    kind: str,
    advice: str,
    after_step: Callable[[int, _Loop], None] | None = None,
) -> History:
    """The loop every fit shares: ``objective(step) -> (loss to minimize, value to record)``.

    The hook for a new training objective: :func:`fit`, :func:`fit_reverse_kl` and
    :func:`nfcourse.continuous.fit_flow_matching` are each an objective, validated
    settings (:func:`optimizer_settings`), a ``kind`` for the :class:`History` and the
    advice its divergence errors give.

    Sets the step's learning rate, takes one optimizer step, hands the recorded
    value to the bookkeeping (divergence checks, progress bar), then calls
    ``after_step(step, loop)`` (e.g. validation). The flow is in training mode
    during the loop and back in its previous mode afterwards.
    """
    params = [p for p in flow.parameters() if p.requires_grad]
    optimizer = _optimizer(params, settings)
    lrs = settings.learning_rates()
    was_training = flow.training
    flow.train()
    loop = _Loop(params, settings, kind)
    try:
        for step in range(1, settings.steps + 1):
            for group in optimizer.param_groups:
                group["lr"] = lrs[step - 1]
            loss, value = objective(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad is not None:
                nn.utils.clip_grad_norm_(params, settings.clip_grad)
            optimizer.step()
            loop.pending.append(value.detach())
            if step % _CHECK_EVERY == 0 or step == settings.steps:
                loop.check(step, advice)
            if after_step is not None:
                after_step(step, loop)
    except BaseException:
        loop.close()
        raise
    finally:
        flow.train(was_training)
    return loop.finish(advice)


def _log_prob(flow: nn.Module, x: Tensor, context: Tensor | None = None) -> Tensor:
    """``flow.log_prob(x)`` (with ``context=`` when given) for data validated up front.

    For an :class:`nfcourse.Flow` this skips the per-call NaN check of
    ``Flow.log_prob`` (a device synchronization each step).
    """
    if type(flow) is Flow:
        z, ladj = flow.transform.inverse(x, context)
        return flow.base.log_prob(z) + ladj
    return flow.log_prob(x) if context is None else flow.log_prob(x, context=context)


def _as_context(context: object, flow: nn.Module, data: Tensor, name: str, where: str):
    """The contexts of the data points: shape ``(N, C)``, one row per row of ``data``."""
    conditional = bool(getattr(flow, "conditional", False))
    c = getattr(flow, "context_dim", None)
    if context is None:
        if conditional:
            raise ValueError(
                f"{where}: the flow is conditional (its layers read a context of C = {c} "
                f"value(s)), and `{name}` is missing: pass the context of every point, "
                f"shape (N, {c}), row i the context of point i."
            )
        return None
    if not conditional:
        raise ValueError(
            f"{where}: got `{name}`, but the flow is not conditional (none of its layers "
            "reads a context). Drop it, or build a conditional flow, e.g. "
            "nf.conditional_realnvp(D, context_dim=C)."
        )
    if isinstance(context, np.ndarray):
        context = torch.as_tensor(context)
    if isinstance(context, Tensor) and context.dim() == 1 and c == 1:
        context = context[:, None]
    context = check_finite(check_points(context, c, name, where), name, where).detach()
    if context.dim() != 2 or context.shape[0] != data.shape[0]:
        raise ValueError(
            f"{where}: `{name}` must have shape ({data.shape[0]}, {c}), one row per data "
            f"point, got shape {tuple(context.shape)}."
        )
    return as_model_dtype(context.to(data.device), flow, name, where)


# ----------------------------------------------------------------------------
# maximum likelihood

_NLL_ADVICE = (
    "Try a lower learning rate (lr={lr}), clip the gradients (clip_grad=1.0), check the data "
    "for NaN or extreme outliers (standardize it), or bound the layers' scales (e.g. "
    "nfcourse.layers.elementwise.soft_clamp)."
)


def fit(
    flow: nn.Module,
    data: Tensor | np.ndarray,
    *,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 1e-3,
    schedule: str | None = "cosine",
    weight_decay: float = 0.0,
    clip_grad: float | None = None,
    val_data: Tensor | np.ndarray | None = None,
    eval_every: int = 100,
    progress: bool = True,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    context: Tensor | np.ndarray | None = None,
    val_context: Tensor | np.ndarray | None = None,
) -> History:
    """Fit a flow to data by maximum likelihood: minimize the mean NLL of minibatches.

    Each step draws ``batch_size`` points uniformly *with replacement* from
    ``data`` (no epochs; with ``batch_size >= N`` every step uses all the data),
    computes the minibatch NLL ``-mean(log q(x))`` and takes one Adam step
    (AdamW when ``weight_decay > 0``). With ``schedule="cosine"`` the learning
    rate decays from ``lr`` to 0 along a half cosine over ``steps``.

    Args:
        flow: the model, anything with ``log_prob(x)`` and parameters (an
            :class:`nfcourse.Flow`). Trained in place.
        data: training points, a float tensor or NumPy array of shape ``(N, D)``
            without NaN; converted to the flow's dtype and device.
        steps: number of optimizer steps.
        batch_size: points per step.
        lr: (initial) learning rate.
        schedule: ``"cosine"`` or ``None`` (constant learning rate).
        weight_decay: decoupled weight decay (AdamW); 0 for plain Adam.
        clip_grad: if given, clip the gradient norm to this value each step.
        val_data: held-out points; their NLL is measured every ``eval_every``
            steps and after the last one.
        eval_every: steps between validations.
        progress: show a progress bar with the recent training NLL (and the
            last validation NLL).
        seed, generator: make the minibatch draws reproducible (one or the other).
        context: for a conditional flow (``flow.conditional``), the context of
            every training point, shape ``(N, C)`` (``(N,)`` when ``C = 1``):
            the flow fits ``p(x | c)`` to the pairs ``(data[i], context[i])``,
            drawn together.
        val_context: the contexts of ``val_data``, likewise (required with
            ``val_data`` for a conditional flow).

    Returns:
        A :class:`History` whose ``loss`` holds every step's minibatch NLL.

    Raises:
        NonFiniteLossError: a loss was NaN or infinite; the parameters are
            restored to the snapshot (one every 10 steps) with the lowest loss,
            named in the message.

    Warns:
        DivergenceWarning: the loss exploded (finite, but more than 100 times
            its best's scale above the best). If the run ends that far above
            its best, the flow is given back its best parameters
            (``History.restored_step`` says from which step), and a second
            warning says so.
    """
    where = "fit"
    check_model(flow, where)
    settings = optimizer_settings(where, steps, lr, schedule, weight_decay, clip_grad, progress)
    batch_size = check_int(batch_size, "batch_size", where)
    eval_every = check_int(eval_every, "eval_every", where)
    data = as_data(data, flow, "data", where)
    context = _as_context(context, flow, data, "context", where)
    if val_data is not None:
        val_data = as_data(val_data, flow, "val_data", where)
        val_context = _as_context(val_context, flow, val_data, "val_context", where)
    elif val_context is not None:
        raise ValueError(f"{where}: `val_context` was given without `val_data`; pass both.")
    gen = make_generator(seed, generator, where, data.device)
    index_device = gen.device if gen is not None else data.device
    n = data.shape[0]

    def objective(step: int) -> tuple[Tensor, Tensor]:
        if batch_size >= n:
            batch, c = data, context
        else:
            i = torch.randint(n, (batch_size,), generator=gen, device=index_device)
            batch, c = data[i], (None if context is None else context[i])
        loss = -_log_prob(flow, batch, c).mean()
        return loss, loss

    def validate(step: int, loop: _Loop) -> None:
        if val_data is not None and (step % eval_every == 0 or step == steps):
            loop.validate(step, _val_nll(flow, val_data, val_context))

    return minimize(flow, objective, settings, "nll", _NLL_ADVICE.format(lr=lr), validate)


def _val_nll(flow: nn.Module, data: Tensor, context: Tensor | None) -> float:
    """The held-out NLL, in eval mode and without gradients (the mode is restored)."""
    if context is None:
        return nll(flow, data)  # eval mode inside, then back
    was_training = flow.training
    flow.eval()
    try:
        with torch.no_grad():
            total = sum(
                -_log_prob(flow, x, c).double().sum().item()
                for x, c in zip(data.split(8192), context.split(8192), strict=True)
            )
    finally:
        flow.train(was_training)
    return total / data.shape[0]


# ----------------------------------------------------------------------------
# variational inference (reverse KL)

_KL_ADVICE = (
    "The target's log-density must be finite wherever the flow puts samples (use a steep but "
    "finite wall instead of -inf), and NaN-free. Otherwise try a lower learning rate "
    "(lr={lr}), clip the gradients (clip_grad=1.0), anneal (anneal_steps=...), or bound the "
    "layers' scales."
)


def fit_reverse_kl(
    flow: Flow,
    log_density: Callable[[Tensor], Tensor] | object,
    *,
    steps: int = 2000,
    n_samples: int = 256,
    lr: float = 1e-3,
    schedule: str | None = "cosine",
    weight_decay: float = 0.0,
    clip_grad: float | None = None,
    anneal_steps: int = 0,
    beta_start: float = 0.01,
    progress: bool = True,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> History:
    """Fit a flow to an unnormalized density by minimizing the reverse KL divergence.

    Each step draws ``n_samples`` points from the flow with their log-densities
    (``flow.sample_and_log_prob``: forward passes only, no inverse) and
    minimizes the Monte Carlo estimate of

        E_q[log q(x) - beta * log p~(x)]

    where ``p~`` is the unnormalized target. With ``anneal_steps > 0`` the
    inverse temperature ``beta`` rises linearly from ``beta_start`` to 1 over
    the first ``anneal_steps`` steps (Rezende and Mohamed 2015), which helps
    the flow find every mode before committing; afterwards ``beta = 1``.

    The recorded ``loss`` is always the ``beta = 1`` objective
    ``E_q[log q - log p~] = KL(q || p) - log Z``: it goes below zero when
    ``log Z > 0``; use :func:`reverse_kl` with the known ``log Z`` for the KL itself.

    Args:
        flow: an :class:`nfcourse.Flow` (anything with ``sample_and_log_prob(n)``).
        log_density: a callable ``x -> log p~(x)`` (shape ``(n, D) -> (n,)``),
            e.g. ``lambda z: -U(z)``, or an object with ``log_prob`` (used in
            preference to calling the object, which for an energy may give ``U``).
        steps, lr, schedule, weight_decay, clip_grad, progress: as in :func:`fit`.
        n_samples: samples per step.
        anneal_steps: steps of linear annealing of ``beta`` (0: none).
        beta_start: the first inverse temperature when annealing, in (0, 1].
        seed, generator: make the sample draws reproducible (one or the other).

    Returns:
        A :class:`History` of kind ``"reverse_kl"``.

    Raises:
        NonFiniteLossError: as in :func:`fit`.
    """
    where = "fit_reverse_kl"
    if not callable(getattr(flow, "sample_and_log_prob", None)):
        raise TypeError(
            f"{where}: `flow` must have a sample_and_log_prob method (an nfcourse.Flow), "
            f"got {type(flow).__name__}."
        )
    log_p = as_log_density(log_density, where)
    settings = optimizer_settings(where, steps, lr, schedule, weight_decay, clip_grad, progress)
    n_samples = check_int(n_samples, "n_samples", where)
    anneal_steps = check_int(anneal_steps, "anneal_steps", where, smallest=0)
    if not (isinstance(beta_start, (int, float)) and 0 < beta_start <= 1):
        raise ValueError(f"{where}: `beta_start` must be in (0, 1], got {beta_start!r}.")
    _, device = dtype_device(flow)
    gen = make_generator(seed, generator, where, device)

    def objective(step: int) -> tuple[Tensor, Tensor]:
        x, log_q = flow.sample_and_log_prob(n_samples, generator=gen)
        lp = log_p(x)
        if step == 1:
            check_log_density_output(lp, n_samples, where)
        kl = (log_q - lp).mean()
        if step > anneal_steps:
            return kl, kl
        beta = beta_start + (1 - beta_start) * (step - 1) / anneal_steps
        return (log_q - beta * lp).mean(), kl

    return minimize(flow, objective, settings, "reverse_kl", _KL_ADVICE.format(lr=lr))
