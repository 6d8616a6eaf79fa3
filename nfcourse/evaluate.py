"""Evaluating a flow: held-out NLL, the gap to the entropy, and the reverse KL.

The mean negative log-likelihood (NLL) of held-out data ``x_1..x_N ~ p``,

    NLL = -(1/N) sum_n log q(x_n),

estimates ``H(p) + KL(p || q)``: in expectation it never goes below the
entropy ``H(p)``, so where the data's density is known the gap
``NLL - H(p)`` estimates ``KL(p || q)``, what the model has left to learn (a
finite sample scatters around it, so a small negative gap can happen).

For an unnormalized target ``p~ = Z p`` (variational inference; ``Z`` is the
evidence when ``p~`` is a prior times a likelihood), with ``x ~ q`` and the
log-weights ``log w(x) = log p~(x) - log q(x)``:

    ELBO = E_q[log w] = log Z - KL(q || p) <= log Z,
    KL(q || p) = -ELBO + log Z,
    Z = E_q[w],  so  log Z ~= log((1/n) sum_i w_i)          (importance sampling),
    ESS = (sum_i w_i)^2 / sum_i w_i^2 = 1 / sum_i wbar_i^2   (wbar_i = w_i / sum_j w_j).

The importance-sampling estimate of ``Z`` is unbiased; that of ``log Z`` is
biased low by about ``Var(w) / (2 n E[w]^2)`` (Jensen), and its standard error
is about ``sqrt(1/ESS - 1/n)`` (delta method). The effective sample size (Kong
1992) says how many independent draws of ``p`` the weighted sample is worth:
``n`` when ``q = p``, 1 when one weight dominates. Everything is computed from
log-weights with log-sum-exp, since ``w`` itself overflows or underflows.

Sample-based measures need only samples of the flow, not its density: the unbiased
``MMD^2`` of two samples with a Gaussian kernel (:func:`mmd2`) and its permutation test
(:func:`mmd_test`), and a classifier two-sample test (:func:`classifier_two_sample_test`):
the accuracy of a classifier trained to tell data from samples, 1/2 when it cannot.
A flow can have a good held-out NLL and poor samples, or the reverse, so both are worth
reporting, the NLL with its standard error (:func:`held_out_nll`).

References: Rezende and Mohamed (2015), "Variational Inference with Normalizing
Flows", arXiv:1505.05770; Gretton et al. (2012), "A Kernel Two-Sample Test", JMLR 13;
Lopez-Paz and Oquab (2017), "Revisiting Classifier Two-Sample Tests", ICLR; Kong (1992),
"A note on importance sampling using standardized weights", Technical report 348,
University of Chicago.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from .validate import (
    as_model_dtype,
    check_finite,
    check_int,
    check_number,
    dtype_device,
    make_generator,
)

__all__ = [
    "Evidence",
    "HeldOutNLL",
    "TwoSampleTest",
    "classifier_two_sample_test",
    "effective_sample_size",
    "elbo",
    "gap_to_entropy",
    "held_out_nll",
    "log_evidence",
    "log_mean_exp",
    "median_bandwidth",
    "mmd2",
    "mmd_test",
    "nll",
    "reverse_kl",
]


def check_model(flow: object, where: str) -> None:
    if not callable(getattr(flow, "log_prob", None)):
        raise TypeError(
            f"{where}: `flow` must be a model with a log_prob method (e.g. nfcourse.Flow), "
            f"got {type(flow).__name__}."
        )


def as_data(data: object, flow: nn.Module, name: str, where: str) -> Tensor:
    """Validate data points of shape ``(N, D)`` and return them in the flow's dtype and device.

    NumPy arrays are converted; the points are moved to the flow's device and
    cast to its dtype (:func:`~nfcourse.validate.as_model_dtype`) after the check
    for NaN, so values that do not fit the dtype get their own message.
    """
    dim = getattr(flow, "dim", None)
    expected = f"(N, {dim if dim is not None else 'D'})"
    if isinstance(data, np.ndarray):
        if not np.issubdtype(data.dtype, np.number):
            raise TypeError(f"{where}: `{name}` must hold numbers, got a {data.dtype} array.")
        data = torch.as_tensor(data)
        data = data if data.is_floating_point() else data.double()
    elif isinstance(data, Tensor):
        if not data.is_floating_point():
            raise TypeError(
                f"{where}: `{name}` must be a floating-point tensor of shape {expected}, got "
                f"dtype {data.dtype}. Use {name}.float()."
            )
        data = data.detach()
    else:
        raise TypeError(
            f"{where}: `{name}` must be a torch.Tensor (or NumPy array) of shape {expected}, "
            f"got {type(data).__name__}. Convert it, e.g. torch.as_tensor({name}, "
            "dtype=torch.float32)."
        )
    if data.dim() != 2 or (dim is not None and data.shape[1] != dim):
        hint = f" For 1-D data use {name}[:, None]." if data.dim() == 1 else ""
        raise ValueError(
            f"{where}: `{name}` must have shape {expected}: one row per point"
            f"{'' if dim is None else f', {dim} coordinates as the flow'}; got shape "
            f"{tuple(data.shape)}.{hint}"
        )
    if data.shape[0] < 1:
        raise ValueError(
            f"{where}: `{name}` is empty (shape {tuple(data.shape)}); pass at least one point."
        )
    data = check_finite(data, name, where)
    if not isinstance(flow, nn.Module):
        return data
    return as_model_dtype(data.to(dtype_device(flow)[1]), flow, name, where)


def as_log_density(target: object, where: str) -> Callable[[Tensor], Tensor]:
    fn = getattr(target, "log_prob", None)
    if callable(fn):
        return fn
    if callable(target):
        return target
    raise TypeError(
        f"{where}: `log_density` must be a callable x -> unnormalized log p(x) (e.g. "
        f"lambda x: -U(x)) or an object with a log_prob method, got {type(target).__name__}."
    )


def check_log_density_output(lp: object, n: int, where: str) -> None:
    if not isinstance(lp, Tensor) or lp.shape != (n,):
        got = tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__
        raise ValueError(
            f"{where}: `log_density` must return one log-density per sample, a tensor of "
            f"shape ({n},) for x of shape ({n}, D); got {got}. Reduce over the coordinates "
            "inside it (e.g. .sum(-1))."
        )


class _eval_mode:
    """``with _eval_mode(flow):`` puts a module in ``eval()`` mode and restores its mode after."""

    def __init__(self, model: object):
        self.model = model if isinstance(model, nn.Module) else None

    def __enter__(self) -> None:
        if self.model is not None:
            self.was_training = self.model.training
            self.model.eval()

    def __exit__(self, *exc) -> None:
        if self.model is not None:
            self.model.train(self.was_training)


@torch.no_grad()
def nll(flow: nn.Module, data: Tensor | np.ndarray, batch_size: int = 8192) -> float:
    """The mean negative log-likelihood of ``data`` under ``flow``, in nats per point.

    Evaluated in batches, without gradients and in ``eval()`` mode (the
    previous mode is restored). ``inf`` if some point has zero density.
    """
    where = "nll"
    check_model(flow, where)
    batch_size = check_int(batch_size, "batch_size", where)
    data = as_data(data, flow, "data", where)
    total = 0.0
    with _eval_mode(flow):
        for chunk in data.split(batch_size):
            total += -flow.log_prob(chunk).double().sum().item()
    return total / data.shape[0]


def gap_to_entropy(flow: nn.Module, dataset: object, data: Tensor | np.ndarray) -> float:
    """Held-out NLL minus the entropy of the data set: an estimate of ``KL(p || q)`` in nats.

    ``dataset`` is a data set with a known density (``dataset.entropy()`` is a
    number, e.g. :func:`nfcourse.datasets.moons`); ``data`` are held-out
    samples of it, not the training data (an NLL on training data is biased low).
    """
    entropy = getattr(dataset, "entropy", None)
    h = entropy() if callable(entropy) else None
    if h is None:
        raise ValueError(
            f"gap_to_entropy: `dataset` must be a data set with a known entropy (e.g. "
            f"nfcourse.datasets.moons(); nfcourse.datasets.names(with_density=True) lists "
            f"them), got {dataset!r}."
        )
    return nll(flow, data) - h


def _log_weights(
    flow: nn.Module,
    log_density: Callable[[Tensor], Tensor] | object,
    n: int,
    batch_size: int,
    seed: int | None,
    generator: torch.Generator | None,
    where: str,
) -> Tensor:
    """``log p~(x) - log q(x)`` for ``n`` samples ``x ~ q`` of the flow, in float64, shape (n,).

    Drawn in batches, without gradients and in ``eval()`` mode.
    """
    if not callable(getattr(flow, "sample_and_log_prob", None)):
        raise TypeError(
            f"{where}: `flow` must have a sample_and_log_prob method (an nfcourse.Flow), "
            f"got {type(flow).__name__}."
        )
    log_p = as_log_density(log_density, where)
    n = check_int(n, "n", where)
    batch_size = check_int(batch_size, "batch_size", where)
    _, device = dtype_device(flow) if isinstance(flow, nn.Module) else (None, None)
    gen = make_generator(seed, generator, where, device)
    parts = []
    with torch.no_grad(), _eval_mode(flow):
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x, log_q = flow.sample_and_log_prob(m, generator=gen)
            lp = log_p(x)
            check_log_density_output(lp, m, where)
            parts.append((lp - log_q).double())
    return torch.cat(parts)


def _mean_and_se(values: Tensor) -> tuple[float, float]:
    n = values.numel()
    se = values.std().item() / math.sqrt(n) if n > 1 else float("nan")
    return values.mean().item(), se


def reverse_kl(
    flow: nn.Module,
    log_density: Callable[[Tensor], Tensor] | object,
    n: int = 10_000,
    log_normalizer: float = 0.0,
    *,
    batch_size: int = 8192,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Monte Carlo estimate of ``KL(q || p)`` in nats, with its standard error.

    ``KL(q || p) = E_q[log q(x) - log p~(x)] + log Z`` for a target
    ``p = p~ / Z``. With ``log_normalizer = log Z`` of the target the estimate
    is the KL itself (>= 0, and 0 only when ``q = p``); with the default 0 it
    is the training objective of :func:`fit_reverse_kl`, minus the ELBO. A
    ``log_prob`` that is already normalized (a torch distribution's, an
    ``nfcourse.energies`` ``Energy``'s) has ``log Z = 0``: leave the default then.

    Returns:
        ``(estimate, standard_error)``, the standard error of the mean over ``n`` samples.
    """
    where = "reverse_kl"
    log_normalizer = check_number(log_normalizer, "log_normalizer", where, example="1.8775")
    log_w = _log_weights(flow, log_density, n, batch_size, seed, generator, where)
    mean, se = _mean_and_se(-log_w)
    return mean + log_normalizer, se


