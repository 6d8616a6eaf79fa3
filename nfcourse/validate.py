"""Argument checks shared by the whole package: one place, one wording.

Every public function or layer validates what it is given once, at its own
boundary, with these helpers; internal code then trusts its inputs. Each
error names the function (``where``), the argument, what was expected, what
came, and what to do: never a shape error from deep inside torch.

This module depends on torch and NumPy only, so every other part of the
package may use it (see docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers

import numpy as np
import torch
from torch import Tensor, nn


def _is_int(value: object) -> bool:
    """An int, or a NumPy integer; never a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value: object, name: str, where: str, smallest: int = 1, meaning: str = "") -> int:
    """An integer ``>= smallest`` (NumPy integers are accepted), returned as a Python int."""
    if not _is_int(value) or value < smallest:
        words = {1: "a positive integer", 0: "a non-negative integer"}
        want = words.get(smallest, f"an integer >= {smallest}")
        meaning = f" ({meaning})" if meaning else ""
        raise ValueError(f"{where}: `{name}` must be {want}{meaning}, got {value!r}.")
    return int(value)


def check_dim(dim: object, where: str) -> int:
    """A layer's ``dim`` argument: the number of coordinates D, a positive int."""
    return check_int(dim, "dim", where, meaning="the number of coordinates D")


def check_number(
    value: object, name: str, where: str, positive: bool = False, example: str = "0.1"
) -> float:
    """A finite real number (``positive=True``: also > 0), returned as a float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value > 0 or not positive)
    if not ok:
        want = "a positive finite number" if positive else "a finite number"
        raise ValueError(
            f"{where}: `{name}` must be {want}, got {value!r}. Pass e.g. {name}={example}."
        )
    return value


def check_hidden(hidden: object, where: str) -> tuple[int, ...]:
    """The hidden layer sizes of a network: a tuple or list of positive ints."""
    if not isinstance(hidden, (tuple, list)) or not all(_is_int(h) and h > 0 for h in hidden):
        raise ValueError(
            f"{where}: `hidden` must be a tuple of positive ints (the width of each hidden "
            f"layer), got {hidden!r}. For one hidden layer of 64 units write hidden=(64,)."
        )
    return tuple(int(h) for h in hidden)


def check_count(n: object, where: str) -> tuple[int, ...]:
    """A number of samples ``n`` (an int) or a sample shape (ints), as a shape tuple."""
    shape = (n,) if _is_int(n) else n
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
        _is_int(k) and k >= 0 for k in shape
    ):
        raise ValueError(
            f"{where}: the number of samples must be a non-negative int (or a tuple of "
            f"ints for a sample shape), got {n!r}."
        )
    return tuple(int(k) for k in shape)


def check_points(t: object, dim: int | None, name: str, where: str) -> Tensor:
    """A batch of points: a floating tensor of shape ``(*, dim)`` (any last size for ``None``)."""
    if not isinstance(t, Tensor):
        raise TypeError(
            f"{where}: `{name}` must be a torch.Tensor of shape (..., {dim or 'D'}), "
            f"got {type(t).__name__}. Convert it first, e.g. torch.as_tensor({name}, "
            "dtype=torch.float32)."
        )
    if not t.is_floating_point():
        raise TypeError(
            f"{where}: `{name}` must be a floating-point tensor, got dtype {t.dtype}. "
            f"Use {name}.float() (or .double())."
        )
    if t.dim() == 0:
        raise ValueError(
            f"{where}: `{name}` must have shape (..., {dim or 'D'}) with the "
            "coordinates in the last dimension, got a scalar. For a single point, "
            "pass a tensor of shape (D,); for N points, shape (N, D)."
        )
    if dim is not None and t.shape[-1] != dim:
        raise ValueError(
            f"{where}: `{name}` must have shape (..., {dim}) (coordinates in the last "
            f"dimension), got shape {tuple(t.shape)}. {where} was built for D = {dim}: "
            f"pass points with {dim} coordinates, or build it with dim={t.shape[-1]}."
        )
    return t


def floating_reference(module: nn.Module) -> Tensor | None:
    """The module's first floating-point parameter or buffer (``None`` if it has none)."""
    for t in module.parameters():
        if t.is_floating_point():
            return t
    return next((t for t in module.buffers() if t.is_floating_point()), None)


def as_model_dtype(t: Tensor, module: nn.Module, name: str, where: str) -> Tensor:
    """Points ``t`` in the dtype of ``module``, on its device (one behaviour everywhere).

    float64 points (what ``torch.from_numpy`` gives) into a float32 model are
    converted, and the other way round, so a layer or flow computes in its own
    precision. Values too large for the model's dtype are refused, not turned
    into ``inf``; points on another device are refused with the fix.
    """
    ref = floating_reference(module)
    if ref is None:
        return t
    if t.device != ref.device:
        raise ValueError(
            f"{where}: `{name}` is on {t.device} but the model's parameters are on "
            f"{ref.device}. Move one of them: {name}.to({str(ref.device)!r}) or model.to(...)."
        )
    if t.dtype == ref.dtype:
        return t
    cast = t.to(ref.dtype)
    if torch.finfo(ref.dtype).bits < torch.finfo(t.dtype).bits:
        overflow = torch.isinf(cast) & torch.isfinite(t)
        if overflow.any():
            big = t[overflow].abs().max().item()
            raise ValueError(
                f"{where}: `{name}` holds values up to {big:.3g}, beyond the range of the "
                f"model's {ref.dtype} (largest {torch.finfo(ref.dtype).max:.3g}). Rescale the "
                f"data (e.g. standardize it), or use a float64 model: model.double()."
            )
    return cast


