"""Layers for images: masked convolutional coupling, squeeze, actnorm, 1x1 convolution, subsets.

Every layer here keeps the package's interface: it takes flattened images, points of shape
``(*, D)`` with ``D = C * H * W`` in channel-major order (``torch.reshape`` of a
``(C, H, W)`` image), and is built with ``shape=(C, H, W)``; it reshapes inside. So a
:class:`~nfcourse.flow.Flow` of image layers, the autograd oracle of
:mod:`nfcourse.testing` and the layer registry's battery work on them unchanged.

- :class:`ImageCoupling`: RealNVP's masked affine coupling with a small convolutional
  conditioner, under a checkerboard mask (:func:`checkerboard_mask`) or a channel mask
  (:func:`channel_mask`).
- :class:`Squeeze`: space to depth, ``(C, H, W) -> (4C, H/2, W/2)`` in the normalizing
  direction; a permutation of the coordinates.
- :class:`ActNorm`: a per-channel affine map whose first data batch sets it.
- :class:`Conv1x1`: an invertible 1x1 convolution, its matrix in LU form.
- :class:`Subset`: another layer applied to some coordinates, the identity on the rest:
  the multi-scale architecture factors out half of the coordinates after a squeeze and
  lets later layers act on the other half only.
- :func:`dequantized_to_logit`: the preprocessing of pixels as two layers with log-dets.

References: Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using Real NVP",
arXiv:1605.08803 (masks, squeeze, multi-scale, logit preprocessing); Kingma and Dhariwal
(2018), "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039
(actnorm, 1x1 convolution in LU form, zero-initialized last convolution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validate import _is_int, as_index_tensor, check_dim, check_int, check_number
from .base import Compose, Layer, check_layer
from .elementwise import (
    SCALE_BOUND,
    Affine,
    Sigmoid,
    affine_forward,
    affine_inverse,
    check_scale_bound,
    soft_clamp,
)


def check_shape(shape: object, where: str) -> tuple[int, int, int]:
    """An image shape ``(C, H, W)``: three positive ints."""
    if not (isinstance(shape, (tuple, list, torch.Size)) and len(shape) == 3) or not all(
        _is_int(s) and s > 0 for s in shape
    ):
        raise ValueError(
            f"{where}: `shape` must be (C, H, W), three positive ints (channels, height, "
            f"width), got {shape!r}. An 8x8 grey image is shape=(1, 8, 8)."
        )
    return tuple(int(s) for s in shape)


class ImageLayer(Layer):
    """Base of the image layers: flattened points ``(*, C*H*W)`` in, images inside.

    ``_images(t)`` turns ``(*, D)`` into ``(B, C, H, W)`` (``B`` the product of the
    batch dimensions) and ``_points(images, like)`` turns the result back into the
    shape of ``like``.
    """

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = check_shape(shape, type(self).__name__)
        self.dim = math.prod(self.shape)

    def _images(self, t: Tensor) -> Tensor:
        return t.reshape(-1, *self.shape)

    def _points(self, images: Tensor, like: Tensor) -> Tensor:
        return images.reshape(like.shape)

    def _per_sample(self, ladj: Tensor, like: Tensor) -> Tensor:
        return ladj.reshape(like.shape[:-1])


# --- masks and the coupling ----------------------------------------------------------------


def _check_parity(parity: object, where: str) -> int:
    if parity not in (0, 1) or isinstance(parity, bool):
        raise ValueError(f"{where}: `parity` must be 0 or 1, got {parity!r}.")
    return int(parity)


def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> Tensor:
    """A checkerboard over the pixels, the same in every channel: shape ``(C, H, W)``, bool.

    ``mask[c, h, w] = True`` (passes through and conditions) iff ``(h + w) % 2 == parity``;
    ``parity=1`` gives the complement. Needs at least two pixels.
    """
    where = "checkerboard_mask"
    c, h, w = check_shape(shape, where)
    parity = _check_parity(parity, where)
    if h * w < 2:
        raise ValueError(
            f"{where}: a checkerboard needs at least two pixels, got shape {(c, h, w)}. "
            "For a 1x1 image with several channels use channel_mask."
        )
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return ((rows + cols) % 2 == parity).expand(c, h, w).clone()


def channel_mask(shape: Sequence[int], parity: int = 0) -> Tensor:
    """The first ``C // 2`` channels pass through (``parity=1``: the complement).

    Returns a bool tensor of shape ``(C, H, W)``.

    Needs at least two channels (squeeze first: it turns pixels into channels).
    """
    where = "channel_mask"
    c, h, w = check_shape(shape, where)
    parity = _check_parity(parity, where)
    if c < 2:
        raise ValueError(
            f"{where}: a channel mask needs at least two channels, got shape {(c, h, w)}. "
            "Squeeze the image first (Squeeze turns 2x2 blocks of pixels into channels), or "
            "use checkerboard_mask."
        )
    keep = (torch.arange(c) < c // 2) != bool(parity)
    return keep[:, None, None].expand(c, h, w).clone()


def conv_net(channels: int, out_channels: int, hidden: int) -> nn.Sequential:
    """The conditioner: 3x3 conv, ReLU, 1x1 conv, ReLU, 3x3 conv (zero-initialized).

    The last convolution starts at zero, so a new coupling layer is the identity
    (Glow's choice); the hidden layers keep PyTorch's random start and get gradients
    through the last layer from the first step on. Padding keeps the image size.
    """
    last = nn.Conv2d(hidden, out_channels, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(),
        last,
    )


class ImageCoupling(ImageLayer):
    """RealNVP's masked affine coupling on images, with a convolutional conditioner.

    With a bool mask ``m`` of shape ``(C, H, W)`` (True = passes through and
    conditions), a network reads the masked image ``m * t`` and outputs a shift ``q``
    and a raw log-scale, soft-clamped to ``r = B tanh(raw / B)``, both zero where
    ``m`` is True. As in :class:`~nfcourse.layers.coupling.AffineCoupling` the map is
    read in the normalizing direction (the RealNVP paper's form)::

        inverse:  z = x * exp(r(m x)) + q(m x),     ladj = sum r,
        forward:  x = (z - q(m z)) * exp(-r(m z)),  ladj = -sum r,

    with the sums over the ``(1 - m)`` entries (``r = 0`` elsewhere). The entries
    under the mask pass unchanged, so ``m x = m z`` and both directions see the same
    network output: the Jacobian is triangular (in an order that puts the masked
    entries first) with diagonal ``exp(r)``. Uses the package's affine map and clamp
    (:mod:`nfcourse.layers.elementwise`).

    Args:
        shape: ``(C, H, W)``.
        mask: bool ``(C, H, W)``, from :func:`checkerboard_mask` or :func:`channel_mask`.
        hidden: channels of the conditioner's hidden layers (:func:`conv_net`).
        scale_bound: the bound ``B`` of the log-scale.

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), "Density estimation using Real
    NVP", arXiv:1605.08803, section 3.4.
    """

    def __init__(
        self,
        shape: Sequence[int],
        mask: Tensor,
        hidden: int = 32,
        scale_bound: float = SCALE_BOUND,
    ):
        super().__init__(shape)
        where = "ImageCoupling"
        hint = "Build one with checkerboard_mask(shape) or channel_mask(shape)."
        mask = as_index_tensor(mask, "mask", where, hint)
        if tuple(mask.shape) != self.shape:
            raise ValueError(
                f"{where}: `mask` must have the image's shape {self.shape}, got "
                f"{tuple(mask.shape)}. {hint}"
            )
        mask = mask.bool()
        if mask.all() or not mask.any():
            raise ValueError(
                f"{where}: `mask` must hold both True (passes through) and False "
                f"(transformed) entries, got all {bool(mask.all())}. {hint}"
            )
        self.register_buffer("mask", mask)
        self.scale_bound = check_scale_bound(scale_bound, where)
        hidden = check_int(hidden, "hidden", where, meaning="channels of the conditioner")
        self.net = conv_net(self.shape[0], 2 * self.shape[0], hidden)

    def _shift_log_scale(self, passing: Tensor) -> tuple[Tensor, Tensor]:
        """``(q, r)`` as flat ``(B, D)``, zero on the entries that pass through."""
        free = ~self.mask
        q, raw = self.net(self._images(passing) * self.mask).chunk(2, dim=1)
        r = soft_clamp(raw, self.scale_bound)
        return (q * free).flatten(1), (r * free).flatten(1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        flat = z.reshape(-1, self.dim)
        x, ladj = affine_inverse(flat, *self._shift_log_scale(flat))
        return x.reshape(z.shape), self._per_sample(ladj, z)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        flat = x.reshape(-1, self.dim)
        z, ladj = affine_forward(flat, *self._shift_log_scale(flat))
        return z.reshape(x.shape), self._per_sample(ladj, x)


# --- squeeze -----------------------------------------------------------------------------------


class Squeeze(ImageLayer):
    """Space to depth: each ``f x f`` block of pixels becomes ``f^2`` channels.

    Normalizing direction (``inverse``): an image ``(C, H, W)`` becomes
    ``(f^2 C, H/f, W/f)`` with ``z[c f^2 + i f + j, h, w] = x[c, h f + i, w f + j]``
    (``torch.nn.functional.pixel_unshuffle``); ``forward`` puts the pixels back
    (``pixel_shuffle``). On flattened points it is a fixed permutation of the
    coordinates, so ``ladj = 0``. After it, channel masks and 1x1 convolutions mix
    pixels that were neighbours. ``shape`` is the data side ``(C, H, W)``;
    ``out_shape`` the other side.

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), arXiv:1605.08803, section 3.6.
    """

    def __init__(self, shape: Sequence[int], factor: int = 2):
        super().__init__(shape)
        where = "Squeeze"
        self.factor = check_int(factor, "factor", where, meaning="the side of a block")
        c, h, w = self.shape
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"{where}: the height and width of `shape` must be multiples of factor = "
                f"{self.factor}, got shape {self.shape}. Pad or crop the images, or squeeze "
                "only an image with even sides."
            )
        self.out_shape = (c * self.factor**2, h // self.factor, w // self.factor)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        x = F.pixel_shuffle(z.reshape(-1, *self.out_shape), self.factor)
        return x.reshape(z.shape), z.new_zeros(z.shape[:-1])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        z = F.pixel_unshuffle(self._images(x), self.factor)
        return z.reshape(x.shape), x.new_zeros(x.shape[:-1])


# --- actnorm -----------------------------------------------------------------------------------


class ActNorm(ImageLayer):
    """A per-channel affine map, initialized from the first batch of data.

    ``x[c, h, w] = z[c, h, w] * exp(log_scale[c]) + shift[c]``, so the Jacobian is
    diagonal and every one of the ``H W`` pixels of channel ``c`` contributes
    ``log_scale[c]``::

        forward:  ladj =  H W sum_c log_scale[c],
        inverse:  z = (x - shift) * exp(-log_scale),  ladj = -H W sum_c log_scale[c].

    **Data-dependent initialization.** The first call of ``inverse`` (the
    normalizing direction, which training runs) on a layer not yet initialized sets
    ``shift[c]`` to the mean and ``log_scale[c]`` to the log standard deviation of
    channel ``c`` of that batch, over its points and pixels, so that the batch comes
    out with zero mean and unit variance per channel. It happens once: the buffer
    ``initialized`` then stays 1 (it is saved with the state dict), and from then on
    ``shift`` and ``log_scale`` are ordinary parameters that training moves. In a
    flow, the first normalizing pass initializes every actnorm in turn, each on what
    the layers before it make of the batch. Call :meth:`initialize` to choose the
    batch yourself. Before initialization the layer is the identity.

    Reference: Kingma and Dhariwal (2018), "Glow: Generative Flow with Invertible
    1x1 Convolutions", arXiv:1807.03039, section 3.1.
    """

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape)
        self.shift = nn.Parameter(torch.zeros(self.shape[0]))
        self.log_scale = nn.Parameter(torch.zeros(self.shape[0]))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``shift`` and ``log_scale`` so that ``inverse(x)`` has zero mean and unit
        variance per channel. ``x``: data of shape ``(*, D)``, at least two points."""
        x = self.check(x, "x")
        images = self._images(x).transpose(0, 1).flatten(1)  # (C, points * pixels)
        if images.shape[1] < 2:
            raise ValueError(
                "ActNorm.initialize: needs at least two values per channel to estimate a "
                f"standard deviation, got {images.shape[1]}. Pass a batch of several images."
            )
        self.shift.copy_(images.mean(1))
        self.log_scale.copy_(images.std(1).clamp_min(1e-6).log())
        self.initialized.fill_(1)

    def _per_coordinate(self) -> tuple[Tensor, Tensor]:
        pixels = self.shape[1] * self.shape[2]
        return (
            self.shift.repeat_interleave(pixels),
            self.log_scale.repeat_interleave(pixels),
        )

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        return affine_forward(z, *self._per_coordinate())

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        if not self.initialized:
            self.initialize(x)
        return affine_inverse(x, *self._per_coordinate())


