"""Bad inputs to `python -m nfcourse`, as a learner or an instructor makes them.

Each test plants one (a damaged notebook, a file that is no notebook, a timeout of 0, a
backup folder that is a file, an edited notebook...) and asserts a short message that says
what to do, the exit code, no traceback, and that no learner's work is lost.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from test_exercises import lesson  # a small solution notebook with one exercise

from nfcourse.course import exercises
from nfcourse.course.cli import main

ROOT = Path(__file__).resolve().parents[1]


def course(tmp_path: Path) -> Path:
    """A course folder with lesson 07 generated; the learner's notebook."""
    lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    return tmp_path / "notebooks" / "07_demo.ipynb"


def edit(path: Path, change) -> str:
    """Apply ``change`` to the notebook at ``path`` as Jupyter would save it; its new text."""
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)
    return path.read_text()


def change_lesson(tmp_path: Path) -> None:
    edit(tmp_path / "solutions" / "07_demo.ipynb", lambda nb: setattr(nb.cells[0], "source", "# 7"))


def backups(tmp_path: Path) -> list[str]:
    folder = tmp_path / "notebooks" / ".backups"
    return [p.read_text() for p in sorted(folder.glob("*.ipynb"))] if folder.is_dir() else []


def generate(tmp_path: Path, capsys) -> tuple[int, str]:
    code = main(["generate", "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


# --- check: files that are no notebook, or damaged ones --------------------------------------

GOOD = nbformat.writes(
    nbformat.v4.new_notebook(cells=[new_markdown_cell("# Hi"), new_code_cell("1 + 1")])
)
BROKEN = {  # file content -> what the message says is wrong
    "cut.ipynb": (GOOD[: len(GOOD) // 2], "is not valid JSON"),
    "empty.ipynb": ("", "is empty"),
    "latin1.ipynb": (GOOD.replace("Hi", "Hé").encode("latin-1"), "is not UTF-8 text"),
    "object.ipynb": ('{"name": "flows"}', "is JSON but not a notebook"),
    "list.ipynb": ("[1, 2, 3]", "is JSON but not a notebook"),
    "no_source.ipynb": (
        GOOD.replace('"source": [\n    "1 + 1"\n   ]', '"src": 1'),
        "is not a valid notebook",
    ),
    "version9.ipynb": (GOOD.replace('"nbformat": 4', '"nbformat": 9'), "is not a valid notebook"),
}


def plant(folder: Path, name: str) -> Path:
    content, _ = BROKEN[name]
    path = folder / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


@pytest.mark.parametrize("name", BROKEN)
def test_read_notebook_says_what_is_wrong(tmp_path, name):
    with pytest.raises(exercises.NotebookProblem, match=BROKEN[name][1]) as caught:
        exercises.read_notebook(plant(tmp_path, name))
    assert len(str(caught.value)) < 160 and "\n" not in str(caught.value)


def test_check_reports_each_damaged_notebook_in_one_line_and_runs_the_others(tmp_path, capfd):
    for name in BROKEN:
        plant(tmp_path, name)
    shutil.copy(plant(tmp_path, "cut.ipynb"), tmp_path / "07_demo.ipynb")  # a lesson's name
    (tmp_path / "good.ipynb").write_text(GOOD)
    code = main(["check", str(tmp_path), "--timeout", "60"])
    out, err = capfd.readouterr()
    assert code == 1 and "Traceback" not in out + err
    lines = out.splitlines()
    for name, (_, what) in BROKEN.items():
        [line] = [x for x in lines if x.startswith(f"{tmp_path / name}: ")]
        assert f"not checked: it {what}" in line and "notebooks/.backups/" in line
    [line] = [x for x in lines if x.startswith(f"{tmp_path / '07_demo.ipynb'}: ")]
    assert "Restore it with `python -m nfcourse reset 07`" in line
    assert f"{tmp_path / 'good.ipynb'}  (" in out  # the good one still ran
    assert "(this notebook has no exercises)" in out and "⚠" not in out


@pytest.mark.parametrize("name, kind", [("README.md", "a .md file"), ("notes", "a file without")])
def test_check_of_a_file_that_is_no_notebook(tmp_path, capsys, name, kind):
    (tmp_path / name).write_text("# notes\n")
    assert main(["check", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert f"not a notebook ({kind}" in err and "takes .ipynb files or folders" in err


def test_check_of_a_python_file_points_at_its_notebook(tmp_path, capsys):
    (tmp_path / "04_coupling_flows.py").write_text("x = 1\n")
    (tmp_path / "04_coupling_flows.ipynb").write_text(GOOD)
    assert main(["check", str(tmp_path / "04_coupling_flows.py")]) == 2
    err = capsys.readouterr().err
    assert "not a notebook (a .py file)" in err
    assert f"Did you mean {tmp_path / '04_coupling_flows.ipynb'}?" in err


@pytest.mark.parametrize("files", [[], ["README.md", "data.csv"]])
def test_check_of_a_folder_without_notebooks(tmp_path, capsys, files):
    for name in files:
        (tmp_path / name).write_text("x\n")
    assert main(["check", str(tmp_path)]) == 2
    assert f"{tmp_path}: no notebook (.ipynb file) in this folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", "a positive number"),
        ("-5", "a positive number"),
        ("1.5", "a whole number"),
        ("ten", "a whole number"),
    ],
)
def test_check_refuses_a_timeout_that_is_no_positive_number_of_seconds(capsys, value, expected):
    with pytest.raises(SystemExit) as stop:
        main(["check", "notebooks", "--timeout", value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"argument --timeout: expected {expected} of seconds per cell" in err
    assert "e.g. --timeout 600" in err


def test_lesson_list_survives_a_damaged_notebook(tmp_path, monkeypatch, capsys):
    target = course(tmp_path)
    target.write_text(target.read_text()[:100])
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "07_demo.ipynb  (cannot be read as a notebook: `python -m nfcourse check" in out


# --- generate: what the learner changed ------------------------------------------------------


def _tag(nb):
    nb.cells[2].metadata["tags"] = ["mine"]


def _attach(nb):
    nb.cells[0].attachments = {"a.png": {"image/png": "iVBORw0KGgo="}}


def _to_raw(nb):
    nb.cells[3] = nbformat.v4.new_raw_cell(nb.cells[3].source)


def _output(nb):
    nb.cells[1].outputs = [new_output("stream", name="stdout", text="trained\n")]
    nb.cells[1].execution_count = 1


LEARNER_CHANGES = {  # each is a change a learner makes that must never be lost
    "source": lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source + "\n# mine"),
    "added cell": lambda nb: nb.cells.append(new_code_cell("print('mine')")),
    "deleted cell": lambda nb: nb.cells.pop(3),
    "cell type": _to_raw,
    "cell tag": _tag,
    "cell metadata": lambda nb: nb.cells[1].metadata.update(collapsed=True),
    "notebook metadata": lambda nb: nb.metadata.update(title="my flows"),
    "attachment": _attach,
    "outputs": _output,
}


@pytest.mark.parametrize("change", LEARNER_CHANGES)
def test_any_learner_change_is_kept_before_a_changed_lesson_is_written(tmp_path, capsys, change):
    target = course(tmp_path)
    mine = edit(target, LEARNER_CHANGES[change])
    change_lesson(tmp_path)
    code, out = generate(tmp_path, capsys)
    assert code == 0 and "your version was kept as" in out
    assert backups(tmp_path) == [mine]
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == []


def _ran_in_jupyter(nb):
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2025-01-01T10:00:00Z"}


def test_what_jupyter_writes_by_running_is_no_edit(tmp_path, capsys):
    target = course(tmp_path)
    edit(target, _ran_in_jupyter)
    change_lesson(tmp_path)
    code, out = generate(tmp_path, capsys)
    assert code == 0 and "07_demo.ipynb: written\n" in out and backups(tmp_path) == []


@pytest.mark.parametrize("change", ["source", "added cell", "outputs"])
def test_an_edited_notebook_is_left_alone_while_its_lesson_is_unchanged(tmp_path, capsys, change):
    target = course(tmp_path)
    mine = edit(target, LEARNER_CHANGES[change])
    code, out = generate(tmp_path, capsys)
    assert code == 0 and target.read_text() == mine and backups(tmp_path) == []
    verb = "ran" if change == "outputs" else "edited"
    assert f"07_demo.ipynb: you {verb} it and its lesson has not changed: left as it is" in out
    assert "`python -m nfcourse reset 07` gives a fresh copy and keeps yours" in out
    # the maintainers' check still sees that it differs from the generated version
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == ["07_demo.ipynb"]
    # once the lesson changes, the edited notebook is kept as a copy and the new one written
    change_lesson(tmp_path)
    code, out = generate(tmp_path, capsys)
    assert code == 0 and "its lesson changed; your version was kept as" in out
    assert backups(tmp_path) == [mine] and "# 7" in target.read_text()


def test_only_tags_differ_and_the_lesson_is_unchanged(tmp_path, capsys):
    """Who changed the tags, the learner or the lesson? The fingerprint cannot tell: the
    lesson's version is written (a maintainer's retagging reaches notebooks/) and the
    learner's is kept as a copy."""
    target = course(tmp_path)
    mine = edit(target, _tag)
    code, out = generate(tmp_path, capsys)
    assert code == 0 and "cell tags or metadata differed from the lesson's" in out
    assert backups(tmp_path) == [mine]
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == []


def test_a_notebook_without_a_fingerprint_is_kept(tmp_path, capsys):
    target = course(tmp_path)
    mine = edit(target, lambda nb: nb.metadata.pop("nfcourse"))
    code, out = generate(tmp_path, capsys)
    assert code == 0 and "it was not written by `generate`" in out
    assert backups(tmp_path) == [mine]


@pytest.mark.parametrize("name", ["cut.ipynb", "latin1.ipynb", "object.ipynb"])
def test_generate_leaves_a_damaged_learner_notebook_alone(tmp_path, capsys, name):
    target = course(tmp_path)
    shutil.move(plant(tmp_path, name), target)
    damaged = target.read_bytes()
    change_lesson(tmp_path)
    code, out = generate(tmp_path, capsys)
    assert code == 1 and target.read_bytes() == damaged and backups(tmp_path) == []
    [line] = [x for x in out.splitlines() if x.startswith(f"{target}: ")]
    assert BROKEN[name][1] in line and "left as it is" in line
    assert "`python -m nfcourse reset 07` replaces it and keeps a copy of it" in line


def test_generate_when_the_backup_folder_is_a_file(tmp_path, capsys):
    target = course(tmp_path)
    mine = edit(target, LEARNER_CHANGES["source"])
    (tmp_path / "notebooks" / ".backups").write_text("not a folder")
    change_lesson(tmp_path)
    code, out = generate(tmp_path, capsys)
    assert code == 1 and target.read_text() == mine
    assert f"{target}: not updated: {tmp_path / 'notebooks' / '.backups'} is a file" in out
    assert "rename or move that file, then run the command again" in out


def test_generate_never_asks_to_remove_a_learners_own_notebook(tmp_path, capsys):
    course(tmp_path)
    own = tmp_path / "notebooks" / "my_experiments.ipynb"
    own.write_text(GOOD)
    code, out = generate(tmp_path, capsys)
    assert code == 0 and own.read_text() == GOOD and "remove" not in out
    assert f"{own}: not part of the course (no lesson of that name); left alone" in out


def test_generate_without_solutions_or_with_a_file_for_notebooks(tmp_path, capsys):
    code, out = generate(tmp_path, capsys)
    assert code == 2 and "no solutions/ folder here" in out
    lesson(tmp_path)
    (tmp_path / "notebooks").write_text("x")
    code, out = generate(tmp_path, capsys)
    assert code == 1 and "notebooks: is a file, not a folder" in out


def test_generate_reports_a_malformed_solution_in_one_line(tmp_path, capsys):
    lesson(tmp_path, "# Exercise 7.2: x\ndef f():\n    ### BEGIN SOLUTION\n")
    code, out = generate(tmp_path, capsys)
    assert code == 1 and "07_demo.ipynb, cell 2: expected 'Exercise 7.1'" in out


def test_generate_leaves_the_repositorys_notebooks_as_they_are(tmp_path):
    shutil.copytree(
        ROOT / "notebooks", tmp_path, dirs_exist_ok=True, ignore=lambda *_: [".backups"]
    )
    report = exercises.generate(ROOT / "solutions", tmp_path)
    assert {o.what for o in report} == {"up to date"}
    assert not (tmp_path / ".backups").exists()


# --- reset: never loses an edited notebook ---------------------------------------------------


def test_reset_keeps_a_tags_only_edit(tmp_path, capsys):
    target = course(tmp_path)
    mine = edit(target, _tag)
    assert main(["reset", "07", "--root", str(tmp_path)]) == 0
    assert backups(tmp_path) == [mine] and "your version was kept" in capsys.readouterr().out


def test_reset_keeps_a_damaged_notebook(tmp_path, capsys):
    target = course(tmp_path)
    shutil.move(plant(tmp_path, "latin1.ipynb"), target)
    damaged = target.read_bytes()
    assert main(["reset", "07", "--root", str(tmp_path)]) == 0
    folder = tmp_path / "notebooks" / ".backups"
    assert [p.read_bytes() for p in folder.glob("*.ipynb")] == [damaged]
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == []


def test_reset_when_the_backup_folder_is_a_file(tmp_path, capsys):
    target = course(tmp_path)
    mine = edit(target, LEARNER_CHANGES["source"])
    (tmp_path / "notebooks" / ".backups").write_text("not a folder")
    assert main(["reset", "07", "--root", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert target.read_text() == mine and "Traceback" not in out + err
    assert "not reset, left as it is" in err and ".backups is a file, not a folder" in err
