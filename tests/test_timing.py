"""Tests of the timing helper: what it calls, what it returns, how it fails."""

from __future__ import annotations

import time

import pytest

from nfcourse.timing import median_time


def test_calls_warmup_then_repeats_and_returns_the_median(monkeypatch):
    calls = []
    # a fake clock: each timed run lasts 1, 5 or 2 "seconds", in this order
    ticks = iter([0.0, 1.0, 10.0, 15.0, 20.0, 22.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    result = median_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert result == 2.0  # the median of 1, 5, 2: an outlier does not move it


def test_measures_real_time():
    t = median_time(lambda: time.sleep(0.01), repeats=3, warmup=0)
    assert 0.009 < t < 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, r"`repeats` must be a positive integer, got 0"),
        ({"repeats": 2.5}, r"`repeats` must be a positive integer"),
        ({"warmup": -1}, r"`warmup` must be a non-negative integer, got -1"),
        ({"warmup": True}, r"`warmup` must be a non-negative integer"),
    ],
)
def test_bad_counts_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        median_time(lambda: None, **kwargs)


def test_a_value_instead_of_a_function_is_a_clear_error():
    with pytest.raises(TypeError, match=r"`fn` must be a function without arguments.*lambda"):
        median_time(3.0)
