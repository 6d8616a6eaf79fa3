"""Run the benchmark suite and write ``docs/benchmarks.md``.

    python -m benchmarks                          # everything, full budget (see --help)
    python -m benchmarks --budget smoke --output /tmp/bench.md
    python -m benchmarks --sections speed --dims 2 8 --libraries nfcourse zuko
    python -m benchmarks --render results.json    # re-write the page from saved results
    python -m benchmarks --render docs/benchmarks.json docs/benchmarks-digits.json \
        docs/benchmarks-vi.json docs/benchmarks-continuous.json   # the page, from every file

Any reduction of the full budget (``--budget smoke``, fewer sections, any override) marks
the page as "not the final numbers". ``--render`` takes several results files and merges
them (:func:`benchmarks.report.merge`): the first is the suite's (``--json``), the others
may be the section scripts' own (``python -m benchmarks.digits``, ``benchmarks.vi``,
``benchmarks.continuous``); the page says which run made which section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, fields, replace
from datetime import date
from pathlib import Path

import torch

from . import (
    ablation,
    common,
    continuous,
    digits,
    lesson_times,
    models,
    quality,
    report,
    speed,
    tabular,
    vi,
)

ROOT = Path(__file__).resolve().parents[1]
TRAIN_THREADS = 1


def _small(config: type, **small):
    """``config(**small)`` with the entries that ``config`` has (a section's own module may
    add or rename settings; the smoke budget shrinks those it knows)."""
    return config(**{k: v for k, v in small.items() if k in {f.name for f in fields(config)}})


# Full budget (the issue's) and the smoke budget (a run of a few seconds per section).
BUDGETS = {
    "full": {
        "quality": quality.QualityConfig(),
        "ablation": ablation.AblationConfig(),
        "tabular": tabular.TabularConfig(),
        "digits": digits.DigitsConfig(),
        "speed": speed.SpeedConfig(),
        "vi": vi.FULL,
        "continuous": continuous.ContinuousConfig(),
        "lessons": {"folder": "solutions", "runs": 3},
    },
    "smoke": {
        "quality": quality.QualityConfig(
            datasets=("moons", "rings"), seeds=(0,), steps=5, n_train=512, n_test=1000
        ),
        "ablation": ablation.AblationConfig(datasets=("moons",)),
        "tabular": tabular.TabularConfig(
            dims=(3,), seeds=(0,), steps=5, n_train=512, n_test=1000, entropy_samples=10_000
        ),
        "digits": digits.DigitsConfig(
            models=(digits.IMAGE_FLOW, "nfcourse MAF", "zuko NSF"),
            seeds=(0,),
            budget_s=0.2,
            image_hidden=8,
            image_depth=(1, 1, 1),
            hidden=(16,),
            layers=2,
            draws=1,
        ),
        "speed": speed.SpeedConfig(dims=(2,), threads=(1,), repeats=2, min_time=0.0),
        "vi": _small(
            vi.VIConfig,
            layers=(2,),
            seeds=(0,),
            steps=5,
            anneal_steps=2,
            eval_every=5,
            n_eval=256,
            n_final=1000,
            flows=("RealNVP",),
            energies=("U1", "U2"),
            flow_seeds=(0,),
            flow_steps=3,
            flow_anneal_steps=1,
            long_flows=("RealNVP",),
            long_steps=4,
            long_anneal_steps=1,
            long_seeds=(0,),
            long_samples=64,
        ),
        "continuous": _small(
            continuous.ContinuousConfig,
            datasets=("rings",),
            seeds=(0,),
            budget_s=0.2,
            n_train=500,
            n_test=100,
            n_time=20,
            field_hidden=(8,),
            wide_hidden=(16,),  # the field of the wide model, or of the recipe
            fm_hidden=(16,),
            fm_batch_size=64,
            time_features=2,
            hidden=(8,),
            layers=2,
        ),
        "lessons": {"folder": "solutions", "runs": 1},
    },
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of nfcourse against zuko and nflows (quality, speed, "
        "variational inference, lesson run times).",
    )
    p.add_argument("--budget", choices=list(BUDGETS), default="full")
    p.add_argument(
        "--sections", nargs="+", choices=list(report.SECTIONS), default=list(report.SECTIONS)
    )
    p.add_argument(
        "--libraries",
        nargs="+",
        choices=list(models.LIBRARIES),
        default=list(models.LIBRARIES),
        help="libraries to compare (missing ones are reported, not fatal)",
    )
    p.add_argument("--output", default="docs/benchmarks.md", help="the Markdown page")
    p.add_argument("--json", help="also save the raw results to this JSON file")
    p.add_argument(
        "--render",
        nargs="+",
        metavar="JSON",
        help="only re-write the page from saved results: the suite's file first, then any "
        "section files to merge (later files replace earlier sections); --json saves the merge",
    )
    g = p.add_argument_group("overrides (any of them marks the page as partial)")
    g.add_argument("--datasets", nargs="+", help="quality: datasets")
    g.add_argument("--models", nargs="+", help="quality: models as library:Name")
    g.add_argument(
        "--seeds", nargs="+", type=int, help="quality, tabular, digits, vi, continuous: seeds"
    )
    g.add_argument("--steps", type=int, help="quality and tabular: training steps")
    g.add_argument("--dims", nargs="+", type=int, help="speed: dimensions")
    g.add_argument("--tabular-dims", nargs="+", type=int, help="tabular: mixture dimensions")
    g.add_argument("--tabular-models", nargs="+", help="tabular: models as library:Name")
    g.add_argument("--threads", nargs="+", type=int, help="speed: torch thread counts")
    g.add_argument("--repeats", type=int, help="speed: timed repeats")
    g.add_argument("--vi-layers", nargs="+", type=int, help="vi: planar depths K")
    g.add_argument("--vi-steps", type=int, help="vi: training steps")
    g.add_argument(
        "--time-budget", type=float, help="digits and continuous: seconds of training per run"
    )
    g.add_argument("--notebooks", help="lessons: folder of notebooks")
    g.add_argument("--lesson-runs", type=int, help="lessons: runs per notebook")
    return p


def _configs(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The section configs of the budget with the overrides applied, and the overrides."""
    base = BUDGETS[args.budget]
    changed = []

    def pick(name: str, value):
        if value is not None:
            changed.append(name)
        return value

    q, s, v = base["quality"], base["speed"], base["vi"]
    q_over = {
        "datasets": pick("datasets", args.datasets and tuple(args.datasets)),
        "models": pick("models", args.models and tuple(args.models)),
        "seeds": pick("seeds", args.seeds and tuple(args.seeds)),
        "steps": pick("steps", args.steps),
    }
    s_over = {
        "dims": pick("dims", args.dims and tuple(args.dims)),
        "threads": pick("threads", args.threads and tuple(args.threads)),
        "repeats": pick("repeats", args.repeats),
    }
    v_over = {
        "layers": pick("vi-layers", args.vi_layers and tuple(args.vi_layers)),
        "steps": pick("vi-steps", args.vi_steps),
        "seeds": args.seeds and tuple(args.seeds),
    }
    t_over = {
        "dims": pick("tabular-dims", args.tabular_dims and tuple(args.tabular_dims)),
        "models": pick("tabular-models", args.tabular_models and tuple(args.tabular_models)),
        "seeds": args.seeds and tuple(args.seeds),
        "steps": args.steps,
    }
    lessons = dict(base["lessons"])
    if pick("notebooks", args.notebooks):
        lessons["folder"] = args.notebooks
    if pick("lesson-runs", args.lesson_runs):
        lessons["runs"] = args.lesson_runs
    a = base["ablation"]
    if args.datasets:
        a = replace(a, datasets=tuple(args.datasets))
    timed = {  # digits and continuous: a budget in seconds
        "budget_s": pick("time-budget", args.time_budget),
        "seeds": args.seeds and tuple(args.seeds),
    }
    configs = {
        "quality": replace(q, **{k: x for k, x in q_over.items() if x is not None}),
        "ablation": a,
        "tabular": replace(base["tabular"], **{k: x for k, x in t_over.items() if x is not None}),
        "digits": replace(base["digits"], **{k: x for k, x in timed.items() if x is not None}),
        "speed": replace(s, **{k: x for k, x in s_over.items() if x is not None}),
        "vi": replace(v, **{k: x for k, x in v_over.items() if x is not None}),
        "continuous": replace(
            base["continuous"], **{k: x for k, x in timed.items() if x is not None}
        ),
        "lessons": lessons,
    }
    if args.seeds:  # the lesson-08 flows of the vi section too
        configs["vi"] = replace(configs["vi"], flow_seeds=tuple(args.seeds))
    return configs, changed


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "load_start": common.load_average(),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _library(model: str) -> str:
    """The library of a model named ``"zuko NSF"``; nfcourse for the course's own models."""
    first = model.split()[0]
    return first if first in models.LIBRARIES else "nfcourse"


