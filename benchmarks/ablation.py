"""What made the difference: nfcourse's RealNVP and MAF with one default reverted at a time.

Three defaults of :mod:`nfcourse.layers.coupling` and :mod:`nfcourse.layers.autoregressive`
decide how well a flow trains at a fixed budget, and each was chosen by this comparison:

- the conditioner keeps PyTorch's default (random) initialization; reverting it zeroes
  the network's last layer, so that every new layer is exactly the identity;
- the network's output is read in the normalizing direction, ``z = x exp(r) + q``
  (:func:`nfcourse.layers.elementwise.read_affine`, the RealNVP paper's form); reverting it
  reads it as ``t, s`` of the generative ``x = z exp(s) + t``, as exercise 4.1 does;
- the log-scale is soft-clamped at 2; reverting it clamps at 3.

Every variant is trained by :func:`benchmarks.quality.train` with the quality section's
budget, data and seeds, so a variant's row differs from the defaults' row by that one
choice only ("defaults" rows are taken from the quality section when it ran).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

import nfcourse
from nfcourse import AffineCoupling, alternating_mask, half_mask
from nfcourse.layers.elementwise import affine_forward, affine_inverse, soft_clamp

from . import models, quality

# name -> what is reverted; "defaults" reverts nothing
VARIANTS = {
    "defaults": {},
    "zero-initialized last layer": {"zero_init": True},
    "network read as t, s of x = z exp(s) + t": {"plain_shift": True},
    "log-scale bound 3": {"bound": 3.0},
    "all three (the defaults before)": {"zero_init": True, "plain_shift": True, "bound": 3.0},
}


@dataclass
class AblationConfig:
    """The variants and datasets; the budget is the quality section's."""

    variants: tuple[str, ...] = tuple(VARIANTS)
    models: tuple[str, ...] = ("RealNVP", "MAF")
    datasets: tuple[str, ...] = ("moons", "eight_gaussians", "checkerboard")


