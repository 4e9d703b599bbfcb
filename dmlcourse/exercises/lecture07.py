"""Exercises of 07_angular_margins.

The references here are loops over the formulas in float64 (``math.acos``, ``math.cos``), independent of
``dmlcourse.heads`` (which the notebook teaches and the learner must not call); the tests check that the two agree.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import torch

from . import exercise
from ._common import as_number, as_shaped_tensor, close, name_the_mistake

# --------------------------------------------------------------------------- references (float64 loops)

def _norm(v) -> float:
    return math.sqrt(sum(float(a) ** 2 for a in v))


def _cosines(x: torch.Tensor, W: torch.Tensor) -> list[list[float]]:
    """cos(theta_j) between every row of x and every row (class weight) of W, element by element."""
    out = []
    for xi in x.double().tolist():
        row = []
        for wj in W.double().tolist():
            row.append(sum(a * b for a, b in zip(xi, wj)) / (_norm(xi) * _norm(wj)))
        out.append(row)
    return out


def reference_cosface_logits(x, W, labels, s: float, m: float) -> torch.Tensor:
    """CosFace's training logits: s (cos theta_y - m) for the target class, s cos theta_j for the others."""
    cos = _cosines(x, W)
    out = [[s * (c - m) if j == int(labels[i]) else s * c for j, c in enumerate(row)] for i, row in enumerate(cos)]
    return torch.tensor(out, dtype=torch.float64)


def reference_psi(theta: float, m: int) -> float:
    """SphereFace's psi: (-1)^k cos(m theta) - 2k on [k pi/m, (k+1) pi/m], k = 0 .. m-1."""
    k = min(int(math.floor(theta * m / math.pi)), m - 1)
    return (-1) ** k * math.cos(m * theta) - 2 * k


def reference_sphereface_logits(x, W, labels, m: int) -> torch.Tensor:
    """SphereFace's logits without annealing: ||x|| psi(theta_y) for the target, ||x|| cos theta_j for the others
    (the class weights are normalised, the features are not)."""
    cos = _cosines(x, W)
    out = []
    for i, row in enumerate(cos):
        n = _norm(x[i].tolist())
        y = int(labels[i])
        out.append([n * reference_psi(math.acos(max(-1.0, min(1.0, c))), m) if j == y else n * c
                    for j, c in enumerate(row)])
    return torch.tensor(out, dtype=torch.float64)


def reference_room(num_classes: int, margin: float) -> float:
    """How far (radians) a point may move from its class weight towards a neighbour and still meet an additive
    angular margin, with ``num_classes`` weights evenly spaced on the circle: phi + m < 2 pi / C - phi."""
    return (2 * math.pi / num_classes - margin) / 2


def reference_smallest_gap(W) -> float:
    """The smallest angle (radians) between two class weights in 2-D: sort them by their angle, take the gaps
    between neighbours around the circle (the last one wraps around)."""
    angles = sorted(math.atan2(float(w[1]), float(w[0])) for w in W.double().tolist())
    gaps = [b - a for a, b in zip(angles, angles[1:])] + [2 * math.pi - (angles[-1] - angles[0])]
    return min(gaps)


# --------------------------------------------------------------------------- helpers

def _problems():
    for seed, (s, m) in enumerate(((30.0, 0.35), (10.0, 0.2))):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(16, 5, generator=g, dtype=torch.float64) * (0.5 + 2 * torch.rand(16, 1, generator=g))
        W = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3       # rows NOT of unit length
        labels = torch.randint(0, 7, (16,), generator=g)
        yield seed, s, m, x, W, labels


def _logits(value, expected_shape, name):
    return as_shaped_tensor(value, expected_shape, name, "one logit per sample and class")


# --------------------------------------------------------------------------- 07.1 CosFace

@exercise("07.1", "CosFace logits by hand", writes="my_cosface", implemented_by=["dmlcourse.heads.CosFaceHead.forward"],
          hints=["First the cosines: normalise each row of x and each row of W (one class weight per row), then "
                 "one matrix product gives the (N, C) matrix of cos θ_j.",
                 "Only the target entry of each row, (i, labels[i]), loses the margin. Pick those N entries with "
                 "two index tensors, one for the rows and one for the columns (the labels), and change a copy of the "
                 "cosines, not the input.",
                 "cos[torch.arange(len(labels)), labels] -= m, then the scale multiplies every entry, after the "
                 "margin: s * (cos θ_y - m) for the target and s * cos θ_j for the others."],
          mistakes=["scale missing", "margin subtracted after the scale", "margin on every class", "no margin",
                    "x or W not normalised", "W normalised along the wrong dimension"])
