"""Build the course's notebooks from their one source each, and check the sources.

The source of a lecture is ``notebooks/NN_name.py`` in jupytext's ``py:percent``
format (open it in JupyterLab as a notebook, or in any text editor). Exercise
solutions sit between nbgrader's markers::

    def my_precision_at_1(embeddings, labels):
        \"\"\"Return ...\"\"\"
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

Two versions are built from each source:

* the **solution** version keeps the code and drops the marker lines;
* the **learner** version replaces each marked region with nbgrader's stub
  (``# YOUR CODE HERE`` and, inside a function, ``raise NotImplementedError()``).

Commands::

    python scripts/course.py build solution build/solutions   # overwrite: for CI and instructors
    python scripts/course.py build learner build/learner
    python scripts/course.py lab my-notebooks   # learner's own copies, never overwritten
    python scripts/course.py check                            # what `make lint` enforces
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import tokenize
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "notebooks"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
VERSIONS = ("learner", "solution")
MANIFEST = ".dmlcourse-manifest.json"
SETUP_CELL = """\
# Setup: imports, seed, device, data size, quick mode
import torch
from dmlcourse import data, metrics, models, plots, runtime, train
QUICK = runtime.is_quick()            # DMLCOURSE_QUICK=1 (CI): small and fast
device = runtime.get_device()         # CUDA, then Apple MPS, then CPU
SIZE = data.default_size(device)      # "mini" on CPU or in quick mode, "full" on a GPU
runtime.seed_everything(0)"""
JUPYTEXT_FILTERS = {
    "notebook_metadata_filter": "-all",
    "cell_metadata_filter": "exercise,tags,-all",
}
KERNELSPEC = {"display_name": "Python 3 (dmlcourse)", "language": "python", "name": "python3"}


class CourseError(Exception):
    """A problem the person running the command must fix; printed without a traceback."""


def sources(only: list[str] | None = None) -> list[Path]:
    """The lecture sources, ``notebooks/NN_name.py``, in order (``only``: prefixes such as "06")."""
    paths = sorted(SOURCES.glob("[0-9][0-9]_*.py"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
        if not paths:
            raise CourseError(
                f"--only {only}: no notebook source matches; have {[p.stem for p in sources()]}"
            )
    return paths


def solution_regions(src: str) -> list[tuple[int, int]]:
    """Line ranges ``(begin, end)`` of the marked regions; raises on unbalanced markers."""
    regions, start = [], None
    for i, line in enumerate(src.splitlines()):
        s = line.strip()
        if s == BEGIN:
            if start is not None:
                raise CourseError(f"line {i + 1}: {BEGIN} inside another region")
            start = i
        elif s == END:
            if start is None:
                raise CourseError(f"line {i + 1}: {END} without {BEGIN}")
            regions.append((start, i))
            start = None
    if start is not None:
        raise CourseError(f"line {start + 1}: {BEGIN} is never closed")
    return regions


def strip_solutions(src: str, version: str) -> str:
    """The cell's code for ``version``: markers dropped (solution) or regions stubbed (learner)."""
    lines, out, pos = src.splitlines(), [], 0
    for begin, end in solution_regions(src):
        out += lines[pos:begin]
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        if version == "solution":
            out += lines[begin + 1 : end]
        else:
            out.append(f"{indent}# YOUR CODE HERE")
            if indent:  # inside a function body: nbgrader's stub
                out.append(f"{indent}raise NotImplementedError()")
        pos = end + 1
    out += lines[pos:]
    return "\n".join(out)


def _cell_id(cell_type: str, source: str, seen: dict[str, int]) -> str:
    """A stable id: the hash of the cell's content (plus a counter for repeated cells)."""
    base = hashlib.sha1(f"{cell_type}\n{source}".encode()).hexdigest()[:10]
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def build(path: Path, version: str) -> nbformat.NotebookNode:
    """The ``version`` ("learner" or "solution") of the lecture whose source is ``path``."""
    if version not in VERSIONS:
        raise CourseError(f"version={version!r} is not allowed; choose one of {VERSIONS}")
    nb = jupytext.read(path, fmt="py:percent")
    seen: dict[str, int] = {}
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            try:
                source = strip_solutions(cell.source, version)
            except CourseError as exc:
                raise CourseError(f"{path.name}: {exc}") from None
            meta = {k: v for k, v in cell.metadata.items() if k in ("exercise", "tags")}
            new = nbformat.v4.new_code_cell(source, metadata=meta)
        else:
            new = nbformat.v4.new_markdown_cell(cell.source, metadata={})
        new.id = _cell_id(new.cell_type, new.source, seen)
        cells.append(new)
    out = nbformat.v4.new_notebook(cells=cells)
    out.nbformat_minor = 5
    out.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        "dmlcourse": {"lecture": path.stem, "version": version},
    }
    return out


