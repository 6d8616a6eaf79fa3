"""Evaluating a flow: held-out NLL, the gap to the entropy, and the reverse KL.

The mean negative log-likelihood (NLL) of held-out data ``x_1..x_N ~ p``,

    NLL = -(1/N) sum_n log q(x_n),

estimates ``H(p) + KL(p || q)``: in expectation it never goes below the
entropy ``H(p)``, so where the data's density is known the gap
``NLL - H(p)`` estimates ``KL(p || q)``, what the model has left to learn (a
finite sample scatters around it, so a small negative gap can happen).

For an unnormalized target ``p~ = Z p`` (variational inference),
``E_q[log q(x) - log p~(x)] + log Z = KL(q || p)``, estimated from the flow's
own samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .validate import as_model_dtype, check_finite, check_int, dtype_device, make_generator

__all__ = ["gap_to_entropy", "nll", "reverse_kl"]


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


@torch.no_grad()
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
    is the training objective of :func:`fit_reverse_kl`. A ``log_prob`` that is
    already normalized (a torch distribution's, an ``nfcourse.energies``
    ``Energy``'s) has ``log Z = 0``: leave the default then.

    Returns:
        ``(estimate, standard_error)``, the standard error of the mean over ``n`` samples.
    """
    where = "reverse_kl"
    log_p = as_log_density(log_density, where)
    n = check_int(n, "n", where)
    batch_size = check_int(batch_size, "batch_size", where)
    _, device = dtype_device(flow) if isinstance(flow, nn.Module) else (None, None)
    gen = make_generator(seed, generator, where, device)
    diffs = []
    with _eval_mode(flow):
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x, log_q = flow.sample_and_log_prob(m, generator=gen)
            lp = log_p(x)
            check_log_density_output(lp, m, where)
            diffs.append((log_q - lp).double())
    d = torch.cat(diffs)
    se = d.std().item() / math.sqrt(n) if n > 1 else float("nan")
    return d.mean().item() + float(log_normalizer), se
