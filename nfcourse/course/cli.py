"""The course's command line: ``python -m nfcourse [command]``.

Commands:
    (none)      list the lessons and the commands
    check       run notebooks headlessly and report every exercise
    reset       restore a fresh exercise notebook (your version is kept as a copy)
    doctor      check that this environment is ready for the course
    generate    write notebooks/ from solutions/ (never loses an edited notebook)
    nbgrader    write an nbgrader course folder (source notebooks with grading metadata)
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .check import MIME, Result
from .exercises import (
    HEADER,
    LESSON,
    BackupError,
    ExerciseFormatError,
    NotebookProblem,
    backup,
    generate,
    learner_changed,
    make_exercise_notebook,
    read_notebook,
)

ROOT = Path(__file__).resolve().parents[2]


def course_root() -> Path:
    """The course folder: the current one if it holds notebooks/, else the package's checkout."""
    here = Path.cwd()
    return here if (here / "solutions").is_dir() or (here / "notebooks").is_dir() else ROOT


def restore_hint(path: Path) -> str:
    """What to do about a lesson notebook that cannot be read."""
    if LESSON.match(path.name):
        return (
            f"Restore it with `python -m nfcourse reset {path.name[:2]}` "
            "(the damaged file is kept in notebooks/.backups/)."
        )
    return "If it is yours, look for an earlier copy in notebooks/.backups/."


def lesson_title(path: Path) -> str:
    """The first Markdown heading of a notebook, without the leading #'s."""
    try:
        nb = read_notebook(path)
    except NotebookProblem:
        where = f"{path.parent.name}/{path.name}"
        return f"(cannot be read as a notebook: `python -m nfcourse check {where}` says why)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def list_lessons(root: Path) -> str:
    lines = [
        "nfcourse: normalizing flows, hands on",
        "",
        "Lessons (open them in JupyterLab with `make lab`):",
    ]
    folder = root / "notebooks"
    lessons = sorted(folder.glob("[0-9][0-9]_*.ipynb")) if folder.is_dir() else []
    lines += [f"  {p.relative_to(root)}  {lesson_title(p)}" for p in lessons] or ["  (none yet)"]
    lines += [
        "",
        "Commands (python -m nfcourse COMMAND):",
        "  check NOTEBOOK...   run notebooks (or folders of them) headlessly and report every",
        "                      exercise: passed, not done, or failed with a hint",
        "  reset NN            restore a fresh exercise notebook NN; yours is kept as a copy",
        "  doctor              check Python, torch, JupyterLab and widgets; say what to fix",
        "  generate            write notebooks/ from solutions/ (never loses an edited notebook)",
        "  nbgrader FOLDER     write an nbgrader course folder for a graded course",
    ]
    return "\n".join(lines)


@dataclass
class Report:
    """What a headless run of one notebook found."""

    path: Path
    exercises: dict[str, dict] = field(default_factory=dict)  # label -> result (or None)
    errors: list[str] = field(default_factory=list)
    problem: str = ""  # a reason the run stopped early
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        statuses = [r["status"] if r else "not reached" for r in self.exercises.values()]
        return {s: statuses.count(s) for s in ("passed", "not done", "failed", "not reached")}

    @property
    def ok(self) -> bool:
        c = self.counts()
        return not self.problem and not self.errors and c["passed"] == len(self.exercises)


def expected_exercises(nb: nbformat.NotebookNode) -> list[str]:
    """The exercise labels announced by '# Exercise N.M: ...' lines, in order."""
    labels = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for line in cell.source.splitlines():
                match = HEADER.match(line.strip())
                if match:
                    labels.append(f"Exercise {match.group(1)}.{match.group(2)}")
    return labels