def elbo(
    flow: nn.Module,
    log_density: Callable[[Tensor], Tensor] | object,
    n: int = 10_000,
    *,
    batch_size: int = 8192,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """The evidence lower bound ``E_q[log p~(x) - log q(x)]`` in nats, with its standard error.

    ``ELBO = log Z - KL(q || p)``: never above the log evidence ``log Z``, equal
    to it only when ``q = p``. Estimated from ``n`` samples of the flow
    (``sample_and_log_prob``), without gradients; :func:`fit_reverse_kl`
    maximizes it (it minimizes ``-ELBO``).

    Returns:
        ``(estimate, standard_error)``.
    """
    log_w = _log_weights(flow, log_density, n, batch_size, seed, generator, "elbo")
    return _mean_and_se(log_w)


def _check_log_weights(log_w: object, where: str) -> Tensor:
    if not isinstance(log_w, Tensor) or not log_w.is_floating_point() or log_w.dim() < 1:
        got = (
            f"a tensor of dtype {log_w.dtype} and shape {tuple(log_w.shape)}"
            if isinstance(log_w, Tensor)
            else type(log_w).__name__
        )
        raise TypeError(
            f"{where}: `log_w` must be a floating-point tensor of log-weights, one per sample "
            f"in its last dimension, got {got}."
        )
    if log_w.shape[-1] < 1:
        raise ValueError(f"{where}: `log_w` is empty; pass at least one log-weight.")
    if torch.isnan(log_w).any():
        raise ValueError(
            f"{where}: `log_w` contains NaN. A log-weight is log p~(x) - log q(x): check that "
            "both are finite at the samples."
        )
    return log_w


def log_mean_exp(log_w: Tensor) -> Tensor:
    """``log((1/n) sum_i exp(log_w_i))`` over the last dimension, without overflow.

    ``log_w`` of shape ``(*, n)``; returns ``(*)``. Computed as
    ``logsumexp(log_w) - log n``: the largest term is taken out before ``exp``, so
    log-weights of 1000 (``exp`` overflows) or -1000 (``exp`` underflows to 0) work.
    """
    log_w = _check_log_weights(log_w, "log_mean_exp")
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])


