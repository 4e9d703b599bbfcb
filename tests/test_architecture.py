"""The package's layers, checked on its source (ast), not by convention.

    core/            argument checks, atomic I/O, the cache, locations and the size policy,
                     distances, reductions, the one PCA: imports no lecture module
    lecture modules  one per lecture (the first lecture named in "Taught in" of the module's
                     docstring); none imports a module of a later lecture
    lab/, exercises/, site on top: may import anything

Imports sit at the top of a file; inside a function only the heavy optional libraries below.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dmlcourse"
TOP = ("lab", "exercises", "site")  # above every lecture
HEAVY = {"matplotlib", "plotly", "ipywidgets", "umap", "numba", "PIL", "IPython", "sklearn"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _lecture(name: str) -> int | None:
    """The module's lecture: the first ``Taught in NN_`` of its docstring (None for core and
    top)."""
    parts = name.split(".")
    if (
        len(parts) > 1
        and parts[1] in ("core", *TOP)
        or name == "dmlcourse"
        or parts[-1] == "datasets"
    ):
        return None
    doc = ast.get_docstring(ast.parse(MODULES[name].read_text())) or ""
    m = re.search(r"Taught in (\d\d)_", doc)
    assert m, f"{name}: its docstring must say 'Taught in NN_<lecture>'"
    return int(m.group(1))


# The layer order in one place: module -> lecture number, from the docstrings.
LECTURE = {name: _lecture(name) for name in MODULES}


def _imports(name: str):
    """(imported dmlcourse module, line, inside a function?) for every import of ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    in_function = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from . import x" imports the sub-module x
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            yield target, node.lineno, id(node) in in_function


def test_every_lecture_module_names_its_lecture():
    lectures = {n: lec for n, lec in LECTURE.items() if lec is not None}
    assert lectures["dmlcourse.train"] == 0 and lectures["dmlcourse.mahalanobis"] == 2
    assert lectures["dmlcourse.uncertainty"] == 8 and len(lectures) == 20


@pytest.mark.parametrize("name", sorted(n for n in MODULES if LECTURE[n] is not None))
def test_no_lecture_module_imports_a_later_lecture(name):
    later = [
        (t, line, LECTURE[t])
        for t, line, _ in _imports(name)
        if t in LECTURE and LECTURE[t] is not None and LECTURE[t] > LECTURE[name]
    ]
    assert not later, f"{name} (lecture {LECTURE[name]:02d}) imports later lectures: {later}"
    top = [t for t, _, _ in _imports(name) if t.split(".")[1:2] and t.split(".")[1] in TOP]
    assert not top, f"{name} imports the top layer: {top}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("dmlcourse.core")))
def test_core_imports_no_lecture_module(name):
    bad = [
        t
        for t, _, _ in _imports(name)
        if t.startswith("dmlcourse") and not t.startswith("dmlcourse.core")
    ]
    assert not bad, f"{name} is core and must import only core, got {bad}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if ".exercises" not in n))
def test_imports_inside_functions_are_only_heavy_optional_libraries(name):
    inside = [
        (t, line)
        for t, line, in_function in _imports(name)
        if in_function and t.split(".")[0] not in HEAVY
    ]
    assert not inside, f"{name}: move these imports to the top of the file: {inside}"


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """A fake lecture-00 module importing miners (lecture 06) is caught."""
    fake = PACKAGE / "runtime.py"
    path = tmp_path / "runtime.py"
    path.write_text(fake.read_text() + "\n\ndef late():\n    from .miners import MINERS\n")
    monkeypatch.setitem(MODULES, "dmlcourse.runtime", path)
    found = [
        (t, inside) for t, _, inside in _imports("dmlcourse.runtime") if t == "dmlcourse.miners"
    ]
    assert found == [("dmlcourse.miners", True)]
    assert LECTURE["dmlcourse.miners"] > LECTURE["dmlcourse.runtime"]