def first_line(source: str, width: int = 40) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def run_notebook(path: Path, timeout: int = 300) -> Report:
    """Execute a copy of the notebook (the file is not modified) and collect the verdicts.

    :class:`NotebookProblem` when the file cannot be read as a notebook."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    report = Report(path)
    nb = read_notebook(path)
    report.exercises = dict.fromkeys(expected_exercises(nb))
    running = [-1]  # the index of the cell being run
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
        # the kernel's own warnings (e.g. about its local TCP sockets) are noise in a report;
        # its errors still show
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        # stop the kernel at once when done: a graceful shutdown of a kernel still busy with a
        # cell that timed out makes it print a traceback of its own
        shutdown_kernel="immediate",
        on_cell_start=lambda cell, cell_index: running.__setitem__(0, cell_index),
    )
    start = time.perf_counter()
    # the kernel reports every exercise instead of stopping at one (this process is untouched)
    env = {**os.environ, "NFCOURSE_STRICT": "0"}
    stopped_at = None
    try:
        client.execute(env=env)
    except CellTimeoutError:
        stopped_at = running[0]
        source = first_line(nb.cells[stopped_at].source)
        report.problem = (
            f"cell {stopped_at} ({source}) ran longer than {timeout} s and was stopped, so the "
            "cells after it did not run; look for an endless loop, or raise --timeout"
        )
    except DeadKernelError as error:
        report.problem = f"the kernel died ({error}); out of memory? restart and try again."
    report.seconds = time.perf_counter() - start
    for index, cell in enumerate(nb.cells):
        if index == stopped_at:  # its interruption is no error of the learner's
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME in data:
                result = data[MIME]
                report.exercises[result["exercise"]] = result
            if output.get("output_type") == "error":
                report.errors.append(f"cell {index}: {output['ename']}: {output['evalue']}")
    return report


def format_report(report: Report) -> str:
    lines = [f"{report.path}  ({report.seconds:.0f} s)"]
    for label, result in report.exercises.items():
        if result is None:
            lines.append(f"  ·  {label} not reached: the notebook stopped before its check ran")
        else:
            lines.append(f"  {Result(**result).line}")
    if not report.exercises:
        lines.append("  (this notebook has no exercises)")
    lines += [f"  ⚠ error in {e}" for e in report.errors]
    if report.problem:
        lines.append(f"  ⚠ stopped: {report.problem}")
    return "\n".join(lines)


def summary_table(reports: list[Report]) -> str:
    rows = [("notebook", "passed", "not done", "failed", "not reached", "errors", "seconds")]
    for r in reports:
        c = r.counts()
        rows.append(
            (
                r.path.name,
                *(str(c[k]) for k in ("passed", "not done", "failed", "not reached")),
                str(len(r.errors) + bool(r.problem)),
                f"{r.seconds:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def did_you_mean(path: Path) -> str:
    """' Did you mean: ...?' with the notebooks next to ``path`` whose names are close."""
    folder = path.parent if path.parent.is_dir() else Path(".")
    candidates = [p.name for p in folder.glob("*.ipynb")]
    close = difflib.get_close_matches(path.name, candidates, n=3, cutoff=0.4)
    return f" Did you mean: {', '.join(str(folder / c) for c in close)}?" if close else ""


def resolve(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Notebook files from files and folders; a message for each path that gives none."""
    found, problems = [], []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = sorted(path.glob("*.ipynb"))
            found += inside
            if not inside:
                problems.append(
                    f"{name}: no notebook (.ipynb file) in this folder; the lessons are in "
                    "notebooks/ (folders inside it are not searched)."
                )
        elif path.is_file() and path.suffix == ".ipynb":
            found.append(path)
        elif path.exists():
            kind = f"a {path.suffix} file" if path.suffix else "a file without an extension"
            twin = path.with_suffix(".ipynb")
            also = f" Did you mean {twin}?" if twin.is_file() else ""
            problems.append(
                f"{name}: not a notebook ({kind}); `check` takes .ipynb files or folders of "
                f"them.{also}"
            )
        else:
            problems.append(f"{name}: no such notebook.{did_you_mean(path)}")
    return found, problems


def cmd_check(args: argparse.Namespace) -> int:
    paths, problems = resolve(args.notebooks)
    for p in problems:
        print(p, file=sys.stderr)
    if not paths:
        return 2
    reports = []
    for path in paths:
        try:
            report = run_notebook(path, timeout=args.timeout)
        except NotebookProblem as problem:
            report = Report(path, problem=f"this file {problem}")
            print(f"{path}: not checked: it {problem}. {restore_hint(path)}", flush=True)
        else:
            print(format_report(report), flush=True)
        reports.append(report)
    if len(reports) > 1:
        print()
        print(summary_table(reports))
    return 0 if all(r.ok for r in reports) and not problems else 1


def find_lesson(root: Path, key: str) -> Path | None:
    """The solution notebook for '04', '4', '04_coupling_flows' or a notebook path."""
    name = Path(key).name
    match = re.match(r"^(\d{1,2})(?:_|$|\.)", name)
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        if name in (path.name, path.stem) or (match and int(match.group(1)) == int(path.name[:2])):
            return path
    return None


