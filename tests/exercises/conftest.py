"""Helpers for the exercise tests: run an exercise cell's code, in its learner or solution version.

``exercise_namespace("00.1", "solution")`` executes the code of the cell marked
``exercise="00.1"`` in ``notebooks/00_*.py`` as that version has it, without the
``check(...)`` call, and returns the namespace (so ``ns["my_precision_at_1"]`` is the
solution's function, or the learner's stub).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("course", ROOT / "scripts" / "course.py")
course = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(course)


def exercise_cell(exercise_id: str, version: str) -> str:
    src = next((ROOT / "notebooks").glob(f"{exercise_id[:2]}_*.py"))
    nb = course.build(src, version)
    for cell in nb.cells:
        if cell.metadata.get("exercise") == exercise_id:
            return cell.source
    raise LookupError(f"no cell exercise={exercise_id!r} in {src.name}")


def run_exercise_cell(exercise_id: str, version: str, **variables) -> dict:
    """Execute the cell (minus its check call) with ``variables`` from the notebook; return the namespace."""
    code = "\n".join(ln for ln in exercise_cell(exercise_id, version).splitlines() if not ln.startswith("check("))
    ns = {"torch": torch, "F": F, "math": math, "np": np, **variables}
    exec(compile(code, f"<exercise {exercise_id} {version}>", "exec"), ns)
    return ns


@pytest.fixture
def exercise_namespace():
    return run_exercise_cell
