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

A learner's edits are never lost. Each generated notebook records in its
metadata a fingerprint of the cells the generator wrote (their types and
sources). When ``notebooks/`` is generated again, a notebook that differs from
the new version is compared with that record and with the new version:

* its lesson did not change (same fingerprint) and the learner edited or ran
  it: it is left as it is;
* its lesson changed, or only its cell tags or metadata differ from the
  lesson's (the fingerprint cannot tell who changed those): a copy goes to
  ``notebooks/.backups/`` first, then the new version is written;
* it cannot be read as a notebook, or no copy can be made: it is left as it is
  and the report says so.

Outputs and execution counts, and the metadata Jupyter writes when it runs a
notebook (``language_info``, ``widgets``, cell timings), are not edits; a
notebook that has outputs still gets a copy before it is replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HEADER = re.compile(r"^#\s*Exercise\s+(\d+)\.(\d+)\s*:\s*(.+?)\s*$")
LESSON = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


class ExerciseFormatError(ValueError):
    """A solution notebook breaks the exercise format (markers, headers, numbering)."""


class NotebookProblem(ValueError):
    """A file cannot be read as a notebook; the message says why, without the file's name."""


class BackupError(OSError):
    """No copy of a notebook could be made, so it must not be overwritten."""


@dataclass(frozen=True)
class Exercise:
    lesson: int
    number: int
    task: str

    @property
    def label(self) -> str:
        return f"Exercise {self.lesson}.{self.number}"

    @property
    def stub(self) -> str:
        """What replaces the solution region (before indentation): the learner's starting point."""
        message = json.dumps(f"{self.label}: {self.task}")
        return f"# YOUR CODE HERE\nraise NotImplementedError({message})"


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
            out.extend(inside + line for line in exercise.stub.splitlines())
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
    try:
        nb = read_notebook(path)
    except NotebookProblem as problem:
        raise ExerciseFormatError(f"{path.name} {problem}.") from None
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


