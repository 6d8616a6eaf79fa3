"""Flow matching against the course's discrete flows at the same training CPU time.

On the 2-D data sets with an exact entropy where the affine flows stay far from it
(checkerboard, rings), every model trains for the same number of *seconds of CPU time*
(``time.process_time`` of the process, one torch thread), not the same number of steps: a
flow-matching step is a cheap regression, an NSF step a spline flow's full likelihood, so a
budget in steps would favour one or the other. CPU time rather than wall-clock, because the
machine the benchmark runs on may be shared: another process on the same cores stretches the
wall-clock of a run but not (much) its CPU time. Each run:

- draws its training and held-out sets with seeds of its own (the same for every model);
- trains with Adam, batches drawn with replacement by a seeded generator, and a cosine
  learning-rate decay over the *time* budget (``lr * (1 + cos(pi * elapsed / budget)) / 2``),
  stopping at the first step that starts after the budget; each model at its own peak
  learning rate ``lr``, the one of :data:`LR_GRID` its tuning runs picked (below);
- reports the held-out NLL (the continuous flow's by the exact divergence integrated with
  dopri5 at ``rtol = atol = 1e-5``), its gap to the entropy with the standard error of the
  held-out mean, the number of steps taken, and the median CPU time to draw and to score
  ``n_time`` points.

Two flow-matching recipes: "flow matching" (the recipe of :class:`ContinuousConfig`: the
velocity field's widths and Fourier time features, its batch size and learning rate, an
exponential moving average of the weights, the density of the times, the pairing of noise
and data) and "flow matching, plain" (the first recipe of the course: a (64, 64, 64) field
on ``(x, t)``, batches of 256, uniform times, independent pairs, no average), which shows
what the recipe buys.

Learning rates are not guessed: ``--tune`` trains every model at every learning rate of
:data:`LR_GRID` on a seed of its own (:data:`TUNING_SEED`, not one of the tables') at one
budget, and :func:`picked` takes, per model, the one with the smallest gap averaged over the
data sets. The best learning rate can fall as the budget grows (flow matching's: 0.03 at
20 s, 0.01 at 80 s), so the tuning is run at the main table's budget and at the sweep's
shortest, and a run uses :func:`learning_rates` of its budget. :data:`LEARNING_RATES` are
the picks (a test checks them against the saved tuning runs, and that the saved tables used
them). At 20 s the grid also has 0.1, never the best there and ruinous for the discrete
flows; at 80 s it is left out (in a first attempt it left a flow-matching field too steep
for the solver to sample, which stopped the run before failed solves were recorded as such).

Run it (one torch thread, as the rest of the benchmarks), tuning first::

    python -m benchmarks.continuous --tune --lrs 0.003 0.01 0.03 0.1 --jobs 2
    python -m benchmarks.continuous --tune --lrs 0.003 0.01 0.03 --budget-s 80 \
        --models "flow matching" NSF --jobs 2
    python -m benchmarks.continuous --jobs 2              # the budget of ContinuousConfig
    python -m benchmarks.continuous --sweep --jobs 2      # the same runs at longer budgets
    python -m benchmarks.continuous --budget-s 5 --seeds 0 --output /tmp/c.json

and its :func:`markdown` renders the results as a section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

import torch

import nfcourse as nf
from nfcourse import continuous

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Flow matching against discrete flows at the same training time"
PLAIN = "flow matching, plain"


@dataclass
class ContinuousConfig:
    """The shared budget of every run, and the flow-matching recipe.

    The recipe's batch of 1024 and ``time_power = 3`` come from pilot runs at 80 s on
    checkerboard (lr 1e-2; not saved): batches of 256 to 4096, fields 96 or 128 wide or 4
    layers deep, time powers 1 to 6, random Fourier features of x, no moving average. A
    larger batch than 256 and a time power of 2 or 3 helped; nothing else was clearly better
    (1024 with power 2 or 3: 0.085-0.090 on seeds 1 and 2; on seed 0 settings that differ
    little ranged from 0.04 to 0.09, so one seed's differences below ~0.05 are noise). Wider
    fields take fewer steps in the budget.
    """

    datasets: tuple[str, ...] = ("checkerboard", "rings")
    models: tuple[str, ...] = ("flow matching", PLAIN, "NSF", "RealNVP")
    seeds: tuple[int, ...] = (0, 1, 2)
    budget_s: float = 20.0  # training CPU time (time.process_time) of every run
    batch_size: int = 256  # discrete flows, and the plain flow matching
    lr: dict | None = None  # per model; None: learning_rates(budget_s)
    layers: int = 5  # discrete flows
    hidden: tuple[int, ...] = (64, 64)  # discrete flows' conditioners
    field_hidden: tuple[int, ...] = (64, 64, 64)  # the plain recipe's velocity field
    fm_hidden: tuple[int, ...] = (64, 64, 64)  # the recipe's velocity field
    time_features: int = 8  # the recipe's Fourier features of t
    fm_batch_size: int = 1024  # the recipe's batch
    ema: float | None = 0.999  # the recipe's moving average of the weights
    pairing: str = "independent"  # the recipe's pairing of noise and data
    time_power: float = 3.0  # the recipe's density of t (1: uniform)
    n_train: int = 20_000
    n_test: int = 5_000
    n_time: int = 2_000  # points drawn or scored in the timings
    rtol: float = 1e-5
    atol: float = 1e-5
    data_seed: int = 1000
    test_seed: int = 2000


# The peak learning rates the tuning runs picked (``--tune``), per budget tuned (s of CPU time)
LEARNING_RATES = {
    20.0: {"flow matching": 3e-2, PLAIN: 3e-2, "NSF": 1e-2, "RealNVP": 3e-3},
    80.0: {"flow matching": 1e-2, "NSF": 1e-2},
}


def learning_rates(budget_s: float) -> dict[str, float]:
    """Each model's learning rate for a budget: its pick at the largest budget it was tuned
    at that is not above ``budget_s`` (at the smallest when all are above)."""
    tuned = sorted(LEARNING_RATES)
    out = dict(LEARNING_RATES[tuned[0]])
    for budget in tuned:
        if budget <= budget_s:
            out.update(LEARNING_RATES[budget])
    return out


def recipe(name: str, cfg: ContinuousConfig) -> dict:
    """The flow-matching settings of model ``name``."""
    if name == PLAIN:
        return dict(hidden=cfg.field_hidden, time_features=0, batch_size=cfg.batch_size,
                    ema=None, pairing="independent", time_power=1.0)  # fmt: skip
    return dict(hidden=cfg.fm_hidden, time_features=cfg.time_features,
                batch_size=cfg.fm_batch_size, ema=cfg.ema, pairing=cfg.pairing,
                time_power=cfg.time_power)  # fmt: skip


def build(name: str, cfg: ContinuousConfig) -> torch.nn.Module:
    if name.startswith("flow matching"):
        r = recipe(name, cfg)
        field = continuous.VelocityField(2, r["hidden"], time_features=r["time_features"])
        return continuous.ContinuousFlow(2, field=field, rtol=cfg.rtol, atol=cfg.atol)
    if name == "NSF":
        return nf.nsf(2, cfg.layers, cfg.hidden)
    if name == "RealNVP":
        return nf.realnvp(2, cfg.layers, cfg.hidden)
    raise KeyError(f"unknown model {name!r}; known: {', '.join(learning_rates(cfg.budget_s))}")


def train(
    model: torch.nn.Module, name: str, data: torch.Tensor, cfg: ContinuousConfig, seed: int
) -> dict:
    """Train for ``cfg.budget_s`` seconds of CPU time; the steps taken and the time used."""
    lr = (cfg.lr or learning_rates(cfg.budget_s))[name]
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    fm = recipe(name, cfg) if name.startswith("flow matching") else None
    batch_size = fm["batch_size"] if fm else cfg.batch_size
    average = continuous._Average(params, fm["ema"]) if fm and fm["ema"] else None
    model.train()
    steps, start, wall = 0, time.process_time(), time.perf_counter()

    def result(diverged: bool) -> dict:
        return {"steps": steps, "lr": lr, "seconds": time.process_time() - start,
                "wall_s": time.perf_counter() - wall, "diverged": diverged}  # fmt: skip

    while (elapsed := time.process_time() - start) < cfg.budget_s:
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * elapsed / cfg.budget_s))
        x1 = data[torch.randint(n, (batch_size,), generator=gen)]
        if fm:
            x0, t = continuous._draw(x1, gen, fm["pairing"], fm["time_power"])
            loss = continuous.flow_matching_loss(model.field, x1, x0, t)
        else:
            loss = -model.log_prob(x1).mean()
        if not math.isfinite(loss.item()):
            return result(True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update()
        steps += 1
    if average is not None:
        average.copy_to_params()
    return result(False)


def cpu_median(fn, repeats: int = 3) -> float:
    """The median CPU time (``time.process_time``) of ``fn()`` over ``repeats`` calls, after
    one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


@torch.no_grad()
def score(model: torch.nn.Module, test: torch.Tensor, chunk: int = 5000) -> torch.Tensor:
    model.eval()
    return torch.cat([-model.log_prob(x).double() for x in test.split(chunk)])


def run(cfg: ContinuousConfig, log=print) -> list[dict]:
    rows = []
    for ds_name in cfg.datasets:
        data = nf.datasets.get(ds_name)
        entropy = data.entropy()
        for seed in cfg.seeds:
            train_x = data.sample(cfg.n_train, seed=cfg.data_seed + seed)
            test_x = data.sample(cfg.n_test, seed=cfg.test_seed + seed)
            for name in cfg.models:
                torch.manual_seed(seed)
                model = build(name, cfg)
                result = train(model, name, train_x, cfg, seed)
                try:
                    nll = score(model, test_x)
                    few = test_x[: cfg.n_time]
                    with torch.no_grad():
                        sample_s = cpu_median(lambda m=model: m.sample(cfg.n_time))
                        score_s = cpu_median(lambda m=model, x=few: m.log_prob(x))
                except continuous.StepUnderflowError:  # a field the solver cannot follow
                    nll = torch.full((2,), math.nan, dtype=torch.float64)
                    sample_s = score_s = math.nan
                    result["diverged"] = True
                row = {
                    "dataset": ds_name,
                    "model": name,
                    "seed": seed,
                    "entropy": entropy,
                    "nll": nll.mean().item(),
                    "gap": nll.mean().item() - entropy,
                    "se": nll.std().item() / math.sqrt(len(nll)),
                    "lr": result["lr"],
                    "steps": result["steps"],
                    "train_s": result["seconds"],
                    "train_wall_s": result["wall_s"],
                    "diverged": result["diverged"],
                    "sample_s": sample_s,
                    "score_s": score_s,
                    "params": sum(p.numel() for p in model.parameters()),
                }
                rows.append(row)
                log(
                    f"continuous {ds_name:12s} {name:13s} seed {seed}: gap {row['gap']:.3f} "
                    f"+- {row['se']:.3f}, {row['steps']} steps, sample {sample_s:.2f} s, "
                    f"score {score_s:.2f} s"
                )
    return rows


# --- the gap as the budget grows ------------------------------------------------------------

SWEEP_BUDGETS = (80.0, 240.0)  # seconds of training CPU time (the main table has 20 s)
SWEEP_MODELS = ("flow matching", "NSF")


def sweep_jobs(
    cfg: ContinuousConfig, budgets: tuple[float, ...] = SWEEP_BUDGETS
) -> list[ContinuousConfig]:
    """One config per (budget, data set, model) of the sweep, the longest first: the runs of
    :func:`sweep`, for :func:`run` one at a time or in several processes."""
    jobs = [
        replace(cfg, budget_s=float(b), datasets=(ds,), models=(m,))
        for b in budgets
        for ds in cfg.datasets
        for m in cfg.models
    ]
    return sorted(jobs, key=lambda c: -c.budget_s)


def sweep(
    cfg: ContinuousConfig, budgets: tuple[float, ...] = SWEEP_BUDGETS, jobs: int = 1
) -> list[dict]:
    """:func:`run` at each training budget in ``budgets``; every row gets its ``budget_s``.

    The same seeds, data and recipes at every budget, so a column of the table differs from
    the next by the training time alone.
    """
    parts = sweep_jobs(cfg, budgets)
    rows = [
        {**row, "budget_s": part.budget_s}
        for part, part_rows in zip(parts, _map(parts, jobs), strict=True)
        for row in part_rows
    ]
    return sorted(
        rows,
        key=lambda r: (r["dataset"], cfg.models.index(r["model"]), r["budget_s"], r["seed"]),
    )


def _map(parts: list[ContinuousConfig], jobs: int) -> list[list[dict]]:
    """``[run(c) for c in parts]``, in up to ``jobs`` processes of one torch thread each."""
    if jobs <= 1 or len(parts) <= 1:
        return [run(c, log=_log) for c in parts]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(parts)), mp_context=context) as pool:
        return list(pool.map(_run_one, parts))