def as_index_tensor(value: object, name: str, where: str, hint: str) -> Tensor:
    """A 1-D sequence of numbers (a tensor, list, tuple or NumPy array) as a tensor."""
    if isinstance(value, (Tensor, list, tuple, range, np.ndarray)):
        try:
            return torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise TypeError(f"{where}: `{name}` must be a sequence of numbers, got {value!r}. {hint}")


def check_finite(x: Tensor, name: str, where: str) -> Tensor:
    """Refuse NaN or infinite values with a message that says where they are."""
    bad = ~torch.isfinite(x)
    if bad.any():
        first = tuple(bad.nonzero()[0].tolist())
        raise ValueError(
            f"{where}: `{name}` contains {int(bad.sum())} NaN or infinite values "
            f"(first at index {first}). Remove or impute them before scoring, e.g. "
            f"{name} = {name}[torch.isfinite({name}).all(-1)]."
        )
    return x


def check_float_dtype(dtype: object, where: str) -> torch.dtype:
    """A floating-point ``torch.dtype``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"{where}: `dtype` must be a floating-point torch.dtype, got {dtype!r}. "
            "Pass e.g. dtype=torch.float32 or torch.float64."
        )
    return dtype


def make_generator(
    seed: object, generator: object, where: str, device: torch.device | str = "cpu"
) -> torch.Generator | None:
    """The random generator to draw from, from ``seed`` or ``generator`` (not both).

    ``None`` for both means torch's global random state.
    """
    if seed is not None and generator is not None:
        raise ValueError(
            f"{where}: pass either `seed` or `generator`, not both (got seed={seed!r} "
            "and a generator)."
        )
    if generator is not None:
        return check_generator(generator, where)
    if seed is not None:
        seed = check_int(seed, "seed", where, smallest=0)
        return torch.Generator(device=device).manual_seed(seed)
    return None


def check_generator(generator: object, where: str) -> torch.Generator | None:
    """``None`` (torch's global random state) or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{where}: `generator` must be a torch.Generator, got {type(generator).__name__}. "
            "Make one with torch.Generator().manual_seed(0), or pass seed=0 where a function "
            "takes a seed."
        )
    return generator


@contextlib.contextmanager
def allocation(where: str, count: int):
    """torch failing to allocate memory for ``count`` samples, as a clear ``MemoryError``."""
    try:
        yield
    except RuntimeError as err:
        if "allocate" not in str(err):
            raise
        raise MemoryError(
            f"{where}: not enough memory for {count:,} samples. Draw fewer at a time, e.g. "
            "in batches of 100_000, and combine the results."
        ) from None


def dtype_device(model: object) -> tuple[torch.dtype, torch.device]:
    """The dtype and device a model computes in.

    A module's first floating parameter or buffer, a distribution's samples;
    otherwise torch's default dtype on the CPU.
    """
    if isinstance(model, nn.Module):
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                return t.dtype, t.device
    if isinstance(model, torch.distributions.Distribution):
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # leave the random state as it was
            s = model.sample()
        if s.is_floating_point():
            return s.dtype, s.device
    return torch.get_default_dtype(), torch.device("cpu")


def check_vector(t: Tensor, name: str, where: str, dim: int) -> Tensor:
    """A parameter of shape ``(dim,)``: one entry per coordinate of the points."""
    if t.shape != (dim,):
        raise ValueError(
            f"{where}: `{name}` must have shape ({dim},), one entry per coordinate of "
            f"the points (their last dimension is {dim}), got shape {tuple(t.shape)}."
        )
    return t


def check_scalar(t: Tensor, name: str, where: str) -> Tensor:
    """A scalar parameter: shape ``()`` or ``(1,)``; returned with shape ``()``."""
    if t.shape not in ((), (1,)):
        raise ValueError(
            f"{where}: `{name}` must be a scalar tensor (shape () or (1,)), got shape "
            f"{tuple(t.shape)}. Pass e.g. {name}=torch.tensor([1.])."
        )
    return t.reshape(())


class UnknownNameError(KeyError):
    """A name that is not in a registry. A ``KeyError`` whose message prints readably."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: object, valid: list[str]) -> UnknownNameError:
    """The error for a name that is not in a registry: lists the valid names."""
    hint = difflib.get_close_matches(str(name), valid, n=1)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}.{did_you_mean} Valid names: {', '.join(valid)}."
    )
