"""How large a machine a class needs: N learners running the same lesson at once.

For each lesson and each class size N, N learners start the lesson together,
each in their own process with their own fresh kernel (as Restart Kernel and Run
All in a learner's JupyterLab; one torch thread per kernel, as the lessons set
it). Per learner it records the wall time (kernel start included), the CPU time
of the kernel and the peak memory (resident set size) of the kernel's process
tree, sampled every ``--interval`` seconds; per class it records the machine's
cores, its load before the start and how much more memory the whole machine used
at its peak than before the start (which counts the libraries the kernels share
once, unlike the kernels' own resident sizes). Writes JSON and a Markdown page.

    python benchmarks/classroom.py                                  # every lesson, N = 1 2 4 8
    python benchmarks/classroom.py --lessons 01 --learners 1 2 \\
        --output /tmp/classroom.md --json /tmp/classroom.json       # a quick try

A measurement, not a test: run it on a quiet machine (the page says how busy the
machine was before each run). Kernels only: each learner's JupyterLab server adds
its own memory on a hub (docs/hub.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# --- one learner (a worker process) ---------------------------------------------------------------


class TreeSampler(threading.Thread):
    """Samples the processes below this one (the kernel and its children) until stopped.

    Keeps the peak of their summed resident set size and the last CPU time seen
    of each (a process's CPU time only grows, so the last sample is the closest
    to its total; the time after the last sample is lost, at most one interval).
    """

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval, self.peak_rss, self.cpu = interval, 0, {}
        self._halt = threading.Event()

    def sample(self) -> None:
        rss = 0
        for proc in psutil.Process().children(recursive=True):
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    t = proc.cpu_times()
                    self.cpu[proc.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_learner(path: Path, interval: float, timeout: int) -> dict:
    """Run the notebook at ``path`` in a fresh kernel, sampled; return this learner's figures."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    sampler = TreeSampler(interval)
    sampler.start()
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # the page says which learner's run failed, and why
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc) else ''}"
    wall = time.perf_counter() - start
    sampler.stop()
    return {
        "wall_s": round(wall, 2),
        "kernel_cpu_s": round(sum(sampler.cpu.values()), 2),
        "kernel_peak_rss_mib": round(sampler.peak_rss / 2**20, 1),
        "error": error,
    }


# --- a class of N learners ------------------------------------------------------------------------


