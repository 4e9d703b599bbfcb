"""The course's notebook sources and the two versions built from them (scripts/course.py)."""

from __future__ import annotations

import json
import re

import pytest

from dmlcourse import exercises
from tests.exercises.conftest import ROOT, course

SOURCES = course.sources()


def test_there_are_nine_lectures():
    assert [p.name[:2] for p in SOURCES] == [f"{k:02d}" for k in range(9)]


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_sources_pass_the_lint(src):
    assert course.check_sources([src.name[:2]]) == []


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_no_solution_reaches_the_learner(src):
    text = src.read_text()
    learner = course.build(src, "learner")
    learner_code = "\n".join(c.source for c in learner.cells)
    assert "BEGIN SOLUTION" not in learner_code and "END SOLUTION" not in learner_code
    n_regions = 0
    for cell in re.split(r"^# %%", text, flags=re.M):
        lines = cell.splitlines()
        for begin, end in course.solution_regions(cell):
            n_regions += 1
            body = [
                ln.strip()
                for ln in lines[begin + 1 : end]
                if ln.strip() and not ln.strip().startswith("#")
            ]
            assert "\n".join(body) not in learner_code
            for ln in body:
                if len(ln) > 25:  # a distinctive line of the solution
                    assert ln not in learner_code, (
                        f"{src.name}: solution line reaches the learner: {ln}"
                    )
    assert n_regions >= 2


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_every_exercise_is_registered_with_a_hint(src):
    nb = course.build(src, "solution")
    ids = [c.metadata["exercise"] for c in nb.cells if c.metadata.get("exercise")]
    for ex_id in ids:
        ex = exercises.get(ex_id)
        assert ex.hints and ex.writes
        assert "BEGIN SOLUTION" not in exercises.solution_text(ex_id)
    registered = [k for k in exercises.all_exercises() if k.startswith(src.name[:2])]
    assert sorted(ids) == sorted(registered)


def test_builds_are_byte_identical():
    src = SOURCES[0]
    assert course.dumps(course.build(src, "learner")) == course.dumps(course.build(src, "learner"))


def test_learner_stub_and_solution_versions():
    src = (
        'def f(x):\n    """doc"""\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n'
        '\ncheck("00.1", f)'
    )
    assert (
        course.strip_solutions(src, "solution")
        == 'def f(x):\n    """doc"""\n    return x\n\ncheck("00.1", f)'
    )
    stub = course.strip_solutions(src, "learner")
    assert "raise NotImplementedError()" in stub and "return x" not in stub
    top = "a = None\n### BEGIN SOLUTION\na = 3\n### END SOLUTION"
    assert course.strip_solutions(top, "learner") == "a = None\n# YOUR CODE HERE"
    with pytest.raises(course.CourseError, match="never closed"):
        course.strip_solutions("### BEGIN SOLUTION\nx", "learner")
    with pytest.raises(course.CourseError, match="without"):
        course.strip_solutions("x\n### END SOLUTION", "learner")


# --- the learner's own copies (make lab) ---------------------------------------------------------


def test_learner_copies_are_created_once_and_never_overwritten(tmp_path):
    folder = tmp_path / "my-notebooks"
    msgs = course.learner_copies(folder, today="2026-12-01", only=["00", "01"])
    assert sorted(p.name for p in folder.glob("*.ipynb")) == [
        "00_start_here.ipynb",
        "01_metric_spaces.ipynb",
    ]
    assert all(m.startswith("created") for m in msgs)
    mine = folder / "00_start_here.ipynb"
    nb = json.loads(mine.read_text())
    nb["cells"][0]["source"] = "my own notes"
    mine.write_text(json.dumps(nb))
    assert course.learner_copies(folder, today="2026-12-01", only=["00", "01"]) == []
    assert json.loads(mine.read_text())["cells"][0]["source"] == "my own notes"


def test_a_course_update_goes_beside_the_learners_file(tmp_path):
    folder = tmp_path / "my-notebooks"
    course.learner_copies(folder, only=["00"])
    mine = folder / "00_start_here.ipynb"
    mine.write_text(mine.read_text().replace("Precision@1 by hand", "my edit"))
    manifest = folder / course.MANIFEST
    m = json.loads(manifest.read_text())
    m["00_start_here"]["hash"] = "an older course version"
    manifest.write_text(json.dumps(m))
    msgs = course.learner_copies(folder, today="2026-12-05", only=["00"])
    assert "my edit" in mine.read_text()
    updated = folder / "00_start_here (updated 2026-12-05).ipynb"
    assert updated.exists() and "my edit" not in updated.read_text()
    assert any("untouched" in x for x in msgs)
    assert course.learner_copies(folder, today="2026-12-05", only=["00"]) == []  # said once


def test_deleted_notebooks_and_interrupted_runs(tmp_path):
    folder = tmp_path / "my-notebooks"
    course.learner_copies(folder, only=["00"])
    (folder / "00_start_here.ipynb").unlink()
    (folder / ".00_start_here.ipynb.abc.tmp").write_text('{"half": ')
    msgs = course.learner_copies(folder, only=["00"])
    assert any("interrupted" in x for x in msgs) and any("renamed or deleted" in x for x in msgs)
    assert not list(folder.glob(".*.tmp"))
    json.loads((folder / "00_start_here.ipynb").read_text())


def test_a_folder_that_cannot_hold_notebooks(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(course.CourseError, match="not a folder"):
        course.learner_copies(not_a_dir, only=["00"])
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(course.os, "access", lambda *a, **k: False)  # root ignores chmod: simulate
    with pytest.raises(course.CourseError, match="not writable.*Nothing was changed"):
        course.learner_copies(folder, only=["00"])
    assert not list(folder.iterdir())


def test_make_lab_is_wired_to_the_learner_folder():
    mk = (ROOT / "Makefile").read_text()
    assert (
        "scripts/course.py lab" in mk.replace("$(COURSE)", "scripts/course.py")
        or "$(COURSE) lab" in mk
    )
    assert "/my-notebooks/" in (ROOT / ".gitignore").read_text()