def _short(error: Exception) -> str:
    """One line out of nbformat's (often page-long) validation error."""
    message = (getattr(error, "message", None) or str(error)).splitlines()[0]
    if len(message) > 80:
        message = "it does not follow the notebook format"
    where = list(getattr(error, "absolute_path", None) or [])
    if len(where) >= 2 and where[0] == "cells":
        message = f"cell {where[1]}: {message}"
    return message


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` as nbformat 4, validated; :class:`NotebookProblem` if it is none."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise NotebookProblem(f"cannot be read ({error.strerror})") from None
    if not raw.strip():
        raise NotebookProblem("is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotebookProblem(
            f"is not UTF-8 text (byte {error.start} cannot be read as UTF-8), so it cannot be "
            "a notebook"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookProblem(
            f"is not valid JSON ({error.msg.removesuffix(' at')} at line {error.lineno}, "
            f"column {error.colno}; was it cut short, or edited outside Jupyter?)"
        ) from None
    if not isinstance(data, dict) or not ({"cells", "worksheets"} & set(data)):
        raise NotebookProblem("is JSON but not a notebook (it has no cells)")
    try:
        with warnings.catch_warnings():  # e.g. "cell is missing an id": nbformat adds one
            warnings.simplefilter("ignore")
            nb = nbformat.convert(nbformat.reader.reads(text), 4)
            nbformat.validate(nb)
    except (nbformat.ValidationError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise NotebookProblem(f"is not a valid notebook ({_short(error)})") from None
    return nb


# Metadata that Jupyter writes when it runs or saves a notebook: not a learner's edit.
RUN_METADATA = ("language_info", "widgets", "nfcourse")
RUN_CELL_METADATA = ("execution",)


def _settings(nb: nbformat.NotebookNode) -> str:
    """Everything of a notebook that its fingerprint does not cover and a learner may change:
    notebook metadata, cell metadata (tags, ...) and attachments, cell by cell."""
    meta = {k: v for k, v in nb.metadata.items() if k not in RUN_METADATA}
    cells = [
        [
            {k: v for k, v in c.metadata.items() if k not in RUN_CELL_METADATA},
            c.get("attachments"),
        ]
        for c in nb.cells
    ]
    return json.dumps([meta, cells], sort_keys=True, default=str)


@dataclass(frozen=True)
class Changes:
    """How a notebook in ``notebooks/`` differs from the version ``generate`` writes now."""

    recorded: bool  # it carries the fingerprint of what was generated last time
    edited: bool  # its cells' types or sources differ from what was generated last time
    ran: bool  # it has outputs or execution counts
    settings: bool  # its tags, attachments or metadata differ from the new version's
    lesson_changed: bool  # the new version has other cells than what was generated last time

    @property
    def learners(self) -> bool:
        """Whether replacing it by the new version would lose anything of the learner's."""
        return not self.recorded or self.edited or self.ran or self.settings


def changes(path: Path, fresh: nbformat.NotebookNode) -> Changes:
    """Compare the notebook at ``path`` with ``fresh``; :class:`NotebookProblem` if unreadable."""
    nb = read_notebook(path)
    record = nb.metadata.get("nfcourse")
    recorded = record.get("fingerprint") if isinstance(record, dict) else None
    return Changes(
        recorded=recorded is not None,
        edited=recorded != _fingerprint(nb),
        ran=any(
            c.get("outputs") or c.get("execution_count") is not None
            for c in nb.cells
            if c.cell_type == "code"
        ),
        settings=_settings(nb) != _settings(fresh),
        lesson_changed=recorded != fresh.metadata["nfcourse"]["fingerprint"],
    )


def learner_changed(path: Path, fresh: nbformat.NotebookNode) -> bool:
    """Whether replacing the notebook at ``path`` by ``fresh`` could lose a learner's work
    (an unreadable file counts: a copy is kept to be safe)."""
    try:
        return changes(path, fresh).learners
    except NotebookProblem:
        return True


def backup(path: Path, folder: Path | None = None) -> Path:
    """Copy ``path`` to ``folder/<name>.<timestamp>.ipynb``; return the copy.

    ``folder`` is ``<its folder>/.backups`` unless given. :class:`BackupError` (with what
    to do) when no copy can be made."""
    folder = path.parent / ".backups" if folder is None else folder
    if folder.exists() and not folder.is_dir():
        raise BackupError(
            f"{folder} is a file, not a folder, and copies of your notebooks go there; "
            "rename or move that file, then run the command again"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    copy = folder / f"{path.stem}.{stamp}.ipynb"
    n = 1
    while copy.exists():
        copy = folder / f"{path.stem}.{stamp}-{n}.ipynb"
        n += 1
    try:
        folder.mkdir(exist_ok=True)
        shutil.copy2(path, copy)
    except OSError as error:
        raise BackupError(f"no copy of it could be made in {folder} ({error.strerror})") from None
    return copy


@dataclass(frozen=True)
class Outcome:
    """What ``generate`` did with one notebook; ``ok`` is False when it needs the learner."""

    path: Path
    what: str
    ok: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def _same(path: Path, text: str) -> bool:
    try:
        return path.read_bytes() == text.encode()
    except OSError:
        return False


def update(source: Path, target: Path) -> Outcome:
    """Write the exercise version of ``source`` to ``target`` unless that would lose work."""
    fresh = make_exercise_notebook(source)
    text = _render(fresh)
    if _same(target, text):
        return Outcome(target, "up to date")
    reset = f"`python -m nfcourse reset {source.name[:2]}`"
    note = ""
    if target.exists():
        try:
            mine = changes(target, fresh)
        except NotebookProblem as problem:
            return Outcome(
                target,
                f"{problem}; left as it is. {reset} replaces it and keeps a copy of it in "
                f"{target.parent / '.backups'}",
                ok=False,
            )
        if mine.recorded and not mine.lesson_changed and (mine.edited or mine.ran):
            return Outcome(
                target,
                f"you {'edited' if mine.edited else 'ran'} it and its lesson has not changed: "
                f"left as it is ({reset} gives a fresh copy and keeps yours)",
            )
        if mine.learners:
            try:
                copy = backup(target)
            except BackupError as error:
                return Outcome(target, f"not updated: {error}", ok=False)
            why = (
                "it was not written by `generate` (it has no fingerprint)"
                if not mine.recorded
                else "its lesson changed"
                if mine.lesson_changed
                else "its cell tags or metadata differed from the lesson's"
            )
            note = f": {why}; your version was kept as {copy}"
    try:
        target.write_text(text)
    except OSError as error:
        return Outcome(target, f"could not be written ({error.strerror})", ok=False)
    return Outcome(target, f"written{note}")


def extra(solutions: Path, notebooks: Path) -> list[str]:
    """Names of notebooks in ``notebooks/`` that are no lesson of ``solutions/``."""
    lessons = {p.name for p in Path(solutions).glob("*.ipynb")}
    return sorted(p.name for p in Path(notebooks).glob("*.ipynb") if p.name not in lessons)


def generate(solutions: Path, notebooks: Path) -> list[Outcome]:
    """Write every exercise notebook that can be written without losing a learner's work;
    return what happened to each notebook in ``notebooks/``."""
    solutions, notebooks = Path(solutions), Path(notebooks)
    if notebooks.exists() and not notebooks.is_dir():
        return [
            Outcome(
                notebooks,
                "is a file, not a folder, and the lessons go in a folder of that name; "
                "rename or move that file, then run the command again",
                ok=False,
            )
        ]
    notebooks.mkdir(exist_ok=True)
    done = [update(s, notebooks / s.name) for s in sorted(solutions.glob("*.ipynb"))]
    return done + [
        Outcome(notebooks / name, "not part of the course (no lesson of that name); left alone")
        for name in extra(solutions, notebooks)
    ]


def stale(solutions: Path, notebooks: Path) -> list[str]:
    """Names of exercise notebooks missing or differing from what ``generate`` would write,
    then those without a lesson."""
    solutions, notebooks = Path(solutions), Path(notebooks)
    out = [
        source.name
        for source in sorted(solutions.glob("*.ipynb"))
        if not _same(notebooks / source.name, _render(make_exercise_notebook(source)))
    ]
    return out + extra(solutions, notebooks)
