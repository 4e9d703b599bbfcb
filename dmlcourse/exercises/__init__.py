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

import functools
import importlib
import inspect
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .. import listing

__all__ = [
    "Exercise",
    "NotAttempted",
    "Outcome",
    "check",
    "constant_answers_that_pass",
    "exercise",
    "grade",
    "hint",
    "show_solution",
]


class NotAttempted(Exception):
    """Raised by a check when the learner's answer is still the stub."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id ("06.1"), title, the name the learner writes, hints and check.

    ``mistakes``: the typical wrong answers the check names (for the docs).
    ``implemented_by``: the package functions whose code is this exercise's answer (dotted names; a
    ``name:region`` names one marked region of it); the course lint fails when a notebook lists one of
    them (the whole function, or that region) before the exercise.
    ``graded``: the parameters of the check that hold the learner's graded answers (default: the first).
    ``sample``: a function returning a valid call of the check, ``{parameter: value}``; for a check of
    a function it gives only the other arguments (e.g. the distance the learner declares). With it,
    :func:`constant_answers_that_pass` tries constant answers in the graded places.
    """

    id: str
    title: str
    writes: str
    hints: tuple[str, ...]
    check: Callable
    mistakes: tuple[str, ...] = field(default=())
    implemented_by: tuple[str, ...] = field(default=())
    graded: tuple[str, ...] = field(default=())
    sample: Callable[[], dict] | None = None


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


def exercise(id: str, title: str, *, writes: str, hints: list[str] | tuple[str, ...], mistakes=(),
             implemented_by=(), graded=(), sample=None):
    """Decorator: register ``fn`` as the check of exercise ``id`` (e.g. "06.1"); see :class:`Exercise`."""
    if not _ID.fullmatch(id):
        raise ValueError(f"id={id!r} must look like '06.1' (lecture 00-08, exercise 1-9)")
    if not hints:
        raise ValueError(f"exercise {id}: give at least one hint")

    def register(fn):
        params = list(inspect.signature(fn).parameters)
        unknown = [g for g in graded if g not in params]
        if unknown:
            raise ValueError(f"exercise {id}: graded={unknown} are not parameters of {fn.__name__}{params}")
        _REGISTRY[id] = Exercise(id, title, writes, tuple(hints), fn, tuple(mistakes), tuple(implemented_by),
                                 tuple(graded) or (params[0],), sample)
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


def _watched(fn, ex: Exercise, called: list):
    """``fn`` wrapped so that a call of one of ``ex.implemented_by`` while it runs is noted in ``called``
    (a profiler sees every Python call, however the learner reached the package function)."""
    codes = {}
    for dotted in ex.implemented_by:
        target = inspect.unwrap(resolve(dotted))
        if hasattr(target, "__code__"):
            codes[target.__code__] = dotted.partition(":")[0]
    if not codes:
        return fn

    def note(frame, event, _arg):
        if event == "call" and frame.f_code in codes and codes[frame.f_code] not in called:
            called.append(codes[frame.f_code])

    @functools.wraps(fn)
    def watched(*args, **kwargs):
        previous = sys.getprofile()
        sys.setprofile(note)
        try:
            return fn(*args, **kwargs)
        finally:
            sys.setprofile(previous)

    return watched


def grade(id: str, *answers) -> Outcome:
    """Run exercise ``id``'s check on the learner's ``answers``; never raises for a wrong answer.

    A function that calls the package's own version of the answer (one of ``implemented_by``) is
    told so, whatever the check says: the exercise asks for the code, not for a call of it."""
    ex = get(id)
    not_yet = f"not attempted yet: write `{ex.writes}` above, then run this cell again."
    if any(_is_stub(a) for a in answers):
        return Outcome(id, "not attempted", not_yet)
    called: list[str] = []
    answers = tuple(_watched(a, ex, called) if inspect.isfunction(a) else a for a in answers)
    stuck = f'\n  (stuck? hint("{id}") gives a hint)'
    try:
        status, message = "passed", f"{ex.title}: {ex.check(*answers) or 'correct.'}"
    except (NotAttempted, NotImplementedError):
        return Outcome(id, "not attempted", not_yet)
    except AssertionError as exc:
        status, message = "wrong", f"{ex.title}: {exc}{stuck}"
    except Exception as exc:  # the learner's code raised: show where, keep Run All going
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (f"line {f.lineno} of {f.name}" for f in reversed(tb) if "dmlcourse" not in f.filename),
            "",
        )
        status = "wrong"
        message = f"{ex.title}: your code raised {type(exc).__name__}: {exc}" + (
            f" ({where})" if where else ""
        )
    if called:  # whatever the check said: the exercise asks for the code, not a call of it
        status, message = "wrong", f"{ex.title}: {_package_call_message(called, answers)}{stuck}"
    return Outcome(id, status, message)


