"""Hygiene of the lesson notebooks: generated, clean, seeded, checkable.

Executing them is nbval's job (see the Makefile's `test` target): the
solutions in strict mode, the exercise notebooks with their stubs.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from nfcourse.course import exercises

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ALL = [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in SOLUTIONS + NOTEBOOKS]


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_lesson_has_an_exercise_notebook_and_none_is_stale():
    assert len(SOLUTIONS) >= 6, "lessons 00-05 are missing from solutions/"
    assert [p.name for p in SOLUTIONS] == [p.name for p in NOTEBOOKS]
    stale = exercises.stale(ROOT / "solutions", ROOT / "notebooks")
    assert not stale, f"regenerate with `python -m nfcourse generate`: {stale}"


@pytest.mark.parametrize("path", ALL)
def test_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "outputs are not committed"
    assert "widgets" not in nb.metadata, "committed widget state shows 'model not found'"


@pytest.mark.parametrize("path", ALL)
def test_first_code_cell_seeds_everything(path):
    first = code_cells(path)[0].source
    assert "torch.manual_seed(" in first


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in SOLUTIONS])
def test_every_exercise_is_followed_by_its_check(path):
    cells = code_cells(path)
    for i, cell in enumerate(cells):
        match = (
            exercises.HEADER.match(cell.source.lstrip().splitlines()[0]) if cell.source else None
        )
        if match:
            nxt = cells[i + 1].source if i + 1 < len(cells) else ""
            assert re.search(r"\bcheck\.\w+\(", nxt), f"no check cell after {match.group(0)}"
    assert 'NotImplementedError("Exercise' not in "".join(c.source for c in cells)


def test_each_lesson_has_its_picture_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for path in SOLUTIONS:
        cells = nbformat.read(path, as_version=4).cells
        tagged = [c for c in cells if "lesson-picture" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: tag one plotting cell 'lesson-picture'"
        picture = f"docs/figures/lesson-{path.name[:2]}.png"
        assert (ROOT / picture).is_file(), f"run `python docs/lesson_pictures.py` ({picture})"
        assert picture in readme
