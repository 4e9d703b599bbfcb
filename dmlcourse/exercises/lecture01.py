"""Exercises of 01_metric_spaces.

The references here are written from the definitions, independent of ``dmlcourse.metric_spaces``
and ``dmlcourse.tuples`` (which the notebook teaches and the learner must not call): SciPy's
``cityblock`` for the Manhattan distance, a plain triple loop for the triangle inequality, the
defining properties of a triplet, and SciPy's ``cdist`` (Chebyshev, float64) for the ties of section 3.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist, cityblock

from . import exercise
from ._common import as_number, name_the_mistake
from ._common import close as _close


def reference_manhattan(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise sum |u_k - v_k|, one SciPy call per row (float64)."""
    return torch.tensor([cityblock(a, b) for a, b in zip(u.double().numpy(), v.double().numpy())],
                        dtype=torch.float64)


def reference_violations(D: torch.Tensor, tol: float = 1e-9) -> torch.Tensor:
    """[a, b, c] True where D[a, c] > D[a, b] + D[b, c] + tol: a plain loop over all triples."""
    n = len(D)
    d = D.double().tolist()
    out = torch.zeros(n, n, n, dtype=torch.bool)
    for a in range(n):
        for b in range(n):
            for c in range(n):
                out[a, b, c] = d[a][c] > d[a][b] + d[b][c] + tol
    return out


