"""Exercises of 05_siamese_triplet.

The references here are plain loops over the pairs or triplets in float64, written from the formulas, independent
of ``dmlcourse.losses`` (which the notebook teaches).

The triplet loss is written with the plain Euclidean distance in some texts (and in this course's training runs)
and with the squared one in others (FaceNet). The same margin means different things on the two scales, so the
triplet check asks which one the learner meant and says so when the function does the other. Exercise 05.3
measures the same point on real triplets: the margin at which the squared form keeps as many triplets active as
the plain form at m, found by counting, against the rule of thumb m' ~ m (d_ap + d_an).
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import torch

from . import exercise
from ._common import as_mean, as_number, name_the_mistake, same

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
          implemented_by=["dmlcourse.losses.contrastive_loss"],
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
          implemented_by=["dmlcourse.losses.triplet_loss"],
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


def _count_active(dap: list[float], dan: list[float], margin: float, squared: bool) -> int:
    """How many triplets have a non-zero hinge [d(a, p) - d(a, n) + margin]_+ (d plain or squared)."""
    if squared:
        return sum(a * a - b * b + margin > 0 for a, b in zip(dap, dan))
    return sum(a - b + margin > 0 for a, b in zip(dap, dan))


def _median(values: list[float]) -> float:
    v, n = sorted(values), len(values)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def reference_matching_margin(d_ap, d_an, margin: float) -> float:
    """The margin m' at which the squared form keeps as many triplets active as the plain form at ``margin``:
    a triplet is active on the squared scale when d_an^2 - d_ap^2 < m', so with k triplets active under the
    plain form, any m' in (k-th smallest gap, (k+1)-th smallest gap] does it; the midpoint is returned."""
    dap = [float(v) for v in torch.as_tensor(d_ap, dtype=torch.float64)]
    dan = [float(v) for v in torch.as_tensor(d_an, dtype=torch.float64)]
    k = _count_active(dap, dan, margin, squared=False)
    gaps = sorted(b * b - a * a for a, b in zip(dap, dan))
    if k == 0:
        return max(0.0, gaps[0]) / 2
    if k == len(gaps):
        return gaps[-1] + 1.0
    return max(0.0, (gaps[k - 1] + gaps[k]) / 2)


def _sample_matching_margin() -> dict:
    g = torch.Generator().manual_seed(11)
    d_ap = 0.4 + 0.6 * torch.rand(400, generator=g, dtype=torch.float64)
    d_an = d_ap + 0.25 * torch.randn(400, generator=g, dtype=torch.float64).abs() + 0.02
    return dict(prediction=1.0, matching_margin=reference_matching_margin(d_ap, d_an, 0.1), d_ap=d_ap,
                d_an=d_an, margin=0.1)


@exercise("05.3", "Predict, then explain: the squared margin that matches a plain one",
          writes="my_prediction and my_matching_margin",
          hints=["A prediction is a guess: any ratio m'/m >= 0 is accepted; write it before computing anything. "
                 "Section 4 gives a rule of thumb; is it right for these triplets?",
                 "Under the squared form a triplet is active when d_an^2 - d_ap^2 < m'. So the number of active "
                 "triplets only depends on how many of these squared gaps lie below m'. How many must that be?",
                 "Count the triplets that the PLAIN form leaves active at m; call it k. Sort the squared gaps "
                 "d_an^2 - d_ap^2 of all triplets: any m' above the k-th smallest and not above the (k+1)-th "
                 "keeps exactly k active (the midpoint of the two is a safe choice)."],
          mistakes=["the same margin for both forms", "the margin squared",
                    "the rule of thumb m (d_ap + d_an) instead of the exact count",
                    "the satisfied triplets counted instead of the active ones"],
          graded=("matching_margin",), sample=_sample_matching_margin)
