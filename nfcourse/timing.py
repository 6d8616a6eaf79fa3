"""Timing small computations steadily: the median of several runs.

One run of a small model takes a few milliseconds, and on a shared or busy
machine any single run can be slowed down several times by something else.
The median of a handful of runs ignores such outliers (the mean does not),
and an untimed warm-up run first keeps one-off costs (memory allocation,
lazy initialization) out of the measurement.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from .validate import check_int

__all__ = ["median_time"]


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """The median wall-clock time of ``fn()``, in seconds.

    Calls ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed with
    :func:`time.perf_counter`, and returns the median of the timed runs.

    Args:
        fn: a function without arguments, e.g. ``lambda: flow.log_prob(x)``;
            its result is discarded.
        repeats: the number of timed runs (at least 1; odd numbers give a
            median that is one of the runs).
        warmup: the number of untimed runs before (0 or more).

    Example:
        >>> t = median_time(lambda: sum(range(1000)), repeats=5)
    """
    if not callable(fn):
        raise TypeError(
            f"median_time: `fn` must be a function without arguments, got "
            f"{type(fn).__name__}. Wrap the call, e.g. median_time(lambda: flow.sample(256))."
        )
    repeats = check_int(repeats, "repeats", "median_time")
    warmup = check_int(warmup, "warmup", "median_time", smallest=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
