"""The 8x8 handwritten digits that ship with scikit-learn, and bits per dimension done right.

``sklearn.datasets.load_digits`` holds 1,797 grey images of 8 x 8 pixels (no download:
the file is inside the package). Each pixel is an integer ``k`` in ``0, ..., 16``:
``LEVELS = 17`` grey levels. :func:`load` splits them, with a fixed seed, into train,
validation and test sets of flattened images, shape ``(N, 64)``, integer dtype.

Discrete data, continuous density
---------------------------------
A flow has a density; the pixels are discrete. A density can put arbitrarily high
values on the finitely many points ``k`` and its "likelihood" there means nothing.
**Uniform dequantization** (Theis et al. 2016) adds noise ``u ~ U[0, 1)^D``:
``v = k + u`` lies in the cube ``[k, k + 1)`` that belongs to ``k``, and a density
``p`` of ``v`` gives the discrete model ``P(k) = int_{[0,1)^D} p(k + u) du``. By
Jensen's inequality

    log P(k) >= E_u[ log p(k + u) ],

so the average of ``-log p(k + u)`` over data and noise bounds the discrete model's
negative log-likelihood from above: a fair number to compare with a discrete model.

Bits per dimension
------------------
For images of ``D`` pixels,

    bits/dim = -log2 P(k) / D <= E_u[ -log p_V(k + u) ] / (D ln 2).

``p_V`` is the density of the dequantized values ``v`` in ``(0, LEVELS)^D``. Flows
usually see the rescaled ``y = v / LEVELS`` in ``(0, 1)^D``; then
``p_V(v) = p_Y(v / LEVELS) / LEVELS^D`` and

    bits/dim <= ( E_u[ -log p_Y(y) ] + D ln LEVELS ) / (D ln 2)
             =  E_u[ -log p_Y(y) ] / (D ln 2) + log2 LEVELS.

Leaving out the ``log2 LEVELS`` term (the log-det of the rescaling; ``log2 256 = 8``
bits for 8-bit images) is a common bug: it makes a model look ``log2 17 = 4.09`` bits
per dimension better here. So are reporting nats (``ln`` instead of ``log2``) and
dividing by the batch instead of by ``D`` as well. :func:`bits_per_dim` takes
``log p_V``, :func:`bits_per_dim_unit` takes ``log p_Y``.

References: L. Theis, A. van den Oord, M. Bethge (2016), "A note on the evaluation of
generative models", arXiv:1511.01844; Dinh, Sohl-Dickstein, Bengio (2017), "Density
estimation using Real NVP", arXiv:1605.08803 (section 4.1).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from ..validate import check_generator, check_int, unknown_name

LEVELS = 17  # grey levels 0, ..., 16
SHAPE = (1, 8, 8)  # (C, H, W)
DIM = 64
SPLITS = ("train", "val", "test")
SIZES = {"val": 300, "test": 300}  # the rest, 1,197 images, is the training set


@functools.cache
def _all_images() -> np.ndarray:
    from sklearn.datasets import load_digits  # scikit-learn loads slowly: only when asked

    return load_digits().data.astype(np.int64)  # (1797, 64), values 0..16


def load(seed: int = 0) -> dict[str, Tensor]:
    """The digits, split at random (fixed by ``seed``) into ``"train"``, ``"val"``, ``"test"``.

    Returns a dict of int64 tensors of shape ``(N, 64)`` with values ``0, ..., 16``:
    300 validation and 300 test images, 1,197 training images. The same ``seed``
    always gives the same split.
    """
    seed = check_int(seed, "seed", "digits.load", smallest=0)
    images = torch.from_numpy(_all_images())
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_val, n_test = SIZES["val"], SIZES["test"]
    return {
        "test": images[order[:n_test]],
        "val": images[order[n_test : n_test + n_val]],
        "train": images[order[n_test + n_val :]],
    }


def split(name: str, seed: int = 0) -> Tensor:
    """One split of :func:`load` by name."""
    if name not in SPLITS:
        raise unknown_name("split", name, list(SPLITS))
    return load(seed)[name]


def check_pixels(pixels: object, where: str) -> Tensor:
    """Integer pixels ``(*, D)`` in ``0, ..., LEVELS - 1``."""
    if not isinstance(pixels, Tensor):
        raise TypeError(
            f"{where}: `pixels` must be a torch.Tensor of integer grey levels, got "
            f"{type(pixels).__name__}. Use digits.load()['train']."
        )
    if pixels.is_floating_point() or pixels.dtype == torch.bool:
        raise TypeError(
            f"{where}: `pixels` must hold integer grey levels (0 to {LEVELS - 1}), got dtype "
            f"{pixels.dtype}. Dequantize integer pixels, not values that already carry noise; "
            "for rounded floats use pixels.round().long()."
        )
    if pixels.dim() == 0 or pixels.numel() == 0:
        raise ValueError(f"{where}: `pixels` must have shape (N, D), got {tuple(pixels.shape)}.")
    low, high = int(pixels.min()), int(pixels.max())
    if low < 0 or high >= LEVELS:
        raise ValueError(
            f"{where}: `pixels` must lie in 0, ..., {LEVELS - 1} (the digits' grey levels), got "
            f"values from {low} to {high}."
        )
    return pixels


def dequantize(
    pixels: Tensor, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``v = k + u`` with ``u ~ U[0, 1)`` independent for every pixel: values in ``[0, LEVELS)``.

    Draw fresh noise at every training step (the model then fits the average over the
    noise, which is what the bound of the module docstring needs).
    """
    where = "digits.dequantize"
    pixels = check_pixels(pixels, where)
    generator = check_generator(generator, where)
    noise = torch.rand(pixels.shape, generator=generator, dtype=dtype)
    return pixels.to(dtype) + noise