def sweep_markdown(section: dict) -> list[str]:
    """The sweep's part of the section: gap per model and budget (mean over the seeds run
    at that budget), and at which budgets the best flow-matching model is no worse than the
    best discrete flow, by the rule of :func:`verdicts` at each budget."""
    rows = section["rows"]
    budgets = sorted({r["budget_s"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "### The gap as the training budget grows",
        "",
        "The same runs at longer budgets (seconds of CPU time; seeds "
        + ", ".join(map(str, seeds))
        + f"; made by `{section['meta']['command']}` on {section['meta']['date']}, "
        f"{section['meta']['machine']}"
        + (f"; {section['meta']['note']}" if section["meta"].get("note") else "")
        + "). Gap to the entropy in nats, mean over seeds, "
        "and in brackets the training steps (median) and the number of seeds where more "
        "than one:",
        "",
        "| data set | model | " + " | ".join(f"{b:g} s" for b in budgets) + " |",
        "|---|---|" + "---:|" * len(budgets),
    ]
    for ds_name in dict.fromkeys(r["dataset"] for r in rows):
        for name in dict.fromkeys(r["model"] for r in rows):
            row = []
            for b in budgets:
                runs = [r for r in rows if (r["dataset"], r["model"], r["budget_s"]) ==
                        (ds_name, name, b)]  # fmt: skip
                if not runs:
                    row.append("—")
                    continue
                gap = statistics.fmean(r["gap"] for r in runs)
                steps = statistics.median(r["steps"] for r in runs)
                seeds_here = f", {len(runs)} seeds" if len(runs) > 1 else ""
                row.append(f"{gap:.3f} ({steps:.0f}{seeds_here})")
            if any(c != "—" for c in row):
                lines.append(f"| {ds_name} | {name} | " + " | ".join(row) + " |")
    lines.append("")
    by_budget = {b: _verdicts_at(rows, b) for b in budgets}
    for ds_name in dict.fromkeys(r["dataset"] for r in rows):
        ahead, behind = [], []
        for b in budgets:
            if (v := by_budget[b].get(ds_name)) is not None:
                text = f"{b:g} s ({v['fm'] / v['discrete']:.1f}x)"
                (ahead if v["met"] else behind).append(text)
        if behind or ahead:
            lines.append(
                f"- {ds_name}: the best flow-matching model against the best discrete flow, "
                "as a ratio of gaps (no worse: a difference within two standard errors over "
                f"seeds, as above): behind at {', '.join(behind) or 'no budget'}; no worse at "
                f"{', '.join(ahead) or 'no budget measured'}."
            )
    return lines + [""]


# --- the learning rates ---------------------------------------------------------------------

LR_GRID = (3e-3, 1e-2, 3e-2, 1e-1)
TUNING_SEED = 9  # a seed of its own: the tables' seeds do not choose their learning rates


def tuning_jobs(
    cfg: ContinuousConfig, grid: tuple[float, ...] = LR_GRID, seed: int = TUNING_SEED
) -> list[ContinuousConfig]:
    """One config per (model, data set, learning rate in ``grid``) at ``cfg.budget_s``, on
    the data and initialization of ``seed`` alone: the runs of :func:`tune`."""
    lrs = cfg.lr or learning_rates(cfg.budget_s)
    return [
        replace(cfg, datasets=(ds,), models=(m,), seeds=(seed,), lr={**lrs, m: float(lr)})
        for m in cfg.models
        for ds in cfg.datasets
        for lr in grid
    ]


def tune(cfg: ContinuousConfig, grid: tuple[float, ...] = LR_GRID, jobs: int = 1) -> list[dict]:
    """:func:`run` of every model at every learning rate of ``grid`` on the tuning seed;
    every row gets its ``lr``. :func:`picked` reads the learning rates off the rows."""
    parts = tuning_jobs(cfg, grid)
    return [
        {**row, "budget_s": part.budget_s}
        for part, part_rows in zip(parts, _map(parts, jobs), strict=True)
        for row in part_rows
    ]


def picked(rows: list[dict]) -> dict[float, dict[str, float]]:
    """Per budget and model, the learning rate of the tuning rows with the smallest gap
    averaged over the data sets; a run that diverged (or scored NaN) counts as an infinite
    gap."""

    def gap(row: dict) -> float:
        return math.inf if row["diverged"] or not math.isfinite(row["gap"]) else row["gap"]

    gaps: dict[float, dict[str, dict[float, list[float]]]] = {}
    for r in rows:
        by_lr = gaps.setdefault(r["budget_s"], {}).setdefault(r["model"], {})
        by_lr.setdefault(r["lr"], []).append(gap(r))
    return {
        budget: {
            m: min(by_lr, key=lambda lr: statistics.fmean(by_lr[lr])) for m, by_lr in ms.items()
        }
        for budget, ms in sorted(gaps.items())
    }


def tuning_markdown(sections: list[dict]) -> list[str]:
    """The tuning's part of the section: gap per budget, data set, model and learning rate
    (one section per budget tuned, each with its own ``meta``), the pick in bold."""
    rows = [r for section in sections for r in section["rows"]]
    lrs = sorted({r["lr"] for r in rows})
    best = picked(rows)
    made = "; ".join(
        f"{section['rows'][0]['budget_s']:g} s by `{section['meta']['command']}` on "
        f"{section['meta']['date']}"
        for section in sections
    )
    lines = [
        "### The learning rates",
        "",
        f"Each model's learning rate is the one of {', '.join(f'{lr:g}' for lr in lrs)} with "
        f"the smallest gap averaged over the data sets, on seed {rows[0]['seed']} (a seed the "
        f"tables do not use), at each budget tuned; a run uses its model's pick at the "
        f"largest budget tuned that is not above its own (made: {made}; "
        f"{sections[0]['meta']['machine']}). Gap to the entropy in nats, the pick in bold "
        "(failed: the training diverged, or the solver could not follow the field):",
        "",
        "| budget | data set | model | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
        "|---:|---|---|" + "---:|" * len(lrs),
    ]
    for budget, picks in best.items():
        for ds_name in dict.fromkeys(r["dataset"] for r in rows if r["budget_s"] == budget):
            for name, pick in picks.items():
                cells = []
                for lr in lrs:
                    key = (budget, ds_name, name, lr)
                    runs = [
                        r for r in rows if (r["budget_s"], r["dataset"], r["model"], r["lr"]) == key
                    ]
                    if not runs:
                        cells.append("—")
                        continue
                    r = runs[0]
                    failed = r["diverged"] or not math.isfinite(r["gap"])
                    text = "failed" if failed else f"{r['gap']:.3f}"
                    cells.append(f"**{text}**" if lr == pick else text)
                lines.append(f"| {budget:g} s | {ds_name} | {name} | " + " | ".join(cells) + " |")
    return lines + [""]


# --- the page -------------------------------------------------------------------------------


def _mean_se(values: list[float]) -> tuple[float, float]:
    """The mean over seeds and its standard error (0 for a single seed)."""
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean, se


def summary(results: dict) -> list[dict]:
    """One row per (data set, model): mean gap over seeds with its SE, steps and timings."""
    rows = results["rows"]
    out = []
    for ds_name in dict.fromkeys(r["dataset"] for r in rows):
        for name in dict.fromkeys(r["model"] for r in rows):
            runs = [r for r in rows if r["dataset"] == ds_name and r["model"] == name]
            if not runs:
                continue
            gap, se = _mean_se([r["gap"] for r in runs])
            out.append(
                {
                    "dataset": ds_name,
                    "model": name,
                    "gap": gap,
                    "se_seeds": se,
                    "se_test": statistics.fmean(r["se"] for r in runs),
                    "seeds": len(runs),
                    "steps": statistics.median(r["steps"] for r in runs),
                    "train_s": statistics.median(r["train_s"] for r in runs),
                    "sample_s": statistics.median(r["sample_s"] for r in runs),
                    "score_s": statistics.median(r["score_s"] for r in runs),
                    "params": runs[0]["params"],
                }
            )
    return out


def verdicts(results: dict) -> dict[str, dict]:
    """Per data set: the best flow-matching model's gap against the best discrete flow's,
    and whether the target (no worse) is met; "no worse" allows two standard errors (over
    seeds) of the difference."""
    table = summary(results)
    out = {}
    for ds_name in dict.fromkeys(r["dataset"] for r in table):
        rows = [r for r in table if r["dataset"] == ds_name]
        fms = [r for r in rows if r["model"].startswith("flow matching")]
        discrete = [r for r in rows if not r["model"].startswith("flow matching")]
        if not fms or not discrete:
            continue
        fm = min(fms, key=lambda r: r["gap"])
        best = min(discrete, key=lambda r: r["gap"])
        diff = fm["gap"] - best["gap"]
        se = math.hypot(fm["se_seeds"], best["se_seeds"])
        out[ds_name] = {
            "fm_model": fm["model"],
            "best": best["model"],
            "fm": fm["gap"],
            "discrete": best["gap"],
            "difference": diff,
            "se": se,
            "met": diff <= 2 * se,
        }
    return out


def _verdicts_at(rows: list[dict], budget_s: float) -> dict[str, dict]:
    """:func:`verdicts` of the sweep's rows at one budget."""
    return verdicts({"rows": [r for r in rows if r["budget_s"] == budget_s]})


def verdicts_by_budget(results: dict) -> dict[float, dict[str, dict]]:
    """:func:`verdicts` at every budget measured: the main table's, then the sweep's (at a
    budget of both, the main table's)."""
    out = {results["config"]["budget_s"]: verdicts(results)}
    rows = results.get("sweep", {}).get("rows", [])
    for budget in sorted({r["budget_s"] for r in rows}):
        out.setdefault(budget, _verdicts_at(rows, budget))
    return out


def markdown(results: dict, figures: Path | None = None) -> list[str]:
    """The section of ``docs/benchmarks.md`` (no figure: ``figures`` is not used)."""
    cfg = results["config"]
    fm = recipe("flow matching", ContinuousConfig(**_known(cfg)))
    if fm["pairing"] == "ot":
        pairs = "noise and data paired by minibatch optimal transport"
    else:
        pairs = "noise and data drawn independently"
    if fm["time_power"] == 1:
        times = "t uniform"
    else:
        times = f"t = 1 - (1 - u)^{fm['time_power']:g} with u uniform"
    if fm["ema"]:
        average = f"a moving average of the weights (decay {fm['ema']:g})"
    else:
        average = "no moving average"
    lines = [
        f"## {TITLE}",
        "",
        f"Every model trained for {cfg['budget_s']:g} s of CPU time (`time.process_time`, one "
        "torch thread; not wall-clock, because the machine was shared: "
        f"{results['meta'].get('shared', 'see the load below')}), "
        f"Adam with a cosine decay over the time budget, each model at the learning rate "
        f"its tuning picked ({_rates(cfg)}); "
        f"{len(cfg['seeds'])} seeds, each with its own {cfg['n_train']:,} training and "
        f"{cfg['n_test']:,} held-out points. Flow matching (the package's "
        f"`fit_flow_matching` recipe): a velocity field MLP {tuple(fm['hidden'])} with SiLU "
        f"and {fm['time_features']} Fourier features of t, batches of {fm['batch_size']}, "
        f"{times}, {pairs}, {average}. Flow matching, plain: the course's first recipe, a "
        f"field {tuple(cfg['field_hidden'])} on (x, t), batches of {cfg['batch_size']}, t "
        "uniform, independent pairs, no average. Both trained on the straight-line path and "
        "scored by the exact divergence integrated with dopri5 "
        f"(rtol = atol = {cfg['rtol']:g}). NSF and RealNVP: {cfg['layers']} layers, "
        f"conditioners {tuple(cfg['hidden'])}, batches of {cfg['batch_size']}, trained by "
        "maximum likelihood. Made by `python -m benchmarks.continuous` on "
        f"{results['meta']['date']} ({results['meta']['machine']}; load "
        f"{results['meta']['load']}); the sample and score times are CPU times too, still "
        "noisy on a shared machine.",
        "",
        "Gap to the entropy (held-out NLL - H(p), nats; mean over seeds +- its standard error "
        "over seeds; in brackets the standard error of one run's held-out mean):",
        "",
        "| data set | model | gap | steps | sample (s) | score (s) | parameters |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    n = cfg["n_time"]
    for r in summary(results):
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['gap']:.3f} +- {r['se_seeds']:.3f} "
            f"({r['se_test']:.3f}) | {r['steps']:.0f} | {r['sample_s']:.2f} | "
            f"{r['score_s']:.2f} | {r['params']:,} |"
        )
    lines += ["", f"Sample and score: median CPU seconds for {n:,} points.", ""]
    for ds_name, v in verdicts(results).items():
        word = "met" if v["met"] else "not met"
        lines.append(
            f"- {ds_name}: {v['fm_model']} {v['fm']:.3f} against {v['best']} {v['discrete']:.3f} "
            f"nats (difference {v['difference']:+.3f} +- {v['se']:.3f}): the target (no worse "
            f"than the best discrete flow) is {word}."
        )
    lines.append("")
    if results.get("sweep"):
        lines += sweep_markdown(results["sweep"])
    if results.get("tuning"):
        lines += tuning_markdown(results["tuning"])
    return lines


def _rates(cfg: dict) -> str:
    """The models' learning rates, as the page names them."""
    return ", ".join(f"{m} {cfg['lr'][m]:g}" for m in cfg["models"])


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_one(cfg: ContinuousConfig) -> list[dict]:
    torch.set_num_threads(1)
    return run(cfg, log=_log)


def run_parallel(cfg: ContinuousConfig, jobs: int = 1) -> list[dict]:
    """:func:`run`, the data sets in up to ``jobs`` processes at once; the rows in the
    order of :func:`run`."""
    parts = [replace(cfg, datasets=(name,)) for name in cfg.datasets]
    return [row for rows in _map(parts, jobs) for row in rows]


def _known(cfg: dict) -> dict:
    """The entries of a stored config that :class:`ContinuousConfig` knows (older files lack
    some: those keep their defaults)."""
    names = ContinuousConfig.__dataclass_fields__
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in names}


