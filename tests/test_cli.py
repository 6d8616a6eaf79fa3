"""`python -m nfcourse reset` and `doctor`, as a learner uses them."""

from __future__ import annotations

import nbformat
import pytest
from test_exercises import lesson  # a small solution notebook with one exercise

from nfcourse.course import doctor, exercises
from nfcourse.course.cli import main


@pytest.mark.parametrize("key", ["7", "07", "07_demo", "07_demo.ipynb", "notebooks/07_demo.ipynb"])
def test_reset_restores_a_fresh_notebook_and_keeps_the_learners(tmp_path, capsys, key):
    lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    target = tmp_path / "notebooks" / "07_demo.ipynb"
    fresh = target.read_text()
    nb = nbformat.read(target, as_version=4)
    nb.cells[2].source = "# my attempt\n" + nb.cells[2].source
    nbformat.write(nb, target)
    mine = target.read_text()

    assert main(["reset", key, "--root", str(tmp_path)]) == 0
    assert target.read_text() == fresh
    copies = list((tmp_path / "notebooks" / ".backups").glob("07_demo.*.ipynb"))
    assert [c.read_text() for c in copies] == [mine]
    assert "your version was kept" in capsys.readouterr().out


def test_reset_writes_a_missing_notebook(tmp_path):
    lesson(tmp_path)
    assert main(["reset", "07", "--root", str(tmp_path)]) == 0
    assert exercises.stale(tmp_path / "solutions", tmp_path / "notebooks") == []


def test_reset_of_an_unknown_lesson_lists_the_lessons(tmp_path, capsys):
    lesson(tmp_path)
    assert main(["reset", "12", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no lesson '12'" in err and "07_demo" in err


def test_doctor_passes_here_and_says_what_to_fix(monkeypatch, capsys):
    assert doctor.main() == 0
    out = capsys.readouterr().out
    assert "Python 3." in out and "torch" in out and "All good" in out
    monkeypatch.setitem(doctor.TESTED, "no-such-package-xyz", "1.0")
    assert doctor.main() == 1
    out = capsys.readouterr().out
    assert "no-such-package-xyz is not installed" in out and "make lab" in out


def test_doctor_notes_untested_versions(monkeypatch):
    monkeypatch.setitem(doctor.TESTED, "numpy", "0.1")
    notes = [f for f in doctor.check_packages() if f.status == "note"]
    assert any("numpy" in f.what and "tested with 0.1" in f.what for f in notes)


def test_reset_of_an_untouched_notebook_makes_no_copy(tmp_path, capsys):
    lesson(tmp_path)
    exercises.generate(tmp_path / "solutions", tmp_path / "notebooks")
    assert main(["reset", "07", "--root", str(tmp_path)]) == 0
    assert not (tmp_path / "notebooks" / ".backups").exists()
    assert "kept" not in capsys.readouterr().out
