"""Flows on images: the multi-scale image flow, its training on dequantized pixels, bits/dim.

The image flow of lesson 07 (:func:`image_flow`) works on the digits' dequantized values
``v = k + u`` in ``(0, 17)^64`` (:mod:`nfcourse.data.digits`): its last layers, in
generative order, are the preprocessing of
:func:`~nfcourse.layers.image.dequantized_to_logit`, so ``flow.log_prob(v)`` is the
density ``p_V`` whose bits per dimension bound the discrete model's
(:func:`~nfcourse.data.digits.bits_per_dim`). :func:`tabular_flow` puts the same
preprocessing behind the course's MAF or NSF on the flat 64 values, and
:func:`gaussian_bits` is the full-covariance Gaussian baseline.

Training (:func:`train`) draws fresh dequantization noise at every step, which
:func:`nfcourse.fit` cannot (it samples from fixed points); :func:`bits` averages the
bound over a few noise draws.

This module sits beside :mod:`nfcourse.train`: it uses flows, layers and data, and
never pictures (docs/architecture.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .data import digits
from .flow import Flow, maf, nsf
from .layers import Compose
from .layers.image import (
    ActNorm,
    Conv1x1,
    ImageCoupling,
    Squeeze,
    Subset,
    channel_mask,
    check_shape,
    checkerboard_mask,
    dequantized_to_logit,
)
from .validate import _is_int, check_hidden, check_int, check_number, unknown_name


def _generative(normalizing: Sequence[nn.Module]) -> list[nn.Module]:
    """Layers listed in the normalizing order (data first), put in generative order."""
    return list(reversed(normalizing))


def _step(shape: tuple[int, int, int], mask: Tensor, hidden: int, mix: bool) -> list[nn.Module]:
    """One flow step in normalizing order: actnorm, (1x1 convolution), coupling."""
    return [ActNorm(shape), *([Conv1x1(shape)] if mix else []), ImageCoupling(shape, mask, hidden)]


def image_flow(
    shape: Sequence[int] = digits.SHAPE,
    levels: int = digits.LEVELS,
    hidden: int = 32,
    depth: Sequence[int] = (2, 4, 4),
    alpha: float = 0.05,
) -> Flow:
    """A small multi-scale flow for images in the manner of RealNVP and Glow.

    In the normalizing direction (data to noise), for an image ``(C, H, W)`` (``H``
    and ``W`` multiples of 4):

    0. preprocessing: ``v -> logit(alpha + (1 - 2 alpha) v / levels)``;
    1. ``depth[0]`` steps at full resolution: actnorm, checkerboard coupling (the
       checkerboard alternates);
    2. squeeze to ``(4C, H/2, W/2)``; ``depth[1]`` steps: actnorm, 1x1 convolution,
       channel coupling;
    3. factor out half of the channels (they go straight to the base); on the other
       half (:class:`~nfcourse.layers.image.Subset`): squeeze to ``(8C, H/4, W/4)``
       and ``depth[2]`` steps like those of 2.

    Couplings start as the identity (zero last convolution); actnorms are set by the
    first batch that goes through the flow (:class:`~nfcourse.layers.image.ActNorm`).
    ``flow.log_prob`` takes dequantized values ``v`` in ``(0, levels)^D``, shape
    ``(*, C H W)``.
    """
    where = "image_flow"
    c, h, w = check_shape(shape, where)
    if h % 4 or w % 4:
        raise ValueError(
            f"{where}: the height and width must be multiples of 4 (two squeezes), got "
            f"shape {(c, h, w)}."
        )
    hidden = check_int(hidden, "hidden", where, meaning="channels of the conditioners")
    if not (
        isinstance(depth, (tuple, list))
        and len(depth) == 3
        and all(_is_int(k) and k >= 0 for k in depth)
    ):
        raise ValueError(
            f"{where}: `depth` must be 3 non-negative ints, the number of steps at each "
            f"scale, got {depth!r}. Pass e.g. depth=(4, 4, 4)."
        )
    dim = c * h * w
    s1, s2, s3 = (c, h, w), (4 * c, h // 2, w // 2), (2 * c, h // 2, w // 2)
    s4 = (8 * c, h // 4, w // 4)

    fine = []
    for i in range(depth[0]):
        fine += _step(s1, checkerboard_mask(s1, i % 2), hidden, mix=False)
    middle = [Squeeze(s1)]
    for i in range(depth[1]):
        middle += _step(s2, channel_mask(s2, i % 2), hidden, mix=True)
    coarse = [Squeeze(s3)]
    for i in range(depth[2]):
        coarse += _step(s4, channel_mask(s4, i % 2), hidden, mix=True)
    kept = Subset(dim, range(dim // 2), Compose(*_generative(coarse)))
    core = _generative([*fine, *middle, kept])
    return Flow([*core, dequantized_to_logit(dim, levels, alpha)])


def tabular_flow(
    kind: str = "maf",
    dim: int = digits.DIM,
    levels: int = digits.LEVELS,
    layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    alpha: float = 0.05,
) -> Flow:
    """The course's MAF or NSF on the flat ``D`` values, behind the same preprocessing
    as :func:`image_flow`: it sees the pixels as a vector, with no notion of neighbours."""
    hidden = check_hidden(hidden, "tabular_flow")
    builders = {"maf": maf, "nsf": nsf}
    if kind not in builders:
        raise unknown_name("kind", kind, list(builders))
    core = builders[kind](dim, layers=layers, hidden=hidden).transform
    return Flow([*core.layers, dequantized_to_logit(dim, levels, alpha)])


# --- training and evaluation -----------------------------------------------------------------


def bits(
    flow: nn.Module, pixels: Tensor, draws: int = 4, seed: int = 0, batch_size: int = 1000
) -> Tensor:
    """Bits per dimension of each image: the dequantization bound
    ``-log p_V(k + u) / (D ln 2)`` averaged over ``draws`` noise draws, shape ``(N,)``.

    In eval mode and without gradients; the flow's training mode is restored.
    """
    where = "images.bits"
    pixels = digits.check_pixels(pixels, where)
    draws = check_int(draws, "draws", where)
    g = torch.Generator().manual_seed(check_int(seed, "seed", where, smallest=0))
    was_training = flow.training
    flow.eval()
    total = torch.zeros(len(pixels), dtype=torch.float64)
    try:
        with torch.no_grad():
            for _ in range(draws):
                v = digits.dequantize(pixels, generator=g)
                lp = torch.cat([flow.log_prob(b) for b in v.split(batch_size)])
                total += digits.bits_per_dim(lp.double(), pixels.shape[-1])
    finally:
        flow.train(was_training)
    return total / draws


def train(
    flow: nn.Module,
    pixels: Tensor,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    clip_grad: float = 10.0,
    seconds: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Maximum likelihood on dequantized pixels with fresh noise at every step.

    Each step draws ``batch_size`` images (with replacement) and their noise, and takes
    an Adam step on the mean bits/dim (the mean NLL over ``D ln 2``), the learning rate
    decaying along a half cosine. The first step is preceded by one pass of 512
    dequantized images, which sets the flow's actnorms (their data-dependent
    initialization). ``seconds``: a budget of wall-clock time instead of steps (for
    comparisons at equal training time): the learning rate then decays along the
    half cosine over the elapsed time, and training stops at the first step that
    starts after the budget (``steps`` is then only an upper bound). ``clock``: what
    the seconds count, wall-clock (``time.perf_counter``) or this process's CPU time
    (``time.process_time``: the same on an idle machine with one torch thread, and
    fair between runs when other programs share the machine). Returns each step's
    training bits/dim.
    """
    where = "images.train"
    pixels = digits.check_pixels(pixels, where)
    steps, batch_size = check_int(steps, "steps", where), check_int(batch_size, "batch_size", where)
    lr = check_number(lr, "lr", where, positive=True, example="2e-3")
    g = torch.Generator().manual_seed(check_int(seed, "seed", where, smallest=0))
    dim = pixels.shape[-1]
    flow.train()
    with torch.no_grad():  # actnorm's data-dependent initialization, on a larger batch
        first = pixels[torch.randint(len(pixels), (min(512, len(pixels)),), generator=g)]
        flow.log_prob(digits.dequantize(first, generator=g))
    if seconds is not None:
        seconds = check_number(seconds, "seconds", where, positive=True, example="30")
    optimizer = torch.optim.Adam([p for p in flow.parameters() if p.requires_grad], lr=lr)
    losses, start = [], clock()
    for step in range(steps):
        elapsed = clock() - start
        if seconds is not None and elapsed > seconds:
            break
        done = elapsed / seconds if seconds is not None else step / steps
        for group in optimizer.param_groups:  # a half cosine from lr to 0
            group["lr"] = lr * (1 + math.cos(math.pi * done)) / 2
        batch = pixels[torch.randint(len(pixels), (batch_size,), generator=g)]
        v = digits.dequantize(batch, generator=g)
        loss = -flow.log_prob(v).mean() / (dim * math.log(2))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(flow.parameters(), clip_grad)
        optimizer.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(
                f"{where}: the loss became {losses[-1]} at step {len(losses)}. Lower lr "
                f"(lr={lr / 3:.2g}) or clip_grad."
            )
    flow.eval()
    return losses