def bits_per_dim(log_p: Tensor, dim: int = DIM) -> Tensor:
    """Bits per dimension of each image from ``log p_V(v)``, the log-density (nats) of the
    dequantized values ``v = k + u`` in ``(0, LEVELS)^D``: ``-log p_V(v) / (D ln 2)``.

    Averaged over images (and noise draws) it bounds the discrete model's bits/dim
    from above (module docstring).
    """
    dim = check_int(dim, "dim", "digits.bits_per_dim", meaning="pixels per image")
    return -log_p / (dim * math.log(2))


def bits_per_dim_unit(log_p_unit: Tensor, dim: int = DIM, levels: int = LEVELS) -> Tensor:
    """Bits per dimension of each image from ``log p_Y(y)``, the log-density of the rescaled
    ``y = v / levels`` in ``(0, 1)^D``: ``(-log p_Y(y) + D ln levels) / (D ln 2)``.

    The ``D ln levels`` is the log-det of the rescaling ``v -> v / levels``.
    """
    where = "digits.bits_per_dim_unit"
    dim = check_int(dim, "dim", where, meaning="pixels per image")
    levels = check_int(levels, "levels", where, smallest=2, meaning="grey levels")
    return (-log_p_unit + dim * math.log(levels)) / (dim * math.log(2))


def independent_pixels(train: Tensor, smoothing: float = 1.0) -> Tensor:
    """The discrete model of independent pixels: each pixel's own histogram of grey levels.

    ``P_i(k) = (n_i(k) + smoothing) / (N + LEVELS * smoothing)``, with ``n_i(k)`` the
    number of training images whose pixel ``i`` equals ``k`` (additive smoothing: a
    level never seen in training keeps a small probability). Returns the log
    probabilities, shape ``(D, LEVELS)``.
    """
    train = check_pixels(train, "digits.independent_pixels")
    counts = torch.zeros(train.shape[-1], LEVELS, dtype=torch.float64)
    counts.scatter_add_(1, train.T, torch.ones(train.T.shape, dtype=torch.float64))
    return ((counts + smoothing) / (len(train) + LEVELS * smoothing)).log()


def independent_bits_per_dim(log_probs: Tensor, pixels: Tensor) -> Tensor:
    """Exact bits per dimension of each image under :func:`independent_pixels`' model."""
    pixels = check_pixels(pixels, "digits.independent_bits_per_dim")
    picked = log_probs.gather(1, pixels.T).T  # (N, D): log P_i(k_i)
    return -picked.sum(-1) / (pixels.shape[-1] * math.log(2))


# --- images unlike the training set (for out-of-distribution likelihoods) ---------------------


def noise_images(n: int, seed: int = 0) -> Tensor:
    """``n`` images of independent uniform grey levels, int64 ``(n, 64)``."""
    n = check_int(n, "n", "digits.noise_images")
    g = torch.Generator().manual_seed(check_int(seed, "seed", "digits.noise_images", smallest=0))
    return torch.randint(LEVELS, (n, DIM), generator=g)


def inverted(pixels: Tensor) -> Tensor:
    """The negative of each image: grey level ``k`` becomes ``LEVELS - 1 - k``."""
    return LEVELS - 1 - check_pixels(pixels, "digits.inverted")


@functools.cache
def _photos() -> np.ndarray:
    from sklearn.datasets import load_sample_images

    # the two photographs bundled with scikit-learn, in grey (mean of R, G, B), 0..255
    return np.stack([image.mean(-1) for image in load_sample_images().images])


def photo_patches(n: int, seed: int = 0, block: int = 4) -> Tensor:
    """``n`` patches of scikit-learn's two bundled photographs, as digits-like images.

    Each patch of ``8 block x 8 block`` pixels (at a random place in a random one of the
    two photographs, in grey) is averaged over ``block x block`` blocks down to 8 x 8
    and rounded to the 17 grey levels: int64 ``(n, 64)``.
    """
    where = "digits.photo_patches"
    n, block = check_int(n, "n", where), check_int(block, "block", where)
    g = torch.Generator().manual_seed(check_int(seed, "seed", where, smallest=0))
    photos = torch.from_numpy(_photos())  # (2, H, W), float64
    side = 8 * block
    which = torch.randint(len(photos), (n,), generator=g)
    rows = torch.randint(photos.shape[1] - side + 1, (n,), generator=g)
    cols = torch.randint(photos.shape[2] - side + 1, (n,), generator=g)
    patches = torch.stack(
        [photos[i, r : r + side, c : c + side] for i, r, c in zip(which, rows, cols, strict=True)]
    )
    small = patches.reshape(n, 8, block, 8, block).mean((2, 4))
    return (small / 255 * (LEVELS - 1)).round().long().reshape(n, DIM)
