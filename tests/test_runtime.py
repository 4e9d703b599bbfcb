"""runtime: quick mode and the device."""

import pytest

from dmlcourse import data, runtime


def test_quick_mode_and_device(monkeypatch):
    monkeypatch.setenv("DMLCOURSE_QUICK", "1")
    assert runtime.is_quick() and runtime.quick(10, 1) == 1 and data.default_size() == "mini"
    monkeypatch.setenv("DMLCOURSE_QUICK", "0")
    assert not runtime.is_quick() and runtime.quick(10, 1) == 10
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer='tpu'"):
        runtime.get_device("tpu")