def check_cosface(fn) -> str:
    """``fn(x, W, labels, s, m) -> (N, C)`` logits: s (cos θ_y - m) for the target class, s cos θ_j for the others."""
    for seed, s, m, x, W, labels in _problems():
        yours = _logits(fn(x.clone(), W.clone(), labels.clone(), s, m), (len(x), len(W)), "my_cosface")
        ours = reference_cosface_logits(x, W, labels, s, m)
        if close(yours, ours):
            continue
        rows = torch.arange(len(labels))
        cos = ours / s
        cos[rows, labels] += m                                      # the plain cosines
        shifted = s * cos
        shifted[rows, labels] -= m
        xn, Wn = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(W, dim=1)
        variants = {
            "the scale s is missing: multiply every logit by s.": ours / s,
            "the margin is subtracted after the scale (s cos θ_y - m); it belongs inside: s (cos θ_y - m), "
            "so the target loses s·m.": shifted,
            "the margin is applied to every class; only the target class (labels[i] in row i) gets - m.": s * (cos - m),
            "the margin is missing: the target class gets s (cos θ_y - m).": s * cos,
        }
        for name, (a, b) in {"x and W": (x, W), "x": (x, Wn), "W": (xn, W)}.items():
            raw = s * (a @ b.T)
            raw[rows, labels] -= s * m
            variants[f"{name} not normalised: normalise x and each row of W before the product "
                     "(cosines, not dot products)."] = raw
        wrong_dim = s * (xn @ torch.nn.functional.normalize(W, dim=0).T)
        wrong_dim[rows, labels] -= s * m
        variants["W is normalised along dim 0 (its columns); each ROW is a class weight: normalise with dim=1."] = \
            wrong_dim
        name_the_mistake(yours, variants)
        raise AssertionError(f"on a random problem (seed {seed}, s = {s}, m = {m}) your logits differ from "
                             f"CosFace's by up to {(yours - ours).abs().max().item():.3g}.")
    return "the same as a float64 loop over the formula on 2 random problems."


# --------------------------------------------------------------------------- 07.2 SphereFace

@exercise("07.2", "SphereFace logits by hand", writes="my_sphereface",
          implemented_by=["dmlcourse.heads.sphereface_psi", "dmlcourse.heads.SphereFaceHead.forward"],
          hints=["SphereFace normalises the class weights but NOT the features: every logit is ||x|| times a cosine "
                 "(or times ψ for the target). θ_y = acos(cos θ_y); clamp the cosine to [-1, 1] first.",
                 "ψ(θ) = (-1)^k cos(mθ) - 2k with k = floor(θ m / π), at most m - 1. cos(mθ) alone goes up again "
                 "after θ = π/m; the -2k and the sign keep ψ decreasing.",
                 "k = torch.floor(theta * m / math.pi).clamp(max=m - 1); psi = (1 - 2 * (k % 2)) * torch.cos(m * theta) "
                 "- 2 * k; logits = ||x|| * cos, with the target entries replaced by ||x|| * psi."],
          mistakes=["cos(mθ) instead of ψ", "the -2k missing", "the sign (-1)^k missing", "features normalised",
                    "non-target logits without ||x||", "W not normalised"])
