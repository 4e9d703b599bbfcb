"""benchmarks/device_check.sh, the one script a lent GPU machine runs: tried here on the CPU in its
quick form, so that it still runs end to end on the day a GPU is lent (no test needs a GPU)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_runs_every_part_and_reports_the_goals(tmp_path):
    env = dict(os.environ, PY=sys.executable, DEVICE="cpu", QUICK="1", OUT=str(tmp_path))
    env.pop("DMLCOURSE_TEST_DEVICE", None)
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ends = dict(re.findall(r"^== (\S+): exit (\d+)", proc.stdout, re.M))
    parts = ["1-machine", "2-device-tests", "3-bench-train", "4-bench-quality", "5-unit-tests"]
    assert ends == {p: "0" for p in parts}, proc.stdout[-3000:]
    assert "cuda available: False" in (tmp_path / "1-machine.txt").read_text()
    assert re.search(r"\d+ passed", (tmp_path / "2-device-tests.txt").read_text())
    quality = json.loads((tmp_path / "4-bench-quality.json").read_text())["rows"]
    assert [r["configuration"] for r in quality] == ["NCA (default)"]
    assert 0.1 < quality[0]["nn1_acc"] <= 1.0  # a trained network, not chance (0.1)
    train = json.loads((tmp_path / "3-bench-train.json").read_text())["rows"]
    assert all(r["s_per_epoch_full_mnist"] > 0 for r in train)
    # the summary reads both benchmarks: one line per goal, each saying met or missed
    goals = re.findall(r"^goal: .*\((met|missed)\)$", proc.stdout, re.M)
    assert len(goals) == 2, proc.stdout[-1500:]
