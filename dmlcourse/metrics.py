"""Retrieval metrics: Precision@1, Recall@k, R-Precision, MAP@R and kNN accuracy; and how to
compare them over seeds (``mean_sd``, ``clearly_above``).

Taught in 00_start_here (the comparison over seeds in 04_supervised_losses).

Every function is called as ``f(embeddings, labels, reference=None,
reference_labels=None, ..., distance="euclidean")``. Without a reference, the
queries are their own reference set and each query's own entry is excluded.
Queries whose label appears nowhere in the reference (except themselves) have
no correct answer and are left out, as pytorch-metric-learning does.
Queries are processed in chunks, so 10,000 queries against 60,000 references
fit in memory.
"""

from __future__ import annotations

import torch

from .core.distances import DISTANCES, pairwise_distance
from .core.validate import check_choice, check_embeddings_labels, check_finite, check_int

CHUNK = 512


def _prepare(embeddings, labels, reference, reference_labels, distance):
    check_embeddings_labels(embeddings, labels)
    check_choice("distance", distance, DISTANCES)
    if (reference is None) != (reference_labels is None):
        raise ValueError("reference and reference_labels must be given together (or neither).")
    same = reference is None
    if same:
        reference, reference_labels = embeddings, labels
    else:
        check_embeddings_labels(
            reference, reference_labels, name="reference", labels_name="reference_labels"
        )
        if reference.shape[1] != embeddings.shape[1]:
            raise ValueError(
                f"reference has {reference.shape[1]} dimensions but embeddings has "
                f"{embeddings.shape[1]}; they must match."
            )
    if len(embeddings) == 0:
        raise ValueError("embeddings is empty; there is nothing to evaluate.")
    if len(reference) - (1 if same else 0) < 1:
        raise ValueError("the reference set needs at least one element besides the query.")
    emb = check_finite("embeddings", embeddings.detach())
    ref = check_finite("reference", reference.detach().to(emb.device, emb.dtype))
    return emb, labels.to(emb.device), ref, reference_labels.to(emb.device), same


def _neighbours(emb, ref, k, same, distance):
    """Indices (N, k) of the k nearest references of each query, nearest first."""
    out = []
    for s in range(0, len(emb), CHUNK):
        d = pairwise_distance(emb[s : s + CHUNK], ref, distance)
        if same:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + s] = float("inf")
        out.append(torch.topk(d, k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(out)


def _relevance(embeddings, labels, reference, reference_labels, distance, k_of_r: bool, k: int = 1):
    emb, lab, ref, ref_lab, same = _prepare(
        embeddings, labels, reference, reference_labels, distance
    )
    classes, counts = torch.unique(ref_lab, return_counts=True)
    pos = torch.searchsorted(classes, lab).clamp_max(len(classes) - 1)
    r = torch.where(classes[pos] == lab, counts[pos], torch.zeros_like(counts[pos]))
    if same:
        r = r - 1
    valid = r > 0
    max_k = len(ref) - (1 if same else 0)
    kk = int(r.max().item()) if k_of_r else k
    kk = max(1, min(kk, max_k))
    nn = _neighbours(emb, ref, kk, same, distance)
    rel = ref_lab[nn] == lab[:, None]
    return rel, r, valid, nn, ref_lab


def precision_at_1(
    embeddings, labels, reference=None, reference_labels=None, *, distance="euclidean"
) -> float:
    """Fraction of queries whose nearest neighbour has the query's label."""
    rel, _, valid, _, _ = _relevance(
        embeddings, labels, reference, reference_labels, distance, False, 1
    )
    return rel[valid, 0].float().mean().item() if valid.any() else float("nan")


def recall_at_k(
    embeddings, labels, reference=None, reference_labels=None, *, k: int = 1, distance="euclidean"
) -> float:
    """Fraction of queries with at least one same-label item among their k nearest
    neighbours (the "Recall@k" of the deep-metric-learning papers)."""
    k = check_int("k", k, min_value=1)
    rel, _, valid, _, _ = _relevance(
        embeddings, labels, reference, reference_labels, distance, False, k
    )
    return rel[valid].any(dim=1).float().mean().item() if valid.any() else float("nan")


def _rank_mask(rel, r):
    ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device)
    return ranks[None, :] <= r[:, None]


def r_precision(
    embeddings, labels, reference=None, reference_labels=None, *, distance="euclidean"
) -> float:
    """Mean over queries of (same-label items among the R nearest) / R, where R is
    the number of reference items sharing the query's label."""
    rel, r, valid, _, _ = _relevance(
        embeddings, labels, reference, reference_labels, distance, True
    )
    hits = (rel & _rank_mask(rel, r)).sum(1).float()
    return (hits[valid] / r[valid].float()).mean().item() if valid.any() else float("nan")


def map_at_r(
    embeddings, labels, reference=None, reference_labels=None, *, distance="euclidean"
) -> float:
    """Mean average precision at R (Musgrave et al., 2020): for each query,
    (1/R) * sum_{i<=R} P@i * rel_i, averaged over queries."""
    rel, r, valid, _, _ = _relevance(
        embeddings, labels, reference, reference_labels, distance, True
    )
    rel = rel & _rank_mask(rel, r)
    ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device)
    prec_at_i = rel.float().cumsum(1) / ranks
    ap = (prec_at_i * rel).sum(1) / r.clamp_min(1).float()
    return ap[valid].mean().item() if valid.any() else float("nan")


