"""A graded course with nbgrader: the export (fast tests) and one real nbgrader round."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from test_exercises import lesson  # a small solution notebook with one exercise

from nfcourse.course import grading
from nfcourse.course.cli import main
from nfcourse.course.exercises import ExerciseFormatError, exercises, lesson_number

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_exercise_is_a_solution_cell_graded_by_its_check(path):
    nb = grading.nbgrader_source(path, points=2)
    solution = nbformat.read(path, as_version=4)
    assert [c.source for c in nb.cells] == [c.source for c in solution.cells]
    found = exercises(nb, lesson_number(path), path.name)
    marked = {i: c.metadata["nbgrader"] for i, c in enumerate(nb.cells) if "nbgrader" in c.metadata}
    assert len(marked) == 2 * len(found)
    for index, exercise in found:
        suffix = f"{exercise.lesson}_{exercise.number}"
        assert marked[index]["solution"] and not marked[index]["grade"]
        assert marked[index]["grade_id"] == f"exercise_{suffix}"
        graded = [i for i, m in marked.items() if m["grade_id"] == f"check_{suffix}"]
        assert len(graded) == 1 and graded[0] > index
        assert graded[0] == index + 1 or all(
            c.cell_type == "markdown" for c in nb.cells[index + 1 : graded[0]]
        )
        assert "check." in nb.cells[graded[0]].source
        assert marked[graded[0]] | {"points": None} == {
            "grade": True,
            "grade_id": f"check_{suffix}",
            "locked": True,
            "points": None,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
        assert marked[graded[0]]["points"] == 2


def test_an_exercise_without_its_check_is_refused(tmp_path):
    path = lesson(tmp_path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[3].source = "print('no check here')"
    nbformat.write(nb, path)
    with pytest.raises(ExerciseFormatError, match="Exercise 7.1 is not followed by .* check"):
        grading.nbgrader_source(path)


def test_the_export_keeps_an_instructors_edit(tmp_path, capsys):
    path = lesson(tmp_path)
    folder = tmp_path / "grading"
    assert main(["nbgrader", str(folder), "07", "--root", str(tmp_path)]) == 0
    source = folder / "source" / "07_demo" / "07_demo.ipynb"
    assert "strict" in (folder / "nbgrader_config.py").read_text().lower()
    edited = nbformat.read(source, as_version=4)
    edited.cells[3].source += "  # edited"
    nbformat.write(edited, source)
    assert main(["nbgrader", str(folder), "7", "--root", str(tmp_path), "--points", "3"]) == 0
    kept = list((folder / ".backups").glob("07_demo.*.ipynb"))
    assert len(kept) == 1 and "# edited" in kept[0].read_text()
    assert nbformat.read(source, as_version=4).cells[3].metadata["nbgrader"]["points"] == 3
    assert "kept as" in capsys.readouterr().out
    assert path.exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["99"], "no such lesson in .*'99'"),
        (["--points", "0"], "expected a positive number of points per exercise, got '0'"),
        (["--points", "many"], "expected a positive number of points per exercise"),
        (["--timeout", "0"], "expected a positive number of seconds per cell"),
    ],
)
def test_bad_arguments_say_what_to_give(tmp_path, capsys, argv, says):
    lesson(tmp_path)
    try:
        code = main(["nbgrader", str(tmp_path / "grading"), *argv, "--root", str(tmp_path)])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    assert re.search(says, capsys.readouterr().err)
    assert not (tmp_path / "grading" / "source").exists()


def test_a_real_nbgrader_round(tmp_path):
    """nbgrader writes notebooks/ exactly, and grades one exercise per planted mistake.

    Lesson 01 has three independent exercises (1 point each): the solutions get 3, the
    untouched learner version 0, and a missing abs in Exercise 1.2 loses exactly its point.
    """
    folder = tmp_path / "grading"
    assert main(["nbgrader", str(folder), "--root", str(ROOT)]) == 0
    slip = {
        "grade_id": "exercise_1_2",
        "old": "torch.log(torch.abs(a * d - b * c))",
        "new": "torch.log(a * d - b * c)",
    }
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs alembic from its own bin/
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("NFCOURSE_STRICT", None)
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "grading_round.py"),
            str(folder),
            "01_change_of_variables",
        ],
        input=json.dumps(slip),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(result["release"]) == [p.stem for p in SOLUTIONS]
    for name, released in result["release"].items():
        ours = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        theirs = nbformat.read(released, as_version=4)
        assert [(c.cell_type, c.source) for c in theirs.cells] == [
            (c.cell_type, c.source) for c in ours.cells
        ], name
    assert result["scores"] == {
        "solved": {"check_1_1": 1.0, "check_1_2": 1.0, "check_1_3": 1.0},
        "untouched": {"check_1_1": 0.0, "check_1_2": 0.0, "check_1_3": 0.0},
        "slip": {"check_1_1": 1.0, "check_1_2": 0.0, "check_1_3": 1.0},
    }
