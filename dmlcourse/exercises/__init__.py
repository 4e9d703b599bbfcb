"""The exercises at the end of each notebook: checks, hints and solutions on purpose.

In a notebook::

    from dmlcourse.exercises import check, hint, show_solution

    def my_precision_at_1(embeddings, labels):
        ...                                   # you write this

    check("00.1", my_precision_at_1)          # ✓ / ✗ with what is wrong / ○ not attempted yet
    hint("00.1")                              # the next hint (call again for more)
    show_solution("00.1")                     # only when you decide to look

Each lecture module (``lecture00`` ... ``lecture08``) registers its exercises with
:func:`exercise`. A check function raises :class:`AssertionError` whose message says
what is wrong ("you get 1.0: did you forget to exclude each point ...") and
:class:`NotAttempted` when it is handed a stub (``None``, ``...``, or a function
that raises ``NotImplementedError``). :func:`check` turns both into a printed
line and never stops *Run All*; :func:`grade` returns the same as an
:class:`Outcome` for tests.
"""

from __future__ import annotations

import importlib
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = [
    "Exercise",
    "NotAttempted",
    "Outcome",
    "check",
    "exercise",
    "grade",
    "hint",
    "show_solution",
]


class NotAttempted(Exception):
    """Raised by a check when the learner's answer is still the stub."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id ("06.1"), title, the name the learner writes, hints and check."""

    id: str
    title: str
    writes: str
    hints: tuple[str, ...]
    check: Callable
    mistakes: tuple[str, ...] = field(
        default=()
    )  # typical wrong answers the check names (for the docs)


@dataclass(frozen=True)
class Outcome:
    """What :func:`grade` found: ``status`` is "passed", "wrong" or "not attempted"."""

    id: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        mark = {"passed": "✓", "wrong": "✗", "not attempted": "○"}[self.status]
        return f"{mark} {self.id} {self.message}"


_REGISTRY: dict[str, Exercise] = {}
_HINTS_SHOWN: dict[str, int] = {}
_ID = re.compile(r"(0[0-8])\.([1-9])")


def exercise(id: str, title: str, *, writes: str, hints: list[str] | tuple[str, ...], mistakes=()):
    """Decorator: register ``fn`` as the check of exercise ``id`` (e.g. "06.1")."""
    if not _ID.fullmatch(id):
        raise ValueError(f"id={id!r} must look like '06.1' (lecture 00-08, exercise 1-9)")
    if not hints:
        raise ValueError(f"exercise {id}: give at least one hint")

    def register(fn):
        _REGISTRY[id] = Exercise(id, title, writes, tuple(hints), fn, tuple(mistakes))
        return fn

    return register


def get(id: str) -> Exercise:
    """The registered exercise ``id``; a clear error naming the known ids otherwise."""
    m = _ID.fullmatch(str(id))
    if m:
        importlib.import_module(f"{__name__}.lecture{m.group(1)}")
    if id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none loaded"
        raise KeyError(f"no exercise {id!r}; exercises of the loaded lectures: {known}")
    return _REGISTRY[id]


def all_exercises() -> dict[str, Exercise]:
    """Every exercise of every lecture, by id."""
    for k in range(9):
        importlib.import_module(f"{__name__}.lecture{k:02d}")
    return dict(sorted(_REGISTRY.items()))


def _is_stub(value) -> bool:
    return value is None or value is Ellipsis


def grade(id: str, *answers) -> Outcome:
    """Run exercise ``id``'s check on the learner's ``answers``; never raises for a wrong answer."""
    ex = get(id)
    not_yet = f"not attempted yet: write `{ex.writes}` above, then run this cell again."
    if any(_is_stub(a) for a in answers):
        return Outcome(id, "not attempted", not_yet)
    try:
        msg = ex.check(*answers)
    except (NotAttempted, NotImplementedError):
        return Outcome(id, "not attempted", not_yet)
    except AssertionError as exc:
        return Outcome(id, "wrong", f'{ex.title}: {exc}\n  (stuck? hint("{id}") gives a hint)')
    except Exception as exc:  # the learner's code raised: show where, keep Run All going
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (f"line {f.lineno} of {f.name}" for f in reversed(tb) if "dmlcourse" not in f.filename),
            "",
        )
        return Outcome(
            id,
            "wrong",
            f"{ex.title}: your code raised {type(exc).__name__}: {exc}"
            + (f" ({where})" if where else ""),
        )
    return Outcome(id, "passed", f"{ex.title}: {msg or 'correct.'}")


def check(id: str, *answers) -> None:
    """Check the learner's answer to exercise ``id`` and print ✓, ✗ (with what is wrong) or ○ (not attempted).

    With ``DMLCOURSE_EXERCISES_STRICT=1`` (CI's run of the solution notebooks) anything but ✓ raises.
    """
    outcome = grade(id, *answers)
    print(outcome)
    if os.environ.get("DMLCOURSE_EXERCISES_STRICT") == "1" and not outcome.passed:
        raise AssertionError(f"exercise {id} did not pass in strict mode: {outcome}")


def hint(id: str, number: int | None = None) -> None:
    """Print a hint for exercise ``id``: the next one each call, or hint ``number`` (1-based)."""
    ex = get(id)
    if number is None:
        number = min(_HINTS_SHOWN.get(id, 0) + 1, len(ex.hints))
    if not 1 <= int(number) <= len(ex.hints):
        raise ValueError(f"number={number!r}: exercise {id} has hints 1 to {len(ex.hints)}")
    _HINTS_SHOWN[id] = max(_HINTS_SHOWN.get(id, 0), int(number))
    more = f' (hint("{id}") again for hint {number + 1})' if number < len(ex.hints) else ""
    print(f"hint {number}/{len(ex.hints)} for {id}: {ex.hints[number - 1]}{more}")


def _course_sources() -> Path | None:
    env = os.environ.get("DMLCOURSE_COURSE_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2])  # a clone of the course
    for root in candidates:
        if (root / "notebooks").is_dir() and any((root / "notebooks").glob("0[0-8]_*.py")):
            return root / "notebooks"
    return None


def solution_text(id: str) -> str:
    """The solution cell of exercise ``id``, read from the course's source notebook."""
    get(id)
    folder = _course_sources()
    if folder is None:
        raise FileNotFoundError(
            "the solutions live in the course's source notebooks (notebooks/NN_name.py in a clone of the "
            "course); none found here. Set DMLCOURSE_COURSE_DIR to the clone's folder."
        )
    src = next(folder.glob(f"{id[:2]}_*.py"))
    cells = re.split(r"^# %%", src.read_text(encoding="utf-8"), flags=re.M)
    for cell in cells:
        header, _, body = cell.partition("\n")
        if re.search(rf'exercise="{re.escape(id)}"', header):
            lines = [
                ln
                for ln in body.rstrip().splitlines()
                if ln.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
            ]
            return "\n".join(lines)
    raise LookupError(f'exercise {id}: no cell marked exercise="{id}" in {src.name}')


def show_solution(id: str) -> None:
    """Print the solution of exercise ``id``. Try it yourself first: this is here for when you decide to look."""
    print(f"# solution of {id} ({get(id).title})\n" + solution_text(id))