def _points(seed, n=32, dim=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randn(n, dim, generator=g, dtype=torch.float64)


@exercise("01.1", "The Manhattan distance", writes="my_manhattan", implemented_by=["dmlcourse.metric_spaces.manhattan"],
          hints=["Work row by row: u and v are (N, D), the answer is (N,), one distance per row.",
                 "The Manhattan (city-block) distance adds up the absolute differences of the coordinates.",
                 "(u - v).abs().sum(-1)"],
          mistakes=["no absolute value (not symmetric, negative)", "a square root too many",
                    "the Euclidean distance", "a mean over coordinates instead of a sum", "sum over the wrong axis"])
def check_manhattan(fn) -> str:
    """``fn(u, v) -> (N,)``: the row-wise Manhattan distance sum_k |u_k - v_k| of two (N, D) tensors."""
    for seed in range(3):
        u, v = _points(seed)
        yours = torch.as_tensor(fn(u.clone(), v.clone()))
        ours = reference_manhattan(u, v)
        if yours.shape != ours.shape:
            raise AssertionError(f"return one distance per row: expected shape {tuple(ours.shape)}, got "
                                 f"{tuple(yours.shape)} (did you sum over the wrong axis, or forget to sum?).")
        if _close(yours, ours):
            continue
        diagnoses = {
            "off by a square root: you took a square root of the sum": ours.sqrt(),
            "you squared the distance": ours**2,
            "you computed the Euclidean distance sqrt(sum (u - v)^2), not the Manhattan one sum |u - v|":
                ((u - v) ** 2).sum(1).sqrt(),
            "you divided by the number of coordinates (a mean, not a sum)": ours / u.shape[1],
        }
        name_the_mistake(yours, diagnoses, matches=_close)
        if not _close(torch.as_tensor(fn(u.clone(), u.clone())), torch.zeros(len(u))):
            raise AssertionError("d(x, x) is not 0: the identity axiom fails.")
        if not _close(yours, torch.as_tensor(fn(v.clone(), u.clone()))):
            raise AssertionError("your distance is not symmetric, d(u, v) != d(v, u): the absolute value of each "
                                 "difference is missing?")
        if (yours < -1e-12).any():
            raise AssertionError("your distance is negative for some pairs (an absolute value is missing?).")
        i = int((yours - ours).abs().argmax())
        raise AssertionError(f"row {i}: expected {ours[i].item():.6f}, your function gave {yours[i].item():.6f}.")
    return "the same as SciPy's cityblock on 3 random problems."


@exercise("01.2", "Find the triangle violations", writes="my_violations",
          implemented_by=["dmlcourse.metric_spaces.check_axioms:triangle"],
          hints=["Give D three axes with None so that entry [a, b, c] can see D[a, c], D[a, b] and D[b, c] at once.",
                 "D[a, c] is D[:, None, :] (b is the new middle axis); D[a, b] is D[:, :, None]; D[b, c] is "
                 "D[None, :, :].",
                 "D[:, None, :] > D[:, :, None] + D[None, :, :] + 1e-9"],
          mistakes=["flags equality (>=)", "wrong shape", "wrong index order"])
def check_violations(fn) -> str:
    """``fn(D) -> bool (n, n, n)``, True at [a, b, c] exactly where D[a, c] > D[a, b] + D[b, c] (+ 1e-9)."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(8, 2, generator=g, dtype=torch.float64)
        D = torch.cdist(x, x) ** (1 if seed == 0 else 2)   # Euclidean (no violation), then squared (some)
        ours = reference_violations(D)
        yours = torch.as_tensor(fn(D.clone()))
        if yours.shape != ours.shape:
            raise AssertionError(f"return one boolean per triple (a, b, c): expected shape {tuple(ours.shape)}, "
                                 f"got {tuple(yours.shape)}.")
        yours = yours.bool()
        if torch.equal(yours, ours):
            continue
        if torch.equal(yours, D[:, None, :] >= D[:, :, None] + D[None, :, :]):
            raise AssertionError("you flag equality: d(x, z) = d(x, y) + d(y, z) is allowed (it happens for y = x "
                                 "or y = z); use a strict > with a small tolerance.")
        if yours.sum() > 0 and not ours.any():
            raise AssertionError("you report violations for the Euclidean distance, which is a metric: check "
                                 "which entries of D you compare (index [a, b, c] means d(a,c) vs d(a,b)+d(b,c)).")
        a, b, c = (int(t) for t in torch.nonzero(yours != ours)[0])
        raise AssertionError(f"triple (a, b, c) = ({a}, {b}, {c}): d(a,c) = {D[a, c]:.3f}, d(a,b) + d(b,c) = "
                             f"{D[a, b] + D[b, c]:.3f}; expected {bool(ours[a, b, c])}, you gave {bool(yours[a, b, c])}.")
    return "the same as a loop over all triples, on a metric and two non-metrics."


def _triplet_problems():
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        yield torch.randint(0, 4, (40,), generator=g)
    # ten classes with ONE sample each (labels 10-19), a quarter of the samples: they can be negatives,
    # never anchors (they have no positive). Anchors drawn from every sample would miss all ten in 50
    # draws with probability (30/40)^50, below one in a million, so that mistake cannot pass by luck.
    yield torch.cat([torch.arange(5).repeat_interleave(6), torch.arange(10, 20)])


@exercise("01.3", "Triplets from labels", writes="my_triplets", implemented_by=["dmlcourse.tuples.make_triplets"],
          hints=["Work with the (N, N) boolean matrix same = labels[:, None] == labels[None, :]: the positives of i "
                 "are the True entries of row i except i itself, its negatives the False entries.",
                 "An anchor needs at least one positive: draw anchors only among the i whose row has another True. "
                 "torch.multinomial(mask.float(), 1) draws one True column per row.",
                 "pos = same & ~torch.eye(N, dtype=bool); ok = torch.nonzero(pos.any(1)).flatten(); "
                 "a = ok[torch.randint(len(ok), (n,), generator=g)]; then one multinomial draw from pos[a] and one "
                 "from ~same[a]."],
          mistakes=["the anchor is its own positive", "a negative of the anchor's class",
                    "an anchor whose class has one sample", "labels instead of indices", "the same triplet n times"])
def check_triplets(fn) -> str:
    """``fn(labels, n) -> (a, p, neg)``: n random triplets of INDICES with labels[p] == labels[a], p != a and
    labels[neg] != labels[a]. (Random, so the properties are checked, not the values.)"""
    total = 0
    for labels in _triplet_problems():
        out = fn(labels.clone(), 50)
        if not (isinstance(out, (tuple, list)) and len(out) == 3):
            raise AssertionError("return three index tensors (anchors, positives, negatives).")
        a, p, n = (torch.as_tensor(t).long().flatten() for t in out)
        if not (len(a) == len(p) == len(n) == 50):
            raise AssertionError(f"asked for 50 triplets, got lengths {len(a)}, {len(p)}, {len(n)}.")
        for name, t in (("anchor", a), ("positive", p), ("negative", n)):
            if t.min() < 0 or t.max() >= len(labels):
                raise AssertionError(f"some {name} indices are outside 0..{len(labels) - 1}: return INDICES "
                                     "into labels, not labels (and no -1 for 'none found').")
        counts = torch.bincount(labels)
        if (counts[labels[a]] < 2).any():
            raise AssertionError("an anchor comes from a class with a single sample, so it has no positive: draw "
                                 "anchors only among the samples that have another sample of their class.")
        if (a == p).any():
            raise AssertionError("some positives are the anchor itself: a positive must be ANOTHER sample of "
                                 "the anchor's class.")
        if (labels[a] != labels[p]).any():
            raise AssertionError("some positives have a different class from their anchor.")
        if (labels[a] == labels[n]).any():
            raise AssertionError("some negatives have the anchor's class: a negative must come from another class.")
        if len({(int(i), int(j), int(k)) for i, j, k in zip(a, p, n)}) < 10:
            raise AssertionError("your 50 triplets are nearly all the same: draw the anchors (and their positive and "
                                 "negative) at random.")
        total += 50
    return f"{total} triplets checked (right classes, no anchor as its own positive, no anchor without a positive)."


def reference_tied(queries: torch.Tensor, reference: torch.Tensor, k: int) -> float:
    """Mean over the queries of the number of reference rows at or within the query's k-th smallest Chebyshev
    distance (SciPy's chebyshev, float64)."""
    d = cdist(queries.double().numpy(), reference.double().numpy(), "chebyshev")
    kth = np.sort(d, axis=1)[:, k - 1:k]
    return float((d <= kth).sum(1).mean())


def _tie_summary(queries, reference, k, query_labels, reference_labels) -> dict:
    """What the ties mean for the vote: the median size of the near set (the reference rows at or within
    each query's k-th Chebyshev distance), the share of it in the query's class (a mean over the queries),
    the same share among the k nearest under the Euclidean distance, and chance (one over the classes)."""
    q, r = queries.double().numpy(), reference.double().numpy()
    yq, yr = np.asarray(query_labels), np.asarray(reference_labels)
    d = cdist(q, r, "chebyshev")
    near = d <= np.sort(d, axis=1)[:, k - 1:k]
    same = yr[None, :] == yq[:, None]
    nearest_eu = np.argsort(cdist(q, r), axis=1, kind="stable")[:, :k]
    return {"median": float(np.median(near.sum(1))),
            "share": float(((near & same).sum(1) / near.sum(1)).mean()),
            "share_euclidean": float(np.take_along_axis(same, nearest_eu, axis=1).mean()),
            "chance": 1.0 / len(np.unique(yr))}


def _sample_tied() -> dict:
    g = torch.Generator().manual_seed(3)
    reference = (torch.randint(0, 4, (300, 12), generator=g) / 3.0).float()   # few levels: ties, as on pixels
    queries = (torch.randint(0, 4, (30, 12), generator=g) / 3.0).float()
    knn = {("mnist", "pixels, chebyshev"): 0.6, ("mnist", "pixels, euclidean"): 0.9}
    return dict(prediction=20, tied=reference_tied(queries, reference, 5), knn=knn, queries=queries,
                reference=reference, k=5, query_labels=torch.arange(30) % 10,
                reference_labels=torch.arange(300) % 10)


@exercise("01.4", "Predict, then explain: one pixel decides", writes="my_prediction and my_tied",
          hints=["A prediction is a guess: any count is accepted. Write it BEFORE you compute anything. Without "
                 "ties the answer would be exactly K; every training image at the same distance as the K-th "
                 "nearest adds one.",
                 "The Chebyshev distance of two images is the largest difference over their pixels. Pixel values "
                 "are the whole numbers 0-255, and two different digits almost always have a pixel that is ink in "
                 "one and paper in the other: many training images share the same distance to a query. Count how "
                 "many are as close as its K-th nearest.",
                 "All distances at once: torch.cdist accepts p=float('inf'). The K-th smallest distance of each row "
                 "comes from torch.topk(..., largest=False); then count, per row, the entries that are not larger, "
                 "and average the counts over the queries."],
          mistakes=["the Euclidean distance", "strictly closer than the K-th (<)", "a total instead of a mean"],
          graded=("tied",), sample=_sample_tied)
def check_chebyshev_ties(prediction, tied, knn, queries, reference, k, query_labels, reference_labels) -> str:
    """``prediction``: the guessed mean number of ``reference`` images at or within a query's k-th smallest
    Chebyshev distance; ``tied``: that mean, measured. ``knn``: section 3's accuracies; the labels are those of
    ``queries`` and ``reference``."""
    prediction = as_number(prediction, "my_prediction", "your guess of a mean count of training images")
    if prediction < 0:
        raise AssertionError(f"my_prediction = {prediction}: a count of images is not negative.")
    yours = as_number(tied, "my_tied", "a mean count over the queries, e.g. with .float().mean().item()")
    ours = reference_tied(queries, reference, k)
    if abs(yours - ours) > 1e-6 * max(1.0, ours):
        d = cdist(queries.double().numpy(), reference.double().numpy(), "chebyshev")
        kth = np.sort(d, axis=1)[:, k - 1:k]
        e = cdist(queries.double().numpy(), reference.double().numpy())
        ekth = np.sort(e, axis=1)[:, k - 1:k]
        diagnoses = {
            "that is what the Euclidean distance gives: use the Chebyshev distance, the LARGEST difference over "
            "the pixels (torch.cdist with p=float('inf'))": float((e <= ekth).sum(1).mean()),
            "you counted the images strictly closer than the K-th (<); count those at its distance too (<=), "
            "the ties": float((d < kth).sum(1).mean()),
            "that is a total over the queries; give the mean per query": float((d <= kth).sum()),
        }
        name_the_mistake(yours, {f"{yours:.2f}: {m}.": v for m, v in diagnoses.items()},
                         matches=lambda a, b: abs(a - b) <= 1e-6 * max(1.0, abs(b)))
        raise AssertionError(f"for these {len(queries)} queries the mean number of training images at or within the "
                             f"{k}-th Chebyshev distance is not {yours:.2f}.")
    cheb, eu = knn["mnist", "pixels, chebyshev"], knn["mnist", "pixels, euclidean"]
    t = _tie_summary(queries, reference, k, query_labels, reference_labels)
    lean = ("still leans toward the query's class" if t["share"] > 2 * t["chance"]
            else "is barely related to the query's class")
    vote = (f"so only {k} of many equally near images vote, the ones the tie-breaking happens to pick"
            if t["median"] > 2 * k else f"so the {k} nearest are mostly well defined")
    return (f"measured 5-NN accuracy on the pixels: Chebyshev {cheb:.3f}, Euclidean {eu:.3f}. You guessed "
            f"{prediction:.0f}; on average {ours:.0f} training images (median {t['median']:.0f}) are no farther "
            f"from a query than the farthest of its {k} nearest under the Chebyshev distance, {vote}. That near "
            f"set {lean}: {t['share']:.0%} of it shares the query's class (chance: {t['chance']:.0%}), against "
            f"{t['share_euclidean']:.0%} of the {k} nearest under the Euclidean distance. One pixel is too little "
            "to judge two images by.")
