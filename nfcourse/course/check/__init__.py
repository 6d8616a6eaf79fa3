"""Exercise checks: ``check.<name>(learner_code)`` right after each exercise.

Each lesson's checks live in ``nfcourse/course/check/lessonNN.py`` and list their
public names in ``__all__``; they are all available here, e.g.
``from nfcourse import check; check.affine_coupling(AffineCoupling)``. Adding
a lesson's checks is therefore a one-file change. See :mod:`nfcourse.course.check._core`
for what a check returns and how strict mode works.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._core import MIME, CheckFailed, Mistake, Result, exercise, strict

__all__ = ["MIME", "CheckFailed", "Mistake", "Result", "exercise", "strict"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("lesson"):
        _module = importlib.import_module(f"{__name__}.{_info.name}")
        for _name in _module.__all__:
            globals()[_name] = getattr(_module, _name)
        __all__ += list(_module.__all__)
