"""What the check functions share."""

from __future__ import annotations

import math

import torch


def close(a, b, tol: float = 1e-6, *, relative: bool = True) -> bool:
    """Same shape and equal within ``tol`` (absolute, and relative too unless ``relative=False``), in float64."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol if relative else 0.0, atol=tol))


def as_number(value, name) -> float:
    """The learner's ``value`` as one finite float, or an AssertionError saying what it is."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise AssertionError(f"{name} is a tensor of shape {tuple(value.shape)}; give one number.")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} must be a number, got {type(value).__name__}.") from None
    if not math.isfinite(out):
        raise AssertionError(f"{name} is {out}; give a finite number.")
    return out


def as_mean(value, name: str) -> float:
    """A loss the learner returned, as one float: a tensor with several entries gets the message
    that a loss is the MEAN over the samples."""
    t = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    if t.numel() != 1:
        raise AssertionError(f"{name} returned a tensor of shape {tuple(t.shape)}; return one number, "
                             "the MEAN over the samples (.mean()).")
    return float(t)


def same(a: float, b: float, tol: float = 1e-6) -> bool:
    """Equal within ``tol``, relative for large values."""
    return abs(a - b) <= tol * max(1.0, abs(b))