def run_class(path: Path, n: int, interval: float, timeout: int) -> dict:
    """N learners start ``path`` at once; return their figures and the machine's."""
    env = dict(os.environ, **KERNEL_ENV)
    env.pop("NFCOURSE_STRICT", None)  # as a learner runs it
    env.pop("MPLBACKEND", None)
    load_before = os.getloadavg()[0]
    used_before = psutil.virtual_memory().used
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(path)]
    cmd += ["--interval", str(interval), "--timeout", str(timeout)]
    start = time.perf_counter()
    workers = [
        subprocess.Popen(cmd, env=env, cwd=path.parent, stdout=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    peak_used = used_before
    while any(w.poll() is None for w in workers):
        peak_used = max(peak_used, psutil.virtual_memory().used)
        time.sleep(interval)
    learners = []
    for w in workers:
        out = w.stdout.read()
        w.stdout.close()
        try:
            learners.append(json.loads(out.strip().splitlines()[-1]))
        except (json.JSONDecodeError, IndexError):
            learners.append({"error": f"the worker exited with {w.returncode} and no result"})
    return {
        "lesson": path.stem,
        "learners": n,
        "class_wall_s": round(time.perf_counter() - start, 2),
        "load_before": round(load_before, 2),
        "machine_extra_memory_gib": round((peak_used - used_before) / GIB, 2),
        "per_learner": learners,
    }


def machine() -> dict:
    return {
        "date": str(date.today()),
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


# --- the page -------------------------------------------------------------------------------------


def _med(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def _max(values: list[float]) -> str:
    return f"{max(values):.1f}" if values else "-"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# A class on one machine: N learners running a lesson at once",
        "",
        f"Measured {m['date']} on {m['processor']} with {m['usable_cores']} usable CPU cores "
        f"({m['cpu_count']} in all) and {m['memory_gib']} GiB of memory, Python {m['python']}. "
        f"Made by `{results['command']}`.",
        "",
        "Each learner runs the lesson top to bottom in their own fresh kernel (one torch thread), "
        "all N starting together. Wall time includes the kernel's start; kernel CPU time and "
        "peak memory (resident set size of the kernel's process tree) are sampled every "
        f"{results['interval_s']} s. *Machine, extra* is how much more memory the whole machine "
        "used at its peak than before the start (libraries the kernels share count once). "
        "*Load before* is the machine's 1-minute load average just before the start: well "
        "above 0 means something else was running and the times are inflated.",
        "",
        "| lesson | N | wall per learner, median (s) | max (s) | kernel CPU, median (s) "
        "| kernel peak memory, max (MiB) | machine, extra (GiB) | load before | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["classes"]:
        ok = [r for r in row["per_learner"] if not r.get("error")]
        failed = len(row["per_learner"]) - len(ok)
        lines.append(
            f"| {row['lesson']} | {row['learners']} | {_med([r['wall_s'] for r in ok])} "
            f"| {_max([r['wall_s'] for r in ok])} | {_med([r['kernel_cpu_s'] for r in ok])} "
            f"| {_max([r['kernel_peak_rss_mib'] for r in ok])} "
            f"| {row['machine_extra_memory_gib']:.2f} | {row['load_before']:.1f} | {failed} |"
        )
    errors = [
        f"- {row['lesson']}, N = {row['learners']}, learner {i + 1}: {r['error']}"
        for row in results["classes"]
        for i, r in enumerate(row["per_learner"])
        if r.get("error")
    ]
    if errors:
        lines += ["", "Failed runs:", "", *errors]
    return "\n".join(lines) + "\n"


def lessons(folder: Path, names: list[str]) -> list[Path]:
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [
            p for p in paths if any(p.name == n or p.stem == n or p.name[:2] == n for n in names)
        ]
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one learner: print its figures
    parser.add_argument("--lessons", nargs="*", default=[], help="lessons (01 or 01_...; all)")
    parser.add_argument(
        "--learners", nargs="+", type=int, default=[1, 2, 4, 8], help="class sizes (1 2 4 8)"
    )
    parser.add_argument(
        "--folder",
        default="solutions",
        help="solutions (default: every exercise done, all of the lesson's work) or notebooks",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="sampling interval (s)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (900)")
    parser.add_argument("--output", default="docs/classroom.md", help="Markdown page, - for stdout")
    parser.add_argument("--json", default="docs/classroom.json", help="the figures as JSON")
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_learner(Path(args.worker), args.interval, args.timeout)), flush=True)
        return 0

    if any(n < 1 for n in args.learners):
        parser.error(f"--learners: class sizes must be 1 or more, got {args.learners}")
    paths = lessons(ROOT / args.folder, args.lessons)
    if not paths:
        print(f"no lesson notebooks {args.lessons or ''} in {ROOT / args.folder}", file=sys.stderr)
        return 2
    results = {
        "command": "python benchmarks/classroom.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "interval_s": args.interval,
        "folder": args.folder,
        "classes": [],
    }
    for path in paths:
        for n in args.learners:
            row = run_class(path, n, args.interval, args.timeout)
            results["classes"].append(row)
            walls = [r["wall_s"] for r in row["per_learner"] if not r.get("error")]
            print(
                f"{path.stem}, {n} learner(s): wall {_med(walls)} s median, "
                f"load before {row['load_before']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    page = markdown(results)
    for target, text in ((args.json, json.dumps(results, indent=1) + "\n"), (args.output, page)):
        if target == "-":
            print(text)
            continue
        out = Path(target) if Path(target).is_absolute() else ROOT / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    failed = sum(1 for row in results["classes"] for r in row["per_learner"] if r.get("error"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
