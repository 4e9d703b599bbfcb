"""Build the course's static website (``make site``): every lecture executed, with its figures.

    python scripts/site.py                       # all lectures -> build/site/index.html
    python scripts/site.py --only 00 05          # some lectures (the CI test builds one)
    python scripts/site.py --solutions           # the instructors' build: solutions included

Steps: the learner versions of the notebooks (never the solutions, unless ``--solutions``) are
built from ``notebooks/NN_name.py`` into ``site/lectures/`` with a first cell saying which mode
and machine executed them; Sphinx with MyST-NB executes them (``DMLCOURSE_SITE=1``: plotly
without a CDN, widgets as static stand-ins, see ``dmlcourse/site.py``) and writes
``build/site/``. Full mode where a GPU is present, quick mode otherwise (``DMLCOURSE_QUICK``
decides when set). The site opens from the file system, offline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE_SRC = ROOT / "site"
OUT = ROOT / "build" / "site"
sys.path.insert(0, str(ROOT / "scripts"))
import course  # noqa: E402  (scripts/course.py: the notebook builder)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="lecture prefixes, e.g. 00 05")
    ap.add_argument(
        "--solutions", action="store_true", help="include the exercise solutions (instructors)"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch

    if "DMLCOURSE_QUICK" not in os.environ:
        os.environ["DMLCOURSE_QUICK"] = "0" if torch.cuda.is_available() else "1"
    mode = "quick" if os.environ["DMLCOURSE_QUICK"] == "1" else "full"
    os.environ["DMLCOURSE_SITE"] = "1"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    version = "solution" if args.solutions else "learner"
    lectures = SITE_SRC / "lectures"
    shutil.rmtree(lectures, ignore_errors=True)
    lectures.mkdir(parents=True)
    note = (
        f"```{{note}}\nThis page was executed in **{mode} mode** on {machine()}, "
        f"{dt.date.today().isoformat()}; the figures and numbers are that run's. The widgets are "
        "static stand-ins: their sliders replay steps computed when the page was built. "
        "To run the lecture and "
        f"use the live widgets, see [the two commands](../index.md#two-commands).\n```"
    )
    import nbformat
    from nbclient import NotebookClient

    t0 = time.perf_counter()
    for src in course.sources(args.only):
        nb = course.build(src, version)
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(note))
        nb.cells[1].id = "site-note"
        t1 = time.perf_counter()
        # executed here, not by Sphinx, so that no widget state is stored (stand-ins replace them)
        NotebookClient(
            nb,
            timeout=3600,
            kernel_name="python3",
            store_widget_state=False,
            resources={"metadata": {"path": str(lectures)}},
        ).execute()
        errors = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        if errors:
            print(
                f"site: {src.stem} raised {errors[0]['ename']}: {errors[0]['evalue']}",
                file=sys.stderr,
            )
            return 1
        (lectures / f"{src.stem}.ipynb").write_text(course.dumps(nb), encoding="utf-8")
        print(f"site: executed {src.stem} in {time.perf_counter() - t1:.0f} s", flush=True)

    from sphinx.cmd.build import build_main

    # Sphinx's own cache (doctrees) beside the site, not in it: it is no part of what is hosted
    doctrees = args.out.parent / f"{args.out.name}-doctrees"
    rc = build_main(
        ["-b", "html", "-q", "-j", "1", "-d", str(doctrees), str(SITE_SRC), str(args.out)]
    )
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20
    print(
        f"site: {version} build, {mode} mode, {seconds:.0f} s, {size:.1f} MiB in "
        f"{args.out}/index.html"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
