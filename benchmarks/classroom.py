"""How large a machine a class needs: N learners running the same lesson at once.

For each lesson and each class size N, N learners start the lesson together,
each in their own process with their own fresh kernel (as Restart Kernel and Run
All in a learner's JupyterLab; one torch thread per kernel, as the lessons set
it). Per learner it records the wall time (kernel start included), the CPU time
of the kernel and the peak memory (resident set size) of the kernel's process
tree, sampled every ``--interval`` seconds; per class it records the machine's
cores, how busy its CPUs were just before the start and how much more memory
the whole machine used at its peak than before the start (which counts the
libraries the kernels share once, unlike the kernels' own resident sizes). It
also measures one idle JupyterLab server's memory, and turns the figures into a
sizing rule for a class (cores and memory). Writes JSON and a Markdown page.

    python benchmarks/classroom.py                                  # every lesson, N = 1 2 4 8
    python benchmarks/classroom.py --class-lessons 01 03 07 10      # others at N = 1 only
    python benchmarks/classroom.py --render docs/classroom.json     # the page from the figures
    python benchmarks/classroom.py --lessons 01 --learners 1 2 \\
        --output /tmp/classroom.md --json /tmp/classroom.json       # a quick try

A measurement, not a test: run it on a quiet machine (the page says how busy the
machine was before each run). Kernels only: each learner's JupyterLab server adds
its own memory on a hub (docs/hub.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    sampler = TreeSampler(interval)
    sampler.start()
    start = time.perf_counter()
    error = None
    # Kernels talk over Unix sockets in a folder of their own: N kernels started at the same
    # moment over TCP can pick the same free port, and one of them then fails to start.
    with tempfile.TemporaryDirectory() as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        client = NotebookClient(
            nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
        )
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


def quiet_cpu(settle: float = 30.0, threshold: float = 5.0) -> float:
    """The machine's CPU use (percent of all cores) over one second before a class starts.

    Waits up to ``settle`` seconds for it to fall below ``threshold`` (the previous class's
    processes exiting); what it returns is on the page: well above 0 means something else
    was running and the times are inflated.
    """
    deadline = time.monotonic() + settle
    busy = psutil.cpu_percent(interval=1.0)
    while busy > threshold and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


def run_class(path: Path, n: int, interval: float, timeout: int) -> dict:
    """N learners start ``path`` at once; return their figures and the machine's."""
    env = dict(os.environ, **KERNEL_ENV)
    env.pop("NFCOURSE_STRICT", None)  # as a learner runs it
    env.pop("MPLBACKEND", None)
    busy_before = quiet_cpu()
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
        "cpu_busy_before_percent": round(busy_before, 1),
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


