"""The exercise generator, the check machinery and ``python -m nfcourse``, on small notebooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nfcourse.course import exercises
from nfcourse.course.check import CheckFailed, Mistake, Result, exercise
from nfcourse.course.cli import main, run_notebook

SOLUTION = """# Exercise 7.1: return twice the input
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
"""

CHECK = """from nfcourse.course.check import Mistake, exercise

@exercise("Exercise 7.1")
def check_double(fn):
    if fn(3) == 3:
        raise Mistake("double(3) returned 3", "you returned the input unchanged")
    if fn(3) != 6:
        raise Mistake(f"double(3) returned {fn(3)}, expected 6")
    return "double(3) == 6"

check_double(double)
"""


KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def lesson(tmp_path: Path, solution: str = SOLUTION, name: str = "07_demo.ipynb") -> Path:
    (tmp_path / "solutions").mkdir(exist_ok=True)
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Lesson 7: a demo"),
            new_code_cell("import torch\ntorch.manual_seed(0)"),
            new_code_cell(solution),
            new_code_cell(CHECK),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = tmp_path / "solutions" / name
    nbformat.write(nb, path)
    return path


def test_generator_replaces_solutions_by_stubs(tmp_path):
    lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    nb = nbformat.read(tmp_path / "notebooks" / "07_demo.ipynb", as_version=4)
    source = nb.cells[2].source
    assert "return 2 * x" not in source and "BEGIN SOLUTION" not in source
    assert '    raise NotImplementedError("Exercise 7.1: return twice the input")' in source
    assert source.startswith("# Exercise 7.1: return twice the input\ndef double(x):")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == []


def test_stale_notebooks_are_found(tmp_path):
    path = lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# Lesson 7: renamed"
    nbformat.write(nb, path)
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == ["07_demo.ipynb"]


def test_learner_edits_are_backed_up_before_regenerating(tmp_path):
    lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    target = tmp_path / "notebooks" / "07_demo.ipynb"
    # an untouched notebook is regenerated without a copy
    report = exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    assert [o.what for o in report] == ["up to date"]
    nb = nbformat.read(target, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("raise NotImplementedError", "return x + x  #")
    nbformat.write(nb, target)
    edited = target.read_text()
    path = tmp_path / "solutions" / "07_demo.ipynb"
    sol = nbformat.read(path, as_version=4)
    sol.cells[0].source = "# Lesson 7: new title"
    nbformat.write(sol, path)
    report = exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    assert "its lesson changed; your version was kept" in str(report[0]) and report[0].ok
    copies = list((tmp_path / "notebooks" / ".backups").glob("07_demo.*.ipynb"))
    assert len(copies) == 1 and copies[0].read_text() == edited
    assert "new title" in target.read_text()


@pytest.mark.parametrize(
    "solution, message",
    [
        (SOLUTION.replace("# Exercise 7.1", "# Exercise 7.2"), "expected 'Exercise 7.1'"),
        (SOLUTION.replace("# Exercise 7.1", "# Exercise 3.1"), "expected 'Exercise 7.1'"),
        (SOLUTION.replace("# Exercise 7.1: return twice the input\n", ""), "must start with"),
        (SOLUTION.replace("    ### END SOLUTION\n", ""), "never closed"),
        (SOLUTION.replace("    ### BEGIN SOLUTION\n", ""), "without"),
        (SOLUTION.replace("def double(x):\n    ### BEGIN", "### BEGIN"), "inside a function"),
    ],
)
def test_malformed_exercises_are_clear_errors(tmp_path, solution, message):
    lesson(tmp_path, solution)
    with pytest.raises(exercises.ExerciseFormatError, match=message):
        exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")


def test_lesson_file_names_are_checked(tmp_path):
    lesson(tmp_path, name="Lesson seven.ipynb")
    with pytest.raises(exercises.ExerciseFormatError, match="NN_slug.ipynb"):
        exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")


@exercise("Exercise 9.1")
def _check_square(fn):
    if fn(3) == 6:
        raise Mistake("square(3) returned 6", "you doubled instead of squaring")
    if fn(3) != 9:
        raise Mistake(f"square(3) returned {fn(3)}, expected 9")
    return "square(3) == 9"


def _stub(x):
    raise NotImplementedError("Exercise 9.1: square x")


def test_check_verdicts(monkeypatch, capsys):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)
    passed = _check_square(lambda x: x * x)
    assert passed and passed.status == "passed"
    wrong = _check_square(lambda x: 2 * x)
    assert not wrong and wrong.status == "failed" and "doubled" in wrong.hint
    todo = _check_square(_stub)
    assert not todo and todo.status == "not done"
    crash = _check_square(lambda x: x / "a")
    assert crash.status == "failed" and "TypeError" in crash.message
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✅ Exercise 9.1 passed")
    assert out[1].startswith("❌ Exercise 9.1 failed") and "Hint: you doubled" in out[1]
    assert out[2].startswith("⏳ Exercise 9.1 not done")


def _not_the_stub(x):
    raise NotImplementedError("negative numbers")


def _deep_in_torch(x):
    import torch

    return torch.nn.Linear(2, 2)(torch.zeros(3))  # the learner's line: wrong input size


def test_only_the_stubs_own_error_means_not_done(monkeypatch):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)
    result = _check_square(_not_the_stub)
    assert result.status == "failed" and "NotImplementedError: negative numbers" in result.message


def test_a_crash_points_at_the_learners_line_not_into_torch(monkeypatch):
    monkeypatch.delenv("NFCOURSE_STRICT", raising=False)
    result = _check_square(_deep_in_torch)
    line = _deep_in_torch.__code__.co_firstlineno + 3
    assert result.status == "failed" and "RuntimeError" in result.message
    assert f"see line {line} of _deep_in_torch()" in result.hint, result.line
    assert "inside torch" in result.hint


def test_strict_mode_raises_unless_passed(monkeypatch):
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    assert _check_square(lambda x: x * x)
    with pytest.raises(CheckFailed, match="doubled"):
        _check_square(lambda x: 2 * x)
    with pytest.raises(CheckFailed, match="not done"):
        _check_square(_stub)


def test_result_is_a_readable_value():
    result = Result("Exercise 1.1", "failed", "wrong sign", "flip it")
    assert not result
    assert result.line == "❌ Exercise 1.1 failed: wrong sign Hint: flip it"


def test_cli_check_reports_each_state(tmp_path, capfd):
    lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    solved = run_notebook(tmp_path / "solutions" / "07_demo.ipynb", timeout=60)
    assert solved.ok and solved.exercises["Exercise 7.1"]["status"] == "passed"
    todo = run_notebook(tmp_path / "notebooks" / "07_demo.ipynb", timeout=60)
    assert not todo.ok and todo.exercises["Exercise 7.1"]["status"] == "not done"
    assert todo.errors == []  # a stub never stops Run All
    # a wrong answer, a crash, and an endless loop
    wrong = lesson(tmp_path, SOLUTION.replace("2 * x", "x"), name="08_wrong.ipynb")
    nb = nbformat.read(wrong, as_version=4)
    nb.cells[1].source = "import torch\n1 / 0"
    nb.cells[2].source = nb.cells[2].source.replace("7.1", "8.1")
    nb.cells[3].source = nb.cells[3].source.replace("7.1", "8.1")
    nb.cells.append(new_code_cell("while True:\n    pass"))
    nbformat.write(nb, wrong)
    code = main(
        ["check", str(wrong), str(tmp_path / "solutions" / "07_demo.ipynb"), "--timeout", "5"]
    )
    out, err = capfd.readouterr()  # capfd: the kernels' own output too
    assert "without encryption" not in out + err  # the kernel's warnings stay out of the report
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out
    assert code == 1
    assert (
        "❌ Exercise 8.1 failed: double(3) returned 3 Hint: you returned the input unchanged" in out
    )
    assert "error in cell 1: ZeroDivisionError" in out
    [stop] = [line for line in out.splitlines() if "ran longer than" in line]
    assert stop == (
        "  ⚠ stopped: cell 4 (while True:) ran longer than 5 s and was stopped, so the cells "
        "after it did not run; look for an endless loop, or raise --timeout"
    )
    assert "✅ Exercise 7.1 passed" in out
    assert "notebook" in out.splitlines()[-3] and "08_wrong.ipynb" in out.splitlines()[-2]


def test_cli_check_renamed_or_missing_notebook(tmp_path, capsys):
    lesson(tmp_path)
    code = main(["check", str(tmp_path / "solutions" / "07_dem.ipynb")])
    err = capsys.readouterr().err
    assert code == 2 and "no such notebook" in err and "07_demo.ipynb" in err


def test_python_m_nfcourse_lists_lessons_and_commands():
    out = subprocess.run(
        [sys.executable, "-m", "nfcourse"], capture_output=True, text=True, check=True
    ).stdout
    assert "Lessons" in out and "check NOTEBOOK" in out and "generate" in out


def test_cli_check_reports_in_strict_mode_too_and_leaves_the_caller_alone(tmp_path, monkeypatch):
    """A strict caller (as the solution tests run) gets a report of every exercise, and its
    own NFCOURSE_STRICT is left as it was."""
    monkeypatch.setenv("NFCOURSE_STRICT", "1")
    wrong = lesson(tmp_path, SOLUTION.replace("2 * x", "x"))
    report = run_notebook(wrong, timeout=60)
    assert report.exercises["Exercise 7.1"]["status"] == "failed"
    assert report.errors == []  # the failing check reported, it did not raise
    assert os.environ["NFCOURSE_STRICT"] == "1"