def check_sphereface(fn) -> str:
    """``fn(x, W, labels, m) -> (N, C)``: ||x|| ψ(θ_y) for the target class, ||x|| cos θ_j for the others."""
    for seed, _, _, x, W, labels in _problems():
        for m in (4, 3):
            yours = _logits(fn(x.clone(), W.clone(), labels.clone(), m), (len(x), len(W)), "my_sphereface")
            ours = reference_sphereface_logits(x, W, labels, m)
            if close(yours, ours):
                continue
            rows = torch.arange(len(labels))
            norm = x.norm(dim=1, keepdim=True)
            cos = ours / norm                                            # psi(θ_y) at the target, cos θ_j elsewhere
            plain = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(W, dim=1).T
            theta_y = torch.acos(plain[rows, labels].clamp(-1, 1))
            k = torch.floor(theta_y * m / math.pi).clamp(max=m - 1)
            psi_variants = {
                "the target uses cos(mθ_y), which is not monotone on [0, π]: past θ = π/m it rises again. Use "
                "ψ(θ) = (-1)^k cos(mθ) - 2k.": torch.cos(m * theta_y),
                "the -2k of ψ is missing: without it ψ jumps back up at every θ = kπ/m.":
                    (1 - 2 * (k % 2)) * torch.cos(m * theta_y),
                "the sign (-1)^k of ψ is missing: on odd pieces cos(mθ) increases.": torch.cos(m * theta_y) - 2 * k,
            }
            for message, psi in psi_variants.items():
                t = ours.clone()
                t[rows, labels] = norm[:, 0] * psi
                if close(yours, t):
                    raise AssertionError(message)
            if close(yours, cos):
                raise AssertionError("SphereFace does not normalise the features: every logit is multiplied by "
                                     "||x|| (that is how it stays confident without a scale s).")
            only_target = cos.clone()
            only_target[rows, labels] = ours[rows, labels]
            if close(yours, only_target):
                raise AssertionError("the non-target logits are ||x|| cos θ_j, not cos θ_j: multiply them by ||x|| "
                                     "too.")
            cos_raw = torch.nn.functional.normalize(x, dim=1) @ W.T      # W's rows left at their length
            t_raw = torch.acos(cos_raw[rows, labels].clamp(-1, 1))
            k_raw = torch.floor(t_raw * m / math.pi).clamp(max=m - 1)
            raw = norm * cos_raw
            raw[rows, labels] = norm[:, 0] * ((1 - 2 * (k_raw % 2)) * torch.cos(m * t_raw) - 2 * k_raw)
            if close(yours, raw):
                raise AssertionError("W is not normalised: divide each row of W by its length (SphereFace's "
                                     "weights have unit length; only the features keep theirs).")
            raise AssertionError(f"on a random problem (seed {seed}, m = {m}) your logits differ from SphereFace's "
                                 f"by up to {(yours - ours).abs().max().item():.3g}.")
    return "the same as a float64 loop over the formula on 2 random problems, for m = 4 and m = 3."


# --------------------------------------------------------------------------- 07.3 predict, then explain

def _sample_margin_in_2d() -> dict:
    g = torch.Generator().manual_seed(7)
    angles = torch.sort(torch.rand(10, generator=g, dtype=torch.float64) * 2 * math.pi).values
    W = torch.stack([angles.cos(), angles.sin()], 1)[torch.randperm(10, generator=g)] * 1.5  # rows not unit length
    return dict(prediction=0.5, max_margin=2 * math.pi / 10,
                room_deg=math.degrees(reference_room(10, 0.6)), smallest_gap=reference_smallest_gap(W), W=W)


@exercise("07.3", "Predict, then explain: how large can a margin be in 2-D?",
          writes="my_prediction, my_max_margin, my_room_deg and my_smallest_gap",
          hints=["A prediction is a guess: any margin in radians is accepted. Write it BEFORE computing anything.",
                 "Put the 10 class weights evenly on the circle, 2π/10 apart. A point at angle φ from its own weight, "
                 "towards a neighbour, has θ_y = φ and θ_neighbour = 2π/10 - φ; the margin holds while "
                 "θ_y + m < θ_neighbour. Solve for φ; the largest m is the one that leaves φ = 0 only.",
                 "The first two numbers come from that inequality: the largest margin is the m at which the room φ "
                 "shrinks to zero, and the room at m = 0.6 is φ solved for, turned from radians into degrees. For "
                 "the third, compare every class weight of W_arc with every OTHER one (not only its neighbour in "
                 "index order, which need not be its neighbour on the circle): the largest cosine between two "
                 "different weights belongs to the smallest angle."],
          mistakes=["the margin in degrees", "half the gap between two weights", "twice the room",
                    "the room in radians", "m = 0.6 taken as degrees", "a weight's angle with itself",
                    "neighbours in index order", "the gap in degrees"],
          graded=("max_margin", "room_deg", "smallest_gap"), sample=_sample_margin_in_2d)
