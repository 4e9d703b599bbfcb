"""'Load the cached result if present, else compute it' — safe to delete, never corrupt.

Taught in 00_start_here.

Results live in ``$DMLCOURSE_CACHE_DIR`` (default ``<repo>/data/cache``), one
file per (name, configuration), written atomically. A file that cannot be read
(an old format, a disk error) is ignored and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import torch

from .runtime import is_quick
from .train import atomic_torch_save


def cache_dir() -> Path:
    env = os.environ.get("DMLCOURSE_CACHE_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "data" / "cache"


def cache_path(name: str, config: dict) -> Path:
    """The file for ``name`` and ``config`` (quick mode is part of the key)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"name={name!r} must be a non-empty string of letters, digits, '-', '_' or '.'.")
    key = json.dumps({"config": config, "quick": is_quick()}, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-{digest}.pt"


def cached(name: str, config: dict, compute: Callable[[], object], *, refresh: bool = False):
    """Return the cached result for (name, config), or ``compute()`` it and store it.

    ``compute`` returns anything ``torch.save`` can write (tensors, dicts, state dicts).
    """
    path = cache_path(name, config)
    if path.exists() and not refresh:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # unreadable: recompute, never trust it
            warnings.warn(f"ignoring unreadable cache file {path} ({exc}); recomputing.", stacklevel=2)
    result = compute()
    history = result.get("history") if isinstance(result, dict) else result
    if getattr(history, "interrupted", False):
        warnings.warn(f"{name}: training stopped early, so the result is not cached.", stacklevel=2)
        return result
    atomic_torch_save(result, path)
    return result
