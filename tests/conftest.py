import os
from pathlib import Path

import pytest
import torch

from dmlcourse import runtime

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


@pytest.fixture
def test_device():
    """The device of the tests that take this fixture: $DMLCOURSE_TEST_DEVICE, default "cpu".

    benchmarks/device_check.sh sets it to "cuda" on a lent GPU machine, so that the same tests run
    the package's GPU path (the package has no GPU-only branch; these tests show it). Asking for a
    device this machine does not have fails: a GPU run must not pass by quietly using the CPU.
    """
    name = os.environ.get("DMLCOURSE_TEST_DEVICE", "cpu")
    device = runtime.get_device(name, verbose=False)  # the package's check of the name
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.fail(f"DMLCOURSE_TEST_DEVICE={name!r} but torch.cuda.is_available() is False")
    return device