def dumps(nb: nbformat.NotebookNode) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder: never half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_all(version: str, out: Path, only: list[str] | None = None) -> list[Path]:
    """Write ``version`` of every lecture to ``out`` (overwriting: this folder is generated)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources(only):
        target = out / f"{src.stem}.ipynb"
        atomic_write(target, dumps(build(src, version)))
        written.append(target)
    return written


def _ensure_writable(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise CourseError(
            f"{folder} exists and is not a folder; move it away, then run `make lab` again."
        )
    probe_dir = folder if folder.exists() else folder.parent
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise CourseError(
            f"{probe_dir} is not writable, so your notebooks cannot be copied there. "
            f"Nothing was changed. Fix it with `chmod u+w {probe_dir}` "
            "(or set LEARNER_DIR=another/folder), then run `make lab` again."
        )


def learner_copies(
    folder: Path, today: str | None = None, only: list[str] | None = None
) -> list[str]:
    """Create or update the learner's own notebooks in ``folder``; never overwrite a learner's file.

    * first run: every learner notebook is written;
    * a notebook the course has not changed since it was copied: left alone (the edits stay);
    * a notebook the course has changed: the new version goes beside it as
      ``NN_name (updated YYYY-MM-DD).ipynb`` and the learner's file is untouched;
    * a notebook the learner deleted or renamed: a fresh copy is written, and said so;
    * leftovers of an interrupted run (temporary files) are removed.

    Returns the messages printed.
    """
    today = today or _dt.date.today().isoformat()
    _ensure_writable(folder)
    folder.mkdir(parents=True, exist_ok=True)
    messages = []
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink()
        messages.append(
            f"removed {tmp.name}, left by an interrupted run (your notebooks were not touched)"
        )
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except json.JSONDecodeError:
        messages.append(
            f"{MANIFEST} was unreadable; starting it afresh (your notebooks were not touched)"
        )
        manifest = {}
    for src in sources(only):
        text = dumps(build(src, "learner"))
        h = content_hash(text)
        name = f"{src.stem}.ipynb"
        target = folder / name
        known = manifest.get(src.stem)
        if not target.exists():
            atomic_write(target, text)
            if known is not None:
                messages.append(f"{name} was missing (renamed or deleted?): wrote a fresh copy")
            else:
                messages.append(f"created {name}")
        elif (known is None and content_hash(target.read_text(encoding="utf-8")) == h) or (
            known is not None and known["hash"] == h
        ):
            pass  # the course has not changed this notebook: the learner's file stays as it is
        else:
            updated = folder / f"{src.stem} (updated {today}).ipynb"
            if not (updated.exists() and content_hash(updated.read_text(encoding="utf-8")) == h):
                atomic_write(updated, text)
                messages.append(
                    f"the course changed {src.stem}: the new version is '{updated.name}'; "
                    f"your {name} is untouched"
                )
        manifest[src.stem] = {"hash": h}
    atomic_write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return messages


# ------------------------------------------------------------------- the teaching-text rules
# What `make lint` checks in the lecture text, beyond the format (CONTRIBUTING.md, "What make lint
# checks in the text"): listings by name, no figure of a run typed into the prose, no description of
# other versions of the course, exercises that ask before they show, checks that a constant cannot
# pass, and summary bullets tied to the asserts that back them.

DECIMAL = re.compile(r"(?<![\w.\\\"'])(\d*\.\d+)(?![\w.]*\d)")
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
# an exercise or section id of the course, 00.1 ... 09.9: a leading 0 before another digit is
# never how a decimal is written
COURSE_ID = re.compile(r"0\d\.\d+")
APPROX = re.compile(r"\\approx\s*(\d*\.\d+)")
HISTORY = re.compile(
    r"(earlier|previous|older|former) version of (this|the) (course|notebook|lecture)"
    r"|this version's|an earlier version",
    re.I,
)
CLAIM_TAG = re.compile(r"<!--\s*claim:\s*([\w\-]+)\s*-->")
RECAP_TAG = re.compile(r"<!--\s*recap\s*-->")
CLAIM_COMMENT = re.compile(r"#\s*claim:\s*([\w\-]+(?:\s*,\s*[\w\-]+)*)")
SOLUTION_LINE_MIN = (
    30  # a solution line this long (spaces squeezed) is distinctive enough to be its answer
)


def _parse(cell_source: str) -> ast.Module | None:
    try:
        return ast.parse(cell_source)
    except SyntaxError:
        return None


def _nodes(cell_source: str):
    """Every node of a code cell's syntax tree (none if the cell does not parse)."""
    tree = _parse(cell_source)
    return ast.walk(tree) if tree else ()


