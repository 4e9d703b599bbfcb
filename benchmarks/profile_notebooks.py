"""Where a notebook's time goes: seconds per section and per cell of an executed notebook.

    python benchmarks/bench_notebooks.py --modes full --keep out/   # execute, keeping the notebooks
    python benchmarks/profile_notebooks.py out/*-full.ipynb          # then read their timings
    python benchmarks/profile_notebooks.py out/05_siamese_triplet-full.ipynb --cells 10

nbclient records when each code cell started and finished (``metadata.execution``); this script
sums them per section (the last "## " heading above the cell) and lists the slowest cells with their
first line. Kernel start-up is the gap between the notebook's wall time and the sum of its cells.
A function-level profile of one notebook: ``python -m cProfile -s cumtime`` on its jupytext source
(``notebooks/NN_name.py`` runs as a script).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cell_seconds(notebook: dict) -> list[tuple[str, str, float]]:
    """(section heading, first code line, seconds) of every executed code cell, in order."""
    section, rows = "(before the first section)", []
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            for line in source.splitlines():
                if line.startswith("## ") or line.startswith("# "):
                    section = line.lstrip("# ").strip()
            continue
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell["cell_type"] != "code" or not start or not end:
            continue
        lines = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")]
        first = lines[0] if lines else ""
        rows.append((section, first.strip()[:70], (_stamp(end) - _stamp(start)).total_seconds()))
    return rows


def report(path: Path, n_cells: int) -> None:
    rows = cell_seconds(json.loads(path.read_text()))
    total = sum(s for _, _, s in rows)
    print(f"\n{path.name}: {len(rows)} code cells, {total:.0f} s in cells")
    by_section: dict[str, float] = {}
    for section, _, seconds in rows:
        by_section[section] = by_section.get(section, 0.0) + seconds
    for section, seconds in sorted(by_section.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05 * total:
            print(f"  {seconds:7.1f} s {100 * seconds / max(total, 1e-9):4.0f}%  {section[:70]}")
    print(f"  slowest {n_cells} cells:")
    for _, first, seconds in sorted(rows, key=lambda r: -r[2])[:n_cells]:
        print(f"  {seconds:7.1f} s  {first}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+", type=Path, help="executed .ipynb files")
    ap.add_argument("--cells", type=int, default=5, help="how many of the slowest cells to list")
    args = ap.parse_args()
    for path in args.notebooks:
        report(path, args.cells)


if __name__ == "__main__":
    main()