def _package_call_message(called: list[str], answers) -> str:
    name = next((a.__name__ for a in answers if inspect.isfunction(a)), "your function")
    return (f"`{name}` calls `{called[0]}`, the package's own version of what this exercise asks you to "
            "write. Write the computation yourself (torch is fine); the package's code is what "
            "show_solution shows, when you decide to look.")


def _empty_triplets(*_args, **_kwargs):
    empty = torch.zeros(0, dtype=torch.long)
    return empty, empty, empty


# Constant answers no check may pass: functions that ignore their inputs, and numbers typed in.
CONSTANT_FUNCTIONS = {
    "a function returning 0": lambda *a, **k: 0.0,
    "a function returning 1": lambda *a, **k: 1.0,
    "a function returning torch.zeros_like(its first input)": lambda *a, **k: torch.zeros_like(a[0]),
    "a function returning torch.ones_like(its first input)": lambda *a, **k: torch.ones_like(a[0]),
    "a function returning its first input": lambda *a, **k: a[0],
    "a function returning zeros, one per row of its first input":
        lambda *a, **k: torch.zeros(len(a[0]), dtype=torch.float64),
    "a function returning three empty index tensors": _empty_triplets,
    "a function returning (zeros_like, ones_like) of its first input":
        lambda *a, **k: (torch.zeros_like(a[0][0]), torch.ones_like(a[0][0])),
}
CONSTANT_VALUES = (0, 1, 0.5, -1, 10)


def _constant_like(value, c):
    """``c`` in the shape of the learner's answer ``value``: a dict keeps its keys, a tensor its shape."""
    if isinstance(value, dict):
        return {k: c for k in value}
    if isinstance(value, torch.Tensor) and value.numel() > 1:
        return torch.full_like(value, float(c))
    return c


def constant_answers_that_pass(id: str) -> list[str]:
    """The constant answers that exercise ``id``'s check accepts (an empty list is what a check must give).

    A check of a function gets every function of :data:`CONSTANT_FUNCTIONS`; a check of values gets its
    ``sample`` call with each graded value replaced by the numbers of :data:`CONSTANT_VALUES` (a dict
    answer by a dict of them). The sample call itself must pass, or the probe would prove nothing.
    """
    ex = get(id)
    params = list(inspect.signature(ex.check).parameters)
    if params[0] == "prediction" and ex.sample is None:
        return ["anything: a check of values needs a sample call to be probed (exercise(..., sample=...))"]
    base = dict(ex.sample()) if ex.sample else {}
    functional = ex.graded == (params[0],) and params[0] not in base
    if functional:
        trials = {what: {**base, params[0]: fn} for what, fn in CONSTANT_FUNCTIONS.items()}
    else:
        if _run(ex, base) != "passed":
            return [f"none of the constants tried: its sample call does not pass ({_run(ex, base, message=True)})"]
        trials = {f"{name} = {c!r}": {**base, name: _constant_like(base[name], c)}
                  for name in ex.graded for c in CONSTANT_VALUES}
    return [what for what, args in trials.items() if _run(ex, args) == "passed"]


def _run(ex: Exercise, kwargs: dict, message: bool = False) -> str:
    params = list(inspect.signature(ex.check).parameters)
    positional = [kwargs[p] for p in params if p in kwargs]
    outcome = grade(ex.id, *positional)
    return outcome.message if message else outcome.status


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
    """Print the solution of exercise ``id``, then the package's version of the same code (its
    ``implemented_by``). Try it yourself first: this is here for when you decide to look."""
    ex = get(id)
    print(f"# solution of {id} ({ex.title})\n" + solution_text(id))
    for name in ex.implemented_by:
        print(f"\n# the package's version: {name}")
        listing.show(resolve(name))


def resolve(dotted: str):
    """The object a dotted name such as ``dmlcourse.mahalanobis.NCA.fit`` names (modules imported as needed;
    a ``:region`` suffix is ignored)."""
    parts = dotted.partition(":")[0].split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"{dotted!r} names no module of this environment")
