"""'Load the cached result if present, else compute it' — safe to delete, never corrupt.

Taught in 00_start_here.

Results live in :func:`dmlcourse.core.paths.cache_dir` (``$DMLCOURSE_CACHE_DIR``, else
``<repo>/data/cache`` in a clone, else ``~/.cache/dmlcourse/cache``), one file per (name,
configuration), written atomically. A file that cannot be read (an old format, a disk error)
or that ``check`` rejects is ignored and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable

import torch

from .io import atomic_torch_save
from .paths import cache_dir, is_quick

__all__ = ["cache_dir", "cache_path", "cached", "fingerprint"]


def fingerprint(named_arrays) -> str:
    """A SHA-1 of (name, tensor or NumPy array) pairs: their names, dtypes, shapes and bytes, so
    equal only for equal bits. For cache keys that depend on data (a UMAP layout of these
    points, the embeddings by these weights of these images)."""
    digest = hashlib.sha1()
    for key, array in named_arrays:
        t = torch.as_tensor(array).detach().cpu()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        flat = t.contiguous().reshape(-1)  # a 0-d tensor cannot be viewed as bytes
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def cache_path(name: str, config: dict) -> Path:
    """The file for ``name`` and ``config`` (quick mode is part of the key).

    ``name`` may hold one "/" to group files in a sub-folder (``"lab/run"``)."""
    parts = name.split("/") if isinstance(name, str) else [name]
    ok = 1 <= len(parts) <= 2 and all(
        isinstance(p, str) and p[:1].isalnum() and all(c.isalnum() or c in "-_." for c in p)
        for p in parts
    )
    if not ok:
        raise ValueError(
            f"name={name!r} must be a non-empty string of letters, digits, '-', '_' or '.' that "
            "starts with a letter or digit (at most one '/')."
        )
    key = json.dumps({"config": config, "quick": is_quick()}, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir().joinpath(*parts[:-1], f"{parts[-1]}-{digest}.pt")


def cached(
    name: str,
    config: dict,
    compute: Callable[[], object],
    *,
    refresh: bool = False,
    check: Callable[[object], object] | None = None,
    warn_partial: bool = True,
):
    """Return the cached result for (name, config), or ``compute()`` it and store it.

    ``compute`` returns anything ``torch.save`` can write (tensors, dicts, state dicts).
    ``check(result)`` (optional) turns a loaded file into the result, or raises if the
    file is not what ``config`` describes; it is then recomputed.
    A result whose history (or that itself) is ``interrupted`` is returned but not stored
    (with a warning unless ``warn_partial=False``: the Lab reports stops itself).
    """
    path = cache_path(name, config)
    if path.exists() and not refresh:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False)
            return check(loaded) if check is not None else loaded
        except Exception as exc:  # unreadable: recompute, never trust it
            warnings.warn(
                f"ignoring unreadable cache file {path} ({exc}); recomputing.", stacklevel=2
            )
    result = compute()
    history = result.get("history") if isinstance(result, dict) else result
    if getattr(history, "interrupted", False):
        if warn_partial:
            warnings.warn(
                f"{name}: training stopped early, so the result is not cached.", stacklevel=2
            )
        return result
    atomic_torch_save(result, path)
    return result
