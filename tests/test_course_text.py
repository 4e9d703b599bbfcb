"""The teaching-text rules of `make lint` (scripts/course.py; CONTRIBUTING, "What make lint checks
in the text"): each rule fails on a small lecture that breaks it and passes it once repaired."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
import torch

from dmlcourse import exercises
from tests.exercises.conftest import course

FAKE = Path("99_fake.py")
SETUP = (
    "# %%\nimport torch\nfrom dmlcourse import metrics, miners\n"
    "from dmlcourse.listing import show\n"
)
SUMMARY = "# %% [markdown]\n# ## Summary\n#\n# - What a metric is. <!-- recap -->\n"


def problems(body: str, registry: dict | None = None) -> list[str]:
    nb = jupytext.reads(SETUP + body + SUMMARY, fmt="py:percent")
    return course.text_problems(FAKE, nb, registry)


def test_a_clean_lecture_passes():
    assert problems("# %%\nshow(miners.batch_hard)\n") == []


@pytest.mark.parametrize(
    "cell",
    [
        'import inspect\nprint(inspect.getsource(miners.batch_hard).split("if margin")[1])\n',
        "from inspect import getsource\nprint(getsource(miners.batch_hard)[:900])\n",
        "from dmlcourse.listing import source\nprint(source(miners.batch_hard)[:300])\n",
        "from dmlcourse.listing import source\nprint(source(miners.batch_hard).split('if')[0])\n",
    ],
)
def test_a_listing_cut_out_of_a_string_fails(cell):
    found = problems("# %%\n" + cell)
    assert found and all("cell" in p for p in found), found


def test_a_decimal_from_a_run_in_the_prose_fails():
    found = problems("# %% [markdown]\n# The embedding reaches .782 ± .02 against .712.\n")
    assert {p.split("decimal ")[1].split()[0] for p in found} == {".782", ".02", ".712"}


def test_exercise_ids_are_not_decimals_but_a_leading_zero_decimal_is():
    assert problems("# %% [markdown]\n# Exercise 05.1 asks for the loss; 00.3 counts.\n") == []
    found = problems("# %% [markdown]\n# It reaches 0.93 here.\n")
    assert [p.split("decimal ")[1].split()[0] for p in found] == ["0.93"]


def test_constants_of_the_lecture_and_formula_values_may_appear_in_the_prose():
    body = (
        "# %%\nMARGIN = 0.2\nloss = metrics\n"
        "# %% [markdown]\n# With a margin of 0.2, and $\\log_{10} 200 \\approx 2.3$ digits.\n"
    )
    assert problems(body) == []
    # the same decimal with no literal behind it is a run's figure
    assert problems(body.replace("MARGIN = 0.2", "MARGIN = 1")) != []


def test_the_course_describes_itself_as_it_is():
    found = problems("# %% [markdown]\n# An earlier version of this course trained longer.\n")
    assert len(found) == 1 and "another version of the course" in found[0]


def test_a_summary_result_must_be_tied_to_an_assert():
    body = "# %%\np1 = 0.9\n"
    result = "# - The embedding beats pixels. <!-- claim: beats -->\n"
    nb_text = SETUP + body + SUMMARY + result
    nb = jupytext.reads(nb_text, fmt="py:percent")
    assert any("claims 'beats'" in p for p in course.text_problems(FAKE, nb))
    tied = body + "assert p1 > 0.5  # claim: beats\n"
    nb = jupytext.reads(SETUP + tied + SUMMARY + result, fmt="py:percent")
    assert course.text_problems(FAKE, nb) == []
    untagged = SUMMARY + "# - The embedding beats pixels.\n"
    nb = jupytext.reads(SETUP + body + untagged, fmt="py:percent")
    assert any("neither a recap" in p for p in course.text_problems(FAKE, nb))


def _exercise(ex_id: str, implemented_by=()) -> exercises.Exercise:
    return exercises.Exercise(
        ex_id, "fake", "my_fn", ("a hint",), lambda fn: "ok", (), tuple(implemented_by), ("fn",)
    )


EXERCISE_CELL = (
    '# %% exercise="99.1"\n'
    "def my_hardest(z, labels):\n"
    "    ### BEGIN SOLUTION\n"
    "    d_an_hardest = torch.cdist(z, z).masked_fill(labels[:, None] == labels, 1e9).min(1)\n"
    "    return d_an_hardest\n"
    "    ### END SOLUTION\n"
)


def test_an_exercise_whose_function_is_listed_before_it_fails(monkeypatch):
    registry = {"99.1": _exercise("99.1", ["dmlcourse.miners.batch_hard"])}
    monkeypatch.setitem(exercises._REGISTRY, "99.1", registry["99.1"])
    listed = problems("# %%\nshow(miners.batch_hard)\n" + EXERCISE_CELL, registry)
    assert any("99.1 asks for dmlcourse.miners.batch_hard" in p for p in listed), listed
    after = problems(EXERCISE_CELL + "# %%\nshow(miners.batch_hard)\n", registry)
    assert not any("asks for" in p for p in after), after


def test_an_exercise_whose_solution_line_is_printed_before_it_fails(monkeypatch):
    registry = {"99.1": _exercise("99.1")}
    monkeypatch.setitem(exercises._REGISTRY, "99.1", registry["99.1"])
    line = "d_an_hardest = torch.cdist(z, z).masked_fill(labels[:, None] == labels, 1e9).min(1)\n"
    found = problems("# %%\n" + line + EXERCISE_CELL, registry)
    assert any("solution line" in p and "99.1" in p for p in found), found


def test_a_check_that_a_constant_passes_fails(monkeypatch):
    """A check that only tests the type of the answer lets every constant through: the lint names
    each one."""

    def weak_check(prediction, measured):
        return "fine" if isinstance(float(measured), float) else None

    weak = exercises.Exercise(
        "99.2",
        "weak",
        "my_measured",
        ("h",),
        weak_check,
        (),
        (),
        ("measured",),
        lambda: {"prediction": 0.3, "measured": 0.7},
    )
    monkeypatch.setitem(exercises._REGISTRY, "99.2", weak)
    found = course.constant_problems(["99.2"])
    assert len(found) == len(exercises.CONSTANT_VALUES), found

    def strict_check(prediction, measured):
        if abs(float(measured) - 0.7) > 1e-9:
            raise AssertionError("not the measured value")
        return "right"

    monkeypatch.setitem(
        exercises._REGISTRY,
        "99.2",
        weak.__class__(
            *[getattr(weak, f) for f in ("id", "title", "writes", "hints")],
            strict_check,
            *[getattr(weak, f) for f in ("mistakes", "implemented_by", "graded", "sample")],
        ),
    )
    assert course.constant_problems(["99.2"]) == []


def test_a_function_check_that_accepts_zeros_fails(monkeypatch):
    def lenient(fn):
        out = fn(torch.randn(5, 3), torch.arange(5) % 2)
        assert torch.is_tensor(out) or isinstance(out, float)

    fake = exercises.Exercise("99.3", "lenient", "my_fn", ("h",), lenient, (), (), ("fn",))
    monkeypatch.setitem(exercises._REGISTRY, "99.3", fake)
    assert "a function returning torch.zeros_like(its first input)" in " ".join(
        course.constant_problems(["99.3"])
    )


def test_an_exercise_on_one_region_allows_listing_another_region(monkeypatch):
    fake = _exercise("99.1", ["dmlcourse.metric_spaces.check_axioms:triangle"])
    registry = {"99.1": fake}
    monkeypatch.setitem(exercises._REGISTRY, "99.1", fake)
    body = "# %%\nfrom dmlcourse import metric_spaces as ms\n"
    other = problems(body + 'show(ms.check_axioms, "pairs")\n' + EXERCISE_CELL, registry)
    assert not any("asks for" in p for p in other), other
    for listed in ('show(ms.check_axioms, "triangle")\n', "show(ms.check_axioms)\n"):
        found = problems(body + listed + EXERCISE_CELL, registry)
        assert any("asks for dmlcourse.metric_spaces.check_axioms" in p for p in found), found