def cmd_reset(args: argparse.Namespace) -> int:
    root = Path(args.root)
    solution = find_lesson(root, args.lesson)
    if solution is None:
        print(f"no lesson {args.lesson!r}; the lessons are:", file=sys.stderr)
        for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
            print(f"  {path.name[:2]}  {path.stem}", file=sys.stderr)
        return 2
    target = root / "notebooks" / solution.name
    fresh = make_exercise_notebook(solution)
    note = ""
    try:
        if target.exists() and learner_changed(target, fresh):
            note = f"; your version was kept as {backup(target)}"
        target.parent.mkdir(exist_ok=True)
        target.write_text(nbformat.writes(fresh) + "\n")
    except BackupError as error:
        print(f"{target}: not reset, left as it is: {error}.", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{target}: not reset: it could not be written ({error.strerror}).", file=sys.stderr)
        return 1
    print(f"{target}: a fresh copy of lesson {solution.name[:2]}{note}")
    print("If it is open in JupyterLab, close it without saving, or use File > Reload from Disk.")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "solutions").is_dir():
        print(
            f"{root}: no solutions/ folder here; `generate` writes notebooks/ from the "
            "course's solutions/ (for a fresh copy of one lesson, use `reset NN`).",
            file=sys.stderr,
        )
        return 2
    try:
        outcomes = generate(root / "solutions", root / "notebooks")
    except ExerciseFormatError as error:
        print(f"solutions/{error}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        print(outcome)
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_nbgrader(args: argparse.Namespace) -> int:
    from .grading import export

    root = Path(args.root)
    lessons, unknown = [], []
    for key in args.lessons or ["*"]:
        found = (
            sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))
            if key == "*"
            else [p for p in [find_lesson(root, key)] if p]
        )
        lessons += [p for p in found if p not in lessons]
        if not found:
            unknown.append(key)
    if unknown or not lessons:
        names = ", ".join(repr(k) for k in unknown) or "none"
        print(f"no such lesson in {root / 'solutions'}: {names}; the lessons are:", file=sys.stderr)
        for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
            print(f"  {path.name[:2]}  {path.stem}", file=sys.stderr)
        return 2
    try:
        done = export(Path(args.folder), lessons, points=args.points, timeout=args.timeout)
    except ExerciseFormatError as error:
        print(f"solutions/{error}", file=sys.stderr)
        return 1
    except (BackupError, OSError) as error:
        print(f"{args.folder}: nothing more written: {error}", file=sys.stderr)
        return 1
    print("\n".join(done))
    first = lessons[0].stem
    print(
        f"\nNext, in {args.folder}: `nbgrader generate_assignment {first}` writes the learners' "
        f"version to release/{first}/; `nbgrader autograde {first}` grades submitted/*/{first}/ "
        "(docs/instructors.md, 'A graded course')."
    )
    return 0


def points(text: str) -> float:
    """``--points``: points per exercise, a positive number."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a positive number of points per exercise, got {text!r}; e.g. --points 2"
        )
    return value


def seconds(text: str) -> int:
    """``--timeout``: a positive whole number of seconds (0 would let a cell run forever)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of seconds per cell, got {text!r}; e.g. --timeout 600"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds per cell, got {text} (0 or less would let "
            "an endless cell run forever); e.g. --timeout 600"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nfcourse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="run notebooks headlessly and report every exercise")
    check.add_argument("notebooks", nargs="+", help="notebook files or folders of notebooks")
    check.add_argument(
        "--timeout", type=seconds, default=300, help="seconds per cell (default 300)"
    )
    reset = sub.add_parser("reset", help="restore a fresh exercise notebook, keeping yours")
    reset.add_argument("lesson", help="the lesson: 04, 4, 04_coupling_flows or its file name")
    sub.add_parser("doctor", help="check this environment and say what to fix")
    gen = sub.add_parser("generate", help="write notebooks/ from solutions/")
    grade = sub.add_parser("nbgrader", help="write an nbgrader course folder (graded course)")
    grade.add_argument("folder", help="the nbgrader course folder to write, e.g. grading")
    grade.add_argument("lessons", nargs="*", help="lessons (04, 04_coupling_flows); default all")
    grade.add_argument("--points", type=points, default=1, help="points per exercise (1)")
    grade.add_argument(
        "--timeout", type=seconds, default=300, help="seconds per cell when grading (300)"
    )
    for command in (reset, gen, grade):
        command.add_argument("--root", default=str(course_root()), help="the course folder")
    args = parser.parse_args(argv)
    if args.command == "reset":
        return cmd_reset(args)
    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()
    if args.command == "check":
        return cmd_check(args)
    if args.command == "generate":
        return cmd_generate(args)
    if args.command == "nbgrader":
        return cmd_nbgrader(args)
    print(list_lessons(course_root()))
    return 0