def _call_name(node: ast.AST) -> str | None:
    f = node.func if isinstance(node, ast.Call) else None
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)


def listing_problems(code_cells: list[str]) -> list[str]:
    """A listing is a whole function or a named region (``show``), never a string cut by hand."""
    out = []
    for k, src in enumerate(code_cells):
        tree = _parse(src)
        if tree is None:
            continue
        parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for node in ast.walk(tree):
            name = _call_name(node)
            if name == "getsource":
                out.append(
                    f"code cell {k + 1}: inspect.getsource(...) in a notebook: print a listing "
                    "with show(obj) or show(obj, 'region') (dmlcourse.listing), never a string "
                    "cut by hand"
                )
            elif name == "source" and isinstance(
                parents.get(id(node)), (ast.Attribute, ast.Subscript)
            ):
                out.append(
                    f"code cell {k + 1}: a listing from source(...) is cut or split; show a whole "
                    "function or a region marked in the package ('# region: <name>')"
                )
    return out


def code_literals(code_cells: list[str]) -> set[float]:
    """Every number written in the notebook's code: the constants of the lecture."""
    out = set()
    for src in code_cells:
        for node in _nodes(src):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, (int, float))
                and not isinstance(node.value, bool)
            ):
                out.add(float(node.value))
    return out


def decimal_problems(markdown_cells: list[str], literals: set[float]) -> list[str]:
    """A decimal in the prose must be a constant of the lecture (a literal of its code) or the
    value of a formula written after \\approx; anything else is a figure of a run, which its cell
    prints."""
    out = []
    for k, text in enumerate(markdown_cells):
        approx = {
            m.start(1)
            for mm in MATH.finditer(text)
            for m in APPROX.finditer(text, mm.start(), mm.end())
        }
        for m in DECIMAL.finditer(text):
            if (
                m.start(1) in approx
                or float(m.group(1)) in literals
                or COURSE_ID.fullmatch(m.group(1))
            ):
                continue
            around = text[max(0, m.start() - 50) : m.end() + 20].replace("\n", " ")
            out.append(
                f"markdown cell {k + 1}: the decimal {m.group(1)} is not a constant of the lecture "
                f"(no literal of the code): print it from its cell instead (...{around}...)"
            )
    return out


def history_problems(markdown_cells: list[str]) -> list[str]:
    """The course describes itself as it is."""
    return [
        f"markdown cell {k + 1}: the text describes another version of the course "
        f"({m.group(0)!r}); say what this notebook does and finds"
        for k, t in enumerate(markdown_cells)
        for m in HISTORY.finditer(t)
    ]


def _alias_map(code_cells: list[str]) -> dict[str, str]:
    """Names the notebook imports from dmlcourse, each to its module (``ms``: metric_spaces)."""
    out = {}
    for src in code_cells:
        for node in _nodes(src):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dmlcourse"):
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("dmlcourse"):
                        out[a.asname or a.name] = a.name
    return out


def _resolve(dotted: str):
    from dmlcourse.exercises import resolve

    return resolve(dotted)


def _unwrap(obj):
    return getattr(obj, "__func__", obj)


def shown_objects(code_cells: list[str]) -> list[tuple[int, str, str | None]]:
    """Every listing of the notebook: (code cell index, dotted name shown, region or None)."""
    aliases, out = _alias_map(code_cells), []
    for k, src in enumerate(code_cells):
        for node in _nodes(src):
            if _call_name(node) != "show" or not node.args:
                continue
            expr = ast.unparse(node.args[0])
            head, _, rest = expr.partition(".")
            dotted = aliases.get(head, head) + (f".{rest}" if rest else "")
            region = (
                node.args[1].value
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                else None
            )
            out.append((k, dotted, region))
    return out


