"""Verification: is this pair the same identity? ROC, equal error rate, TAR at a fixed FAR.

Taught in 07_angular_margins (used again in 08_uncertainty_pfe).

A verification system scores a pair (higher = more alike) and accepts it above a
threshold t. Over all thresholds:

* TAR(t), the true accept rate: accepted genuine (same-class) pairs / genuine pairs;
* FAR(t), the false accept rate: accepted impostor pairs / impostor pairs;
* the ROC curve is TAR against FAR; the EER is where FAR = 1 - TAR;
* TAR@FAR=1e-3 is the TAR at the largest threshold-set whose FAR does not exceed 1e-3.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .core.validate import check_finite, check_float, check_int, check_tensor
from .tuples import make_pairs


class ROC(NamedTuple):
    far: torch.Tensor  # false accept rates, increasing
    tar: torch.Tensor  # true accept rates
    thresholds: torch.Tensor  # accept when score >= threshold


def _check(scores, same):
    check_tensor("scores", scores, ndim=1)
    check_tensor("same", same, ndim=1)
    if len(scores) != len(same):
        raise ValueError(
            f"scores has {len(scores)} entries but same has {len(same)}; they must match."
        )
    same = same.bool()
    if same.all() or not same.any():
        raise ValueError("same must contain both genuine (True) and impostor (False) pairs.")
    check_finite("scores", scores, why="pairs are ranked by their scores, so each needs one")
    return scores.detach().double().cpu(), same.cpu()


def roc_curve(scores: torch.Tensor, same: torch.Tensor) -> ROC:
    """The ROC curve of pair ``scores`` (higher = more similar) against ``same`` (bool).

    Thresholds are the distinct scores, from the highest down; the curve starts at
    (0, 0). Equal to scikit-learn's ``roc_curve(same, scores, drop_intermediate=False)``.
    """
    scores, same = _check(scores, same)
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], same[order].double()
    tp, fp = torch.cumsum(y, 0), torch.cumsum(1 - y, 0)
    last = torch.ones(len(s), dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # keep the last index of each run of equal scores
    tp, fp, thr = tp[last], fp[last], s[last]
    zero = torch.zeros(1, dtype=torch.double)
    tar = torch.cat([zero, tp / y.sum()])
    far = torch.cat([zero, fp / (1 - y).sum()])
    return ROC(far, tar, torch.cat([torch.tensor([float("inf")], dtype=torch.double), thr]))


def equal_error_rate(scores: torch.Tensor, same: torch.Tensor) -> float:
    """The error rate where FAR equals FRR = 1 - TAR (linear interpolation on the ROC)."""
    far, tar, _ = roc_curve(scores, same)
    frr = 1 - tar
    diff = far - frr  # increasing from -1 to +1
    i = int(torch.nonzero(diff >= 0)[0])
    if i == 0 or diff[i] == 0:
        return float(far[i])
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(far[i - 1] + w * (far[i] - far[i - 1]))


def tar_at_far(scores: torch.Tensor, same: torch.Tensor, far: float = 1e-3) -> float:
    """The highest TAR whose FAR does not exceed ``far``."""
    far = check_float("far", far, min_value=0.0, max_value=1.0)
    roc = roc_curve(scores, same)
    ok = roc.far <= far + 1e-12
    return float(roc.tar[ok].max())


def pair_scores(
    z: torch.Tensor, i: torch.Tensor, j: torch.Tensor, similarity: str = "cosine"
) -> torch.Tensor:
    """Scores of pairs (z[i], z[j]): cosine similarity, or minus the Euclidean distance."""
    if similarity not in ("cosine", "neg_euclidean"):
        raise ValueError(
            f"similarity={similarity!r} is not allowed; choose 'cosine' or 'neg_euclidean'."
        )
    if similarity == "cosine":
        return torch.nn.functional.cosine_similarity(z[i], z[j], dim=1)
    return -torch.linalg.norm(z[i] - z[j], dim=1)


def verification_pairs(labels: torch.Tensor, n_pairs: int = 20000, *, seed: int = 0):
    """Balanced genuine/impostor pairs (i, j, same) from labels (half of each), seeded."""
    n_pairs = check_int("n_pairs", n_pairs, min_value=2)
    i, j, dissimilar = make_pairs(labels, n_pairs, positive_fraction=0.5, seed=seed)
    return i, j, dissimilar == 0