def check_matching_margin(prediction, matching_margin, d_ap, d_an, margin: float = 0.1) -> str:
    """``prediction``: the guessed ratio m'/m; ``matching_margin``: the margin m' at which the squared-distance
    triplet loss keeps as many of the triplets (d_ap, d_an) active as the plain one at ``margin``."""
    prediction = as_number(prediction, "my_prediction", "your guess of the ratio m'/m")
    if prediction < 0:
        raise AssertionError(f"my_prediction = {prediction}: a ratio of two margins is not negative.")
    yours = as_number(matching_margin, "my_matching_margin", "one margin for the squared form")
    dap = [float(v) for v in torch.as_tensor(d_ap, dtype=torch.float64)]
    dan = [float(v) for v in torch.as_tensor(d_an, dtype=torch.float64)]
    n = len(dap)
    k = _count_active(dap, dan, margin, squared=False)
    got = _count_active(dap, dan, yours, squared=True)
    tolerance = max(1, n // 400)  # a few triplets: float32 rounding of gaps that lie at m' itself
    if abs(got - k) > tolerance or yours < 0:
        sums = [a + b for a, b in zip(dap, dan)]
        median_sum, mean_sum = _median(sums), math.fsum(sums) / n
        lower_median = sorted(sums)[(n - 1) // 2]  # torch.median's choice for an even count
        rules = {
            f"m' = m = {margin:g} is the same margin: on the squared scale it keeps {got} of the {n} triplets "
            f"active, not {k}.": [margin],
            "squaring the margin is not the conversion: the gap is squared as a difference of squares, "
            "d_an^2 - d_ap^2 = (d_an - d_ap)(d_an + d_ap).": [margin * margin],
            f"that is the rule of thumb m' ~ m (d_ap + d_an) (with the median or the mean of the sums): it keeps "
            f"{got} active, not {k}. It is close, not exact: the triplets that decide are the ones near the "
            "boundary, and their sums are not the typical sum. Count instead.": [margin * median_sum,
                                                                              margin * lower_median,
                                                                              margin * mean_sum],
        }
        for message, values in rules.items():
            if any(abs(yours - v) <= 1e-6 * max(1.0, abs(v)) for v in values):
                raise AssertionError(message)
        if got == n - k and got != k:
            raise AssertionError(f"{got} triplets are active at your m': that is the number the plain form "
                                 f"SATISFIES ({n - k}); match the active ones ({k}).")
        if yours < 0:
            raise AssertionError(f"my_matching_margin = {yours}: a margin is not negative (the loss asks d_an^2 "
                                 "to exceed d_ap^2 BY m').")
        raise AssertionError(f"at m' = {yours:.4g} the squared form keeps {got} of the {n} triplets active; the "
                             f"plain form at m = {margin:g} keeps {k}. Find the m' that keeps {k}.")
    exact = reference_matching_margin(dap, dan, margin)
    rule = margin * _median([a + b for a, b in zip(dap, dan)])
    by_rule = _count_active(dap, dan, rule, squared=True)
    ratio = exact / margin
    side = ("smaller than m: the sums d_ap + d_an are mostly below 1 here, so the squared gap "
            "(d_an - d_ap)(d_an + d_ap) is smaller than the plain one" if ratio < 1 else
            "larger than m: the sums d_ap + d_an are mostly above 1 here, so the squared gap "
            "(d_an - d_ap)(d_an + d_ap) is larger than the plain one")
    return (f"m' = {yours:.4f} keeps {got} of the {n} triplets active, as the plain form does at m = {margin:g} "
            f"({k}). The exact interval's midpoint is {exact:.4f}, so m'/m = {ratio:.2f} (your guess was off by "
            f"{abs(prediction - ratio):.2f}): m' is {side}. The rule of thumb m' ~ m x median(d_ap + d_an) = "
            f"{rule:.4f} keeps {by_rule}: the right size, not the exact count, because the triplets that decide "
            "are the ones near the boundary. A margin only means something together with its distance.")
