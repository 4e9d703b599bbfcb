import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def full_data_dir(monkeypatch):
    """A data folder with the full official files (../shared/datasets or $DMLCOURSE_DATA_DIR).

    Skipped on a machine that has neither; in CI (CI=true) the files must be there.
    """
    candidates = [os.environ.get("DMLCOURSE_DATA_DIR"), str(SHARED)]
    for c in candidates:
        if c and (Path(c) / "mnist" / "t10k-labels-idx1-ubyte.gz").exists():
            monkeypatch.setenv("DMLCOURSE_DATA_DIR", c)
            return Path(c)
    if os.environ.get("CI"):
        pytest.fail("CI must have the full datasets in ../shared/datasets")
    pytest.skip("full datasets not available on this machine")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
