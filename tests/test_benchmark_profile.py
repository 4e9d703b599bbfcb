"""benchmarks/profile_notebooks.py: the per-section and per-cell times it reports come from the
timestamps nbclient records in an executed notebook."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_notebooks.py"


def _module():
    spec = importlib.util.spec_from_file_location("profile_notebooks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code(source, start, end):
    timing = {"iopub.execute_input": start, "shell.execute_reply": end}
    return {"cell_type": "code", "source": source, "metadata": {"execution": timing}}


def test_cell_seconds_assigns_cells_to_their_section_and_times_them(capsys):
    notebook = {
        "cells": [
            _code("import torch", "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:01.500Z"),
            {"cell_type": "markdown", "source": "## 1. Training\ntext"},
            _code(
                ["# a comment\n", "history = train()\n"],
                "2026-12-01T10:00:02Z",
                "2026-12-01T10:01:02Z",
            ),
            {"cell_type": "code", "source": "never run", "metadata": {}},
            {"cell_type": "markdown", "source": "## 2. Pictures"},
            _code("plot()", "2026-12-01T10:01:03Z", "2026-12-01T10:01:13.250Z"),
        ]
    }
    rows = _module().cell_seconds(notebook)
    assert [(s, first) for s, first, _ in rows] == [
        ("(before the first section)", "import torch"),
        ("1. Training", "history = train()"),
        ("2. Pictures", "plot()"),
    ]
    assert [round(t, 3) for _, _, t in rows] == [1.5, 60.0, 10.25]
