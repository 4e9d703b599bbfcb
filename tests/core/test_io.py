"""core.io: atomic writes leave the old file, or nothing, on an error."""

import pytest
import torch

from dmlcourse.core import io


def test_atomic_write_replaces_only_when_complete(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    with io.atomic_write(path) as fh:
        fh.write(b"one")
    assert path.read_bytes() == b"one"
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_write(path) as fh:
            fh.write(b"two")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"one"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]  # no temporary file left


def test_atomic_torch_save_roundtrip(tmp_path):
    path = io.atomic_torch_save({"w": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path)["w"], torch.arange(3))
