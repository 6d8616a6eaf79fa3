"""Generate the learners' exercise notebooks (``notebooks/``) from ``solutions/``.

``solutions/`` is the only place where lessons are written. In a solution
notebook, an exercise cell starts with a comment line

    # Exercise N.M: <what to do>

and marks its solution with nbgrader-style markers::

    ### BEGIN SOLUTION
    ...reference code...
    ### END SOLUTION

The generator replaces each marked region by a stub, indented like the
region, that raises ``NotImplementedError("Exercise N.M: <what to do>")``;
everything else is copied, outputs are dropped. ``N`` must be the lesson's
number (from the file name ``NN_slug.ipynb``) and ``M`` counts from 1.

A learner's edits are never lost: before a notebook in ``notebooks/`` is
overwritten, the generator compares it with the content it generated last
time (a fingerprint stored in its metadata); if the learner changed or ran
it, a copy goes to ``notebooks/.backups/`` first.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HEADER = re.compile(r"^#\s*Exercise\s+(\d+)\.(\d+)\s*:\s*(.+?)\s*$")
LESSON = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


class ExerciseFormatError(ValueError):
    """A solution notebook breaks the exercise format (markers, headers, numbering)."""


@dataclass(frozen=True)
class Exercise:
    lesson: int
    number: int
    task: str

    @property
    def label(self) -> str:
        return f"Exercise {self.lesson}.{self.number}"


def lesson_number(path: Path) -> int:
    match = LESSON.match(path.name)
    if not match:
        raise ExerciseFormatError(
            f"{path.name}: lesson notebooks are named NN_slug.ipynb (two digits, then "
            "lowercase words joined by underscores), e.g. 04_coupling_flows.ipynb."
        )
    return int(match.group(1))


def stub_cell_source(source: str, exercise: Exercise, where: str) -> str:
    """The exercise version of one cell: every marked region replaced by a stub."""
    out: list[str] = []
    inside: str | None = None  # indentation of the open region
    for i, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside is not None:
                raise ExerciseFormatError(f"{where}, line {i}: {BEGIN} inside another region.")
            inside = line[: len(line) - len(line.lstrip())]
            if not inside:
                raise ExerciseFormatError(
                    f"{where}, line {i}: put the solution region inside a function or class "
                    "body; a stub at the top level would raise and stop Run All."
                )
            message = json.dumps(f"{exercise.label}: {exercise.task}")
            out.append(f"{inside}# YOUR CODE HERE")
            out.append(f"{inside}raise NotImplementedError({message})")
        elif stripped == END:
            if inside is None:
                raise ExerciseFormatError(f"{where}, line {i}: {END} without {BEGIN}.")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise ExerciseFormatError(f"{where}: {BEGIN} is never closed by {END}.")
    return "\n".join(out)


def exercises(nb: nbformat.NotebookNode, lesson: int, name: str) -> list[tuple[int, Exercise]]:
    """``(cell index, exercise)`` for every exercise cell, checked for numbering and markers."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source and END not in cell.source:
            continue
        first = cell.source.lstrip().splitlines()[0]
        match = HEADER.match(first)
        where = f"{name}, cell {index}"
        if not match:
            raise ExerciseFormatError(
                f"{where}: a cell with solution markers must start with a line "
                f"'# Exercise {lesson}.M: <what to do>', got {first!r}."
            )
        ex = Exercise(int(match.group(1)), int(match.group(2)), match.group(3))
        expected = len(found) + 1
        if ex.lesson != lesson or ex.number != expected:
            raise ExerciseFormatError(
                f"{where}: expected 'Exercise {lesson}.{expected}', got '{ex.label}' "
                "(exercises are numbered by lesson, then 1, 2, ... in order)."
            )
        found.append((index, ex))
    return found


def _fingerprint(nb: nbformat.NotebookNode) -> str:
    text = json.dumps([[c.cell_type, c.source] for c in nb.cells])
    return hashlib.sha256(text.encode()).hexdigest()


def make_exercise_notebook(path: Path) -> nbformat.NotebookNode:
    """The exercise version of the solution notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    lesson = lesson_number(path)
    stubs = dict(exercises(nb, lesson, path.name))
    for index, cell in enumerate(nb.cells):
        cell.setdefault("id", f"cell-{index}")  # stable ids: same input, same file
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if index in stubs:
                cell.source = stub_cell_source(
                    cell.source, stubs[index], f"{path.name}, cell {index}"
                )
    nb.metadata.pop("widgets", None)
    nb.metadata["nfcourse"] = {"generated_from": f"solutions/{path.name}"}
    nb.metadata["nfcourse"]["fingerprint"] = _fingerprint(nb)
    return nb


def _render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def learner_changed(path: Path) -> bool:
    """Whether a generated notebook was edited or run since it was generated."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # unreadable: keep a copy to be safe
        return True
    recorded = nb.metadata.get("nfcourse", {}).get("fingerprint")
    has_outputs = any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    return recorded != _fingerprint(nb) or has_outputs


def backup(path: Path) -> Path:
    """Copy ``path`` to ``<its folder>/.backups/<name>.<timestamp>.ipynb``; return the copy."""
    folder = path.parent / ".backups"
    folder.mkdir(exist_ok=True)
    copy = folder / f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}.ipynb"
    n = 1
    while copy.exists():
        copy = folder / f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}-{n}.ipynb"
        n += 1
    shutil.copy2(path, copy)
    return copy


def generate(solutions: Path, notebooks: Path) -> list[str]:
    """Write every exercise notebook; return a line per notebook saying what happened."""
    solutions, notebooks = Path(solutions), Path(notebooks)
    notebooks.mkdir(exist_ok=True)
    report = []
    for source in sorted(solutions.glob("*.ipynb")):
        text = _render(make_exercise_notebook(source))
        target = notebooks / source.name
        if target.exists() and target.read_text() == text:
            report.append(f"{target}: up to date")
            continue
        note = ""
        if target.exists() and learner_changed(target):
            note = f" (your version was kept as {backup(target)})"
        target.write_text(text)
        report.append(f"{target}: written{note}")
    return report


def stale(solutions: Path, notebooks: Path) -> list[str]:
    """Names of exercise notebooks missing or differing from what ``generate`` would write."""
    solutions, notebooks = Path(solutions), Path(notebooks)
    out = []
    for source in sorted(solutions.glob("*.ipynb")):
        target = notebooks / source.name
        if not target.exists() or target.read_text() != _render(make_exercise_notebook(source)):
            out.append(source.name)
    extra = {p.name for p in notebooks.glob("*.ipynb")} - {
        p.name for p in solutions.glob("*.ipynb")
    }
    return out + sorted(extra)
