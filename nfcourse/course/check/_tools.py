"""Small helpers the lesson checks share: comparing tensors, reading what a learner returned."""

from __future__ import annotations

import torch
from torch import Tensor

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
