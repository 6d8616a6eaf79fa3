"""Flow distributions: a base distribution pushed through a stack of layers.

With ``x = f(z)``, ``z ~ p_Z`` and ``f = f_K o ... o f_1``, the change of
variables formula gives

    log p_X(x) = log p_Z(z) + sum_k log|det d f_k^{-1} / d z_k|,   z = f^{-1}(x)
               = log p_Z(z) - sum_k log|det d f_k / d z_{k-1}|.

``log_prob`` uses the first line (the layers' inverses: density estimation);
``sample_and_log_prob`` uses the second (only forward passes: variational
inference, where an inverse may be expensive or unavailable).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Generator, Tensor, nn

from .base import Compose, check_dim, check_points


def _check_count(n, where: str) -> tuple[int, ...]:
    """A sample count ``n`` (int) or sample shape (tuple of ints) as a shape tuple."""
    shape = (n,) if isinstance(n, int) and not isinstance(n, bool) else n
    if (
        not isinstance(shape, (tuple, list, torch.Size))
        or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in shape)
    ):
        raise ValueError(
            f"{where}: the number of samples must be a non-negative int (or a tuple of "
            f"ints for a sample shape), got {n!r}."
        )
    return tuple(shape)


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


class StandardNormal(nn.Module):
    """The standard normal ``N(0, I_D)``, as a module so that it follows ``.to(device)``.

    ``log p(z) = -||z||^2 / 2 - (D / 2) log(2 pi)``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = check_dim(dim, "StandardNormal")
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # device and dtype

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * z.pow(2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def rsample(self, shape: Sequence[int] = (), generator: Generator | None = None) -> Tensor:
        ref = self._ref
        return torch.randn(
            (*shape, self.dim), dtype=ref.dtype, device=ref.device, generator=generator
        )

    def sample(self, shape: Sequence[int] = (), generator: Generator | None = None) -> Tensor:
        with torch.no_grad():
            return self.rsample(shape, generator)


class Flow(nn.Module):
    """A normalizing flow: a base distribution and layers, ``x = f_K(...f_1(z))``.

    Args:
        layers: the layers in generative order (``f_1`` first), or one layer.
        base: ``None`` for a standard normal in ``dim`` dimensions, or any object
            with ``log_prob`` and ``rsample`` whose events have shape ``(D,)``
            (e.g. a ``torch.distributions.MultivariateNormal``).
        dim: the number of coordinates D; inferred from the layers when they know it.

    Shapes: ``log_prob`` takes ``(*, D)`` and returns ``(*)``; ``sample(n)``
    returns ``(n, D)``.
    """

    def __init__(self, layers, base=None, dim: int | None = None):
        super().__init__()
        self.transform = layers if isinstance(layers, Compose) else Compose(
            *(layers if isinstance(layers, (list, tuple)) else [layers])
        )
        dim = dim if dim is not None else self.transform.dim
        if dim is None and base is not None:
            dim = getattr(base, "dim", None) or (base.event_shape[-1] if base.event_shape else None)
        if dim is None:
            raise ValueError(
                "Flow: cannot tell the number of coordinates D from these layers; "
                "pass dim=D."
            )
        self.dim = check_dim(dim, "Flow")
        if self.transform.dim not in (None, self.dim):
            raise ValueError(
                f"Flow: the layers act on D = {self.transform.dim} coordinates but dim={dim}."
            )
        self.base = StandardNormal(self.dim) if base is None else base

    def _base_sample(self, shape: tuple[int, ...], generator: Generator | None) -> Tensor:
        if generator is None:
            return self.base.rsample(shape)
        if isinstance(self.base, StandardNormal):
            return self.base.rsample(shape, generator=generator)
        # torch.distributions take no generator: draw a seed from it and sample under
        # that seed, without disturbing the global random state
        seed = int(torch.randint(2**62, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.base.rsample(shape)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x)`` by the change of variables formula through the layers' inverses."""
        x = check_finite(check_points(x, self.dim, "x", "Flow.log_prob"), "x", "Flow.log_prob")
        z, ladj = self.transform.inverse(x)
        return self.base.log_prob(z) + ladj

    def nll(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood (nats per sample) of data ``x``."""
        return -self.log_prob(x).mean()

    def rsample(self, n=1, generator: Generator | None = None) -> Tensor:
        """Samples with gradients flowing to the parameters (reparameterization)."""
        return self.sample_and_log_prob(n, generator)[0]

    def sample(self, n=1, generator: Generator | None = None) -> Tensor:
        """``n`` samples, shape ``(n, D)``, without gradients."""
        with torch.no_grad():
            return self.rsample(n, generator)

    def sample_and_log_prob(
        self, n=1, generator: Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Samples and their log-densities from forward passes only (no inverse needed).

        ``log p(x) = log p_Z(z) - ladj_forward(z)``: the cheap path of variational inference.
        """
        shape = _check_count(n, "Flow.sample")
        z = self._base_sample(shape, generator)
        x, ladj = self.transform(z)
        return x, self.base.log_prob(z) - ladj

    def stages(self, n=1000, generator: Generator | None = None) -> list[Tensor]:
        """Base samples and the points after every layer: ``[z_0, z_1, ..., z_K]``."""
        shape = _check_count(n, "Flow.stages")
        with torch.no_grad():
            return self.transform.stages(self._base_sample(shape, generator))
