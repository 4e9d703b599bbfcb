"""Distances between embeddings, shared by the metrics, losses and miners.

Taught in 01_metric_spaces (the axioms) and 05_siamese_triplet (the losses).

``distance`` is one of
* ``"euclidean"``          ||x - y||
* ``"squared_euclidean"``  ||x - y||^2  (not a metric: the triangle inequality fails)
* ``"cosine"``             1 - cos(x, y) (not a metric either)

Half precision: float16 and bfloat16 inputs are widened to float32 (and autocast is
switched off inside), so the distances are float32. In float16, ||x||^2 + ||y||^2 - 2 x.y
cancels catastrophically for near points: two unit vectors 1 degree apart would be at
distance 0 instead of 0.01745, and every miner would misread them.

Non-finite inputs: a row holding NaN or +-inf has NaN distances to everything (the other
rows keep theirs), so a diverged network never looks like one whose embeddings coincide.
"""

from __future__ import annotations

import torch

from .validate import check_choice, check_tensor

DISTANCES = ("euclidean", "squared_euclidean", "cosine")

# Below this squared distance the square root's gradient (1 / 2 sqrt(d)) is not
# taken: sqrt(max(d, EPS)) keeps gradients finite when two embeddings coincide.
SQRT_EPS = 1e-12


def safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """sqrt that is exactly 0 at 0 with a zero (not NaN/inf) gradient there; NaN stays NaN.

    ``d2.detach() * 0`` (not a constant 0) in the small branch: it is 0 for a small distance,
    with a zero gradient, and NaN for a NaN one, so a diverged network never shows distance 0.
    """
    big = d2 > SQRT_EPS
    small = d2.detach() * 0
    return torch.where(big, torch.sqrt(torch.where(big, d2, torch.ones_like(d2))), small)


def no_inf(d: torch.Tensor) -> torch.Tensor:
    """``d`` with every +inf made NaN (finite values unchanged, gradient unchanged).

    A squared distance is infinite only when an input row holds +-inf (or values beyond float
    range: a diverged network either way), and a NaN input already gives NaN. Without this, an
    infinite d(a, n) would make a hinge [d(a,p) - d(a,n) + m]_+ exactly 0, a finite loss. Two
    cheap ops (the product outside autograd), so a training step pays almost nothing for it
    (benchmarks/bench_train.py --loop, benchmarks/ab_train_step.py)."""
    return d + d.detach() * 0


HALF = (torch.float16, torch.bfloat16)


def widen(t: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (differentiable); other dtypes unchanged."""
    return t.float() if t.dtype in HALF else t


def pairwise_distance(
    x: torch.Tensor, y: torch.Tensor | None = None, distance: str = "euclidean"
) -> torch.Tensor:
    """All distances between the rows of ``x`` (N, D) and ``y`` (M, D): an (N, M) matrix.

    ``y=None`` means ``y = x`` (the diagonal is then exactly 0).
    The squared Euclidean distance is computed as ||x||^2 + ||y||^2 - 2 x.y,
    clamped at 0 against round-off; half-precision inputs are computed in float32.
    """
    check_choice("distance", distance, DISTANCES)
    check_tensor("x", x, ndim=2, floating=True)
    same = y is None
    if not same:
        check_tensor("y", y, ndim=2, floating=True)
        if y.shape[1] != x.shape[1]:
            raise ValueError(
                f"x has {x.shape[1]} dimensions but y has {y.shape[1]}; they must match."
            )
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _pairwise(widen(x), None if same else widen(y), distance)


def _pairwise(x: torch.Tensor, y: torch.Tensor | None, distance: str) -> torch.Tensor:
    same = y is None
    if same:
        y = x
    if distance == "cosine":
        xn = torch.nn.functional.normalize(x, dim=1, eps=1e-12)
        yn = xn if same else torch.nn.functional.normalize(y, dim=1, eps=1e-12)
        d = 1.0 - xn @ yn.T
    else:
        d = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
        d = no_inf(d.clamp_min(0.0))  # NaN, never +inf, for a row that is not all numbers
        if distance == "euclidean":
            d = safe_sqrt(d)
    if same:
        d = d - torch.diag_embed(torch.diagonal(d))  # exact zeros on the diagonal, keeps autograd
    return d


def paired_distance(x: torch.Tensor, y: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """Row-wise distances d(x_i, y_i) of two (N, D) tensors: an (N,) vector."""
    check_choice("distance", distance, DISTANCES)
    check_tensor("x", x, ndim=2, floating=True)
    check_tensor("y", y, ndim=2, floating=True)
    if x.shape != y.shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but y has {tuple(y.shape)}; they must match."
        )
    x, y = widen(x), widen(y)
    if distance == "cosine":  # a non-finite row gives inf / inf = NaN
        return 1.0 - torch.nn.functional.cosine_similarity(x, y, dim=1, eps=1e-12)
    d2 = no_inf(((x - y) ** 2).sum(1))  # NaN, never +inf, for a row that is not all numbers
    return d2 if distance == "squared_euclidean" else safe_sqrt(d2)