def effective_sample_size(log_w: Tensor) -> Tensor:
    """Kong's effective sample size ``(sum_i w_i)^2 / sum_i w_i^2`` from log-weights.

    ``log_w`` of shape ``(*, n)``; returns ``(*)``, between 1 and ``n``. Equal to
    ``1 / sum_i wbar_i^2`` with the normalized weights ``wbar_i = w_i / sum_j w_j``;
    computed as ``exp(2 logsumexp(log_w) - logsumexp(2 log_w))``, so it does not
    depend on the (unknown) scale of the weights and never overflows.
    """
    log_w = _check_log_weights(log_w, "effective_sample_size")
    return torch.exp(2 * torch.logsumexp(log_w, dim=-1) - torch.logsumexp(2 * log_w, dim=-1))


class Evidence(NamedTuple):
    """An importance-sampling estimate of the log evidence (see :func:`log_evidence`).

    Attributes:
        log_z: the estimate of ``log Z = log E_q[p~ / q]``, in nats.
        se: its approximate standard error, ``sqrt(1/ESS - 1/n)`` (delta method).
        ess: Kong's effective sample size of the weights, between 1 and ``n``.
        n: the number of samples drawn from the flow.
        elbo: the ELBO ``E_q[log w]`` from the same samples (a lower bound, in expectation).
    """

    log_z: float
    se: float
    ess: float
    n: int
    elbo: float


