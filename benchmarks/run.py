"""Run every benchmark of the suite and print its tables.

    python benchmarks/run.py            # full version (by hand, here and on a GPU)
    python benchmarks/run.py --quick    # a small version that CI runs, so the suite cannot rot
    python benchmarks/run.py --json out/   # also write each benchmark's figures as JSON

Each benchmark is a script ``benchmarks/bench_*.py`` with the options --quick and --json PATH.
Benchmarks measure; tests assert. Nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="DIR", help="write <DIR>/<benchmark>.json")
    ap.add_argument("--only", nargs="*", help="names of benchmarks to run (e.g. train miners)")
    args = ap.parse_args()
    print(f"dmlcourse benchmarks on {describe()}" + (" [quick]" if args.quick else ""))
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if args.json:
            Path(args.json).mkdir(parents=True, exist_ok=True)
            cmd += ["--json", str(Path(args.json) / f"{name}.json")]
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(
            f"--- {name}: {time.perf_counter() - t0:.1f} s"
            + ("" if rc == 0 else f", FAILED (exit {rc})")
        )
        if rc:
            failed.append(name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
