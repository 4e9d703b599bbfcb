"""Atomic writes: a reader never sees a half-written file.

Every file the package writes (downloads, cached results, histories) goes to a
temporary file in the destination folder first and is renamed into place only
when it is complete; an error or an interrupt leaves the old file (or nothing).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def atomic_write(path, *, suffix: str = ".tmp"):
    """``with atomic_write(path) as fh: fh.write(...)``: a binary file handle on a
    temporary file beside ``path``, renamed to ``path`` when the block ends without
    an exception and deleted otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: a reader
    never sees a half-written file, and an interrupt leaves the old file intact."""
    with atomic_write(path) as fh:
        torch.save(obj, fh)
    return Path(path)