def log_evidence(
    flow: nn.Module,
    log_density: Callable[[Tensor], Tensor] | object,
    n: int = 10_000,
    *,
    batch_size: int = 8192,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Evidence:
    """Importance-sampling estimate of the log evidence ``log Z`` with the flow as proposal.

    Draws ``x_1..x_n ~ q``, forms the log-weights ``log w_i = log p~(x_i) -
    log q(x_i)`` and returns ``log((1/n) sum_i w_i)`` (:func:`log_mean_exp`), its
    standard error, the effective sample size (:func:`effective_sample_size`)
    and the ELBO of the same samples. A guide that misses part of the target's mass
    gives a small ESS and an estimate that is too low, and its standard error
    cannot show it: the weights that would correct it are never drawn.

    Returns:
        An :class:`Evidence` ``(log_z, se, ess, n, elbo)``.
    """
    log_w = _log_weights(flow, log_density, n, batch_size, seed, generator, "log_evidence")
    ess = effective_sample_size(log_w).item()
    n = log_w.numel()
    se = math.sqrt(max(1 / ess - 1 / n, 0.0))
    return Evidence(log_mean_exp(log_w).item(), se, ess, n, log_w.mean().item())


# --- Lesson 11: held-out NLL with its error bar, and two-sample tests -------------------------


class HeldOutNLL(NamedTuple):
    """The mean negative log-likelihood of held-out points and its standard error (nats).

    Attributes:
        nll: ``-(1/N) sum_n log q(x_n)``, in nats per point.
        se: its standard error ``s / sqrt(N)``, with ``s`` the sample standard deviation
            (``ddof=1``) of the per-point values ``-log q(x_n)``.
        n: the number of points ``N``.
    """

    nll: float
    se: float
    n: int


@torch.no_grad()
def held_out_nll(
    flow: nn.Module,
    data: Tensor | np.ndarray,
    context: Tensor | None = None,
    *,
    batch_size: int = 8192,
) -> HeldOutNLL:
    """The mean NLL of held-out ``data`` under ``flow`` and its standard error, in nats.

    With ``l_n = -log q(x_n)`` for the ``N`` points,

        NLL = (1/N) sum_n l_n,     SE = s / sqrt(N),   s^2 = (1/(N-1)) sum_n (l_n - NLL)^2.

    The points are independent draws, so the mean's standard deviation is that of one
    point's value over ``sqrt(N)``: two flows whose NLLs differ by less than about two
    standard errors cannot be told apart by this data set (when they are scored on the
    same points, the standard error of their per-point difference is the sharper test).
    ``se`` is NaN for ``N = 1``; ``inf`` values (a point of zero density) make both
    ``inf``/NaN. Bits per dimension for images: ``nfcourse.digits.bits_per_dim``.

    Evaluated in batches, without gradients, in ``eval()`` mode (the mode is restored).
    ``context`` is passed to ``flow.log_prob`` for a conditional flow: one context of
    shape ``(C,)`` for all points, or ``(N, C)``, one per point.

    Returns:
        A :class:`HeldOutNLL` ``(nll, se, n)``.
    """
    where = "held_out_nll"
    check_model(flow, where)
    batch_size = check_int(batch_size, "batch_size", where)
    data = as_data(data, flow, "data", where)
    n = data.shape[0]
    per_point = isinstance(context, Tensor) and context.dim() >= 2 and context.shape[0] == n
    if isinstance(context, Tensor) and context.dim() >= 2 and not per_point:
        raise ValueError(
            f"{where}: `context` must have shape (C,) (one context for all points) or "
            f"(N, C) with N = {n}, the number of points; got shape {tuple(context.shape)}."
        )
    chunks = context.split(batch_size) if per_point else [context] * len(data.split(batch_size))
    values = []
    with _eval_mode(flow):
        for x, c in zip(data.split(batch_size), chunks, strict=True):
            lp = flow.log_prob(x) if c is None else flow.log_prob(x, context=c)
            values.append(-lp.double().reshape(-1))
    mean, se = _mean_and_se(torch.cat(values))
    return HeldOutNLL(mean, se, n)


class TwoSampleTest(NamedTuple):
    """The result of a two-sample test of ``H0: x and y come from the same distribution``.

    Attributes:
        statistic: the test's statistic (the unbiased MMD^2 for :func:`mmd_test`, the
            held-out accuracy for :func:`classifier_two_sample_test`).
        p_value: the probability, under ``H0``, of a statistic at least as large; small
            values are evidence that the distributions differ.
    """

    statistic: float
    p_value: float


def _two_samples(x: object, y: object, where: str, smallest: int = 2) -> tuple[Tensor, Tensor]:
    """Two samples of shape ``(m, D)`` and ``(n, D)`` as float64 CPU tensors."""
    x = as_data(x, None, "x", where).double().cpu()
    y = as_data(y, None, "y", where).double().cpu()
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{where}: `x` and `y` must have the same number of coordinates D, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}."
        )
    for name, t in (("x", x), ("y", y)):
        if t.shape[0] < smallest:
            raise ValueError(
                f"{where}: `{name}` must hold at least {smallest} points, got {t.shape[0]}. "
                "Draw more samples."
            )
    return x, y


