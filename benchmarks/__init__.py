"""Benchmarks of nfcourse against zuko and nflows, and measurements of the course itself.

Run them all with ``python -m benchmarks`` (or ``make bench``); the results go to
``docs/benchmarks.md`` with figures under ``docs/figures/``. Benchmarks are not tests:
timings depend on the machine and on what else runs on it. A smoke test
(``tests/test_benchmarks.py``) runs the whole suite at a tiny budget.

Modules: :mod:`.models` (matched flows per library), :mod:`.quality` (held-out NLL at
equal budget), :mod:`.speed` (log-density, training step, sampling), :mod:`.vi` (variational
inference: planar depths on U1, lesson 08's flows on U1-U4), :mod:`.tabular` (mixtures in
D = 4 to 16), :mod:`.digits` (lesson 07's image flow in bits/dim), :mod:`.continuous`
(lesson 10's flow matching), :mod:`.ablation` (one default reverted at a time),
:mod:`.common` (shared statistics and run records), :mod:`.lesson_times` (the notebooks'
run times), :mod:`.classroom` (N learners on one machine), :mod:`.report` (the page).
"""
