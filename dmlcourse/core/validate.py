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