class _PlainShift:
    """The network's output read as ``t, s`` of ``x = z exp(s) + t``: mixed into a layer."""

    def _params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        h_t, h_s = h.chunk(2, dim=-1)
        return h_t, soft_clamp(h_s, self.scale_bound)

    def _transform(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_forward(z, *self._params(h))

    def _untransform(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_inverse(x, *self._params(h))


class _PlainShiftCoupling(_PlainShift, AffineCoupling):
    pass


class _PlainShiftMAF(_PlainShift, nfcourse.MAF):
    pass


def build(name: str, variant: str, layers: int, hidden: tuple[int, ...], seed: int):
    """nfcourse's ``name`` flow (2-D) with ``variant``'s defaults reverted, as a Model."""
    revert = VARIANTS[variant]
    torch.manual_seed(seed)
    if not revert.get("plain_shift"):
        model = models.build("nfcourse", name, 2, layers, hidden)
        flow = model.module
    else:  # the builders' structure with the other layer class
        if name == "RealNVP":
            stack = [_PlainShiftCoupling(alternating_mask(2, i % 2), hidden) for i in range(layers)]
        else:
            stack = [_PlainShiftMAF(2, hidden)]
            for _ in range(layers - 1):
                stack += [nfcourse.Reverse(2), _PlainShiftMAF(2, hidden)]
        flow = nfcourse.Flow(stack)
        model = models._nfcourse_model(name, "", flow)
    for layer in flow.transform.layers:
        if isinstance(layer, (AffineCoupling, nfcourse.MAF)):
            if "bound" in revert:
                layer.scale_bound = revert["bound"]
            if revert.get("zero_init"):
                net = layer.net if isinstance(layer, AffineCoupling) else layer.made.net
                last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
    return model


def run(cfg: AblationConfig, qcfg: quality.QualityConfig, quality_rows=(), log=print) -> list:
    """Train every (dataset, seed, model, variant); rows as the quality section's plus ``variant``.

    The "defaults" rows are copied from ``quality_rows`` (nfcourse rows of the same dataset,
    seed and model) when there, else trained.
    """
    known = {
        (r["dataset"], r["seed"], r["model"]): r for r in quality_rows if r["library"] == "nfcourse"
    }
    rows = []
    for ds_name, entropy, seed, train_x, test_x in quality.splits(qcfg, cfg.datasets):
        for name in cfg.models:
            for variant in cfg.variants:
                if variant == "defaults" and (ds_name, seed, name) in known:
                    rows.append(dict(known[ds_name, seed, name], variant=variant))
                    continue
                model = build(name, variant, qcfg.layers, tuple(qcfg.hidden), seed)
                result, nll = quality.fit_and_score(model, train_x, test_x, qcfg, seed)
                rows.append(
                    {
                        "dataset": ds_name,
                        "model": name,
                        "variant": variant,
                        "seed": seed,
                        "nll": nll,
                        "gap": nll - entropy if entropy is not None else None,
                        "diverged_at": result["diverged_at"],
                    }
                )
                log(
                    f"ablation {ds_name:16s} {name:8s} {variant:32s} seed {seed}: "
                    f"gap {rows[-1]['gap']:.3f}"
                )
    return rows


# ----------------------------------------------------------------------------
# beyond two dimensions: what makes nfcourse's RealNVP and MAF trail zuko's MAF there

# name -> (model, what changes); "defaults" changes nothing. One change at a time.
TABULAR_VARIANTS = {
    "defaults": ("both", {}),
    "alternating and half masks": ("RealNVP", {"masks": "alternating+half"}),
    "random masks": ("RealNVP", {"masks": "random"}),
    "half masks, random permutations between": ("RealNVP", {"masks": "permute"}),
    "LU-linear layer between couplings": ("RealNVP", {"lu": True}),
    "log-scale bound 3": ("both", {"bound": 3.0}),
    "zuko's log-scale clamp": ("both", {"rational_clamp": True}),
    "random orders between MAF layers": ("MAF", {"orders": "random"}),
    # not a default but the structure: each coordinate transformed as often as in a MAF
    "twice the couplings": ("RealNVP", {"couplings": 2}),
    "twice the couplings, hidden (48, 48)": ("RealNVP", {"couplings": 2, "hidden": (48, 48)}),
}
_MIX_SEED = 12345  # the random masks, permutations and orders (fixed, as a builder's)


def _rational_clamp(raw: Tensor) -> Tensor:
    """zuko's soft clamp of a log-scale: ``raw / (1 + |raw| / 6.9)``, in (-6.9, 6.9)."""
    return raw / (1 + raw.abs() / 6.907755278982137)


class _RationalClamp:
    """The network's raw log-scale clamped as zuko does: mixed into a layer."""

    def _params(self, h: Tensor) -> tuple[Tensor, Tensor]:
        q, raw = h.chunk(2, dim=-1)
        return q, _rational_clamp(raw)

    def _transform(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_inverse(z, *self._params(h))

    def _untransform(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        return affine_forward(x, *self._params(h))


class _RationalCoupling(_RationalClamp, AffineCoupling):
    pass


class _RationalMAF(_RationalClamp, nfcourse.MAF):
    pass


def build_tabular(name: str, variant: str, dim: int, layers: int, hidden, seed: int):
    """nfcourse's ``name`` flow on ``dim`` coordinates with ``variant``'s one change."""
    change = TABULAR_VARIANTS[variant][1]
    torch.manual_seed(seed)
    if not change:
        return models.build("nfcourse", name, dim, layers, tuple(hidden))
    if "couplings" in change:  # each coordinate transformed about as often as in a MAF
        hidden = change.get("hidden", hidden)
        return models.build("nfcourse", name, dim, change["couplings"] * layers, tuple(hidden))
    g = torch.Generator().manual_seed(_MIX_SEED)
    stack: list[nn.Module] = []
    if name == "RealNVP":
        coupling = _RationalCoupling if change.get("rational_clamp") else AffineCoupling
        for i in range(layers):
            masks = change.get("masks")
            if masks == "alternating+half":
                make = alternating_mask if (i // 2) % 2 == 0 else half_mask
                mask = make(dim, i % 2)
            elif masks == "random":  # zuko's randmask: a new random split every layer
                mask = torch.randperm(dim, generator=g) % 2 == i % 2
            elif masks == "permute":
                mask = half_mask(dim, 0)
                if i > 0:
                    stack.append(nfcourse.Permutation(torch.randperm(dim, generator=g)))
            else:
                mask = alternating_mask(dim, i % 2)
                if i > 0 and change.get("lu"):
                    stack.append(nfcourse.LULinear(dim))
            stack.append(coupling(mask, tuple(hidden)))
    else:
        layer = _RationalMAF if change.get("rational_clamp") else nfcourse.MAF
        for i in range(layers):
            if change.get("orders") == "random":
                stack.append(layer(dim, tuple(hidden), order=torch.randperm(dim, generator=g) + 1))
                continue
            if i > 0:
                stack.append(nfcourse.Reverse(dim))
            stack.append(layer(dim, tuple(hidden)))
    for module in stack:
        if "bound" in change and isinstance(module, (AffineCoupling, nfcourse.MAF)):
            module.scale_bound = change["bound"]
    return models._nfcourse_model(name, "", nfcourse.Flow(stack))


def run_tabular(cfg, variants=tuple(TABULAR_VARIANTS), log=print) -> list[dict]:
    """Train every variant (for the models it applies to) on the mixtures of ``cfg``
    (a :class:`benchmarks.tabular.TabularConfig`, its nfcourse models); rows as
    :func:`benchmarks.tabular.run`'s plus ``variant``."""
    from . import tabular

    rows = []
    for variant in variants:
        applies = TABULAR_VARIANTS[variant][0]
        names = [
            n
            for lib, n in map(models.parse_model, cfg.models)
            if lib == "nfcourse" and n in ("RealNVP", "MAF") and applies in ("both", n)
        ]

        def build(lib, name, dim, layers, hidden, seed=None, variant=variant):
            return build_tabular(name, variant, dim, layers, hidden, seed)

        sub = replace(cfg, models=tuple(f"nfcourse:{n}" for n in names))
        for row in tabular.run(sub, ["nfcourse"], log, build=build):
            rows.append({**row, "variant": variant})
    return rows


def copy_zuko_maf(dim: int, layers: int = 5, hidden=(64, 64), seed: int = 0):
    """A zuko MAF and nfcourse's MAF with zuko's log-scale clamp holding the same weights.

    Shows that the two differ in the clamp alone (not in masks, hidden degrees, orders or
    how the network's output is read): given the same weights they give the same
    log-densities. zuko's transform ``k`` reads the data first and alternates its order;
    nfcourse's flow lists its layers in the generative direction with a ``Reverse``
    between them, so zuko's ``k`` is nfcourse's MAF ``layers - 1 - k``, and where zuko's
    order is reversed the first layer's columns and the last layer's rows are reversed
    too. zuko interleaves ``(shift, log-scale)`` per coordinate where nfcourse puts a
    shift block before a log-scale block. Returns ``(zuko model, nfcourse model)``
    (:class:`benchmarks.models.Model`).
    """
    zuko_model = models.build("zuko", "MAF", dim, layers, hidden, seed=seed)
    ours = build_tabular("MAF", "zuko's log-scale clamp", dim, layers, hidden, seed=seed)
    mafs = [m for m in ours.module.modules() if isinstance(m, nfcourse.MAF)]
    with torch.no_grad():
        for k, transform in enumerate(zuko_model.module.transform.transforms):
            theirs = [m for m in transform.hyper if isinstance(m, nn.Linear)]
            mine = [m for m in mafs[layers - 1 - k].modules() if isinstance(m, nn.Linear)]
            flip = k % 2 == 1
            first = theirs[0].weight.flip(1) if flip else theirs[0].weight
            mine[0].weight.copy_(first)
            mine[0].bias.copy_(theirs[0].bias)
            for a, b in zip(theirs[1:-1], mine[1:-1], strict=True):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
            weight, bias = theirs[-1].weight, theirs[-1].bias
            parts = [weight[0::2], weight[1::2], bias[0::2], bias[1::2]]
            if flip:
                parts = [p.flip(0) for p in parts]
            mine[-1].weight.copy_(torch.cat(parts[:2]))
            mine[-1].bias.copy_(torch.cat(parts[2:]))
    return zuko_model, ours
