"""Flow matching against the course's discrete flows at the same training wall-clock.

On the 2-D data sets with an exact entropy where the affine flows stay far from it
(checkerboard, rings), every model trains for the same number of *seconds* (not steps):
a flow-matching step is a cheap regression, an NSF step a spline flow's full likelihood,
so a budget in steps would favour one or the other. Each run:

- draws its training and held-out sets with seeds of its own (the same for every model);
- trains with Adam, batches drawn with replacement by a seeded generator, and a cosine
  learning-rate decay over the *time* budget (``lr * (1 + cos(pi * elapsed / budget)) / 2``),
  stopping at the first step that starts after the budget;
- reports the held-out NLL (the continuous flow's by the exact divergence integrated with
  dopri5 at ``rtol = atol = 1e-5``), its gap to the entropy with the standard error of the
  held-out mean, the number of steps taken, and the median time to draw and to score
  ``n_time`` points.

Run it (one torch thread, as the rest of the benchmarks)::

    python -m benchmarks.continuous                 # the budget of ContinuousConfig
    python -m benchmarks.continuous --budget-s 5 --seeds 0 --output /tmp/c.json

and its :func:`markdown` renders the results as a section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import torch

import nfcourse as nf
from nfcourse import continuous
from nfcourse.timing import median_time

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Flow matching against discrete flows at the same training time"


@dataclass
class ContinuousConfig:
    """The shared budget of every run."""

    datasets: tuple[str, ...] = ("checkerboard", "rings")
    models: tuple[str, ...] = ("flow matching", "flow matching, wide", "NSF", "RealNVP")
    seeds: tuple[int, ...] = (0, 1, 2)
    budget_s: float = 60.0  # training wall-clock of every run
    batch_size: int = 256
    lr: dict | None = None  # per model; None: LEARNING_RATES
    layers: int = 5  # discrete flows
    hidden: tuple[int, ...] = (64, 64)  # discrete flows' conditioners
    field_hidden: tuple[int, ...] = (64, 64, 64)  # the velocity field
    wide_hidden: tuple[int, ...] = (128, 128, 128)  # as many parameters as the NSF
    n_train: int = 20_000
    n_test: int = 5_000
    n_time: int = 2_000  # points drawn or scored in the timings
    rtol: float = 1e-5
    atol: float = 1e-5
    data_seed: int = 1000
    test_seed: int = 2000


LEARNING_RATES = {"flow matching": 3e-3, "flow matching, wide": 3e-3, "NSF": 3e-3, "RealNVP": 3e-3}


def build(name: str, cfg: ContinuousConfig) -> torch.nn.Module:
    if name.startswith("flow matching"):
        hidden = cfg.wide_hidden if name.endswith("wide") else cfg.field_hidden
        return continuous.ContinuousFlow(2, hidden, rtol=cfg.rtol, atol=cfg.atol)
    if name == "NSF":
        return nf.nsf(2, cfg.layers, cfg.hidden)
    if name == "RealNVP":
        return nf.realnvp(2, cfg.layers, cfg.hidden)
    raise KeyError(f"unknown model {name!r}; known: {', '.join(LEARNING_RATES)}")


def train(
    model: torch.nn.Module, name: str, data: torch.Tensor, cfg: ContinuousConfig, seed: int
) -> dict:
    """Train for ``cfg.budget_s`` seconds; returns the steps taken and the time used."""
    lr = (cfg.lr or LEARNING_RATES)[name]
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    model.train()
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < cfg.budget_s:
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * elapsed / cfg.budget_s))
        x1 = data[torch.randint(n, (cfg.batch_size,), generator=gen)]
        if name.startswith("flow matching"):
            x0, t = continuous._draw(x1, gen)
            loss = continuous.flow_matching_loss(model.field, x1, x0, t)
        else:
            loss = -model.log_prob(x1).mean()
        if not math.isfinite(loss.item()):
            return {"steps": steps, "seconds": time.perf_counter() - start, "diverged": True}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return {"steps": steps, "seconds": time.perf_counter() - start, "diverged": False}


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
                nll = score(model, test_x)
                few = test_x[: cfg.n_time]
                with torch.no_grad():
                    sample_s = median_time(lambda m=model: m.sample(cfg.n_time), repeats=3)
                    score_s = median_time(lambda m=model, x=few: m.log_prob(x), repeats=3)
                row = {
                    "dataset": ds_name,
                    "model": name,
                    "seed": seed,
                    "entropy": entropy,
                    "nll": nll.mean().item(),
                    "gap": nll.mean().item() - entropy,
                    "se": nll.std().item() / math.sqrt(len(nll)),
                    "steps": result["steps"],
                    "train_s": result["seconds"],
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


def markdown(results: dict, figures: Path | None = None) -> list[str]:
    """The section of ``docs/benchmarks.md`` (no figure: ``figures`` is not used)."""
    cfg = results["config"]
    lines = [
        f"## {TITLE}",
        "",
        f"Every model trained for {cfg['budget_s']:g} s of wall-clock (one torch thread), "
        f"batches of {cfg['batch_size']}, Adam with a cosine decay over the time budget; "
        f"{len(cfg['seeds'])} seeds, each with its own {cfg['n_train']:,} training and "
        f"{cfg['n_test']:,} held-out points. Flow matching: a velocity field MLP "
        f"{tuple(cfg['field_hidden'])} (wide: {tuple(cfg.get('wide_hidden', ()))}) with SiLU, "
        "trained on the straight-line path, scored by "
        f"the exact divergence integrated with dopri5 (rtol = atol = {cfg['rtol']:g}). NSF and "
        f"RealNVP: {cfg['layers']} layers, conditioners {tuple(cfg['hidden'])}, trained by "
        "maximum likelihood. Made by `python -m benchmarks.continuous` on "
        f"{results['meta']['date']} ({results['meta']['machine']}); the machine was shared "
        f"(load {results['meta']['load']}), so the timings are noisy.",
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
    lines += ["", f"Sample and score: median seconds for {n:,} points.", ""]
    for ds_name, v in verdicts(results).items():
        word = "met" if v["met"] else "not met"
        lines.append(
            f"- {ds_name}: {v['fm_model']} {v['fm']:.3f} against {v['best']} {v['discrete']:.3f} "
            f"nats (difference {v['difference']:+.3f} +- {v['se']:.3f}): the target (no worse "
            f"than the best discrete flow) is {word}."
        )
    return lines + [""]


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
    p.add_argument("--output", default=str(ROOT / "docs" / "benchmarks-continuous.json"))
    args = p.parse_args(argv)
    cfg = ContinuousConfig()
    for key in ("budget_s", "seeds", "datasets", "models"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, tuple(value) if isinstance(value, list) else value)
    torch.set_num_threads(1)
    load = _load()
    start = time.perf_counter()
    rows = run(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    results = {
        "meta": {
            "date": str(date.today()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "load": f"{load} at the start, {_load()} at the end",
            "total_s": time.perf_counter() - start,
            "command": "python -m benchmarks.continuous " + " ".join(argv or sys.argv[1:]),
        },
        "config": {**asdict(cfg), "lr": cfg.lr or LEARNING_RATES},
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(results, indent=1))
    print("\n".join(markdown(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
