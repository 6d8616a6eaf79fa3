"""One round of a graded course with the real nbgrader, run in its own process.

``python tests/grading_round.py FOLDER LESSON`` expects FOLDER to be written by
``python -m nfcourse nbgrader`` (its nbgrader_config.py turns on strict checks, which must
not leak into the test process). It generates the learners' version of every lesson in
``FOLDER/source``, then grades three submissions of LESSON: the solutions typed into the
learners' version ("solved"), the learners' version untouched ("untouched"), and the
solutions with one planted mistake ("slip": the mistake given as JSON on stdin,
``{"grade_id": ..., "old": ..., "new": ...}``). Prints JSON: the release notebooks' paths
and each submission's points per graded cell.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from traitlets.config.loader import PyFileConfigLoader


def main(folder: Path, lesson: str, slip: dict) -> dict:
    config = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
    api = NbGraderAPI(config=config)
    release = {}
    for source in sorted((folder / "source").iterdir()):
        outcome = api.generate_assignment(source.name, force=True)
        if not outcome["success"]:
            raise SystemExit(f"generate_assignment {source.name} failed:\n{outcome['error']}")
        release[source.name] = str(folder / "release" / source.name / f"{source.name}.ipynb")

    learner = json.loads(Path(release[lesson]).read_text())
    solution = json.loads((folder / "source" / lesson / f"{lesson}.ipynb").read_text())

    def submit(student: str, fill) -> None:
        nb = json.loads(json.dumps(learner))
        for cell, reference in zip(nb["cells"], solution["cells"], strict=True):
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("solution"):
                cell["source"] = fill(meta["grade_id"], "".join(reference["source"]))
        target = folder / "submitted" / student / lesson / f"{lesson}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(nb))

    def planted(grade_id: str, source: str) -> str:
        if grade_id != slip["grade_id"]:
            return source
        if slip["old"] not in source:
            raise SystemExit(f"the planted mistake does not apply to {grade_id}")
        return source.replace(slip["old"], slip["new"])

    submit("solved", lambda grade_id, source: source)
    (folder / "submitted" / "untouched" / lesson).mkdir(parents=True)
    shutil.copy(release[lesson], folder / "submitted" / "untouched" / lesson)
    submit("slip", planted)

    scores = {}
    for student in ("solved", "untouched", "slip"):
        outcome = api.autograde(lesson, student, force=True, create=True)
        if not outcome["success"]:
            raise SystemExit(f"autograde {student} failed:\n{outcome['error']}")
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        for student in ("solved", "untouched", "slip"):
            submission = gradebook.find_submission(lesson, student)
            scores[student] = {
                grade.name: grade.score for nb in submission.notebooks for grade in nb.grades
            }
    return {"release": release, "scores": scores}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], json.load(sys.stdin))))
