"""A real browser on the course: one JupyterLab server for the whole suite, driven by Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` package (the
``dev`` extra); skipped, with a message, when either is missing. Run with ``make test-browser``.
Screenshots of every checked state go to ``build/browser-shots/``.

Environment: ``DMLCOURSE_BROWSER_ONLY=06,07`` limits the suite to some notebooks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DMLCOURSE_CHROMIUM", "/usr/bin/chromium")
BUILD = ROOT / "build" / "browser"
SHOTS = ROOT / "build" / "browser-shots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1500, "height": 1000}
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
ONLY = [o for o in os.environ.get("DMLCOURSE_BROWSER_ONLY", "").split(",") if o]
if ONLY:
    NOTEBOOKS = [n for n in NOTEBOOKS if any(n.startswith(o) for o in ONLY)]

_SKIP = None
if not Path(CHROMIUM).exists():
    _SKIP = f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium)"
else:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _SKIP = "browser tests skipped: no playwright (pip install -e '.[dev]')"


def pytest_collection_modifyitems(config, items):
    if _SKIP:
        for item in items:
            if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(pytest.mark.skip(reason=_SKIP))
        return

    # notebook-major order: every check of one notebook, then the next (one notebook open at a time)
    def key(item):
        nb = item.callspec.params.get("name", "") if hasattr(item, "callspec") else ""
        return (nb, item.fspath.basename)

    order = {id(it): i for i, it in enumerate(items)}
    items.sort(key=lambda it: (key(it), order[id(it)]))


@pytest.fixture(scope="session")
def lab_url():
    """A JupyterLab server on the solution notebooks (quick mode); stopped at the end."""
    from .driver import lab_server

    nb_dir = BUILD / "nb"
    shutil.rmtree(nb_dir, ignore_errors=True)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "course.py"), "build", "solution", str(nb_dir)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    with lab_server(nb_dir, BUILD) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        for other in list(_OPEN):
            _OPEN.pop(other).close()
        b.close()


_OPEN: dict = {}


@pytest.fixture
def notebook(request, lab_url, browser):
    """The notebook ``name`` (the test's parameter), opened and run (Run All) once per session;
    the previous notebook's page and kernel are closed first."""
    from .driver import NotebookRun

    name = request.node.callspec.params["name"]
    if name not in _OPEN:
        for other in list(_OPEN):
            _OPEN.pop(other).close()
        _OPEN[name] = NotebookRun(browser, lab_url, name, SHOTS)
    run = _OPEN[name]
    if run.failure:
        pytest.fail(f"{name}: could not run: {run.failure}")
    return run
