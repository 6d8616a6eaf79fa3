"""The one interface every layer of the course follows.

Direction convention (stated once, used everywhere)
----------------------------------------------------
A flow maps base noise ``z`` to data ``x``::

    x = f_K o ... o f_1 (z)

A layer's ``forward`` is this *generative* direction (``z -> x``), as in
``torch.distributions.TransformedDistribution``; its ``inverse`` is the
*normalizing* direction (``x -> z``). Both return ``(output, ladj)`` where
``ladj = log|det d output / d input|`` of the map just applied, one value per
sample: for an input of shape ``(*, D)`` the output has shape ``(*, D)`` and
``ladj`` has shape ``(*)``. Hence ``inverse(x)[1] == -forward(z)[1]`` when
``x = forward(z)[0]``.

The density of ``x`` follows from the change of variables formula,

    log p_X(x) = log p_Z(f^{-1}(x)) + log|det d f^{-1}(x) / dx|,

which is ``base.log_prob(z) + ladj`` with ``z, ladj = layer.inverse(x)``.

Conditional layers
------------------
A *conditional* layer (``conditional = True``, :mod:`.conditional`) also reads a
context ``c`` of shape ``(*, C)``: ``forward(z, context)`` and ``inverse(x,
context)``. The context is an input of its networks only: it is never
transformed, and ``ladj`` is the log-determinant with respect to ``z`` (or
``x``) alone. :class:`Compose` and :class:`Inverse` pass a context on to the
conditional layers only; every other layer keeps ``forward(z)`` and ``inverse(x)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..validate import as_model_dtype, check_points


def check_layer(layer: object, where: str) -> nn.Module:
    """A layer object: a built ``nn.Module`` with ``forward`` and ``inverse``."""
    if isinstance(layer, type):
        raise TypeError(
            f"{where} is the class {layer.__name__}, not a layer: build one first, e.g. "
            f"{layer.__name__}(2) instead of {layer.__name__} (the arguments depend on the layer)."
        )
    if not isinstance(layer, nn.Module):
        raise TypeError(
            f"{where} must be a layer (a torch.nn.Module with forward and inverse), got "
            f"{type(layer).__name__}. A function is not a layer: write a Layer subclass."
        )
    if not callable(getattr(layer, "inverse", None)):
        raise TypeError(
            f"{where} ({type(layer).__name__}) has no `inverse` method; every layer of a flow "
            "needs forward(z) -> (x, ladj) and inverse(x) -> (z, ladj)."
        )
    return layer


class Layer(nn.Module):
    """Base class of an invertible layer.

    Subclasses implement ``forward(z) -> (x, ladj)`` (generative direction) and
    ``inverse(x) -> (z, ladj)`` (normalizing direction) on inputs of shape
    ``(*, D)``; ``ladj`` has shape ``(*)``. Layers never store results on
    ``self``: every call returns what it computed.

    Attributes:
        dim: the number of coordinates ``D`` the layer acts on, or ``None``
            for elementwise layers without parameters (any ``D``).
        conditional: whether ``forward`` and ``inverse`` take a ``context``
            (see the module docstring); ``False`` for ordinary layers.
        context_dim: the context's size ``C`` of a conditional layer, else ``None``.
    """

    dim: int | None = None
    conditional: bool = False
    context_dim: int | None = None

    def check(self, t: Tensor, name: str = "z") -> Tensor:
        """Validate an input of shape ``(*, D)`` and return it in the layer's dtype.

        See :func:`nfcourse.validate.check_points` and :func:`~nfcourse.validate.as_model_dtype`:
        float64 points into a float32 layer are converted, as in every layer and flow.
        """
        where = type(self).__name__
        return as_model_dtype(check_points(t, self.dim, name, where), self, name, where)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class Compose(Layer):
    """A sequence of layers applied one after the other.

    ``forward`` applies ``f_1, ..., f_K`` in order; ``inverse`` applies the
    inverses in reverse order. The ladj of a composition is the sum of the
    layers' ladjs (the chain rule: determinants multiply).
    """

    def __init__(self, *layers: nn.Module):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            check_layer(layer, f"Compose: layer {i}")
        self.layers = nn.ModuleList(layers)
        dims = {layer.dim for layer in layers if getattr(layer, "dim", None) is not None}
        if len(dims) > 1:
            raise ValueError(
                f"Compose: the layers act on different numbers of coordinates {sorted(dims)}; "
                "build every layer with the same dim."
            )
        self.dim = dims.pop() if dims else None
        contexts = {layer.context_dim for layer in layers if is_conditional(layer)}
        if len(contexts) > 1:
            raise ValueError(
                f"Compose: the conditional layers read contexts of different sizes "
                f"{sorted(contexts)}; build every conditional layer with the same context_dim."
            )
        self.conditional = bool(contexts)
        self.context_dim = contexts.pop() if contexts else None

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = self.check(z)
        ladj = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            z, l = call(layer, z, context)
            ladj = ladj + l
        return z, ladj

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = self.check(x, "x")
        ladj = x.new_zeros(x.shape[:-1])
        for layer in reversed(self.layers):
            x, l = call(layer.inverse, x, context, layer)
            ladj = ladj + l
        return x, ladj

    def stages(self, z: Tensor, context: Tensor | None = None) -> list[Tensor]:
        """The points after every layer: ``[z, f_1(z), f_2(f_1(z)), ..., x]``."""
        z = self.check(z)
        out = [z]
        for layer in self.layers:
            z, _ = call(layer, z, context)
            out.append(z)
        return out


def is_conditional(layer: object) -> bool:
    """Whether a layer reads a context (its ``conditional`` attribute is true)."""
    return bool(getattr(layer, "conditional", False))


def call(method, t: Tensor, context: Tensor | None, layer: object = None):
    """``method(t, context)`` for a conditional layer, ``method(t)`` for any other.

    ``layer`` is the layer the method belongs to (``method`` itself when omitted).
    """
    if is_conditional(method if layer is None else layer):
        return method(t, context)
    return method(t)


class Inverse(Layer):
    """The inverse of a layer: its ``forward`` is the wrapped layer's ``inverse``.

    ``Inverse(Inverse(f))`` behaves like ``f``. Used for example to make an IAF
    from a MAF and a logit from a sigmoid.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = check_layer(layer, "Inverse: `layer`")
        self.dim = getattr(layer, "dim", None)
        self.conditional = is_conditional(layer)
        self.context_dim = getattr(layer, "context_dim", None) if self.conditional else None

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return call(self.layer.inverse, self.check(z), context, self.layer)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return call(self.layer, self.check(x, "x"), context)