def _lessons(cfg: dict) -> dict:
    folder = Path(cfg["folder"])
    folder = folder if folder.is_absolute() else ROOT / folder
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no lesson notebooks (NN_name.ipynb) in {folder}")
    measured = lesson_times.measure(paths, cfg["runs"])
    return {
        "config": {**cfg, "folder": cfg["folder"], "budget_s": lesson_times.BUDGET_S},
        "rows": [{"lesson": name, "seconds": times} for name, times in measured],
    }


def run(args: argparse.Namespace) -> dict:
    """Run the selected sections; returns the results dictionary that the report renders."""
    configs, changed = _configs(args)
    used, left_out = models.available_libraries(args.libraries)
    if "nfcourse" not in used:
        raise SystemExit("benchmarks: --libraries must include nfcourse (the rows compared)")
    for lib, why in left_out.items():
        _log(f"benchmarks: {lib} left out: {why}")
    # Small models on a small CPU: one thread is as fast as two and far steadier under
    # load. Quality and VI train with one; the speed section times 1 and 2 threads.
    old_threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        return _run_sections(args, configs, changed, used, left_out, TRAIN_THREADS)
    finally:
        torch.set_num_threads(old_threads)


def _run_sections(
    args: argparse.Namespace,
    configs: dict,
    changed: list[str],
    used: list[str],
    left_out: dict[str, str],
    threads: int,
) -> dict:
    """The body of :func:`run`, with torch's thread count already set."""
    meta = {
        "command": "python -m benchmarks "
        + shlex.join(sys.argv[1:] if args.argv is None else args.argv),
        "date": str(date.today()),
        "machine": _machine(),
        "versions": {
            "python": platform.python_version(),
            **{lib: models.library_version(lib) for lib in ("torch", *models.LIBRARIES)},
            "numpy": models.library_version("numpy"),
        },
        "libraries": {"used": used, "left_out": left_out},
        "threads": threads,
        "budget": args.budget,
        "section_s": {},
    }
    results: dict = {"meta": meta}
    start = time.perf_counter()
    for section in args.sections:
        t0 = time.perf_counter()
        cfg = configs[section]
        _log(f"benchmarks: {section} ...")
        if section == "quality":
            results["quality"] = {"config": asdict(cfg), "rows": quality.run(cfg, used, _log)}
        elif section == "ablation":
            rows = ablation.run(
                cfg, configs["quality"], results.get("quality", {}).get("rows", ()), _log
            )
            results["ablation"] = {
                "config": {**asdict(cfg), "quality": asdict(configs["quality"])},
                "rows": rows,
            }
        elif section == "tabular":
            results["tabular"] = {"config": asdict(cfg), "rows": tabular.run(cfg, used, _log)}
        elif section == "speed":
            results["speed"] = {"config": asdict(cfg), "rows": speed.run(cfg, used, _log)}
        elif section == "digits":
            # the zuko flows only when zuko is in use
            cfg = replace(cfg, models=tuple(m for m in cfg.models if _library(m) in used))
            results["digits"] = {"config": asdict(cfg), "rows": digits.run(cfg, _log)}
        elif section == "vi":
            rows, curves = vi.run_all(cfg, _log)
            results["vi"] = {"config": asdict(cfg), "rows": rows, "curves": curves}
        elif section == "continuous":
            results["continuous"] = {
                "config": {**asdict(cfg), "lr": cfg.lr or continuous.learning_rates(cfg.budget_s)},
                "rows": continuous.run(cfg, _log),
            }
        else:
            results["lessons"] = _lessons(cfg)
        meta["section_s"][section] = time.perf_counter() - t0
        _log(f"benchmarks: {section} took {meta['section_s'][section]:.0f} s")
    meta["total_s"] = time.perf_counter() - start
    meta["machine"]["load_end"] = common.load_average()
    meta["seeds"] = {
        "quality": ", ".join(map(str, configs["quality"].seeds)),
        "tabular": ", ".join(map(str, configs["tabular"].seeds)),
        "digits": ", ".join(map(str, configs["digits"].seeds)),
        "VI": ", ".join(map(str, configs["vi"].seeds)),
        "VI of the lesson-08 flows": ", ".join(map(str, configs["vi"].flow_seeds)),
        "continuous": ", ".join(map(str, configs["continuous"].seeds)),
        "speed": str(configs["speed"].seed),
    }
    ran = set(args.sections)
    meta["seeds"] = {k: v for k, v in meta["seeds"].items() if k.split()[0].lower() in ran}
    why = []
    if args.budget != "full":
        why.append(f"--budget {args.budget}")
    if set(args.sections) != set(report.SECTIONS):
        why.append("sections: " + ", ".join(args.sections))
    if changed:
        why.append("overrides: " + ", ".join(changed))
    meta["partial"] = bool(why)
    meta["why_partial"] = "; ".join(why)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = argv
    output = Path(args.output)
    output = output if output.is_absolute() else ROOT / output
    if args.render:
        stores = [report.normalize(json.loads(Path(f).read_text()), f) for f in args.render]
        results = report.merge(stores)
    else:
        results = run(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.write(results, output)
    _log(f"benchmarks: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