def median_bandwidth(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """The median heuristic: the median distance between two distinct points of ``x`` and ``y``
    pooled (Gretton et al. 2012), a bandwidth on the scale of the data.

    ``sigma = median{ ||z_i - z_j|| : i < j }`` over the pooled points ``z``.
    """
    x, y = _two_samples(x, y, "median_bandwidth", smallest=1)
    return _median_bandwidth(torch.cat([x, y]), "median_bandwidth")


def _median_bandwidth(z: Tensor, where: str) -> float:
    i, j = torch.triu_indices(len(z), len(z), offset=1)
    d = torch.cdist(z, z)[i, j]
    sigma = float(np.median(d.numpy())) if d.numel() else 0.0
    if not sigma > 0:
        raise ValueError(
            f"{where}: the median distance between the points is {sigma}, so the median "
            "heuristic gives no bandwidth (most points coincide). Pass a positive "
            "`bandwidth`, e.g. bandwidth=1.0."
        )
    return sigma


def _gram(z: Tensor, bandwidth: float) -> Tensor:
    """``k(z_i, z_j) = exp(-||z_i - z_j||^2 / (2 sigma^2))`` for all pairs."""
    return torch.exp(-torch.cdist(z, z).square() / (2 * bandwidth**2))


def _mmd2_from_gram(k: Tensor, labels: Tensor, m: int) -> Tensor:
    """The unbiased MMD^2 for each row of ``labels`` ((P, m+n) of 1 for x, 0 for y)."""
    n = k.shape[0] - m
    k = k - torch.diag_embed(k.diagonal())  # the terms i = j drop out
    ex, ey = labels, 1 - labels
    kex, key = ex @ k, ey @ k
    sxx, syy, sxy = (kex * ex).sum(-1), (key * ey).sum(-1), (kex * ey).sum(-1)
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def _bandwidth(bandwidth: object, z: Tensor, where: str) -> float:
    if bandwidth is None:
        return _median_bandwidth(z, where)
    return check_number(bandwidth, "bandwidth", where, positive=True, example="1.0")


def mmd2(x: Tensor | np.ndarray, y: Tensor | np.ndarray, bandwidth: float | None = None) -> float:
    """The unbiased estimate of the squared maximum mean discrepancy between two samples.

    With a kernel ``k``, ``MMD^2(p, q) = E k(x, x') - 2 E k(x, y) + E k(y, y')`` for
    independent ``x, x' ~ p`` and ``y, y' ~ q``: zero when ``p = q`` and, for a
    characteristic kernel such as the Gaussian, positive otherwise. Here
    ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))`` and, from ``x_1..x_m`` and ``y_1..y_n``,

        MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
                  - 2/(m n) sum_{i, j} k(x_i, y_j),

    which leaves out the terms ``i = j`` (each equal to 1), so its expectation is exactly
    ``MMD^2``; when ``p = q`` it scatters around 0 and is negative about half the time.
    (Keeping them, with ``1/m^2``, gives the biased V-statistic, which is above 0 even for
    ``p = q``.) ``bandwidth`` is ``sigma``; ``None`` takes the median heuristic, the median
    distance between distinct points of ``x`` and ``y`` pooled (:func:`median_bandwidth`).

    Computed in float64 with ``O((m + n)^2)`` memory. Reference: Gretton, Borgwardt,
    Rasch, Schoelkopf and Smola (2012), "A Kernel Two-Sample Test", JMLR 13.

    Args:
        x: points of shape ``(m, D)``, ``m >= 2`` (e.g. held-out data).
        y: points of shape ``(n, D)``, ``n >= 2`` (e.g. samples of a flow).
        bandwidth: the kernel's ``sigma > 0``, or ``None`` for the median heuristic.

    Returns:
        ``MMD^2_u`` as a float (may be slightly negative).
    """
    where = "mmd2"
    x, y = _two_samples(x, y, where)
    z = torch.cat([x, y])
    sigma = _bandwidth(bandwidth, z, where)
    labels = torch.cat([torch.ones(len(x)), torch.zeros(len(y))]).double()
    return _mmd2_from_gram(_gram(z, sigma), labels[None], len(x)).item()


def mmd_test(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    bandwidth: float | None = None,
    *,
    permutations: int = 200,
    seed: int | None = 0,
) -> TwoSampleTest:
    """A kernel two-sample test: the unbiased ``MMD^2`` (:func:`mmd2`) and its permutation p-value.

    Under ``H0: p = q`` the labels "from x" and "from y" are exchangeable, so the
    statistic of the pooled points relabelled at random (``x`` keeps its size ``m``) has
    the same distribution as the observed one. With ``T_0`` the observed statistic and
    ``T_1..T_P`` those of ``P`` random relabellings,

        p = (1 + #{b : T_b >= T_0}) / (1 + P),

    a valid p-value (``P(p <= alpha) <= alpha`` under ``H0``), never below ``1/(1+P)``.
    The bandwidth (median heuristic when ``None``) is computed once from the pooled
    points, which a relabelling does not change.

    Args:
        x, y: points of shape ``(m, D)`` and ``(n, D)``, at least 2 of each.
        bandwidth: the Gaussian kernel's ``sigma``, or ``None`` for the median heuristic.
        permutations: the number ``P`` of random relabellings.
        seed: seeds the relabellings (``None``: torch's global random state).

    Returns:
        A :class:`TwoSampleTest` ``(statistic, p_value)``.
    """
    where = "mmd_test"
    x, y = _two_samples(x, y, where)
    permutations = check_int(permutations, "permutations", where)
    gen = make_generator(seed, None, where)
    z = torch.cat([x, y])
    m, total = len(x), len(z)
    k = _gram(z, _bandwidth(bandwidth, z, where))
    observed = torch.cat([torch.ones(m), torch.zeros(total - m)]).double()
    stat = _mmd2_from_gram(k, observed[None], m).item()
    exceed = 0
    for start in range(0, permutations, 256):  # batches of relabellings: bounded memory
        p = min(256, permutations - start)
        order = torch.rand(p, total, generator=gen).argsort(-1)
        labels = (order < m).double()  # the first m of each random order are "x"
        exceed += int((_mmd2_from_gram(k, labels, m) >= stat).sum())
    return TwoSampleTest(stat, (1 + exceed) / (1 + permutations))


def classifier_two_sample_test(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    *,
    neighbors: int | None = None,
    seed: int = 0,
) -> TwoSampleTest:
    """A classifier two-sample test: can a classifier tell ``x`` from ``y`` on held-out points?

    The points of ``x`` are labelled 0, those of ``y`` 1; half of each (stratified,
    shuffled by ``seed``) trains a scikit-learn k-nearest-neighbour classifier
    (``KNeighborsClassifier`` on standardized coordinates, ``k = neighbors``, by default
    the odd number nearest ``sqrt(n_train)``), the other half measures its accuracy.
    If ``p = q`` no classifier beats chance, so the number of right answers among the
    ``n_test`` held-out points is about ``Binomial(n_test, 1/2)``; the p-value is

        p = P(Binomial(n_test, 1/2) >= right answers)

    (one-sided: an accuracy below 1/2 is no evidence of a difference). An accuracy near
    1/2 means the classifier found no difference, one near 1 that the samples are easy
    to tell apart; unlike an NLL, it needs only samples. Needs ``len(x) == len(y)`` so that
    chance is 1/2. Reference: Lopez-Paz and Oquab (2017), "Revisiting Classifier
    Two-Sample Tests", ICLR.

    Returns:
        A :class:`TwoSampleTest` ``(statistic, p_value)``; the statistic is the accuracy.
    """
    where = "classifier_two_sample_test"
    x, y = _two_samples(x, y, where)
    if len(x) != len(y):
        raise ValueError(
            f"{where}: `x` and `y` must hold the same number of points (so that chance is "
            f"1/2), got {len(x)} and {len(y)}. Draw as many samples as there are data "
            f"points, or use the first {min(len(x), len(y))} of each."
        )
    seed = check_int(seed, "seed", where, smallest=0)
    from scipy.stats import binom  # scikit-learn and SciPy load slowly: only when asked
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = torch.cat([x, y]).numpy()
    labels = np.repeat([0, 1], len(x))
    x_tr, x_te, l_tr, l_te = train_test_split(
        features, labels, test_size=0.5, stratify=labels, random_state=seed
    )
    if neighbors is None:
        neighbors = max(1, 2 * int(math.sqrt(len(x_tr)) / 2) + 1)
    neighbors = check_int(neighbors, "neighbors", where)
    if neighbors > len(x_tr):
        raise ValueError(
            f"{where}: `neighbors` must be at most the {len(x_tr)} training points, got "
            f"{neighbors}. Pass fewer neighbours or more points."
        )
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=neighbors))
    model.fit(x_tr, l_tr)
    right = int((model.predict(x_te) == l_te).sum())
    p_value = float(binom.sf(right - 1, len(l_te), 0.5))
    return TwoSampleTest(right / len(l_te), p_value)
