"""How a vector of per-pair/per-triplet loss terms becomes one number.

Taught in 05_siamese_triplet (the reductions and the empty-set rule in 06_mining_sampling).

``reduction`` in {"mean", "sum", "mean_nonzero", "none"}: mean over all terms; sum (as
the Guelph slides' formulas are written); mean over the terms that are > 0
(pytorch-metric-learning's default); or the per-term vector. An empty set of terms
gives a zero that is still connected to the graph, so ``loss.backward()`` works.
"""

from __future__ import annotations

import torch

from .validate import check_choice

REDUCTIONS = ("mean", "sum", "mean_nonzero", "none")


def reduce_terms(
    terms: torch.Tensor, reduction: str = "mean", *, anchor: torch.Tensor | None = None
) -> torch.Tensor:
    """Reduce a vector of per-pair/per-triplet loss terms.

    ``anchor`` is any tensor in the graph used to build a zero when ``terms`` is
    empty (so that an empty batch still back-propagates).
    """
    check_choice("reduction", reduction, REDUCTIONS)
    if reduction == "none":
        return terms
    if terms.numel() == 0:
        base = anchor if anchor is not None else terms
        return base.sum() * 0.0
    if reduction == "sum":
        return terms.sum()
    if reduction == "mean":
        return terms.mean()
    nonzero = terms > 0
    count = nonzero.sum()
    return terms.sum() / count.clamp_min(1).to(terms.dtype)
