"""What the check functions share."""

from __future__ import annotations

import math

import torch


def close(a, b, tol: float = 1e-6, *, relative: bool = True) -> bool:
    """Same shape and equal within ``tol`` (absolute, and relative too unless ``relative=False``), in float64."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol if relative else 0.0, atol=tol))


def as_number(value, name, what: str = "") -> float:
    """The learner's ``value`` as one finite float, or an AssertionError saying what it is
    (``what``: what the number means, added to the message)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise AssertionError(f"{name} is a tensor of shape {tuple(value.shape)}; give one number.")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError):
        about = f" ({what})" if what else ""
        raise AssertionError(f"{name} must be a number{about}, got {type(value).__name__}.") from None
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


def name_the_mistake(yours, mistakes: dict, *, matches=close) -> None:
    """The checks' diagnosis: ``mistakes`` maps a message to what a known mistake computes; raise the
    message of the first one that ``yours`` matches (``matches(yours, value)``), else return."""
    for message, value in mistakes.items():
        if matches(yours, value):
            raise AssertionError(message)


def as_shaped_tensor(value, shape, name: str, what: str) -> torch.Tensor:
    """What the learner's function ``name`` returned, as a float64 tensor of ``shape``, or an
    AssertionError that says what was expected (``what``: what the entries are)."""
    try:
        value = torch.as_tensor(value)
    except Exception:
        raise AssertionError(f"{name} returned {type(value).__name__}; return a tensor ({what}).") from None
    if tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{name} returned shape {tuple(value.shape)}; expected {tuple(shape)} ({what}).")
    return value.detach().double()