def knn_accuracy(
    embeddings, labels, reference=None, reference_labels=None, *, k: int = 1, distance="euclidean"
) -> float:
    """Accuracy of a k-nearest-neighbour classifier: majority vote of the k nearest
    references (ties go to the smallest label, as in scikit-learn)."""
    k = check_int("k", k, min_value=1)
    emb, lab, ref, ref_lab, same = _prepare(
        embeddings, labels, reference, reference_labels, distance
    )
    k = min(k, len(ref) - (1 if same else 0))
    nn = _neighbours(emb, ref, k, same, distance)
    classes, inverse = torch.unique(ref_lab, return_inverse=True)
    votes = torch.zeros(len(emb), len(classes), device=emb.device)
    votes.scatter_add_(1, inverse[nn], torch.ones_like(nn, dtype=votes.dtype))
    pred = classes[votes.argmax(1)]  # argmax returns the first maximum = smallest label
    return (pred == lab).float().mean().item()


def evaluate(
    embeddings, labels, reference=None, reference_labels=None, *, distance="euclidean"
) -> dict:
    """Precision@1 and MAP@R together (what the training loop reports per epoch)."""
    return {
        "precision_at_1": precision_at_1(
            embeddings, labels, reference, reference_labels, distance=distance
        ),
        "map_at_r": map_at_r(embeddings, labels, reference, reference_labels, distance=distance),
    }


# Comparing over seeds. Taught in 04_supervised_losses, used again in 05, 06 and 07: one training
# run is one draw, so a comparison claim counts only where it holds on the mean over seeds and the
# gap between the means is larger than the spread.


def mean_sd(values) -> tuple[float, float]:
    """Mean and standard deviation (the sample one, n - 1) of one measure over seeds.

    ``values``: one number per seed, as a sequence or a 1-D tensor (at least one; the standard
    deviation of a single value is 0). Returns ``(mean, sd)`` as floats.
    """
    try:
        v = torch.as_tensor(values, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"values must be one number per seed (a sequence or a 1-D tensor), got {values!r}"
        ) from None
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(
            f"values must be one number per seed, at least one; got shape {tuple(v.shape)}"
        )
    check_finite("values", v, why="one finite number per seed: leave out a seed that diverged")
    return v.mean().item(), (v.std().item() if len(v) > 1 else 0.0)


def clearly_above(a, b) -> bool:
    """Whether ``a`` is above ``b`` beyond the seed noise: the gap between the means is larger than
    the two standard deviations added.

    ``a``, ``b``: ``(mean, sd)`` pairs, as :func:`mean_sd` returns. For a measure where lower is
    better (an error rate), ``clearly_above(b, a)`` says that ``a`` is clearly below ``b``.
    """
    for name, pair in (("a", a), ("b", b)):
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(x, (int, float)) for x in pair)
        ):
            raise TypeError(f"{name} must be a (mean, sd) pair of numbers, got {pair!r}")
        check_finite(name, torch.tensor([pair], dtype=torch.float64), why="a seed diverged")
        if pair[1] < 0:
            raise ValueError(f"{name}'s standard deviation must be >= 0, got {pair[1]}")
    return a[0] - b[0] > a[1] + b[1]
