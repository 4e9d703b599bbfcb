"""Check functions for the exercises of 01_metric_spaces."""

from __future__ import annotations

import torch

from .. import metric_spaces
from ._common import close as _close


def _points(seed, n=32, dim=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randn(n, dim, generator=g, dtype=torch.float64)


def check_distance(fn, kind: str = "manhattan") -> None:
    """Check a row-wise distance ``fn(u, v) -> (N,)`` of two (N, D) tensors against ours.

    ``kind`` is "manhattan" (sum |u - v|), "euclidean" or "cosine" (1 - cos(u, v))."""
    ours_fn = {"manhattan": metric_spaces.manhattan, "euclidean": metric_spaces.euclidean,
               "cosine": metric_spaces.cosine_distance}
    if kind not in ours_fn:
        raise ValueError(f"kind={kind!r} is not allowed; choose one of {sorted(ours_fn)}.")
    for seed in range(3):
        u, v = _points(seed)
        yours = torch.as_tensor(fn(u, v))
        ours = ours_fn[kind](u, v)
        if yours.shape != ours.shape:
            raise AssertionError(f"return one distance per row: expected shape {tuple(ours.shape)}, got "
                                 f"{tuple(yours.shape)} (did you sum over the wrong axis, or forget to sum?).")
        if _close(yours, ours):
            continue
        diagnoses = {
            "off by a square root: you returned the squared distance": ours**2,
            "off by a square root: you took a square root too many": ours.sqrt(),
            "you returned the cosine SIMILARITY; the distance is 1 - cos": 1 - ours,
            "you computed the Euclidean distance, not the Manhattan one": metric_spaces.euclidean(u, v),
            "you computed the Manhattan distance": metric_spaces.manhattan(u, v),
            "you divided by the number of coordinates (a mean, not a sum)": ours / u.shape[1],
        }
        for message, value in diagnoses.items():
            if _close(yours, value):
                raise AssertionError(message)
        if not _close(torch.as_tensor(fn(u, u)), torch.zeros(len(u))):
            raise AssertionError("d(x, x) is not 0: the identity axiom fails.")
        if not _close(yours, torch.as_tensor(fn(v, u))):
            raise AssertionError("your distance is not symmetric: d(u, v) != d(v, u) (an absolute value or a "
                                 "square is missing?).")
        if (yours < -1e-12).any():
            raise AssertionError("your distance is negative for some pairs (an absolute value is missing?).")
        i = int((yours - ours).abs().argmax())
        raise AssertionError(f"row {i}: expected {ours[i].item():.6f}, your function gave {yours[i].item():.6f}.")
    print(f"{kind} distance: correct on 3 random problems (symmetric, zero on the diagonal).")


def check_triangle_violations(fn) -> None:
    """Check ``fn(D) -> bool tensor (n, n, n)`` with ``[a, b, c]`` True exactly where the distance
    matrix D violates the triangle inequality: D[a, c] > D[a, b] + D[b, c] (+ 1e-9)."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(9, 2, generator=g, dtype=torch.float64)
        D = torch.cdist(x, x) ** (1 if seed == 0 else 2)   # Euclidean (no violation), then squared (some)
        ours = D[:, None, :] > D[:, :, None] + D[None, :, :] + 1e-9
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
    print("triangle violations: correct on 3 random distance matrices (a metric and two non-metrics).")


def check_make_triplets(fn) -> None:
    """Check ``fn(labels, n) -> (a, p, n_)``: n triplets of indices with labels[p] == labels[a],
    p != a and labels[n_] != labels[a]. (Random, so the properties are checked, not the values.)"""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 4, (40,), generator=g)
        out = fn(labels, 50)
        if not (isinstance(out, (tuple, list)) and len(out) == 3):
            raise AssertionError("return three index tensors (anchors, positives, negatives).")
        a, p, n = (torch.as_tensor(t).long() for t in out)
        if not (len(a) == len(p) == len(n) == 50):
            raise AssertionError(f"asked for 50 triplets, got lengths {len(a)}, {len(p)}, {len(n)}.")
        for name, t in (("anchor", a), ("positive", p), ("negative", n)):
            if t.min() < 0 or t.max() >= len(labels):
                raise AssertionError(f"some {name} indices are outside 0..{len(labels) - 1}: return INDICES "
                                     "into labels, not labels.")
        if (a == p).any():
            raise AssertionError("some positives are the anchor itself: a positive must be ANOTHER sample of "
                                 "the anchor's class.")
        if (labels[a] != labels[p]).any():
            raise AssertionError("some positives have a different class from their anchor.")
        if (labels[a] == labels[n]).any():
            raise AssertionError("some negatives have the anchor's class: a negative must come from another class.")
    print("make_triplets: 150 triplets checked (right classes, no anchor used as its own positive).")
