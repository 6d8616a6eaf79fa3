"""Beyond two dimensions: held-out NLL on Gaussian mixtures in D = 4, 8 and 16.

The quality section's data sets are all 2-D, and the library's defaults were chosen
there. This section trains the same models by the same loop and budget
(:func:`benchmarks.quality.train`: steps, batch, learning rate, layers, hidden widths) on
fixed random Gaussian mixtures (:mod:`nfcourse.data.mixtures`), whose log-density is
exact and whose entropy is a Monte Carlo estimate from 10^6 points with a standard error
of at most a few thousandths of a nat. Every model of a seed sees the same training and
test points, so differences between models are paired by seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from nfcourse.data.mixtures import ENTROPY_SAMPLES, Mixture

from . import models, quality

MODELS = ("nfcourse:RealNVP", "nfcourse:MAF", "nfcourse:NSF", "zuko:MAF", "zuko:NSF")


@dataclass
class TabularConfig:
    """The dimensions, models and seeds; the budget is the quality section's by default."""

    dims: tuple[int, ...] = (4, 8, 16)
    models: tuple[str, ...] = MODELS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    components: int = 8
    mixture_seed: int = 0  # the mixture is fixed; the seeds vary data, initialization, batches
    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    layers: int = 5
    hidden: tuple[int, ...] = (64, 64)
    n_train: int = 20_000
    n_test: int = 20_000
    data_seed: int = 1000  # training set: data_seed + seed; test set: test_seed + seed
    test_seed: int = 2000
    entropy_samples: int = ENTROPY_SAMPLES  # Monte Carlo sample of the entropy


def splits(cfg: TabularConfig) -> Iterator[tuple]:
    """``(dim, mixture, entropy, entropy_se, seed, train_x, test_x)`` for every D and seed."""
    for dim in cfg.dims:
        mix = Mixture(dim, cfg.components, cfg.mixture_seed)
        entropy, se = mix.entropy_estimate(cfg.entropy_samples)
        for seed in cfg.seeds:
            train_x = mix.sample(cfg.n_train, seed=cfg.data_seed + seed)
            test_x = mix.sample(cfg.n_test, seed=cfg.test_seed + seed)
            yield dim, mix, entropy, se, seed, train_x, test_x


def run(cfg: TabularConfig, libraries: list[str], log=print, build=None) -> list[dict]:
    """Train every (D, model, seed) of ``cfg`` whose library is in ``libraries``.

    One row per run, as the quality section's (``dataset`` is the mixture's name) plus
    ``dim`` and ``entropy_se``. ``build(lib, name, dim, layers, hidden, seed)`` makes the
    models (default :func:`benchmarks.models.build`).
    """
    build = build or models.build
    specs = [models.parse_model(s) for s in cfg.models]
    specs = [(lib, name) for lib, name in specs if lib in libraries and models.exists(lib, name)]
    rows = []
    for dim, mix, entropy, se, seed, train_x, test_x in splits(cfg):
        for lib, name in specs:
            model = build(lib, name, dim, cfg.layers, cfg.hidden, seed=seed)
            result, nll = quality.fit_and_score(model, train_x, test_x, cfg, seed)
            steps_done = result["diverged_at"] or cfg.steps
            row = {
                "dataset": mix.name,
                "dim": dim,
                "library": lib,
                "model": name,
                "label": model.label,
                "seed": seed,
                "nll": nll,
                "entropy": entropy,
                "entropy_se": se,
                "gap": nll - entropy,
                "params": model.parameters,
                "seconds": result["seconds"],
                "ms_per_step": 1e3 * result["seconds"] / steps_done,
                "diverged_at": result["diverged_at"],
            }
            rows.append(row)
            log(
                f"tabular D={dim:<3d} {model.label:18s} seed {seed}: NLL {nll:.3f} "
                f"(gap {row['gap']:.3f}), {row['ms_per_step']:.1f} ms/step"
            )
    return rows


def paired(
    rows: list[dict], label: str, reference: str
) -> dict[int, tuple[float, float, int, int]]:
    """Per D: ``(mean, standard error, wins, n)`` of ``gap(label) - gap(reference)`` by seed.

    ``wins`` counts the seeds where ``label`` is no worse than ``reference``.
    """
    gaps: dict[tuple, float] = {(r["dim"], r["seed"], r["label"]): r["gap"] for r in rows}
    out = {}
    for dim in sorted({r["dim"] for r in rows}):
        diffs = [
            gaps[dim, s, label] - gaps[dim, s, reference]
            for s in sorted({r["seed"] for r in rows if r["dim"] == dim})
            if (dim, s, label) in gaps and (dim, s, reference) in gaps
        ]
        diffs = [d for d in diffs if d == d]  # diverged runs have NaN gaps
        if not diffs:
            continue
        n = len(diffs)
        mean = sum(diffs) / n
        var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else float("nan")
        out[dim] = (mean, (var / n) ** 0.5, sum(d <= 0 for d in diffs), n)
    return out
