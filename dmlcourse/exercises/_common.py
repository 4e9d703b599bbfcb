"""What the check functions share."""

from __future__ import annotations

import torch


def close(a, b, tol: float = 1e-6, *, relative: bool = True) -> bool:
    """Same shape and equal within ``tol`` (absolute, and relative too unless ``relative=False``), in float64."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol if relative else 0.0, atol=tol))
