"""Argument checks shared by every public function (scikit-learn style).

Each helper raises a ``ValueError``/``TypeError`` whose message names the
parameter, the value received and what is allowed, so a learner never sees a
deep traceback from inside torch or numpy.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch


def check_choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {sorted(allowed)}.")
    return value


def check_int(
    name: str, value, *, min_value: int | None = None, max_value: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}.")
    return value


def check_float(
    name: str,
    value,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    strict_min: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(
                f"{name} must be a real number, got {value!r} ({type(value).__name__})."
            )
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got NaN.")
    if min_value is not None:
        if strict_min and not value > min_value:
            raise ValueError(f"{name} must be > {min_value}, got {value}.")
        if not strict_min and value < min_value:
            raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}.")
    return value


def check_tensor(
    name: str, value, *, ndim: int | None = None, floating: bool = False
) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}.")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}.")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}.")
    return value


def check_embeddings_labels(
    embeddings, labels, *, name: str = "embeddings", labels_name: str = "labels"
):
    """Check a (N, D) float embedding matrix and its (N,) integer labels."""
    check_tensor(name, embeddings, ndim=2, floating=True)
    check_tensor(labels_name, labels, ndim=1)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{labels_name} must be an integer tensor, got dtype {labels.dtype}.")
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"{labels_name} has {labels.shape[0]} entries but {name} has {embeddings.shape[0]} "
            "rows; "
            "they must match."
        )
    return embeddings, labels


def check_images_labels(
    images, labels, *, why: str = "a loader needs at least one sample"
) -> tuple:
    """Check a non-empty image tensor and its (N,) labels, one label per image."""
    check_tensor("images", images)
    check_tensor("labels", labels, ndim=1)
    if len(images) != len(labels):
        raise ValueError(
            f"images has {len(images)} entries but labels has {len(labels)}; they must match."
        )
    if len(images) == 0:
        raise ValueError(f"images is empty; {why}.")
    return images, labels


class NonFiniteError(ValueError):
    """A tensor that must hold numbers holds NaN or +-inf (a diverged network, an overflow)."""


def non_finite_rows(t: torch.Tensor, *, limit: int = 8) -> str:
    """Where ``t`` is NaN or infinite, in words: "NaN in rows [0, 17], +inf in rows [3]"."""
    flat = t.detach().reshape(len(t), -1) if t.ndim else t.detach().reshape(1, 1)
    parts = []
    for what, bad in (
        ("NaN", torch.isnan(flat)),
        ("+inf", flat == float("inf")),
        ("-inf", flat == float("-inf")),
    ):
        rows = torch.nonzero(bad.any(1)).flatten().tolist()
        if rows:
            shown = ", ".join(map(str, rows[:limit])) + (", ..." if len(rows) > limit else "")
            parts.append(f"{what} in {len(rows)} row{'s' if len(rows) > 1 else ''} [{shown}]")
    return ", ".join(parts)


DIVERGED = (
    "a network that gives NaN or infinite values has diverged: try a smaller learning rate, "
    "or float32 instead of float16"
)


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of ``t`` is a number. The sum is NaN or infinite whenever an entry
    is: one reduction and one item(), cheaper than isfinite(t).all(); only a sum that is not
    finite (a NaN, or finite values adding up beyond float range) is looked at entry by entry."""
    t = t.detach()
    return math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


def check_finite(name: str, value: torch.Tensor, *, why: str = DIVERGED) -> torch.Tensor:
    """Raise :class:`NonFiniteError` naming the rows if ``value`` holds NaN or +-inf.

    One reduction and one device synchronisation: used where a function synchronises anyway
    (a miner's ``nonzero``, a metric's sort), never on a loss's hot path, which propagates NaN.
    """
    if value.is_floating_point() and not all_finite(value):
        raise NonFiniteError(f"{name} holds {non_finite_rows(value)}; {why}.")
    return value
