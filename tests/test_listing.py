"""dmlcourse.listing: every listing of every notebook resolves, and parses as a complete block."""

from __future__ import annotations

import ast

import jupytext
import pytest

from dmlcourse import listing, losses, metrics, miners
from tests.exercises.conftest import course

LISTINGS = [
    (src.name, cell, dotted, region)
    for src in course.sources()
    for cell, dotted, region in course.shown_objects(
        [c.source for c in jupytext.read(src, fmt="py:percent").cells if c.cell_type == "code"]
    )
]


def test_the_notebooks_have_listings():
    assert len({name for name, *_ in LISTINGS}) >= 7, LISTINGS


@pytest.mark.parametrize(
    "name,cell,dotted,region", LISTINGS, ids=[f"{n[:2]}-{d}-{r}" for n, _, d, r in LISTINGS]
)
def test_every_listing_of_every_notebook_resolves_and_parses(name, cell, dotted, region):
    obj = course._resolve(dotted)
    text = listing.source(obj, region)
    tree = ast.parse(text)
    assert tree.body, f"{name}, code cell {cell + 1}: {dotted} {region!r} is empty"
    assert "# region:" not in text and "# endregion" not in text
    if region is None:  # a whole listing starts at the def/class line
        assert isinstance(tree.body[0], (ast.FunctionDef, ast.ClassDef)), text[:80]


def test_a_region_lists_only_its_lines():
    text = listing.source(losses.easy_positive_loss, "easy positive")
    assert "def easy_positive_loss" not in text
    assert text in listing.source(losses.easy_positive_loss)


def test_a_missing_region_names_the_function_and_the_regions_it_has():
    with pytest.raises(LookupError) as err:
        listing.source(losses.easy_positive_loss, "no such region")
    msg = str(err.value)
    assert "no such region" in msg and "easy_positive_loss" in msg and "'easy positive'" in msg


def test_docstring_false_leaves_the_docstring_out():
    with_doc = listing.source(metrics.precision_at_1)
    without = listing.source(metrics.precision_at_1, docstring=False)
    doc = ast.get_docstring(ast.parse(with_doc).body[0])
    assert doc and doc.splitlines()[0] not in without
    assert ast.get_docstring(ast.parse(without).body[0]) is None


def test_show_prints_where_the_code_lives(capsys):
    listing.show(miners.batch_hard)
    out = capsys.readouterr().out
    assert out.startswith("# dmlcourse/miners.py: batch_hard\n") and "def batch_hard" in out


def test_a_listing_of_something_that_is_not_code_is_refused():
    with pytest.raises(TypeError, match="obj="):
        listing.source(3)
    with pytest.raises(TypeError, match="region="):
        listing.source(metrics.precision_at_1, 3)
