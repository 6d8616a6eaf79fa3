"""How long each lesson takes to run top to bottom, as a learner runs it.

Runs every notebook of a folder several times, each time in a fresh kernel
(like Restart Kernel and Run All), and writes a table of median, min and max
wall times, kernel start included, to a Markdown page.

    python benchmarks/lesson_times.py                     # solutions/, 3 runs each
    python benchmarks/lesson_times.py --runs 5 --folder notebooks --output -

A benchmark, not a test: timings depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 90  # per lesson on a 2-core laptop CPU (see the course design)


def run_once(path: Path, timeout: int = 600) -> float:
    """Seconds to start a kernel and execute every cell of the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def measure(paths: list[Path], runs: int) -> list[tuple[str, list[float]]]:
    rows = []
    for path in paths:
        times = []
        for i in range(runs):
            times.append(run_once(path))
            print(
                f"{path.name}: run {i + 1}/{runs}: {times[-1]:.1f} s", file=sys.stderr, flush=True
            )
        rows.append((path.name, times))
    return rows


def table(rows: list[tuple[str, list[float]]], folder: str, runs: int) -> str:
    lines = [
        "# Lesson run times",
        "",
        f"Each notebook of `{folder}/` run top to bottom {runs} times in a fresh kernel "
        "(kernel start included), as a learner runs it with Restart Kernel and Run All. "
        f"Budget: {BUDGET_S} s per lesson, 10 minutes for the whole course.",
        "",
        f"Measured {date.today()} on {platform.machine()} with {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, "
        f"torch {torch.__version__}. "
        "Made by `python benchmarks/lesson_times.py`.",
        "",
        "| lesson | median (s) | min (s) | max (s) | within budget |",
        "|---|---:|---:|---:|---|",
    ]
    total = 0.0
    for name, times in rows:
        med = statistics.median(times)
        total += med
        ok = "yes" if max(times) <= BUDGET_S else "NO"
        lines.append(f"| {name} | {med:.1f} | {min(times):.1f} | {max(times):.1f} | {ok} |")
    lines += ["", f"Whole course (sum of medians): {total:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", default="solutions", help="folder of notebooks (default solutions)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per notebook (default 3)")
    parser.add_argument(
        "--output", default="docs/lesson-times.md", help="Markdown file, or - for stdout"
    )
    parser.add_argument("notebooks", nargs="*", help="only these notebook names")
    args = parser.parse_args(argv)
    folder = ROOT / args.folder
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if p.name in args.notebooks or p.stem in args.notebooks]
    if not paths:
        print(f"no lesson notebooks found in {folder}", file=sys.stderr)
        return 2
    text = table(measure(paths, args.runs), args.folder, args.runs)
    if args.output == "-":
        print(text)
    else:
        out = ROOT / args.output
        out.parent.mkdir(exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
