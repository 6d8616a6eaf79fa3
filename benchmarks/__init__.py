"""Benchmarks of nfcourse against zuko and nflows: quality, speed, variational inference.

Run them all with ``python -m benchmarks`` (or ``make bench``); the results go to
``docs/benchmarks.md`` with figures under ``docs/figures/``. Benchmarks are not tests:
timings depend on the machine and on what else runs on it. A smoke test
(``tests/test_benchmarks.py``) runs the whole suite at a tiny budget.

Modules: :mod:`.models` (matched flows per library), :mod:`.quality` (held-out NLL at
equal budget), :mod:`.speed` (log-density, training step, sampling), :mod:`.vi` (planar
flows on U1), :mod:`.lesson_times` (the notebooks' run times), :mod:`.report` (the page).
"""
