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

from . import common, models, quality

MODELS = ("nfcourse:RealNVP", "nfcourse:MAF", "nfcourse:NSF", "zuko:MAF", "zuko:NSF")


@dataclass
class TabularConfig(quality.Budget):
    """The dimensions, models and seeds; the budget is the quality section's by default."""

    dims: tuple[int, ...] = (4, 8, 16)
    models: tuple[str, ...] = MODELS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    components: int = 8
    mixture_seed: int = 0  # the mixture is fixed; the seeds vary data, initialization, batches
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
    wanted = quality.specs(cfg.models, libraries)
    rows = []
    for dim, mix, entropy, se, seed, train_x, test_x in splits(cfg):
        for lib, name in wanted:
            model = build(lib, name, dim, cfg.layers, cfg.hidden, seed=seed)
            row = quality.fit_row(
                model, lib, name, seed, train_x, test_x, cfg, entropy, dataset=mix.name, dim=dim
            )
            row["entropy_se"] = se
            rows.append(row)
            log(
                f"tabular D={dim:<3d} {model.label:18s} seed {seed}: NLL {row['nll']:.3f} "
                f"(gap {row['gap']:.3f}), {row['ms_per_step']:.1f} ms/step"
            )
    return rows


def paired(
    rows: list[dict], label: str, reference: str
) -> dict[int, tuple[float, float, int, int]]:
    """Per D: ``(mean, standard error, wins, n)`` of ``gap(label) - gap(reference)`` by seed.

    ``wins`` counts the seeds where ``label`` is no worse than ``reference``.
    """
    return common.paired(rows, label, reference, group="dim")
