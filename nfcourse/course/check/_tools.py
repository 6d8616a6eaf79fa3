"""Small helpers the lesson checks share: comparing tensors, reading what a learner returned,
seeing whether gradients reach a learner's parameters."""

from __future__ import annotations

import inspect
import re

import torch
from torch import Tensor, nn

from ._core import Mistake


def close(a: object, b: Tensor, tol: float = 1e-6) -> bool:
    """Whether ``a`` is a tensor of ``b``'s shape with the same values, in float64.

    Equal infinities count as close; NaN never does.
    """
    return (
        isinstance(a, Tensor)
        and a.shape == b.shape
        and bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=tol, atol=tol))
    )


def first_match(out: Tensor, variants: list[tuple[Tensor, str]], tol: float = 1e-6) -> str | None:
    """The hint of the first typical wrong answer that ``out`` equals, if any."""
    for value, hint in variants:
        if close(out, value, tol):
            return hint
    return None


def as_tensor(out: object, what: str, advice: str) -> Tensor:
    """The learner's return value as a float64 tensor, or a Mistake that says what came."""
    if isinstance(out, Tensor):
        if not out.is_floating_point():
            raise Mistake(
                f"{what} returned a tensor of dtype {out.dtype}.",
                "log-densities are real numbers: return a floating-point tensor.",
            )
        return out.detach().double()
    raise Mistake(f"{what} returned {type(out).__name__}, not a torch.Tensor.", advice)


def pair(out: object, method: str, first: str) -> tuple[Tensor, Tensor]:
    """The ``(output, ladj)`` pair a layer method must return, or a Mistake."""
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise Mistake(
            f"{method} must return a pair of tensors ({first}, ladj), got {got}.",
            f"end {method} with `return {first}, ladj`: every layer of the course returns "
            "its output and the log|det J| of the map it applied.",
        )
    return out


# --- gradients: do they reach the parameters? --------------------------------------------------

# Ways to cut a computation out of autograd's graph, as they read in source code.
_CUTS = (
    (re.compile(r"\.data\b"), "`.data`"),
    (re.compile(r"\.detach\(\)"), "`.detach()`"),
    (re.compile(r"\bno_grad\b|\binference_mode\b"), "`torch.no_grad()`"),
    (re.compile(r"\.item\(\)"), "`.item()`"),
    (re.compile(r"\.numpy\(\)|\.tolist\(\)"), "a detour through NumPy or Python numbers"),
)


def _learner_methods(cls: type):
    """``(name, function)`` of the methods and properties the learner wrote (not torch's)."""
    for klass in cls.__mro__:
        if klass is object or (klass.__module__ or "").split(".")[0] in {"torch", "nfcourse"}:
            continue
        for name, value in vars(klass).items():
            fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
            if inspect.isfunction(fn) and name != "__init__":
                yield name, fn


def graph_cuts(cls: type) -> list[str]:
    """What in the learner's methods cuts gradients, e.g. ["`.data` in u_hat"]."""
    found = []
    for name, fn in _learner_methods(cls):
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):  # source not available: say nothing rather than guess
            continue
        code = "\n".join(line.split("#")[0] for line in source.splitlines())
        found += [f"{what} in {name}" for pattern, what in _CUTS if pattern.search(code)]
    return found


def gradient_hint(cls: type, target: str, why: str = "training cannot move it") -> str:
    """A hint for gradients that do not reach ``target``: what cuts them, if the source says."""
    cuts = graph_cuts(cls)
    if cuts:
        return (
            f"your code uses {', '.join(cuts)}: that takes the computation out of autograd's "
            f"graph, so no gradient reaches {target} and {why}. Compute with the tensors "
            "themselves (not their .data or a .detach()ed copy), outside torch.no_grad()."
        )
    return (
        f"gradients must reach {target}, or {why}: compute with the parameters and inputs "
        "themselves and torch operations, not `.data`, `.detach()`, `.item()`, a copy made "
        "in __init__, or code under `torch.no_grad()`."
    )


def gradients(module: nn.Module, outputs: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor | None]:
    """The gradient of ``sum_k (out_k * weight_k).sum()`` for each parameter (None: none came)."""
    module.zero_grad(set_to_none=True)
    terms = [(out * weight).sum() for out, weight in outputs if out.requires_grad]
    if terms:
        sum(terms).backward()
    return {name: p.grad for name, p in module.named_parameters()}
