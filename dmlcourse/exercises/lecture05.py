"""Exercises of 05_siamese_triplet.

The references here are plain loops over the pairs or triplets in float64, written from the formulas, independent
of ``dmlcourse.losses`` (which the notebook teaches).

The triplet loss is written with the plain Euclidean distance in some texts (and in this course's training runs)
and with the squared one in others (FaceNet). The same margin means different things on the two scales, so the
triplet check asks which one the learner meant and says so when the function does the other.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import torch

from . import exercise
from ._common import as_mean, name_the_mistake, same

DISTANCES = {"plain": "plain", "euclidean": "plain", "squared": "squared", "squared_euclidean": "squared"}


def _rows(t) -> list[list[float]]:
    return torch.as_tensor(t, dtype=torch.float64).tolist()


def _dist(u: list[float], v: list[float], squared: bool) -> float:
    s = math.fsum((a - b) ** 2 for a, b in zip(u, v))
    return s if squared else math.sqrt(s)


def reference_contrastive(z1, z2, dissimilar, margin: float, *, squared: bool = True) -> float:
    """Eq. 11, mean over pairs: (1 - y) d + y [m - d]_+, d the squared (or plain) Euclidean distance."""
    terms = []
    for u, v, y in zip(_rows(z1), _rows(z2), torch.as_tensor(dissimilar).tolist()):
        d = _dist(u, v, squared)
        terms.append((1 - y) * d + y * max(0.0, margin - d))
    return math.fsum(terms) / len(terms)


def reference_triplet(za, zp, zn, margin: float, *, squared: bool = False) -> float:
    """Eq. 12, mean over triplets: [d(a, p) - d(a, n) + m]_+, d plain or squared Euclidean."""
    terms = [max(0.0, _dist(a, p, squared) - _dist(a, n, squared) + margin)
             for a, p, n in zip(_rows(za), _rows(zp), _rows(zn))]
    return math.fsum(terms) / len(terms)


def _problem(seed: int, n: int = 64, dim: int = 4):
    g = torch.Generator().manual_seed(seed)
    z = [torch.randn(n, dim, generator=g, dtype=torch.float64) for _ in range(3)]
    y = torch.randint(0, 2, (n,), generator=g)
    return z, y


@exercise("05.1", "The contrastive loss (eq. 11)", writes="my_contrastive",
          hints=["d is the SQUARED Euclidean distance between the two rows: ((z1 - z2) ** 2).sum(1).",
                 "y = 1 marks a DISSIMILAR pair: similar pairs (y = 0) pay d, dissimilar ones pay [m - d]_+.",
                 "d = ((z1 - z2) ** 2).sum(1); y = dissimilar.to(d.dtype); "
                 "return ((1 - y) * d + y * torch.relu(margin - d)).mean()"],
          mistakes=["similar and dissimilar swapped", "the Euclidean distance instead of the squared one",
                    "the hinge [.]_+ missing", "Hadsell's squared form", "sum instead of mean"])
def check_contrastive(fn) -> str:
    """``fn(z1, z2, dissimilar, margin) -> scalar``: eq. 11 with the squared Euclidean distance, mean over pairs."""
    for seed, margin in ((0, 8.0), (1, 4.0), (2, 12.0)):
        (z1, z2, _), y = _problem(seed)
        yours = as_mean(fn(z1.clone(), z2.clone(), y.clone(), margin), "my_contrastive")
        ours = reference_contrastive(z1, z2, y, margin)
        if same(yours, ours):
            continue
        d2 = ((z1 - z2) ** 2).sum(1)
        d = d2.sqrt()
        yf = y.double()
        diagnoses = {
            "similar and dissimilar are swapped: y = 1 marks a DISSIMILAR pair, which pays [m - d]_+.":
                reference_contrastive(z1, z2, 1 - y, margin),
            "you used the Euclidean distance ||z1 - z2||; this exercise uses its square, d = ||z1 - z2||^2.":
                reference_contrastive(z1, z2, y, margin, squared=False),
            "the hinge [.]_+ is missing: a dissimilar pair beyond the margin must give 0, not a negative number.":
                ((1 - yf) * d2 + yf * (margin - d2)).mean(),
            "that is Hadsell et al.'s form (halves and a squared hinge on the plain distance); this exercise is "
            "eq. 11: (1 - y) d + y [m - d]_+.":
                (0.5 * (1 - yf) * d2 + 0.5 * yf * torch.relu(margin - d) ** 2).mean(),
            "you summed over pairs instead of taking the mean.": ours * len(y),
        }
        name_the_mistake(yours, diagnoses, matches=lambda a, b: same(a, float(b)))
        raise AssertionError(f"margin {margin}: expected {ours:.6f}, your function gave {yours:.6f}.")
    return "the same as a loop over eq. 11 on 3 random problems."


@exercise("05.2", "The triplet loss, with the distance you choose", writes="my_triplet",
          hints=["Say in the check which distance you use: check(\"05.2\", my_triplet, \"plain\") for "
                 "||a - p|| (as in section 4), or \"squared\" for ||a - p||^2 (as in FaceNet).",
                 "Per triplet: [d(a, p) - d(a, n) + m]_+; torch.relu gives [.]_+; take the mean over rows.",
                 "d_ap = torch.linalg.norm(za - zp, dim=1); d_an = torch.linalg.norm(za - zn, dim=1); "
                 "return torch.relu(d_ap - d_an + margin).mean()"],
          mistakes=["the distance differs from the one declared", "margin with the wrong sign", "hinge missing",
                    "positive and negative swapped", "sum instead of mean"])
def check_triplet(fn, distance="plain") -> str:
    """``fn(za, zp, zn, margin) -> scalar``: eq. 12, mean over triplets, with ``distance`` "plain" (Euclidean)
    or "squared" (squared Euclidean), as the learner declares."""
    if not isinstance(distance, str) or distance not in DISTANCES:
        raise AssertionError(f"the third argument of check says which distance you use: \"plain\" or \"squared\", "
                             f"not {distance!r}.")
    kind = DISTANCES[distance]
    other = "squared" if kind == "plain" else "plain"
    for seed, margin in ((0, 0.5), (1, 2.0), (2, 0.0)):
        (za, zp, zn), _ = _problem(seed)
        yours = as_mean(fn(za.clone(), zp.clone(), zn.clone(), margin), "my_triplet")
        ours = reference_triplet(za, zp, zn, margin, squared=kind == "squared")
        if same(yours, ours):
            continue
        if same(yours, reference_triplet(za, zp, zn, margin, squared=kind == "plain")):
            said = {"plain": "the plain distance ||a - p||", "squared": "the squared distance ||a - p||^2"}
            raise AssertionError(
                f"your function uses {said[other]}, but you told the check \"{distance}\". Either is a triplet "
                f"loss; pick one on purpose: write check(\"05.2\", my_triplet, \"{other}\"), or change the "
                f"function. It matters: the same margin m is a gap in distance for \"plain\" and a gap in squared "
                f"distance for \"squared\" (d_an^2 - d_ap^2 = (d_an - d_ap)(d_an + d_ap)).")
        sq = kind == "squared"
        dap = ((za - zp) ** 2).sum(1) if sq else torch.linalg.norm(za - zp, dim=1)
        dan = ((za - zn) ** 2).sum(1) if sq else torch.linalg.norm(za - zn, dim=1)
        diagnoses = {
            "the margin has the wrong sign: it is + m inside the hinge.": torch.relu(dap - dan - margin).mean(),
            "the hinge [.]_+ is missing: easy triplets must give 0, not a negative number.":
                (dap - dan + margin).mean(),
            "positive and negative are swapped: the loss is [d(a, p) - d(a, n) + m]_+.":
                torch.relu(dan - dap + margin).mean(),
            "you summed over triplets instead of taking the mean.": ours * len(za),
        }
        name_the_mistake(yours, diagnoses, matches=lambda a, b: same(a, float(b)))
        raise AssertionError(f"margin {margin}, {kind} distance: expected {ours:.6f}, your function gave "
                             f"{yours:.6f}.")
    scale = ("a gap in distance: d(a, n) must exceed d(a, p) by m" if kind == "plain" else
             "a gap in SQUARED distance: d(a, n)^2 must exceed d(a, p)^2 by m, a smaller gap in distance when "
             "the points are far apart, a larger one when they are close")
    return f"the same as a loop over eq. 12 with the {kind} distance on 3 random problems. Your margin is {scale}."


@exercise("05.3", "Predict, then explain: one margin, two distances", writes="my_prediction and my_mean_sum",
          hints=["A prediction is a guess: any numbers in [0, 1] are accepted; write them before computing anything.",
                 "d_an^2 - d_ap^2 = (d_an - d_ap)(d_an + d_ap): on the squared scale every gap is multiplied by "
                 "d_an + d_ap. How large is that factor for these triplets?",
                 "my_mean_sum = (d_ap + d_an).mean().item()"],
          mistakes=["the difference d_an - d_ap instead of the sum", "the sum of the squared distances"])
def check_margin_scales(prediction, mean_sum, d_ap, d_an, margin: float = 0.2) -> str:
    """``prediction``: {"plain": ..., "squared": ...}, the guessed fractions of active triplets at m = 0.2;
    ``mean_sum``: the mean over the triplets of d(a, p) + d(a, n)."""
    if not isinstance(prediction, dict) or not {"plain", "squared"} <= set(prediction):
        raise AssertionError('my_prediction must be a dict {"plain": <number>, "squared": <number>}.')
    for k in ("plain", "squared"):
        if not 0.0 <= float(prediction[k]) <= 1.0:
            raise AssertionError(f"my_prediction[{k!r}] = {prediction[k]}: a fraction of triplets lies in [0, 1].")
    dap = [float(v) for v in torch.as_tensor(d_ap, dtype=torch.float64)]
    dan = [float(v) for v in torch.as_tensor(d_an, dtype=torch.float64)]
    true_sum = math.fsum(a + b for a, b in zip(dap, dan)) / len(dap)
    yours = float(mean_sum)
    if not same(yours, true_sum):
        if same(yours, math.fsum(b - a for a, b in zip(dap, dan)) / len(dap)) or \
                same(yours, math.fsum(a - b for a, b in zip(dap, dan)) / len(dap)):
            raise AssertionError("that is the mean DIFFERENCE of the two distances; the factor that squaring puts "
                                 "on every gap is their SUM, d(a, p) + d(a, n).")
        if same(yours, math.fsum(a * a + b * b for a, b in zip(dap, dan)) / len(dap)):
            raise AssertionError("you summed the SQUARED distances; the factor is d(a, p) + d(a, n), the plain ones.")
        raise AssertionError(f"{yours:.4f} is not the mean of d_ap + d_an over the {len(dap)} triplets.")
    active = {"plain": sum(a - b + margin > 0 for a, b in zip(dap, dan)) / len(dap),
              "squared": sum(a * a - b * b + margin > 0 for a, b in zip(dap, dan)) / len(dap)}
    off = {k: abs(float(prediction[k]) - active[k]) for k in active}
    effective = margin / true_sum
    more = "more" if active["squared"] > active["plain"] else "fewer" if active["squared"] < active["plain"] else \
        "as many"
    return (f"active at m = {margin:g}: plain {active['plain']:.2f}, squared {active['squared']:.2f} (your guesses "
            f"were off by {off['plain']:.2f} and {off['squared']:.2f}). A triplet is active on the squared scale "
            f"when d_an - d_ap < m / (d_an + d_ap); here d_an + d_ap is {true_sum:.2f} on average, so m = {margin:g} "
            f"on squared distances acts like m = {effective:.2f} on plain ones: {more} active triplets. A margin "
            "only means something together with its distance.")