def _load() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.continuous", description=__doc__)
    p.add_argument("--budget-s", type=float)
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--datasets", nargs="+")
    p.add_argument("--models", nargs="+")
    p.add_argument(
        "--shared",
        default="no other work known",
        help="what else ran on the machine (written on the page)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="run the data sets in this many processes at once, each with one torch thread "
        "(the budget is CPU time, so runs side by side get the same budget)",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="instead: the gap as the budget grows (--budgets; models "
        f"{', '.join(SWEEP_MODELS)} and the main table's seeds unless --models, --seeds say "
        "otherwise), "
        "saved as the 'sweep' part of --output, the rest of that file kept",
    )
    p.add_argument("--budgets", nargs="+", type=float, default=list(SWEEP_BUDGETS))
    p.add_argument(
        "--tune",
        action="store_true",
        help="instead: every model at every learning rate of --lrs on seed "
        f"{TUNING_SEED} at --budget-s, saved as the 'tuning' part of --output (the rest "
        "of that file kept); LEARNING_RATES are the ones it picks",
    )
    p.add_argument("--lrs", nargs="+", type=float, default=list(LR_GRID))
    p.add_argument("--output", default=str(ROOT / "docs" / "benchmarks-continuous.json"))
    args = p.parse_args(argv)
    if args.sweep or args.tune:
        return _main_part(args, argv)
    cfg = ContinuousConfig()
    for key in ("budget_s", "seeds", "datasets", "models"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, tuple(value) if isinstance(value, list) else value)
    torch.set_num_threads(1)
    load = _load()
    start = time.perf_counter()
    rows = run_parallel(cfg, args.jobs)
    results = {
        "meta": {
            "date": str(date.today()),
            "clock": "time.process_time (CPU time of the process, one torch thread)",
            "shared": args.shared,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "load": f"{load} at the start, {_load()} at the end",
            "total_s": time.perf_counter() - start,
            "command": "python -m benchmarks.continuous " + shlex.join(argv or sys.argv[1:]),
        },
        "config": {**asdict(cfg), "lr": cfg.lr or learning_rates(cfg.budget_s)},
        "rows": rows,
    }
    out = Path(args.output)
    if out.exists():  # the file's sweep and tuning parts stay (each made by its own command)
        kept = json.loads(out.read_text())
        results.update({k: kept[k] for k in ("sweep", "tuning") if k in kept})
    out.write_text(json.dumps(results, indent=1))
    print("\n".join(markdown(results)))
    return 0


