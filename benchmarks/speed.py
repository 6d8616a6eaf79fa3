"""Speed: the cost of density evaluation, training and sampling, library against library.

For coupling (RealNVP) and autoregressive (MAF) flows of matched size, on a batch of
1024 points in D = 2, 8 and 64 dimensions, with 1 and 2 torch threads, this times

- ``log_prob fwd+bwd``: ``-log_prob(x).mean()`` and its backward pass;
- ``train step``: the same plus an Adam step (what one training step costs);
- ``sample``: drawing 1024 samples without gradients (MAF: D sequential passes per layer).

Each timed repeat runs the operation enough times to last at least ``min_time`` seconds
and records the mean; the table gives the median over repeats with min and max. The
libraries of one cell are timed in turns (repeat 1 of each, then repeat 2 of each, ...),
so a slow spell of a busy machine hits them all alike and the ratios stay fair.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import models

OPS = ("log_prob fwd+bwd", "train step", "sample")
KINDS = {"coupling": "RealNVP", "autoregressive": "MAF", "spline": "NSF"}


@dataclass
class SpeedConfig:
    """What to time and how often."""

    dims: tuple[int, ...] = (2, 8, 64)
    threads: tuple[int, ...] = (1, 2)
    kinds: tuple[str, ...] = ("coupling", "autoregressive", "spline")
    ops: tuple[str, ...] = OPS
    batch: int = 1024
    layers: int = 5
    hidden: tuple[int, ...] = (64, 64)
    repeats: int = 15
    min_time: float = 0.02  # seconds per timed repeat (several calls when one is shorter)
    seed: int = 0


def _operation(model: models.Model, op: str, x: torch.Tensor) -> Callable[[], object]:
    """A function without arguments that performs ``op`` once on ``model``."""
    params = [p for p in model.module.parameters() if p.requires_grad]
    if op == "log_prob fwd+bwd":

        def fwd_bwd() -> None:
            for p in params:
                p.grad = None
            (-model.log_prob(x).mean()).backward()

        return fwd_bwd
    if op == "train step":
        optimizer = torch.optim.Adam(params, lr=1e-4)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            (-model.log_prob(x).mean()).backward()
            optimizer.step()

        return step
    if op == "sample":

        def sample() -> None:
            with torch.no_grad():
                model.sample(x.shape[0])

        return sample
    raise KeyError(f"unknown operation {op!r}; choose among {', '.join(OPS)}")


def _calls_per_repeat(fn: Callable[[], object], min_time: float) -> int:
    """How many calls of ``fn`` last at least ``min_time`` (after one untimed warm-up)."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, round(min_time / once))


def time_cell(fns: dict[str, Callable[[], object]], repeats: int, min_time: float):
    """Seconds per call of each function: ``{key: [mean of each repeat]}``, timed in turns."""
    calls = {key: _calls_per_repeat(fn, min_time) for key, fn in fns.items()}
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            times[key].append((time.perf_counter() - start) / calls[key])
    return times


def run(cfg: SpeedConfig, libraries: list[str], log=print) -> list[dict]:
    """Time every (threads, D, kind, op) cell for each library; one row per library and cell.

    Row: threads, dim, kind, model, op, library, params, median_ms, min_ms, max_ms, repeats.
    """
    rows = []
    old_threads = torch.get_num_threads()
    try:
        for threads in cfg.threads:
            torch.set_num_threads(threads)
            for dim in cfg.dims:
                x = torch.randn(cfg.batch, dim, generator=torch.Generator().manual_seed(cfg.seed))
                for kind in cfg.kinds:
                    name = KINDS[kind]
                    built = {
                        lib: models.build(lib, name, dim, cfg.layers, cfg.hidden, seed=cfg.seed)
                        for lib in libraries
                        if models.exists(lib, name)
                    }
                    for op in cfg.ops:
                        fns = {lib: _operation(m, op, x) for lib, m in built.items()}
                        times = time_cell(fns, cfg.repeats, cfg.min_time)
                        for lib, ts in times.items():
                            rows.append(
                                {
                                    "threads": threads,
                                    "dim": dim,
                                    "kind": kind,
                                    "model": name,
                                    "op": op,
                                    "library": lib,
                                    "params": built[lib].parameters,
                                    "median_ms": 1e3 * statistics.median(ts),
                                    "min_ms": 1e3 * min(ts),
                                    "max_ms": 1e3 * max(ts),
                                    "repeats": len(ts),
                                }
                            )
                        log(
                            f"speed {threads} thr D={dim:<3d} {name:8s} {op:17s} "
                            + "  ".join(
                                f"{lib} {1e3 * statistics.median(ts):.2f} ms"
                                for lib, ts in times.items()
                            )
                        )
    finally:
        torch.set_num_threads(old_threads)
    return rows


def ratios(rows: list[dict], other: str) -> list[dict]:
    """nfcourse's median time over ``other``'s, per cell (below 1: nfcourse is faster)."""
    key = ("threads", "dim", "kind", "op")
    ours = {tuple(r[k] for k in key): r for r in rows if r["library"] == "nfcourse"}
    out = []
    for r in rows:
        if r["library"] == other and tuple(r[k] for k in key) in ours:
            mine = ours[tuple(r[k] for k in key)]
            out.append({**{k: r[k] for k in key}, "ratio": mine["median_ms"] / r["median_ms"]})
    return out