def _squeeze(line: str) -> str:
    return re.sub(r"\s+", " ", line.strip())


def exercise_problems(cells: list, registry: dict) -> list[str]:
    """An exercise asks before it shows: neither the package code that answers it nor a line of its
    solution appears in a code cell above it."""
    code = [c for c in cells if c.cell_type == "code"]
    listings = shown_objects([c.source for c in code])
    out = []
    for pos, cell in enumerate(code):
        ex_id = cell.metadata.get("exercise")
        if not ex_id or ex_id not in registry:
            continue
        answers = {}  # id of the object -> (its name, the region that answers, or None: all of it)
        for name in registry[ex_id].implemented_by:
            answers[id(_unwrap(_resolve(name)))] = (name, name.partition(":")[2] or None)
        for k, dotted, region in listings:
            if k >= pos:
                continue
            try:
                obj = _unwrap(_resolve(dotted))
            except (ImportError, AttributeError):
                continue  # tests/test_listing.py reports listings that do not resolve
            answer = answers.get(id(obj))
            if answer and (answer[1] is None or region in (None, answer[1])):
                out.append(
                    f"exercise {ex_id} asks for {answer[0]}, and code cell {k + 1} lists it "
                    f"before the exercise ({dotted}{f', region {region!r}' if region else ''}): "
                    "show it after the exercise, or leave it to show_solution"
                )
        solution = [
            _squeeze(ln)
            for begin, end in solution_regions(cell.source)
            for ln in cell.source.splitlines()[begin + 1 : end]
        ]
        distinctive = [
            ln for ln in solution if len(ln) >= SOLUTION_LINE_MIN and not ln.startswith("#")
        ]
        for k, earlier in enumerate(code[:pos]):
            if earlier.metadata.get("exercise"):
                continue  # an earlier exercise's solution is the learner's own code
            lines = {_squeeze(ln) for ln in earlier.source.splitlines()}
            for ln in distinctive:
                if ln in lines:
                    out.append(
                        f"exercise {ex_id}: its solution line {ln!r} is already in code cell "
                        f"{k + 1}"
                    )
    return out


def constant_problems(ids: list[str]) -> list[str]:
    """No check may pass a constant answer (dmlcourse.exercises.constant_answers_that_pass)."""
    from dmlcourse import exercises

    out = []
    for ex_id in ids:
        for what in exercises.constant_answers_that_pass(ex_id):
            out.append(
                f"exercise {ex_id}: the check passes {what}; make it compare with a reference "
                "that a constant cannot match"
            )
    return out


def _claim_lines(code_cells: list[str]) -> set[str]:
    """The claim ids marked on an assert (``assert ...  # claim: id``, or on the line above)."""
    out = set()
    for src in code_cells:
        tree = _parse(src)
        if tree is None:
            continue
        asserts = [(n.lineno, n.end_lineno) for n in ast.walk(tree) if isinstance(n, ast.Assert)]
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
        except (tokenize.TokenError, IndentationError):
            continue
        for tok in tokens:
            m = CLAIM_COMMENT.search(tok.string) if tok.type == tokenize.COMMENT else None
            if m and any(a <= tok.start[0] <= b or tok.start[0] == a - 1 for a, b in asserts):
                out.update(x.strip() for x in m.group(1).split(","))
    return out


def summary_problems(cells: list) -> list[str]:
    """Every bullet of the Summary either recaps (``<!-- recap -->``) or states a result whose claim
    id (``<!-- claim: id -->``) marks an assert in the notebook's code (``# claim: id``)."""
    summary = next(
        (
            k
            for k, c in enumerate(cells)
            if c.cell_type == "markdown" and re.search(r"^## Summary\s*$", c.source, flags=re.M)
        ),
        None,
    )
    if summary is None:
        return ["the notebook has no '## Summary' section"]
    text = cells[summary].source.split("## Summary", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"^- ", text, flags=re.M)[1:]
    backed = _claim_lines([c.source for c in cells[:summary] if c.cell_type == "code"])
    out = []
    if not bullets:
        out.append("the Summary has no bullets")
    for b in bullets:
        first = _squeeze(b)[:60]
        claims = CLAIM_TAG.findall(b)
        if not claims and not RECAP_TAG.search(b):
            out.append(
                f"summary bullet {first!r}... is neither a recap (<!-- recap -->) nor tied to an "
                "assert (<!-- claim: id --> and '# claim: id' on the assert)"
            )
        for c in claims:
            if c not in backed:
                out.append(
                    f"summary bullet {first!r}... claims {c!r}, but no assert above carries "
                    f"'# claim: {c}'"
                )
    return out