def server_memory_mib(wait: float = 60.0) -> float:
    """Resident memory (MiB) of one idle JupyterLab server, started as a hub starts a learner's.

    Starts ``jupyter lab`` headless in an empty temporary home on a free port, waits until
    it answers, and reads its resident set size (the server alone, no kernel).
    """
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as home:
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}"]
        cmd += ["--ServerApp.token=sizing", f"--ServerApp.root_dir={home}"]
        cmd += [
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # a container's root, as on CI
        env = dict(os.environ, HOME=home, JUPYTER_RUNTIME_DIR=f"{home}/runtime")
        server = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    url = f"http://127.0.0.1:{port}/api/status?token=sizing"
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                raise RuntimeError(f"jupyter lab did not answer on port {port} in {wait:.0f} s")
            time.sleep(2.0)  # let the start-up settle
            return psutil.Process(server.pid).memory_info().rss / 2**20
        finally:
            server.terminate()
            server.wait(timeout=30)


def sizing(results: dict, class_size: int = 30, within_s: float = 180.0) -> dict:
    """A machine for ``class_size`` learners, from the measured figures.

    Cores: every learner runs the lesson that needs the most kernel CPU time at the same
    moment, and each must finish within ``within_s`` seconds (twice the 90 s a lesson may
    take alone): ``ceil(class_size * cpu / within_s)``, valid because one-thread kernels
    share cores in proportion (the page shows the measured slow-down next to N / cores).
    ``cpu`` is the lesson's median kernel CPU time at the class size where it was largest:
    kernels sharing cores each need more CPU time than one alone (caches, memory bandwidth).
    Memory: per learner the largest kernel peak measured plus an idle JupyterLab server,
    times the class, plus 25% headroom and 2 GiB for the hub and the system.
    """
    cpu: dict[str, float] = {}  # per lesson, the largest median over the class sizes
    for r in results["classes"]:
        ok = [x["kernel_cpu_s"] for x in r["per_learner"] if not x.get("error")]
        if ok:
            cpu[r["lesson"]] = max(cpu.get(r["lesson"], 0.0), statistics.median(ok))
    heaviest = max(cpu, key=cpu.get)
    peak_mib = max(
        x["kernel_peak_rss_mib"]
        for r in results["classes"]
        for x in r["per_learner"]
        if not x.get("error")
    )
    per_learner_mib = peak_mib + results["server_mib"]
    return {
        "class_size": class_size,
        "within_s": within_s,
        "heaviest_lesson": heaviest,
        "heaviest_cpu_s": round(cpu[heaviest], 1),
        "cores": math.ceil(class_size * cpu[heaviest] / within_s),
        "kernel_peak_mib": peak_mib,
        "per_learner_mib": round(per_learner_mib),
        "memory_gib": math.ceil(class_size * per_learner_mib * 1.25 / 1024 + 2),
    }


def slowdowns(results: dict) -> list[str]:
    """Per lesson measured at several N: median wall at N over wall at N = 1, next to N / cores."""
    cores = results["machine"]["usable_cores"] or results["machine"]["cpu_count"]
    by_lesson: dict[str, dict[int, float]] = {}
    for row in results["classes"]:
        walls = [r["wall_s"] for r in row["per_learner"] if not r.get("error")]
        if walls:
            by_lesson.setdefault(row["lesson"], {})[row["learners"]] = statistics.median(walls)
    lines = []
    for lesson, walls in by_lesson.items():
        if 1 in walls and len(walls) > 1:
            parts = [
                f"N = {n}: {walls[n] / walls[1]:.1f}x (N / cores = {max(1.0, n / cores):.1f})"
                for n in sorted(walls)
                if n > 1
            ]
            lines.append(f"- {lesson}: " + ", ".join(parts))
    return lines


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
        "*CPU busy before* is the share of all cores in use in the second before the start: "
        "well above 0 means something else was running and the times are inflated.",
        "",
        "| lesson | N | wall per learner, median (s) | max (s) | kernel CPU, median (s) "
        "| kernel peak memory, max (MiB) | machine, extra (GiB) | CPU busy before (%) | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["classes"]:
        ok = [r for r in row["per_learner"] if not r.get("error")]
        failed = len(row["per_learner"]) - len(ok)
        lines.append(
            f"| {row['lesson']} | {row['learners']} | {_med([r['wall_s'] for r in ok])} "
            f"| {_max([r['wall_s'] for r in ok])} | {_med([r['kernel_cpu_s'] for r in ok])} "
            f"| {_max([r['kernel_peak_rss_mib'] for r in ok])} "
            f"| {row['machine_extra_memory_gib']:.2f} | {row['cpu_busy_before_percent']:.0f} "
            f"| {failed} |"
        )
    if results.get("server_mib") is not None:
        rule = sizing(results)
        lines += [
            "",
            "## Slow-down with N learners on this machine",
            "",
            "Median wall time per learner at N over the same at N = 1, next to what sharing "
            "the cores evenly predicts (N / cores, at least 1):",
            "",
            *slowdowns(results),
            "",
            "## Sizing rule",
            "",
            f"One idle JupyterLab server (a learner's, without its kernel): "
            f"{results['server_mib']:.0f} MiB. The largest kernel measured: "
            f"{rule['kernel_peak_mib']:.0f} MiB. The lesson needing the most CPU: "
            f"{rule['heaviest_lesson']}, {rule['heaviest_cpu_s']:.0f} s of kernel CPU time per "
            "learner (the median at the class size where it was largest: kernels sharing cores "
            "each need more CPU time than one alone).",
            "",
            f"For a class of {rule['class_size']} who all run that lesson at the same moment, "
            f"each finishing within {rule['within_s']:.0f} s (twice the 90 s a lesson may take "
            f"alone): **{rule['cores']} cores** ({rule['class_size']} x "
            f"{rule['heaviest_cpu_s']:.0f} s / {rule['within_s']:.0f} s, rounded up), and "
            f"**{rule['memory_gib']} GiB** of memory ({rule['class_size']} x "
            f"{rule['per_learner_mib']} MiB, kernel and server, plus 25% and 2 GiB for the hub "
            "and the system). A class that runs lessons at different moments needs fewer cores; "
            "memory does not shrink that way, since every learner's kernel stays alive.",
        ]
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
    parser.add_argument(
        "--class-lessons",
        nargs="*",
        default=[],
        help="lessons run at every class size (default: all); the others at N = 1 only",
    )
    parser.add_argument("--interval", type=float, default=0.2, help="sampling interval (s)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (900)")
    parser.add_argument("--output", default="docs/classroom.md", help="Markdown page, - for stdout")
    parser.add_argument(
        "--render", metavar="JSON", help="only re-write the page from saved figures"
    )
    parser.add_argument("--json", default="docs/classroom.json", help="the figures as JSON")
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_learner(Path(args.worker), args.interval, args.timeout)), flush=True)
        return 0

    if args.render:
        page = markdown(json.loads(Path(args.render).read_text()))
        if args.output == "-":
            print(page)
        else:
            (ROOT / args.output).write_text(page)
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
    results["server_mib"] = round(server_memory_mib(), 1)
    print(f"an idle JupyterLab server: {results['server_mib']} MiB", file=sys.stderr)
    chosen = lessons(ROOT / args.folder, args.class_lessons) if args.class_lessons else paths
    for path in paths:
        for n in args.learners if path in chosen else [1]:
            row = run_class(path, n, args.interval, args.timeout)
            results["classes"].append(row)
            walls = [r["wall_s"] for r in row["per_learner"] if not r.get("error")]
            print(
                f"{path.stem}, {n} learner(s): wall {_med(walls)} s median, "
                f"CPU busy before {row['cpu_busy_before_percent']:.0f}%",
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