# --- the 1x1 convolution -----------------------------------------------------------------------


class Conv1x1(ImageLayer):
    """An invertible 1x1 convolution: the same ``C x C`` matrix ``W`` mixes the channels
    of every pixel, ``x[:, h, w] = W z[:, h, w]``.

    ``W`` is kept in LU form, ``W = P L (U + diag(sign * exp(log_s)))``, with ``P`` a
    fixed permutation, ``L`` lower-triangular with ones on its diagonal, ``U``
    strictly upper-triangular and ``sign`` fixed (+-1). Then
    ``log|det W| = sum_c log_s[c]`` and, the matrix acting on each of the ``H W``
    pixels::

        forward:  ladj =  H W sum_c log_s[c],
        inverse:  z[:, h, w] = W^{-1} x[:, h, w],  ladj = -H W sum_c log_s[c],

    the inverse by two triangular solves. Starts at a random rotation (``det W = 1``,
    so ``ladj = 0``, but the channels are mixed from the start), drawn from torch's
    global random state and factored by ``torch.linalg.lu`` as in Glow.

    Reference: Kingma and Dhariwal (2018), "Glow: Generative Flow with Invertible
    1x1 Convolutions", arXiv:1807.03039, section 3.2.
    """

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape)
        c = self.shape[0]
        q, _ = torch.linalg.qr(torch.randn(c, c))
        p, lower, upper = torch.linalg.lu(q)
        diag = upper.diagonal()
        self.register_buffer("permutation", p)
        self.register_buffer("sign", diag.sign())
        self.lower = nn.Parameter(lower.tril(-1))
        self.upper = nn.Parameter(upper.triu(1))
        self.log_s = nn.Parameter(diag.abs().log())

    def _factors(self) -> tuple[Tensor, Tensor]:
        """``L`` (unit lower-triangular) and ``U + diag(sign exp(log_s))``."""
        eye = torch.eye(self.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower.tril(-1) + eye
        upper = self.upper.triu(1) + torch.diag(self.sign * self.log_s.exp())
        return lower, upper

    def weight(self) -> Tensor:
        """The matrix ``W = P L U``."""
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def _ladj(self, like: Tensor) -> Tensor:
        pixels = self.shape[1] * self.shape[2]
        return (pixels * self.log_s.sum()).expand(like.shape[:-1])

    def _columns(self, t: Tensor) -> Tensor:
        """``(*, D)`` -> ``(C, points * pixels)``: one column per pixel of every image."""
        return self._images(t).transpose(0, 1).reshape(self.shape[0], -1)

    def _uncolumns(self, columns: Tensor, like: Tensor) -> Tensor:
        c, h, w = self.shape
        return self._points(columns.reshape(c, -1, h, w).transpose(0, 1), like)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        lower, upper = self._factors()
        x = self.permutation @ (lower @ (upper @ self._columns(z)))
        return self._uncolumns(x, z), self._ladj(z)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        lower, upper = self._factors()
        y = torch.linalg.solve_triangular(
            lower, self.permutation.T @ self._columns(x), upper=False, unitriangular=True
        )
        z = torch.linalg.solve_triangular(upper, y, upper=True)
        return self._uncolumns(z, x), -self._ladj(x)


# --- subsets: the multi-scale architecture ------------------------------------------------------


class Subset(Layer):
    """A layer applied to some coordinates, the identity on the others.

    With ``index`` the coordinates ``I`` (of ``D``) and ``layer`` acting on ``|I|``
    coordinates: ``x_I = f(z_I)`` and ``x_J = z_J`` for the rest ``J``. The Jacobian
    is block diagonal, ``diag(J_f, identity)``, so ``ladj = ladj_f``.

    The multi-scale architecture of RealNVP is this: after a squeeze, half of the
    coordinates are *factored out* (they go straight to the base distribution) and
    the layers after it act on the other half only, at a coarser scale and half the
    cost. ``Subset(64, range(32), stage)`` is such a stage on the first half.

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), arXiv:1605.08803, section 3.6.
    """

    def __init__(self, dim: int, index, layer: nn.Module):
        super().__init__()
        where = "Subset"
        self.dim = check_dim(dim, where)
        hint = f"Pass the coordinates the layer acts on, e.g. index=range({self.dim // 2})."
        index = as_index_tensor(index, "index", where, hint)
        if (
            index.dim() != 1
            or index.numel() == 0
            or index.is_floating_point()
            or index.unique().numel() != index.numel()
            or index.min() < 0
            or index.max() >= self.dim
        ):
            raise ValueError(
                f"{where}: `index` must be a 1-D sequence of distinct ints in 0, ..., "
                f"{self.dim - 1}, got {index.tolist()}. {hint}"
            )
        self.layer = check_layer(layer, "Subset: `layer`")
        inner = getattr(layer, "dim", None)
        if inner is not None and inner != index.numel():
            raise ValueError(
                f"{where}: `layer` acts on {inner} coordinates but `index` selects "
                f"{index.numel()}. Build the layer for {index.numel()} coordinates."
            )
        self.register_buffer("index", index.long(), persistent=False)

    def _on_subset(self, t: Tensor, step) -> tuple[Tensor, Tensor]:
        part, ladj = step(t[..., self.index])
        out = t.clone()
        out[..., self.index] = part
        return out, ladj

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._on_subset(self.check(z), self.layer)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._on_subset(self.check(x, "x"), self.layer.inverse)


# --- preprocessing -----------------------------------------------------------------------------


def dequantized_to_logit(dim: int, levels: int = 17, alpha: float = 0.05) -> Compose:
    """The preprocessing of dequantized pixels as layers, in generative order.

    A pixel with ``levels`` grey levels ``k = 0, ..., levels - 1``, dequantized to
    ``v = k + u`` (``u`` uniform in ``[0, 1)``), lies in ``(0, levels)``. The
    normalizing direction maps it to the real line in two steps:

        s = alpha + (1 - 2 alpha) v / levels   (into [alpha, 1 - alpha]),
        x = logit(s) = log s - log(1 - s),

    with the log-determinant, summed over the ``D`` coordinates,

        ladj = D log((1 - 2 alpha) / levels) - sum_i [log s_i + log(1 - s_i)].

    The first term holds the scaling by ``1 / levels``; leaving it out changes every
    density by ``levels^D``, i.e. ``log2(levels)`` bits per dimension. The margin
    ``alpha`` keeps the logit away from the infinities at 0 and 1 (RealNVP uses 0.05).
    In generative order the layers are a :class:`~nfcourse.layers.elementwise.Sigmoid`
    and a fixed :class:`~nfcourse.layers.elementwise.Affine` ``v = a s + b`` with
    ``a = levels / (1 - 2 alpha)`` and ``b = -alpha a`` (its parameters frozen).

    Reference: Dinh, Sohl-Dickstein, Bengio (2017), arXiv:1605.08803, section 4.1.
    """
    where = "dequantized_to_logit"
    dim = check_dim(dim, where)
    levels = check_int(levels, "levels", where, smallest=2, meaning="the number of grey levels")
    alpha = check_number(alpha, "alpha", where, positive=True, example="0.05")
    if alpha >= 0.5:
        raise ValueError(f"{where}: `alpha` must lie in (0, 0.5), got {alpha}. Pass alpha=0.05.")
    scale = Affine(dim)
    a = levels / (1 - 2 * alpha)
    with torch.no_grad():
        scale.log_scale.fill_(math.log(a))
        scale.shift.fill_(-alpha * a)
    scale.requires_grad_(False)
    return Compose(Sigmoid(), scale)
