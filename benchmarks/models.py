"""Matched flow models from nfcourse, zuko and nflows, behind one small interface.

Every builder takes the same sizes (``dim`` coordinates, ``layers`` transforms, ``hidden``
widths of the conditioner's hidden layers, ReLU everywhere) and returns a :class:`Model`:
the ``torch.nn.Module`` that holds the parameters plus three functions, so that the
benchmarks never need to know a library's conventions:

- ``log_prob(x)``: log-density of data ``x`` of shape ``(N, D)``, shape ``(N,)``;
- ``sample(n)``: ``n`` samples ``(n, D)``, without gradients;
- ``rsample_and_log_prob(n)``: reparameterized samples and their log-densities
  (for variational inference), or ``None`` where the library offers no such path.

The directions differ between libraries: an nfcourse layer's ``forward`` is the
generative direction; an nflows ``Transform``'s ``forward`` is the normalizing one (data to
noise); zuko's ``flow()`` returns a distribution with ``log_prob``/``rsample``. The wrappers
hide that. The models themselves are the libraries' own; only the small coupling
conditioner given to nflows (a plain ReLU MLP, as nflows' own ``MLP``) is ours.

Which libraries can be used is decided at run time (:func:`available_libraries`): zuko and
nflows are optional (``pip install -e '.[bench]'``), and a missing one is reported, not fatal.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor, nn

import nfcourse

LIBRARIES = ("nfcourse", "zuko", "nflows")

# nfcourse builders of a spline flow, tried in this order once one exists.
_NFCOURSE_SPLINE_NAMES = ("nsf", "spline_flow", "neural_spline_flow")

# nfcourse's RealNVP with two couplings per layer (see _nfcourse); only the tabular section
# asks for it.
PAIRED_REALNVP = "RealNVP-2x"


def paired_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    """The hidden widths of :data:`PAIRED_REALNVP`: 3/4 of ``hidden``, so that twice the
    couplings hold about as many parameters as a MAF of ``hidden``."""
    return tuple(max(1, round(0.75 * h)) for h in hidden)


@dataclass
class Model:
    """A flow of some library with a library-independent interface (module docstring)."""

    library: str
    name: str
    kind: str  # "coupling", "autoregressive" or "planar"
    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]
    rsample_and_log_prob: Callable[[int], tuple[Tensor, Tensor]] | None = None

    @property
    def label(self) -> str:
        """``"library name"``, e.g. ``"zuko MAF"``."""
        return f"{self.library} {self.name}"

    @property
    def parameters(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------
# which libraries are there


def library_version(library: str) -> str | None:
    """The installed version of ``library``, or ``None`` if it cannot be imported."""
    try:
        module = importlib.import_module(library)
    except ImportError:
        return None
    version = getattr(module, "__version__", None)
    if version is None:  # nflows keeps it in a submodule
        try:
            version = importlib.import_module(f"{library}.version").__version__
        except (ImportError, AttributeError):
            version = "unknown"
    return str(version)


def available_libraries(requested: Sequence[str] = LIBRARIES) -> tuple[list[str], dict[str, str]]:
    """The requested libraries that import, and why each other library is left out.

    Returns ``(usable, left_out)`` with ``left_out`` mapping a library name to a reason
    ("not installed" or "not selected").
    """
    unknown = [lib for lib in requested if lib not in LIBRARIES]
    if unknown:
        raise ValueError(f"unknown libraries {unknown}; choose among {', '.join(LIBRARIES)}.")
    usable, left_out = [], {}
    for lib in LIBRARIES:
        if lib not in requested:
            left_out[lib] = "not selected (--libraries)"
        elif library_version(lib) is None:
            left_out[lib] = "not installed (pip install -e '.[bench]')"
        else:
            usable.append(lib)
    return usable, left_out


# ----------------------------------------------------------------------------
# nfcourse


def _nfcourse_model(name: str, kind: str, flow: nfcourse.Flow) -> Model:
    def log_prob(x: Tensor) -> Tensor:
        # what nfcourse.fit does: skip Flow.log_prob's per-call NaN check of the input
        z, ladj = flow.transform.inverse(x)
        return flow.base.log_prob(z) + ladj

    return Model(
        "nfcourse",
        name,
        kind,
        flow,
        log_prob,
        lambda n: flow.sample(n),
        lambda n: flow.sample_and_log_prob(n),
    )


def nfcourse_spline_builder() -> Callable[..., nfcourse.Flow] | None:
    """nfcourse's spline-flow builder once it exists (``None`` until then)."""
    for name in _NFCOURSE_SPLINE_NAMES:
        builder = getattr(nfcourse, name, None)
        if callable(builder):
            return builder
    return None


def _nfcourse(name: str, dim: int, layers: int, hidden: tuple[int, ...]) -> Model:
    if name == "RealNVP":
        return _nfcourse_model(name, "coupling", nfcourse.realnvp(dim, layers, hidden))
    if name == PAIRED_REALNVP:
        # Every coordinate moved as often as in a MAF of ``layers`` layers (a coupling moves
        # half of them): twice the couplings, narrower. The tabular section's control.
        narrow = paired_hidden(hidden)
        return _nfcourse_model(name, "coupling", nfcourse.realnvp(dim, 2 * layers, narrow))
    if name == "MAF":
        return _nfcourse_model(name, "autoregressive", nfcourse.maf(dim, layers, hidden))
    if name == "NSF":
        builder = nfcourse_spline_builder()
        if builder is None:
            raise LookupError("nfcourse has no spline flow yet")
        return _nfcourse_model(name, "autoregressive", builder(dim, layers=layers, hidden=hidden))
    raise KeyError(name)


