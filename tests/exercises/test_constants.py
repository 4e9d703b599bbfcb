"""No exercise check passes a constant answer: a function that ignores its inputs (returns 0, 1,
zeros_like, its input...) or a number typed in (0, 1, 0.5, -1, 10) in place of a graded value."""

from __future__ import annotations

import pytest

from dmlcourse import exercises

IDS = sorted(exercises.all_exercises())


@pytest.mark.parametrize("ex_id", IDS)
def test_no_constant_answer_passes(ex_id):
    assert exercises.constant_answers_that_pass(ex_id) == []


@pytest.mark.parametrize("ex_id", IDS)
def test_every_exercise_names_the_package_code_it_asks_for_or_none(ex_id):
    # the names must resolve, or the lint that keeps them off the screen before the exercise checks nothing
    for dotted in exercises.get(ex_id).implemented_by:
        assert callable(exercises.resolve(dotted)), dotted
