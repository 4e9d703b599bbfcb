"""Device selection, seeding and quick mode: the fixed first cell of every notebook.

Taught in 00_start_here.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .core.paths import is_quick
from .core.validate import check_int

__all__ = ["get_device", "seed_everything", "is_quick", "quick"]

_REPORTED = False


def get_device(prefer: str | None = None, *, verbose: bool = True) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` forces one ("cuda", "mps" or "cpu"); the environment variable
    ``DMLCOURSE_DEVICE`` does the same for a whole session. The choice is printed
    once per process (``verbose=False`` silences it).
    """
    global _REPORTED
    prefer = prefer or os.environ.get("DMLCOURSE_DEVICE") or None
    if prefer is not None:
        if prefer not in {"cuda", "mps", "cpu"}:
            raise ValueError(f"prefer={prefer!r} is not allowed; choose 'cuda', 'mps' or 'cpu'.")
        device = torch.device(prefer)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose and not _REPORTED:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
        print(f"dmlcourse: using {device} ({name}), torch {torch.__version__}")
        _REPORTED = True
    return device


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU ``torch.Generator``, same seed."""
    seed = check_int("seed", seed, min_value=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def quick(full, quick_value):
    """Pick ``quick_value`` in quick mode and ``full`` otherwise: ``epochs = quick(10, 1)``."""
    return quick_value if is_quick() else full