def check_margin_in_2d(prediction, max_margin, room_deg, smallest_gap, W) -> str:
    """``prediction``: a guess of the largest margin (rad) 10 classes can all have in 2-D; ``max_margin``: that
    margin; ``room_deg``: the room (degrees) each side of a class weight at m = 0.6; ``smallest_gap``: the smallest
    angle (rad) between two class weights of the trained 2-D ArcFace head ``W`` (10, 2)."""
    guess = as_number(prediction, "my_prediction", "your guess of a margin in radians")
    if guess < 0:
        raise AssertionError(f"my_prediction = {guess}: a margin is an angle of at least 0.")
    c = 10
    true_max = 2 * math.pi / c
    mm = as_number(max_margin, "my_max_margin")
    if abs(mm - true_max) > 1e-6:
        if abs(mm - math.degrees(true_max)) < 1e-3:
            raise AssertionError("my_max_margin is in degrees (36); ArcFace's margin is in RADIANS.")
        if abs(mm - true_max / 2) < 1e-6:
            raise AssertionError(f"{mm:.4f} = π/10 splits the gap between two weights in half. The margin is not "
                                 "shared: a point ON its class weight (θ_y = 0) needs θ_y + m < θ_neighbour = 2π/10.")
        raise AssertionError(f"my_max_margin = {mm:.4f} rad is not the largest margin 10 evenly spaced classes can "
                             "all have in 2-D. Look at a point exactly on its class weight: θ_y = 0, and the nearest "
                             "other weight is 2π/10 away.")
    true_room = math.degrees(reference_room(c, 0.6))
    rd = as_number(room_deg, "my_room_deg")
    if abs(rd - true_room) > 1e-3:
        if abs(rd - 2 * true_room) < 1e-3:
            raise AssertionError(f"{rd:.3f}° is twice the room: moving φ towards the neighbour also brings it φ "
                                 "closer (θ_y = φ, θ_neighbour = 36° - φ), so φ < (36° - m) / 2.")
        if abs(rd - math.radians(true_room)) < 1e-5:
            raise AssertionError(f"{rd:.5f} is in radians; my_room_deg asks for degrees (math.degrees).")
        if abs(rd - (36 - 0.6) / 2) < 1e-3 or abs(rd - (36 - 0.6)) < 1e-3:
            raise AssertionError("m = 0.6 is in RADIANS (34.4°), not degrees: convert it before subtracting.")
        raise AssertionError(f"my_room_deg = {rd:.4f}° is not the room each side of a class weight at m = 0.6 rad. "
                             "Solve φ + m < 2π/10 - φ for φ, then convert to degrees.")
    W = torch.as_tensor(W).detach().double()
    true_gap = reference_smallest_gap(W)
    sg = as_number(smallest_gap, "my_smallest_gap")
    if abs(sg - true_gap) > 1e-4:
        if abs(sg) < 1e-4:
            raise AssertionError("0 is the angle of a weight with itself: exclude the diagonal (fill it with -1 "
                                 "in the cosine matrix, or +inf in the angle matrix).")
        if abs(sg - math.degrees(true_gap)) < 1e-2:
            raise AssertionError("my_smallest_gap is in degrees; give radians, like the margin.")
        Wn = torch.nn.functional.normalize(W, dim=1)
        by_index = [math.acos(max(-1.0, min(1.0, float(Wn[k] @ Wn[(k + 1) % len(Wn)])))) for k in range(len(Wn))]
        if abs(sg - min(by_index)) < 1e-4:
            raise AssertionError("you compared class k with class k + 1, but the classes are not in index order "
                                 "around the circle: compare every pair of weights (or sort them by atan2).")
        raise AssertionError(f"my_smallest_gap = {sg:.4f} rad is not the smallest angle between two class weights "
                             "of W_arc.")
    cos_m = 0.2                                       # section 3's CosFace margin, an offset on the cosine
    cos_reach = math.degrees(math.acos(1 - cos_m))    # a point ON its weight needs its neighbours beyond this angle
    return (f"you guessed {guess:.3f} rad; the largest margin is 2π/10 = {true_max:.3f} rad (off by "
            f"{abs(guess - true_max):.3f}). So 10 classes CAN all get m = 0.6 rad in 2-D, but only just: a point may "
            f"stray {true_room:.2f}° from its weight, far less than real embeddings spread, and from m = 2π/10 on "
            f"nothing is left. The ArcFace head of section 3 (m = 0.2) placed its closest weights {true_gap:.3f} rad "
            f"apart (evenly spaced: {true_max:.3f}), so its own layout admits margins below {true_gap:.3f} rad. "
            f"The same reasoning explains section 3's CosFace: a point on its weight meets cos θ_y - {cos_m} > "
            f"cos θ_j only if every other weight is more than acos({1 - cos_m:g}) = {cos_reach:.1f}° away, and "
            f"moving off its weight only brings a neighbour closer; with 10 evenly spaced weights, "
            f"{math.degrees(true_max):.0f}° apart, no point can meet it. Section 3's trained head spaced its weights "
            "unevenly, so only points of classes with wider gaps on both sides could.")
