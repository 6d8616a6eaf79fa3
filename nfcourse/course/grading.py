"""A graded course with nbgrader: ``python -m nfcourse nbgrader FOLDER [LESSON ...]``.

nbgrader (https://nbgrader.readthedocs.io) grades notebooks against a *source* version in
which every cell to grade carries nbgrader's cell metadata. The lessons already mark their
solutions nbgrader's way (``### BEGIN SOLUTION`` / ``### END SOLUTION``), so the export only
adds that metadata:

* an exercise cell (it starts with ``# Exercise N.M: ...``) becomes a *solution* cell,
  ``grade_id`` ``exercise_N_M``: nbgrader replaces its solution region by the learner's stub;
* the next code cell, which calls its check (``check.<name>(...)``), becomes a locked, *graded*
  cell, ``grade_id`` ``check_N_M``, worth ``points`` (1 by default): it passes when the
  check passes.

Graded cells must raise to lose their points, so the ``nbgrader_config.py`` written next
to ``source/`` turns on the checks' strict mode (``NFCOURSE_STRICT=1``: a check that is not
passed raises) for every nbgrader command run in that folder. It also gives a lesson cell
time to train (``Execute.timeout``), and swaps nbgrader's stub for the course's own
(:class:`nfcourse.course.nbgrader_stubs.ExerciseStubs`), so that ``nbgrader
generate_assignment`` writes exactly the exercise notebooks of ``notebooks/``.

The folder it writes is an nbgrader course folder::

    FOLDER/nbgrader_config.py
    FOLDER/source/04_coupling_flows/04_coupling_flows.ipynb
    ...

``docs/instructors.md`` shows the whole round (generate, collect, autograde, export).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from .exercises import ExerciseFormatError, backup, exercises, lesson_number, read_notebook

SCHEMA = 3  # nbgrader's cell metadata schema
CALLS_CHECK = re.compile(r"\bcheck[._]?\w*\(")  # check.spline_bin(...), check_double(...)


def _metadata(grade_id: str, *, solution: bool, points: float | None = None) -> dict:
    meta = {
        "grade": points is not None,
        "grade_id": grade_id,
        "locked": not solution,
        "schema_version": SCHEMA,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def _check_cell(nb: nbformat.NotebookNode, after: int, label: str, name: str) -> int:
    for index in range(after + 1, len(nb.cells)):
        cell = nb.cells[index]
        if cell.cell_type == "code":
            if CALLS_CHECK.search(cell.source):
                return index
            break
    raise ExerciseFormatError(
        f"{name}: {label} is not followed by a code cell that calls its check "
        "(check.<name>(...)), so nbgrader would have nothing to grade it by; put the check "
        "in the next code cell."
    )


def nbgrader_source(path: Path, points: float = 1) -> nbformat.NotebookNode:
    """The solution notebook at ``path`` with nbgrader's metadata on exercise and check cells."""
    nb = read_notebook(path)
    for index, cell in enumerate(nb.cells):
        cell.setdefault("id", f"cell-{index}")  # the ids of notebooks/ (exercises.py)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    for index, exercise in exercises(nb, lesson_number(path), path.name):
        suffix = f"{exercise.lesson}_{exercise.number}"
        nb.cells[index].metadata["nbgrader"] = _metadata(f"exercise_{suffix}", solution=True)
        checked = _check_cell(nb, index, exercise.label, path.name)
        nb.cells[checked].metadata["nbgrader"] = _metadata(
            f"check_{suffix}", solution=False, points=points
        )
    nb.metadata.pop("widgets", None)
    return nb


CONFIG = '''\
"""nbgrader's settings for the nfcourse lessons (written by `python -m nfcourse nbgrader`)."""

import os

# The checks raise when an exercise is not passed (strict mode), so its graded cell
# loses its points; every nbgrader command run in this folder sees this.
os.environ["NFCOURSE_STRICT"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# Lessons train small models: give a cell more than nbgrader's 30 s.
c.Execute.timeout = {timeout}
# The course's stub ('raise NotImplementedError("Exercise N.M: ...")') instead of
# nbgrader's bare one: the learner's version is then exactly the course's notebooks/.
from nfcourse.course.nbgrader_stubs import ExerciseStubs  # noqa: E402

c.GenerateAssignment.preprocessors = ExerciseStubs.generate_assignment()
'''


def export(folder: Path, lessons: list[Path], points: float = 1, timeout: int = 300) -> list[str]:
    """Write an nbgrader course folder for ``lessons`` (solution notebooks); say what was done.

    A source notebook already there that differs (an instructor's edit) is first copied to
    ``FOLDER/.backups/`` (outside ``source/``, so nbgrader never hands it out). Nothing is
    written unless every lesson can be exported.
    """
    sources = [(path, nbformat.writes(nbgrader_source(path, points)) + "\n") for path in lessons]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text(CONFIG.format(timeout=timeout))
    done = []
    for path, text in sources:
        target = folder / "source" / path.stem / path.name
        what = "written"
        if target.exists():
            if target.read_text() == text:
                done.append(f"{target}: up to date")
                continue
            what = (
                f"rewritten; the earlier version was kept as {backup(target, folder / '.backups')}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        done.append(f"{target}: {what}")
    return done
