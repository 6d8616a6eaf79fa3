"""The classroom measurement's arithmetic: the sizing rule and the slow-down table.

The measurement itself (N kernels at once) is a benchmark, run by hand on a quiet
machine (docs/hub.md, "Sizing"); here its figures are made up so that the rule's
answer is known.
"""

from __future__ import annotations

import math

from benchmarks import classroom


def learner(cpu: float, rss: float, wall: float, error: str | None = None) -> dict:
    return {"wall_s": wall, "kernel_cpu_s": cpu, "kernel_peak_rss_mib": rss, "error": error}


def results() -> dict:
    return {
        "machine": {"usable_cores": 2, "cpu_count": 4},
        "server_mib": 100.0,
        "classes": [
            {"lesson": "01_light", "learners": 1, "per_learner": [learner(5.0, 300.0, 6.0)]},
            {"lesson": "03_heavy", "learners": 1, "per_learner": [learner(80.0, 350.0, 82.0)]},
            {
                "lesson": "03_heavy",
                "learners": 4,
                "per_learner": [learner(90.0, 360.0, 170.0) for _ in range(3)]
                # a failed learner's figures are not counted
                + [learner(1.0, 9999.0, 1.0, error="RuntimeError: kernel died")],
            },
            {"lesson": "07_big", "learners": 1, "per_learner": [learner(20.0, 700.0, 26.0)]},
        ],
    }


def test_sizing_uses_the_heaviest_lesson_and_the_largest_kernel():
    rule = classroom.sizing(results(), class_size=30, within_s=180.0)
    assert rule["heaviest_lesson"] == "03_heavy"
    # kernels sharing cores need more CPU each (90 s at N = 4 against 80 s alone): the larger
    # counts, 30 learners x 90 s within 180 s
    assert rule["cores"] == 15
    assert rule["heaviest_cpu_s"] == 90.0
    assert rule["kernel_peak_mib"] == 700.0  # the failed learner's 9999 is not a measurement
    assert rule["per_learner_mib"] == 800  # kernel + idle server
    assert rule["memory_gib"] == math.ceil(30 * 800 * 1.25 / 1024 + 2) == 32


def test_sizing_scales_with_the_class():
    assert classroom.sizing(results(), class_size=9, within_s=180.0)["cores"] == 5  # 4.5


def test_slowdowns_compare_with_sharing_the_cores():
    lines = classroom.slowdowns(results())
    assert lines == ["- 03_heavy: N = 4: 2.1x (N / cores = 2.0)"]


def test_the_page_states_the_rule():
    res = results() | {"command": "python benchmarks/classroom.py", "interval_s": 0.2}
    res["machine"] |= {"date": "2026-12-02", "processor": "x86_64", "memory_gib": 8, "python": "3"}
    for row in res["classes"]:
        row |= {"machine_extra_memory_gib": 0.5, "cpu_busy_before_percent": 0.0}
    page = classroom.markdown(res)
    assert "**15 cores**" in page and "**32 GiB**" in page
    assert "kernel died" in page  # a failed run is listed, not dropped silently