def _main_part(args: argparse.Namespace, argv: list[str] | None) -> int:
    """``--sweep`` or ``--tune``: runs saved as that part of ``--output``, the rest of the
    file kept."""
    default_models = SWEEP_MODELS if args.sweep else ContinuousConfig.models
    cfg = replace(
        ContinuousConfig(),
        models=tuple(args.models or default_models),
        seeds=tuple(args.seeds or ContinuousConfig.seeds),
        datasets=tuple(args.datasets or ContinuousConfig.datasets),
        budget_s=args.budget_s or ContinuousConfig.budget_s,
    )
    torch.set_num_threads(1)
    load, start = _load(), time.perf_counter()
    if args.sweep:
        config = {"budgets": args.budgets}
        rows = sweep(cfg, tuple(args.budgets), args.jobs)
    else:
        config = {"grid": args.lrs, "seeds": [TUNING_SEED]}
        rows = tune(cfg, tuple(args.lrs), args.jobs)
    out = Path(args.output)
    results = json.loads(out.read_text()) if out.exists() else {}
    section = {
        "meta": {
            "date": str(date.today()),
            "command": "python -m benchmarks.continuous " + shlex.join(argv or sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "load": f"{load} at the start, {_load()} at the end",
            "total_s": time.perf_counter() - start,
        },
        "config": {**asdict(cfg), **config},
        "rows": rows,
    }
    if args.sweep:
        results["sweep"] = section
        print("\n".join(sweep_markdown(section)))
    else:  # one section per budget tuned: this one replaces an earlier tuning at its budget
        kept = [t for t in results.get("tuning", []) if t["config"]["budget_s"] != cfg.budget_s]
        results["tuning"] = sorted(kept + [section], key=lambda t: t["config"]["budget_s"])
        print("\n".join(tuning_markdown(results["tuning"])))
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