def gaussian_bits(train_pixels: Tensor, pixels: Tensor, seed: int = 0, draws: int = 4) -> Tensor:
    """The full-covariance Gaussian baseline on dequantized pixels: bits/dim of each image.

    Its mean and covariance are those of the dequantized training images (one noise
    draw); the bound of :func:`bits` is averaged over ``draws`` draws of the noise.
    """
    where = "images.gaussian_bits"
    train_pixels = digits.check_pixels(train_pixels, where)
    pixels = digits.check_pixels(pixels, where)
    g = torch.Generator().manual_seed(check_int(seed, "seed", where, smallest=0))
    v = digits.dequantize(train_pixels, generator=g, dtype=torch.float64)
    gaussian = torch.distributions.MultivariateNormal(v.mean(0), covariance_matrix=v.T.cov())
    out = torch.zeros(len(pixels), dtype=torch.float64)
    for _ in range(draws):
        lp = gaussian.log_prob(digits.dequantize(pixels, generator=g, dtype=torch.float64))
        out += digits.bits_per_dim(lp, pixels.shape[-1])
    return out / draws


# --- sampling and the latent space -----------------------------------------------------------


def sample(
    flow: Flow, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` samples drawn with base noise ``z ~ N(0, T^2 I)`` (``T = temperature``),
    rounded down to grey levels: int64 ``(n, D)``.

    A temperature below 1 draws from nearer the base's mode: cleaner, less varied
    images (Kingma and Dhariwal 2018, section 5).
    """
    where = "images.sample"
    n = check_int(n, "n", where)
    temperature = check_number(temperature, "temperature", where, positive=True, example="0.7")
    with torch.no_grad():
        z = temperature * flow.base.sample((n,), generator=generator)
        return decode(flow, z)


def encode(flow: Flow, pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The latent points ``z = f^{-1}(k + u)`` of dequantized images, shape ``(N, D)``."""
    v = digits.dequantize(digits.check_pixels(pixels, "images.encode"), generator=generator)
    with torch.no_grad():
        return flow.transform.inverse(v)[0]


def decode(flow: Flow, z: Tensor) -> Tensor:
    """Images of latent points: ``f(z)`` rounded down to grey levels, int64 ``(N, D)``."""
    with torch.no_grad():
        v = flow.transform(z)[0]
    return v.floor().clamp(0, digits.LEVELS - 1).long()


def interpolate(flow: Flow, z0: Tensor, z1: Tensor, steps: int = 8) -> Tensor:
    """Images along the straight line from ``z0`` to ``z1`` in latent space: ``(steps, D)``.

    The line is rescaled to keep the norm of the endpoints (``|z|`` of a Gaussian in
    ``D`` dimensions concentrates near ``sqrt(D)``; the plain midpoint of two such
    points is shorter, i.e. atypical for the base).
    """
    steps = check_int(steps, "steps", "images.interpolate", smallest=2)
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)[:, None]
    line = (1 - t) * z0 + t * z1
    norm = (1 - t) * z0.norm() + t * z1.norm()
    return decode(flow, line * norm / line.norm(dim=-1, keepdim=True))
