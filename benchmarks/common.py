"""Helpers that every benchmark section shares: statistics over seeds, the learning-rate
schedule, the provenance of a results file, and the page's Markdown tables.

- :func:`mean_se`: the mean over seeds and its standard error;
- :func:`paired`: differences of two models' scores paired by seed (same data, same
  minibatches), per group (a data set, a dimension), with their standard error;
- :func:`cosine_lr`: the cosine decay of the learning rate over a budget of steps or
  seconds, used by every training loop of the suite;
- :func:`load_average`, :func:`run_meta`, :func:`apply_overrides`: what a section's own
  script (``python -m benchmarks.digits``, ...) records about its run, and its command-line
  overrides of the section's config;
- :func:`table`, :func:`fmt`: the page's tables and numbers.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import date

import torch

# ----------------------------------------------------------------------------
# statistics over seeds


def mean_se(values: Iterable[float], single: float = math.nan) -> tuple[float, float]:
    """The mean of ``values`` and its standard error (sample SD / sqrt(n)); ``single`` is
    the error given for one value (NaN: unknown). NaNs (diverged runs) are left out."""
    values = [float(v) for v in values if v is not None and v == v]
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, single
    return mean, statistics.stdev(values) / math.sqrt(len(values))


def paired(
    rows: Sequence[dict],
    label: str,
    reference: str,
    group: str = "dataset",
    key: str = "label",
    value: str = "gap",
) -> dict:
    """Per value of ``group``: ``(mean, standard error, wins, n)`` of ``value(label) -
    value(reference)`` over the seeds where both ran (NaNs left out).

    ``wins`` counts the seeds where ``label`` is no worse (its value at most the
    reference's). Groups where no seed has both are absent.
    """
    scores = {(r[group], r["seed"], r[key]): r[value] for r in rows}
    out = {}
    for g in dict.fromkeys(r[group] for r in rows):
        seeds = dict.fromkeys(r["seed"] for r in rows if r[group] == g)
        diffs = [
            scores[g, s, label] - scores[g, s, reference]
            for s in seeds
            if (g, s, label) in scores and (g, s, reference) in scores
        ]
        diffs = [d for d in diffs if d is not None and d == d]
        if diffs:
            mean, se = mean_se(diffs)
            out[g] = (mean, se, sum(d <= 0 for d in diffs), len(diffs))
    return out


# ----------------------------------------------------------------------------
# training budgets


def cosine_lr(optimizer: torch.optim.Optimizer, lr: float, progress: float) -> None:
    """Set every group's learning rate to ``lr (1 + cos(pi progress)) / 2``, where
    ``progress`` in [0, 1] is the fraction of the budget (steps or seconds) used."""
    for group in optimizer.param_groups:
        group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------
# what a section's own script records


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages, ``"1.0/1.2/1.1"``."""
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_meta(command: str, start: float, load: str) -> dict:
    """The ``meta`` of a section's results file: date, machine, load at the start (given)
    and at the end, total wall-clock since ``start`` (``time.perf_counter()``), command."""
    return {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "load": f"{load} at the start, {load_average()} at the end",
        "total_s": time.perf_counter() - start,
        "command": command,
    }


def apply_overrides(cfg, args, keys: Sequence[str]):
    """Copy every ``args.<key>`` that was given (not None) into the dataclass ``cfg``
    (lists become tuples); returns ``cfg``."""
    names = {f.name for f in fields(cfg)}
    for key in keys:
        if key not in names:
            raise KeyError(f"{type(cfg).__name__} has no field {key!r}")
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, tuple(value) if isinstance(value, list) else value)
    return cfg


# ----------------------------------------------------------------------------
# the page


def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; a dash for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table (``align``: one ``l`` or ``r`` per column; default: the first
    column left, the others right), followed by a blank line."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]