def text_problems(path: Path, nb, registry: dict | None = None) -> list[str]:
    """The teaching-text rules for one lecture source (``nb`` as jupytext reads it)."""
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    out = (
        listing_problems(code)
        + decimal_problems(markdown, code_literals(code))
        + history_problems(markdown)
    )
    out += summary_problems(nb.cells)
    if registry is not None:
        out += exercise_problems(nb.cells, registry)
        ids = [c.metadata["exercise"] for c in nb.cells if c.metadata.get("exercise") in registry]
        out += constant_problems(ids)
    return [f"{path.name}: {p}" for p in out]


def _registry() -> dict:
    """Every registered exercise (imports the package: the checks run on torch)."""
    sys.path.insert(0, str(ROOT))
    from dmlcourse import exercises

    return exercises.all_exercises()


def check_sources(only: list[str] | None = None) -> list[str]:
    """What `make lint` enforces; returns a list of problems (empty when all is well)."""
    problems = []
    registry = _registry()
    stray = sorted(p.name for p in SOURCES.glob("*.ipynb"))
    if stray:
        problems.append(
            f"notebooks/ holds .ipynb files {stray}: the sources are the .py files; remove them"
        )
    for src in sources(only):
        text = src.read_text(encoding="utf-8")
        try:
            nb = jupytext.read(src, fmt="py:percent")
            for v in VERSIONS:
                build(src, v)
        except CourseError as exc:
            problems.append(str(exc))
            continue
        # the file must be exactly what jupytext writes (so a JupyterLab save makes no diff)
        nb.metadata["jupytext"] = dict(JUPYTEXT_FILTERS)
        if jupytext.writes(nb, fmt="py:percent") != text:
            problems.append(
                f"{src.name}: not in jupytext's canonical py:percent form; "
                "run `make format-notebooks`"
            )
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code or code[0].source.strip() != SETUP_CELL:
            problems.append(
                f"{src.name}: the first code cell must be the fixed setup cell "
                "(see CONTRIBUTING.md)"
            )
        ids = {}
        for cell in code:
            marked = bool(solution_regions(cell.source))
            ex = cell.metadata.get("exercise")
            if marked and not ex:
                problems.append(
                    f"{src.name}: a cell with solution markers has no exercise id "
                    '(# %% exercise="NN.k")'
                )
            if ex:
                if not re.fullmatch(rf"{src.name[:2]}\.\d+", str(ex)):
                    problems.append(
                        f"{src.name}: exercise id {ex!r} must look like '{src.name[:2]}.1'"
                    )
                if ex in ids:
                    problems.append(f"{src.name}: exercise id {ex!r} used twice")
                ids[ex] = True
                if f'check("{ex}"' not in cell.source:
                    problems.append(
                        f'{src.name}: exercise {ex} does not call check("{ex}", ...) in its cell'
                    )
        n = len(ids)
        if not 2 <= n <= 4:
            problems.append(f"{src.name}: has {n} marked exercises; every notebook has 2-4")
        # stable ids: two builds give the same ids
        a, b = build(src, "learner"), build(src, "learner")
        if [c.id for c in a.cells] != [c.id for c in b.cells]:
            problems.append(f"{src.name}: cell ids are not stable across builds")
        problems += text_problems(src, nb, registry)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write one version of every notebook (overwrites)")
    b.add_argument("version", choices=VERSIONS)
    b.add_argument("out", type=Path)
    b.add_argument("--only", nargs="*")
    lab = sub.add_parser("lab", help="create/update the learner's own copies (never overwrites)")
    lab.add_argument("out", type=Path)
    c = sub.add_parser("check", help="check the sources (make lint)")
    c.add_argument("--only", nargs="*")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            for p in build_all(args.version, args.out, args.only):
                print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
        elif args.cmd == "lab":
            msgs = learner_copies(args.out)
            for m in msgs:
                print(f"{args.out}: {m}")
            if not msgs:
                print(f"{args.out}: your notebooks are up to date with the course")
        else:
            problems = check_sources(args.only)
            for p in problems:
                print(f"course check: {p}", file=sys.stderr)
            if problems:
                return 1
            print(f"course check: {len(sources(args.only))} notebook sources ok")
    except CourseError as exc:
        print(f"course: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
