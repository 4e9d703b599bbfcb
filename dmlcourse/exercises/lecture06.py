"""Exercises of 06_mining_sampling.

The references here are loops over anchors (and positives) in float64, written from the definitions of the miners,
independent of ``dmlcourse.miners`` (which the notebook teaches). The wrong variants the checks recognise are the
same loops with one rule changed.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import torch

from . import exercise
from ._common import as_number

DISTANCES = {"plain": "plain", "euclidean": "plain", "squared": "squared", "squared_euclidean": "squared"}


def _distances(z, squared: bool = False) -> list[list[float]]:
    rows = torch.as_tensor(z, dtype=torch.float64).tolist()
    out = []
    for u in rows:
        out.append([])
        for v in rows:
            s = math.fsum((a - b) ** 2 for a, b in zip(u, v))
            out[-1].append(s if squared else math.sqrt(s))
    return out


def reference_batch_hard(z, labels, *, positive: str = "farthest",
                         negative: str = "closest") -> list[tuple[int, int, int]]:
    """Per anchor: the farthest positive (not the anchor) and the closest negative; anchors without a positive
    or a negative are skipped. ``positive``/``negative`` give the wrong variants the check recognises."""
    d, y = _distances(z), torch.as_tensor(labels).tolist()
    out = []
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if y[j] == y[i] and j != i]
        neg = [k for k in range(len(y)) if y[k] != y[i]]
        if not pos or not neg:
            continue
        pick_p = max if positive == "farthest" else min
        pick_n = min if negative == "closest" else max
        out.append((i, pick_p(pos, key=lambda j: d[i][j]), pick_n(neg, key=lambda k: d[i][k])))
    return sorted(out)


def reference_semi_hard(z, labels, margin: float, *, squared: bool = False, upper: bool = True,
                        pick: str = "closest", fallback: bool = False) -> list[tuple[int, int, int]]:
    """Per anchor-positive pair (a, p): the closest negative n with d(a,p) < d(a,n) < d(a,p) + margin; a pair
    without one is skipped. ``upper=False`` drops the margin bound, ``pick="farthest"`` takes the farthest such
    negative, ``fallback=True`` takes the hardest negative instead of skipping (the wrong variants)."""
    d, y = _distances(z, squared), torch.as_tensor(labels).tolist()
    out = []
    for i in range(len(y)):
        neg = [k for k in range(len(y)) if y[k] != y[i]]
        for j in range(len(y)):
            if j == i or y[j] != y[i] or not neg:
                continue
            band = [k for k in neg if d[i][j] < d[i][k] and (not upper or d[i][k] < d[i][j] + margin)]
            if band:
                out.append((i, j, (min if pick == "closest" else max)(band, key=lambda k: d[i][k])))
            elif fallback:
                out.append((i, j, min(neg, key=lambda k: d[i][k])))
    return sorted(out)


def _triplets(result, name: str) -> list[tuple[int, int, int]]:
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise AssertionError(f"{name} must return three index tensors (a, p, n), got {type(result).__name__}.")
    a, p, n = (torch.as_tensor(t).long().flatten() for t in result)
    if not len(a) == len(p) == len(n):
        raise AssertionError(f"a, p and n must have the same length, got {len(a)}, {len(p)} and {len(n)}.")
    return sorted(zip(a.tolist(), p.tolist(), n.tolist()))


def _batches(n_batches: int = 12):
    for seed in range(n_batches):
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 3, (5 + seed % 8,), generator=g)
        if seed == 0:
            y = torch.tensor([0, 0, 0, 1, 1, 2])  # class 2 alone: its anchor has no positive
        z = torch.randn(len(y), 2, generator=g, dtype=torch.float64)
        yield seed, z, y


def _show(seed, z, y, ours, yours) -> str:
    zs = [[round(v, 3) for v in row] for row in z.tolist()]
    return (f"\nbatch (seed {seed}): z = {zs}\nlabels = {y.tolist()}\nexpected (a, p, n) = {ours}\nyours = {yours}")


@exercise("06.1", "Batch-hard mining", writes="my_batch_hard",
          hints=["Start from the distance matrix torch.cdist(z, z) and two boolean masks: positives (same label, "
                 "not the anchor itself) and negatives (another label).",
                 "Fill the entries you must not pick with -inf before argmax (positives) and +inf before argmin "
                 "(negatives); keep only the anchors that have at least one positive AND one negative.",
                 "d.masked_fill(~pos, -float('inf')).argmax(1) gives every row's farthest positive; the closest "
                 "negative is the same idea with +inf and argmin. Compute both for every row, then index them with "
                 "the anchors you keep."],
          mistakes=["the closest positive instead of the farthest", "the farthest negative instead of the closest",
                    "anchors without a positive or negative kept", "the anchor used as its own positive"],
          implemented_by=["dmlcourse.miners.batch_hard"])
def check_batch_hard(fn) -> str:
    """``fn(z, labels) -> (a, p, n)``: per anchor the farthest positive and the closest negative (Euclidean)."""
    for seed, z, y in _batches():
        yours = _triplets(fn(z.clone(), y.clone()), "my_batch_hard")
        ours = reference_batch_hard(z, y)
        if yours == ours:
            continue
        if any(a == p for a, p, _ in yours):
            raise AssertionError("some triplet uses the anchor as its own positive: positives are the OTHER images "
                                 "of the anchor's class (mask out the diagonal)." + _show(seed, z, y, ours, yours))
        variants = {
            "batch-hard takes the FARTHEST positive (the hardest one), not the closest.":
                reference_batch_hard(z, y, positive="closest"),
            "batch-hard takes the CLOSEST negative (the hardest one), not the farthest.":
                reference_batch_hard(z, y, negative="farthest"),
        }
        for message, triplets in variants.items():
            if yours == triplets:
                raise AssertionError(message + _show(seed, z, y, ours, yours))
        mine, theirs = [a for a, _, _ in yours], [a for a, _, _ in ours]
        if set(mine) - set(theirs):
            raise AssertionError("anchors without a positive (alone in their class) or without a negative must be "
                                 "skipped." + _show(seed, z, y, ours, yours))
        if sorted(mine) != theirs:
            raise AssertionError("the anchors differ: one triplet per anchor that has a positive and a negative."
                                 + _show(seed, z, y, ours, yours))
        raise AssertionError("the triplets differ from a loop over the anchors." + _show(seed, z, y, ours, yours))
    return ("the same triplets as a loop over the anchors on 12 random batches. (Squared or plain distance gives "
            "the same batch-hard triplets: squaring keeps the order.)")


@exercise("06.2", "Semi-hard mining (FaceNet)", writes="my_semi_hard",
          hints=["Say in the check which distance you use: \"plain\" (torch.cdist, as the notebook's miners) or "
                 "\"squared\" (FaceNet). Semi-hard depends on it through the band d(a,p) < d(a,n) < d(a,p) + m.",
                 "Loop over the anchor-positive pairs (torch.nonzero of the positive mask). For each, the "
                 "candidate negatives are those with d(a,p) < d(a,n) < d(a,p) + margin; take the closest one, "
                 "and skip the pair when there is none.",
                 "for a, p in zip(*torch.nonzero(pos, as_tuple=True)): ok = neg[a] & (d[a] > d[a, p]) & "
                 "(d[a] < d[a, p] + margin); if ok.any(): append (a, p, d[a].masked_fill(~ok, inf).argmin())"],
          mistakes=["the distance differs from the one declared", "the margin bound ignored",
                    "the farthest negative in the band", "the hardest negative when none is semi-hard",
                    "one triplet per anchor instead of per pair"],
          implemented_by=["dmlcourse.miners.batch_semi_hard"])
def check_semi_hard(fn, distance="plain") -> str:
    """``fn(z, labels, margin) -> (a, p, n)``: per anchor-positive pair the closest negative with
    d(a,p) < d(a,n) < d(a,p) + margin, pairs without one skipped; d "plain" or "squared" as declared."""
    if not isinstance(distance, str) or distance not in DISTANCES:
        raise AssertionError(f"the third argument of check says which distance you use: \"plain\" or \"squared\", "
                             f"not {distance!r}.")
    sq = DISTANCES[distance] == "squared"
    other = "plain" if sq else "squared"
    for seed, z, y in _batches():
        for margin in (0.3, 1.0):
            yours = _triplets(fn(z.clone(), y.clone(), margin), "my_semi_hard")
            ours = reference_semi_hard(z, y, margin, squared=sq)
            if yours == ours:
                continue
            if yours == reference_semi_hard(z, y, margin, squared=not sq):
                raise AssertionError(
                    f"your function measures the {other} distance, but you told the check \"{distance}\". Write "
                    f"check(\"06.2\", my_semi_hard, \"{other}\"), or change the function. The band "
                    "d(a,p) < d(a,n) < d(a,p) + m is not the same on the two scales, so the triplets differ."
                    + _show(seed, z, y, ours, yours))
            variants = {
                "you ignore the margin: FaceNet's semi-hard negative also lies inside the band, "
                "d(a,n) < d(a,p) + margin.": reference_semi_hard(z, y, margin, squared=sq, upper=False),
                "take the CLOSEST negative inside the band, not the farthest.":
                    reference_semi_hard(z, y, margin, squared=sq, pick="farthest"),
                "a pair without a semi-hard negative is skipped (this course's policy), not given the hardest "
                "negative.": reference_semi_hard(z, y, margin, squared=sq, fallback=True),
            }
            for message, triplets in variants.items():
                if yours == triplets:
                    raise AssertionError(message + _show(seed, z, y, ours, yours))
            d = _distances(z, sq)
            if any(d[a][n] <= d[a][p] for a, p, n in yours):
                raise AssertionError("some of your negatives are not farther than the positive: a semi-hard "
                                     "negative has d(a,n) > d(a,p) (those closer are HARD)."
                                     + _show(seed, z, y, ours, yours))
            if len(yours) <= len({a for a, _, _ in ours}) < len(ours):
                raise AssertionError("semi-hard mines per anchor-POSITIVE pair: every positive of an anchor can give "
                                     "a triplet." + _show(seed, z, y, ours, yours))
            raise AssertionError(f"margin {margin}: the triplets differ from a loop over the pairs."
                                 + _show(seed, z, y, ours, yours))
    return (f"the same triplets as a loop over the anchor-positive pairs on 12 random batches, {distance} distance, "
            "margins 0.3 and 1.")


def reference_wrong_order(z_start, labels) -> tuple[float, float]:
    """The fraction of batch-hard triplets (loop reference) whose negative is closer than the positive, and the
    fraction of them that are near-ties (|d(a,n) - d(a,p)| < 1e-4, which float32 may order either way)."""
    d = _distances(z_start)
    hard = reference_batch_hard(z_start, labels)
    wrong = sum(d[a][n] < d[a][p] for a, p, n in hard) / len(hard)
    ties = sum(abs(d[a][n] - d[a][p]) < 1e-4 for a, p, n in hard) / len(hard)
    return wrong, ties


def _sample_wrong_order() -> dict:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(8).repeat(5)           # 8 classes x 5 points, classes apart but overlapping: 70 % wrong order
    z = torch.nn.functional.normalize(
        torch.randn(40, 8, generator=g, dtype=torch.float64)
        + 3.5 * torch.nn.functional.one_hot(y, 8).double(), dim=1)
    runs = {"batch_hard, m = 0": {"p1": 0.35, "map_r": 0.2, "spread": 0.02,
                                  "history": _History({"active_fraction": [0.7, 0.9]})},
            "batch_hard, m = 0.2": {"p1": 0.3, "map_r": 0.2, "spread": 0.02,
                                    "history": _History({"active_fraction": [1.0, 1.0]})}}
    return dict(prediction=0.5, wrong_order=reference_wrong_order(z, y)[0], z_start=z, labels=y, collapse=runs)


class _History:
    """What the check reads of a training history (the sample call's stand-in for train.History)."""

    def __init__(self, step_info: dict):
        self.step_info = step_info


@exercise("06.3", "Predict, then explain: batch-hard without a margin", writes="my_prediction and my_wrong_order",
          hints=["A prediction is a guess: any number in [0, 1] is accepted; write it BEFORE you run the check, "
                 "which prints the measured P@1.",
                 "Compare the hinge [d(a,p) - d(a,n) + m]_+ at m = 0 and at m = 0.2. A triplet whose negative is "
                 "closer than its positive, d(a,n) < d(a,p), is active at EVERY margin m >= 0; which triplets are "
                 "active at m = 0.2 but not at m = 0? Count, on the untrained embedding z_start, how many of "
                 "batch-hard's triplets are of the first kind.",
                 "Mine the batch-hard triplets of z_start with your my_batch_hard of exercise 06.1. Then, triplet by "
                 "triplet, compare the anchor-negative entry of z_start's distance matrix with the anchor-positive "
                 "entry; my_wrong_order is the share of triplets in which the negative is the closer one."],
          mistakes=["all triplets (batch-all) counted instead of the batch-hard ones",
                    "the right-order fraction instead of the wrong-order one",
                    "the active fraction at a margin instead of the wrong order"],
          graded=("wrong_order",), sample=_sample_wrong_order)
def check_margin_prediction(prediction, wrong_order, z_start, labels, collapse) -> str:
    """``prediction``: the guessed P@1 of batch-hard at m = 0; ``wrong_order``: the fraction of the batch-hard
    triplets of ``z_start`` whose negative is closer than the positive; ``collapse``: the runs of seed 0 at m = 0
    and m = 0.2."""
    if isinstance(prediction, dict) or not 0.0 <= float(prediction) <= 1.0:
        raise AssertionError(f"my_prediction = {prediction}: one number, your guess of a Precision@1 in [0, 1].")
    d = _distances(z_start)
    hard = reference_batch_hard(z_start, labels)
    true, ties = reference_wrong_order(z_start, labels)
    yours = as_number(wrong_order, "my_wrong_order", "a fraction of the batch-hard triplets")
    if not true - ties - 1e-6 <= yours <= true + ties + 1e-6:
        y = torch.as_tensor(labels).tolist()
        every = [(a, p, n) for a in range(len(y)) for p in range(len(y)) for n in range(len(y))
                 if p != a and y[p] == y[a] and y[n] != y[a]]
        if abs(yours - sum(d[a][n] < d[a][p] for a, p, n in every) / len(every)) < 1e-6:
            raise AssertionError("you counted every triplet of the batch (batch-all); count only the batch-hard ones, "
                                 "one per anchor.")
        if abs(yours - (1 - true)) < 1e-6:
            raise AssertionError("that is the fraction in the RIGHT order; count the triplets whose negative is "
                                 "closer than the positive, d(a,n) < d(a,p).")
        for m in (0.05, 0.2):
            if abs(yours - sum(d[a][n] < d[a][p] + m for a, p, n in hard) / len(hard)) < 1e-6 and true < 1.0:
                raise AssertionError(f"that is the active fraction at m = {m}; count d(a,n) < d(a,p) without a "
                                     "margin: those triplets are active at EVERY margin.")
        raise AssertionError(f"{yours:.4f} is not the fraction of batch-hard triplets of z_start with d(a,n) < d(a,p).")
    zero, big = collapse["batch_hard, m = 0"], collapse["batch_hard, m = 0.2"]
    off = abs(float(prediction) - zero["p1"])
    active = {m: list(r["history"].step_info.get("active_fraction", [float("nan")]))
              for m, r in (("0", zero), ("0.2", big))}
    lowest = {m: min(v) for m, v in active.items()}
    start = (f"batch-hard measured P@1 {zero['p1']:.4f} at m = 0 and {big['p1']:.4f} at m = 0.2 (your guess was off "
             f"by {off:.2f}); MAP@R {zero['map_r']:.4f} and {big['map_r']:.4f}; the spread of the test embeddings "
             f"{zero['spread']:.4f} and {big['spread']:.4f}. Before training, {true:.0%} of the batch-hard triplets of "
             "the probe batch have the negative closer than the positive: they are active at any margin, and the "
             "cheapest way to lower their loss is to shrink every distance. At m = 0 they are the only active ones: "
             "[d(a,p) - d(a,n)]_+ is zero as soon as the negative is the farther one. ")
    if lowest["0"] < 1.0 and lowest["0.2"] == 1.0:
        steps = sum(v < 1.0 for v in active["0"])
        mean0 = sum(active["0"]) / len(active["0"])
        gap = abs(zero["map_r"] - big["map_r"])
        return start + (f"At m = 0.2 every mined triplet was active in every step; at m = 0, {steps} of the "
                        f"{len(active['0'])} steps had an inactive one (the smallest active fraction of a step: "
                        f"{lowest['0']:.2f}). In those steps the two losses differ by more than a constant, their "
                        "gradients differ, and the two runs part, unlike the runs at m = 0.05 and m = 0.2 of "
                        f"section 4. On average {mean0:.0%} of the mined triplets of a training step were in the "
                        "wrong order (those are the ones active at m = 0), "
                        + ("so dropping the margin removed few terms of the loss, and the two runs end close (MAP@R "
                           f"{gap:.4f} apart)." if gap < 0.01 else
                           f"and the two runs end {gap:.4f} apart in MAP@R."))
    if all(v == 1.0 for v in lowest.values()):
        return start + ("Yet every mined triplet stayed active in EVERY step of both runs (the smallest active "
                        "fraction was 1.00 at both margins): the loss was mean(d(a,p) - d(a,n)) + m throughout, m "
                        "added a constant, and the two runs had the same gradients.")
    return start + (f"The smallest active fraction of a step was {lowest['0']:.2f} at m = 0 and {lowest['0.2']:.2f} "
                    "at m = 0.2. In a step where some mined triplet is inactive at one margin and active at the "
                    "other, the gradients differ, so the two runs need not be the same.")
