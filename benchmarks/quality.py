"""Quality at equal budget: held-out NLL of matched flows on the 2-D toy datasets.

Every model, whatever its library, goes through the same :func:`train` loop: Adam with a
cosine learning-rate decay to 0, minibatches drawn with replacement from a fixed training
set by a seeded generator, and the held-out NLL measured once at the end on fresh samples
drawn with another seed. So the differences between rows come from the models alone.

For the datasets with a known density the table also gives the gap to the entropy (the
best NLL any model can reach, nats), i.e. the KL divergence ``KL(p || q)`` left to learn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from nfcourse import datasets

from . import common, models

# Every dataset of the package: those with a known entropy, then pinwheel and two spirals.
DATASETS = tuple(datasets.names())
MODELS = (
    "nfcourse:RealNVP",
    "nfcourse:MAF",
    "nfcourse:NSF",
    "zuko:MAF",
    "zuko:NSF",
    "nflows:RealNVP",
    "nflows:MAF",
)


@dataclass
class Budget:
    """The training budget and data sizes that the quality and tabular sections share."""

    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    layers: int = 5
    hidden: tuple[int, ...] = (64, 64)
    n_train: int = 20_000
    n_test: int = 20_000
    data_seed: int = 1000  # training set: data_seed + seed; test set: test_seed + seed
    test_seed: int = 2000


@dataclass
class QualityConfig(Budget):
    """The data sets, models and seeds; every run trains with the :class:`Budget`."""

    datasets: tuple[str, ...] = DATASETS
    models: tuple[str, ...] = MODELS
    seeds: tuple[int, ...] = (0, 1, 2)


def train(model: models.Model, data: torch.Tensor, cfg: Budget, seed: int) -> dict:
    """Fit ``model`` by maximum likelihood; the same loop for every library.

    Returns ``{"seconds": training wall time, "diverged_at": step or None}``.
    """
    params = [p for p in model.module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    model.module.train()
    start = time.perf_counter()
    for step in range(cfg.steps):
        common.cosine_lr(optimizer, cfg.lr, step / cfg.steps)
        batch = data[torch.randint(n, (cfg.batch_size,), generator=gen)]
        loss = -model.log_prob(batch).mean()
        if not math.isfinite(loss.item()):
            return {"seconds": time.perf_counter() - start, "diverged_at": step + 1}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"seconds": time.perf_counter() - start, "diverged_at": None}


@torch.no_grad()
def held_out_nll(model: models.Model, data: torch.Tensor, chunk: int = 4096) -> float:
    """Mean NLL (nats per point) of ``data``, in eval mode, summed in float64."""
    model.module.eval()
    total = sum(-model.log_prob(x).double().sum().item() for x in data.split(chunk))
    return total / data.shape[0]


def splits(cfg: QualityConfig, names: Sequence[str]) -> Iterator[tuple]:
    """``(dataset, entropy, seed, train_x, test_x)`` for every dataset in ``names`` and seed."""
    for ds_name in names:
        ds = datasets.get(ds_name)
        entropy = ds.entropy()
        for seed in cfg.seeds:
            train_x = ds.sample(cfg.n_train, seed=cfg.data_seed + seed)
            test_x = ds.sample(cfg.n_test, seed=cfg.test_seed + seed)
            yield ds_name, entropy, seed, train_x, test_x


def fit_and_score(
    model: models.Model, train_x: torch.Tensor, test_x: torch.Tensor, cfg: Budget, seed: int
) -> tuple[dict, float]:
    """:func:`train`, then the held-out NLL (NaN if training diverged)."""
    result = train(model, train_x, cfg, seed)
    nll = held_out_nll(model, test_x) if result["diverged_at"] is None else math.nan
    return result, nll


def fit_row(
    model: models.Model,
    lib: str,
    name: str,
    seed: int,
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    cfg: Budget,
    entropy: float | None,
    **extra,
) -> dict:
    """:func:`fit_and_score` as one row of the results: ``dataset`` and the other keys of
    ``extra`` first, then library, model, label, seed, nll, entropy, gap (None where the
    entropy is unknown), params, seconds, ms_per_step, diverged_at."""
    result, nll = fit_and_score(model, train_x, test_x, cfg, seed)
    steps_done = result["diverged_at"] or cfg.steps
    return {
        **extra,
        "library": lib,
        "model": name,
        "label": model.label,
        "seed": seed,
        "nll": nll,
        "entropy": entropy,
        "gap": nll - entropy if entropy is not None else None,
        "params": model.parameters,
        "seconds": result["seconds"],
        "ms_per_step": 1e3 * result["seconds"] / steps_done,
        "diverged_at": result["diverged_at"],
    }


def specs(cfg_models: Sequence[str], libraries: Sequence[str]) -> list[tuple[str, str]]:
    """``(library, name)`` of every ``library:Name`` in ``cfg_models`` that can be built
    with the ``libraries`` in use."""
    parsed = [models.parse_model(s) for s in cfg_models]
    return [(lib, name) for lib, name in parsed if lib in libraries and models.exists(lib, name)]


def run(cfg: QualityConfig, libraries: list[str], log=print) -> list[dict]:
    """Train every (dataset, model, seed) of ``cfg`` whose library is in ``libraries``.

    One row per run: dataset, library, model, seed, nll, entropy, gap, params,
    seconds, ms_per_step, diverged_at.
    """
    wanted = specs(cfg.models, libraries)
    rows = []
    for ds_name, entropy, seed, train_x, test_x in splits(cfg, cfg.datasets):
        for lib, name in wanted:
            model = models.build(lib, name, 2, cfg.layers, cfg.hidden, seed=seed)
            row = fit_row(model, lib, name, seed, train_x, test_x, cfg, entropy, dataset=ds_name)
            rows.append(row)
            log(
                f"quality {ds_name:16s} {model.label:18s} seed {seed}: NLL {row['nll']:.3f}"
                + (f" (gap {row['gap']:.3f})" if row["gap"] is not None else "")
                + f", {row['ms_per_step']:.1f} ms/step"
            )
    return rows
