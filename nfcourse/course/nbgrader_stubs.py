"""nbgrader's ``ClearSolutions`` with the course's own stub (loaded by nbgrader only).

nbgrader replaces every solution region with one fixed stub. The course's stub names the
exercise (``raise NotImplementedError("Exercise N.M: <what to do>")``, see
:attr:`nfcourse.course.exercises.Exercise.stub`): the checks recognize it and report "not
done yet" instead of a failure, and the learner sees what to do. This preprocessor reads
the exercise from the cell's first line and uses that stub, so the learner's version that
``nbgrader generate_assignment`` writes is exactly the course's ``notebooks/`` version.
"""

from __future__ import annotations

from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearSolutions

from .exercises import HEADER, Exercise


class ExerciseStubs(ClearSolutions):
    """``ClearSolutions`` whose code stub is the exercise's own (from ``# Exercise N.M: ...``)."""

    @classmethod
    def generate_assignment(cls) -> list:
        """``GenerateAssignment``'s preprocessors with this one for ``ClearSolutions``."""
        default = GenerateAssignment.class_traits()["preprocessors"].default()
        return [cls if p is ClearSolutions else p for p in default]

    def _replace_solution_region(self, cell, language: str) -> bool:
        match = HEADER.match(cell.source.lstrip().split("\n", 1)[0])
        if cell.cell_type != "code" or not match:
            return super()._replace_solution_region(cell, language)
        exercise = Exercise(int(match.group(1)), int(match.group(2)), match.group(3))
        default = self.code_stub
        self.code_stub = {**default, language: exercise.stub}
        try:
            return super()._replace_solution_region(cell, language)
        finally:
            self.code_stub = default
