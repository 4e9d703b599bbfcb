"""Wall time of each notebook, in quick mode and at full strength.

    python benchmarks/bench_notebooks.py            # every notebook, quick and full (slow: by hand)
    python benchmarks/bench_notebooks.py --quick    # 00_start_here in quick mode only (what CI
    runs)
    python benchmarks/bench_notebooks.py --modes full --keep out/   # keep the executed notebooks
    python benchmarks/bench_notebooks.py --modes full --warm --only 00  # cold, then warm

Each notebook runs in a fresh kernel with an empty result cache (so cached runs do not hide training
time): the "cold" time. With ``--warm`` it runs a second time on the cache the first run left: the
"warm" time, what a learner waits for after a kernel restart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, machine_info

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(
    path: Path, quick: bool, keep: Path | None, cache: Path | None = None, tag: str = ""
) -> tuple[float, bool]:
    """Execute ``path`` once; ``cache``: the result cache to use (default: a new, empty one);
    ``tag``: added to the kept notebook's name (e.g. "-warm")."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            DMLCOURSE_QUICK="1" if quick else "0",
            DMLCOURSE_CACHE_DIR=str(cache if cache is not None else Path(tmp) / "cache"),
        )
        out_dir = keep if keep is not None else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{path.stem}-{'quick' if quick else 'full'}{tag}.ipynb"
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            str(path),
            "--output",
            str(out),
            "--ExecutePreprocessor.timeout=7200",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:  # nbconvert saves nothing on an error: show the failing cell here
            print(
                f"{path.stem} ({'quick' if quick else 'full'}) failed:\n{proc.stderr[-3000:]}",
                flush=True,
            )
        return seconds, proc.returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--modes", nargs="+", default=["quick", "full"], choices=["quick", "full"])
    ap.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 00 05")
    ap.add_argument("--keep", type=Path, help="folder for the executed notebooks")
    ap.add_argument("--warm", action="store_true", help="also a second run on the first's cache")
    args = ap.parse_args()
    built = ROOT / "build" / "bench-notebooks"  # solution versions, built from notebooks/NN_name.py
    course = str(ROOT / "scripts" / "course.py")
    subprocess.run(
        [sys.executable, course, "build", "solution", str(built)], check=True, capture_output=True
    )
    notebooks = sorted(built.glob("*.ipynb"))
    modes = args.modes
    if args.warm:
        modes = [m + suffix for m in modes for suffix in ("", " warm")]
    if args.quick:
        notebooks, modes = [p for p in notebooks if p.name.startswith("00")], ["quick"]
    if args.only:
        notebooks = [p for p in notebooks if any(p.name.startswith(o) for o in args.only)]
    print(f"notebook wall times -- {describe()}")
    print(f"{'notebook':<28}" + "".join(f"{m + ' (s)':>16}" for m in modes))
    rows = []
    for nb in notebooks:
        row = {"notebook": nb.stem}
        with tempfile.TemporaryDirectory() as tmp:
            for mode in modes:  # "quick", then "quick warm" on the same cache, …
                cache = Path(tmp) / mode.split()[0]
                tag = "-warm" if mode.endswith("warm") else ""
                seconds, ok = run_notebook(nb, mode.startswith("quick"), args.keep, cache, tag)
                row[mode] = seconds if ok else None
        rows.append(row)
        print(
            f"{nb.stem:<28}"
            + "".join(
                f"{row[m]:>16.0f}" if row[m] is not None else f"{'FAILED':>16}" for m in modes
            ),
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
