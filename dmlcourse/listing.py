"""Listings: the package's own code, printed whole or by a named region.

Taught in 00_start_here.

A notebook shows the code behind a formula with :func:`show`. It prints a whole function,
method or class, or one **named region** of it: the lines between two marker comments in the
package source::

    def batch_semi_hard(z, labels, margin=None):
        ...
        # region: band
        ok = neg[a] & (d_an > d_ap)
        ...
        # endregion

    show(miners.batch_semi_hard)            # the whole function (marker lines left out)
    show(miners.batch_semi_hard, "band")    # only the marked lines
    show(miners.nca_loss, docstring=False)  # without its docstring

A listing is never cut out of a string: a region that is missing, or that is not a complete
block of Python, raises an error that names the function, the region asked for and the regions
it has. ``tests/test_listing.py`` resolves every listing of every notebook this way.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

__all__ = ["regions", "show", "source"]

_BEGIN = re.compile(r"^\s*# region: (?P<name>[\w\- ]+?)\s*$")
_END = re.compile(r"^\s*# endregion\s*$")


def _target(obj):
    """The function or class whose source a listing shows (a bound method: its function)."""
    obj = getattr(obj, "__func__", obj)
    if isinstance(obj, property):
        obj = obj.fget
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(
            f"obj={obj!r}: a listing shows a function, a method or a class of the package, "
            f"not a {type(obj).__name__}"
        )
    return obj


def _where(obj) -> str:
    try:
        path = inspect.getsourcefile(inspect.unwrap(obj)) or "?"
    except TypeError:
        path = "?"
    path = path.replace("\\", "/")
    if "/dmlcourse/" in path:
        path = "dmlcourse/" + path.rsplit("/dmlcourse/", 1)[1]
    return f"{path}: {obj.__qualname__}"


def _marked(lines: list[str]) -> dict[str, tuple[int, int]]:
    """``name -> (first, last)`` line indices (0-based, markers excluded) of every region."""
    out, open_name, start = {}, None, 0
    for i, line in enumerate(lines):
        m = _BEGIN.match(line)
        if m:
            if open_name is not None:
                raise ValueError(f"region {open_name!r} is not closed before region {m['name']!r}")
            open_name, start = m["name"], i + 1
        elif _END.match(line):
            if open_name is None:
                raise ValueError(f"line {i + 1}: '# endregion' without '# region: <name>'")
            if open_name in out:
                raise ValueError(f"region {open_name!r} is marked twice")
            out[open_name], open_name = (start, i - 1), None
    if open_name is not None:
        raise ValueError(f"region {open_name!r} is never closed ('# endregion')")
    return out


def regions(obj) -> list[str]:
    """The names of the regions marked in ``obj``'s source, in order."""
    obj = _target(obj)
    return list(_marked(inspect.getsource(obj).splitlines()))


def _without_docstring(lines: list[str]) -> list[str]:
    tree = ast.parse(textwrap.dedent("\n".join(lines)))
    node = tree.body[0]
    body = getattr(node, "body", [])
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(getattr(body[0], "value", None), ast.Constant)
    ):
        if isinstance(body[0].value.value, str):
            first, last = body[0].lineno - 1, body[0].end_lineno - 1
            return lines[:first] + lines[last + 1 :]
    return lines


def source(obj, region: str | None = None, *, docstring: bool = True) -> str:
    """The source of ``obj`` (a function, method or class of the package), dedented.

    region : None (default) for the whole of ``obj``; a name for the lines between
        ``# region: <name>`` and ``# endregion`` inside it.
    docstring : keep the docstring (default); False leaves it out (whole listings only).

    Marker lines never appear in the listing. The listing must parse as a complete block of
    Python: a region that is missing or cut mid-statement raises ``LookupError`` or
    ``ValueError`` naming ``obj``, the region and the regions it has.
    """
    obj = _target(obj)
    if region is not None and not isinstance(region, str):
        raise TypeError(f"region={region!r}: give the region's name as a string, or None")
    if region is not None and not docstring:
        raise ValueError("docstring=False applies to whole listings; a region has no docstring")
    lines = inspect.getsource(obj).splitlines()
    marked = _marked(lines)
    if region is None:
        keep = [ln for ln in lines if not (_BEGIN.match(ln) or _END.match(ln))]
        if not docstring:
            keep = _without_docstring(keep)
    else:
        if region not in marked:
            have = ", ".join(repr(r) for r in marked) or "none"
            raise LookupError(
                f"region={region!r} is not marked in {_where(obj)}; its regions: {have} "
                "(mark one with '# region: <name>' ... '# endregion')"
            )
        first, last = marked[region]
        keep = [ln for ln in lines[first : last + 1] if not (_BEGIN.match(ln) or _END.match(ln))]
    text = textwrap.dedent("\n".join(keep)).strip("\n")
    try:
        ast.parse(text)
    except SyntaxError as exc:
        what = f"region {region!r}" if region else "the listing"
        raise ValueError(
            f"{what} of {_where(obj)} is not a complete block of Python ({exc.msg}, line "
            f"{exc.lineno}): move the markers to whole statements"
        ) from None
    return text


def show(obj, region: str | None = None, *, docstring: bool = True) -> None:
    """Print :func:`source` of ``obj`` (or of its ``region``) under a line saying where it lives."""
    text = source(obj, region, docstring=docstring)
    what = f", region {region!r}" if region else ""
    print(f"# {_where(_target(obj))}{what}\n{text}")