def planar(layers: int, dim: int = 2) -> Model:
    """nfcourse's planar flow with ``layers`` layers (variational inference only)."""
    return _nfcourse_model(f"planar K={layers}", "planar", nfcourse.planar_flow(dim, layers))


# ----------------------------------------------------------------------------
# zuko


def _zuko(name: str, dim: int, layers: int, hidden: tuple[int, ...]) -> Model:
    import zuko

    classes = {
        "RealNVP": (zuko.flows.RealNVP, "coupling"),
        "MAF": (zuko.flows.MAF, "autoregressive"),
        "NSF": (zuko.flows.NSF, "autoregressive"),
    }
    cls, kind = classes[name]
    flow = cls(features=dim, transforms=layers, hidden_features=hidden)
    return Model(
        "zuko",
        name,
        kind,
        flow,
        lambda x: flow().log_prob(x),
        lambda n: flow().sample((n,)),
        lambda n: flow().rsample_and_log_prob((n,)),
    )


# ----------------------------------------------------------------------------
# nflows


class _Conditioner(nn.Module):
    """An MLP ``(N, in) -> (N, out)`` with nflows' ``net(inputs, context)`` signature.

    ReLU between layers and PyTorch's default initialization (as nflows' own ``MLP`` and
    zuko's), so that it matches the other libraries' 2 x 64 networks layer for layer.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int]):
        super().__init__()
        sizes = (in_features, *hidden, out_features)
        layers: list[nn.Module] = []
        for n_in, n_out in pairwise(sizes):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, inputs: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(inputs)


def _nflows(name: str, dim: int, layers: int, hidden: tuple[int, ...]) -> Model:
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import AffineCouplingTransform
    from nflows.transforms.permutations import ReversePermutation

    stack: list[nn.Module] = []
    if name == "RealNVP":
        kind = "coupling"
        for i in range(layers):
            mask = (torch.arange(dim) + i) % 2  # alternating: 1 = transformed
            stack.append(
                AffineCouplingTransform(mask, lambda n_in, n_out: _Conditioner(n_in, n_out, hidden))
            )
    elif name == "MAF":
        kind = "autoregressive"
        if len(set(hidden)) != 1:
            raise ValueError(f"nflows' MADE has equal hidden widths; got {hidden}")
        for i in range(layers):
            if i > 0:
                stack.append(ReversePermutation(dim))
            # MADE without residual blocks: input layer + (len(hidden) - 1) blocks = hidden
            stack.append(
                MaskedAffineAutoregressiveTransform(
                    features=dim,
                    hidden_features=hidden[0],
                    num_blocks=len(hidden) - 1,
                    use_residual_blocks=False,
                )
            )
    else:
        raise KeyError(name)
    flow = Flow(CompositeTransform(stack), StandardNormal([dim]))

    def rsample_and_log_prob(n: int) -> tuple[Tensor, Tensor]:
        return flow.sample_and_log_prob(n)

    return Model(
        "nflows",
        name,
        kind,
        flow,
        flow.log_prob,
        lambda n: flow.sample(n),
        rsample_and_log_prob,
    )


# ----------------------------------------------------------------------------
# the registry

_BUILDERS = {"nfcourse": _nfcourse, "zuko": _zuko, "nflows": _nflows}

# What each library offers for density estimation (name, kind). nfcourse's NSF
# appears once nfcourse has a spline flow (see nfcourse_spline_builder).
CATALOG: dict[str, list[tuple[str, str]]] = {
    "nfcourse": [
        ("RealNVP", "coupling"),
        ("MAF", "autoregressive"),
        ("NSF", "autoregressive"),
        (PAIRED_REALNVP, "coupling"),
    ],
    "zuko": [("RealNVP", "coupling"), ("MAF", "autoregressive"), ("NSF", "autoregressive")],
    "nflows": [("RealNVP", "coupling"), ("MAF", "autoregressive")],
}


def exists(library: str, name: str) -> bool:
    """Whether ``library`` offers the model ``name`` (nfcourse's NSF only once it exists)."""
    if library == "nfcourse" and name == "NSF":
        return nfcourse_spline_builder() is not None
    return any(n == name for n, _ in CATALOG.get(library, []))


def build(
    library: str,
    name: str,
    dim: int,
    layers: int = 5,
    hidden: Sequence[int] = (64, 64),
    seed: int | None = None,
) -> Model:
    """Build ``library``'s ``name`` flow (``"RealNVP"``, ``"MAF"``, ``"NSF"``) of matched size.

    With ``seed``, the parameters are initialized under ``torch.manual_seed(seed)`` (the
    libraries draw their initial weights from torch's global generator).
    """
    if library not in _BUILDERS:
        raise KeyError(f"unknown library {library!r}; choose among {', '.join(LIBRARIES)}")
    if seed is not None:
        torch.manual_seed(seed)
    return _BUILDERS[library](name, dim, layers, tuple(hidden))


def parse_model(spec: str) -> tuple[str, str]:
    """``"zuko:MAF"`` -> ``("zuko", "MAF")``."""
    library, sep, name = spec.partition(":")
    if not sep or library not in LIBRARIES:
        raise ValueError(f"model spec must be 'library:Name' (e.g. 'zuko:MAF'), got {spec!r}")
    return library, name
