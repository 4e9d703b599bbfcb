"""Exercises of 00_start_here.

The references here are brute-force loops written from the definitions, independent of
``dmlcourse.metrics`` (which the notebook teaches and the learner must not call).
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import torch

from . import exercise
from ._common import as_number


def _brute_neighbours(z: torch.Tensor) -> list[list[int]]:
    """For each point, the other points sorted by Euclidean distance (float64, a plain loop)."""
    z = z.double()
    out = []
    for i in range(len(z)):
        d = [(float(((z[i] - z[j]) ** 2).sum().sqrt()), j) for j in range(len(z)) if j != i]
        out.append([j for _, j in sorted(d)])
    return out


def reference_precision_at_1(z: torch.Tensor, y: torch.Tensor) -> float:
    nb = _brute_neighbours(z)
    return sum(int(y[nb[i][0]] == y[i]) for i in range(len(z))) / len(z)


def reference_r_precision(z: torch.Tensor, y: torch.Tensor) -> float:
    nb = _brute_neighbours(z)
    scores = []
    for i in range(len(z)):
        r = int((y == y[i]).sum()) - 1
        if r > 0:
            scores.append(sum(int(y[j] == y[i]) for j in nb[i][:r]) / r)
    return sum(scores) / len(scores)


def _problems(n: int = 3, size: int = 60):
    for seed in range(n):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(size, 4, generator=g)
        y = torch.randint(0, 4, (size,), generator=g)
        z = z + 0.8 * torch.nn.functional.one_hot(y, 4).float()  # some structure, so the score is not ~ chance
        yield seed, z, y


def _as_float(value, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise AssertionError(f"{name} returned a tensor of shape {tuple(value.shape)}; return one number "
                             "(the mean over all points), e.g. with .mean().item().")
    return float(value)


@exercise("00.1", "Precision@1 by hand", writes="my_precision_at_1", implemented_by=["dmlcourse.metrics.precision_at_1"],
          hints=["Compute all pairwise distances at once: torch.cdist(embeddings, embeddings) is N x N.",
                 "A point is at distance 0 from itself: set the diagonal to +inf (d.fill_diagonal_) "
                 "before looking for the nearest.",
                 "d.argmin(1) gives each point's nearest neighbour; compare labels[nearest] with labels "
                 "and take the mean."],
          mistakes=["the point itself counted as its own neighbour -> 1.0",
                    "argmax instead of argmin (farthest point)",
                    "returns per-point hits instead of their mean"])
def check_precision_at_1(fn) -> str:
    """``fn(embeddings, labels) -> float``: the fraction of points whose nearest other point shares the label."""
    for seed, z, y in _problems():
        yours = _as_float(fn(z.clone(), y.clone()), "my_precision_at_1")
        ours = reference_precision_at_1(z, y)
        if abs(yours - 1.0) < 1e-9 and ours < 0.99:
            raise AssertionError("you get 1.0: each point is its own nearest neighbour (distance 0). "
                                 "Exclude it, e.g. set the diagonal of the distance matrix to +inf.")
        if abs(yours - ours) > 1e-6:
            nb = _brute_neighbours(z)
            far = sum(int(y[nb[i][-1]] == y[i]) for i in range(len(z))) / len(z)
            if abs(yours - far) < 1e-6:
                raise AssertionError("you take the FARTHEST point (argmax); the nearest is the smallest distance.")
            raise AssertionError(f"on a random problem (seed {seed}, {len(z)} points) the Precision@1 is "
                                 f"{ours:.4f}; your function gave {yours:.4f}.")
    return "the same as a brute-force loop on 3 random problems."


@exercise("00.2", "R-precision by hand", writes="my_r_precision", implemented_by=["dmlcourse.metrics.r_precision"],
          hints=["For a query i, R is the number of OTHER points of its class: (labels == labels[i]).sum() - 1.",
                 "Sort each row of the distance matrix (self excluded) and look at the first R entries: "
                 "which fraction has the query's label?",
                 "Average that fraction over all queries that have R > 0."],
          mistakes=["R counts the query itself", "the query is its own first neighbour"])
def check_r_precision(fn) -> str:
    """``fn(embeddings, labels) -> float``: mean over queries of the same-class fraction among the R nearest."""
    for seed, z, y in _problems():
        yours = _as_float(fn(z.clone(), y.clone()), "my_r_precision")
        ours = reference_r_precision(z, y)
        if abs(yours - ours) <= 1e-6:
            continue
        nb_self = [[i] + row for i, row in enumerate(_brute_neighbours(z))]
        r_of = [int((y == y[i]).sum()) - 1 for i in range(len(z))]
        with_self = sum(sum(int(y[j] == y[i]) for j in nb_self[i][:r]) / r for i, r in enumerate(r_of)) / len(z)
        r_plus = sum(sum(int(y[j] == y[i]) for j in nb_self[i][1:r + 2]) / (r + 1)
                     for i, r in enumerate(r_of)) / len(z)
        if abs(yours - with_self) < 1e-6:
            raise AssertionError("the query is counted among its own R nearest: exclude it (distance 0 to itself).")
        if abs(yours - r_plus) < 1e-6:
            raise AssertionError("R should count the OTHER points of the query's class (class size minus one).")
        raise AssertionError(f"seed {seed}: R-precision is {ours:.4f}; your function gave {yours:.4f}.")
    return "the same as a brute-force loop on 3 random problems."


def reference_intruders(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over queries (with R > 0 other images of their class) of the number of other-class images among the
    query's R nearest other images (Euclidean, float64, every pair computed directly, the query left out)."""
    x, y = x.double().flatten(1), torch.as_tensor(y)
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").fill_diagonal_(float("inf"))
    counts = []
    for i in range(len(x)):
        r = int((y == y[i]).sum()) - 1
        if r > 0:
            nearest = torch.argsort(d[i], stable=True)[:r]
            counts.append(int((y[nearest] != y[i]).sum()))
    return sum(counts) / len(counts)


def _sample_intruders() -> dict:
    g = torch.Generator().manual_seed(5)
    y = torch.arange(40) % 4
    x = torch.randn(40, 6, generator=g) + 0.7 * torch.nn.functional.one_hot(y, 6).float()
    results = {"raw pixels (784-d)": (reference_precision_at_1(x, y), reference_r_precision(x, y))}
    return dict(prediction={"p1": 0.5, "map_r": 0.5}, intruders=reference_intruders(x, y), results=results,
                pixels=x, labels=y)


@exercise("00.3", "Predict, then explain: Precision@1 against MAP@R", writes="my_prediction and my_intruders",
          hints=["A prediction is a guess: any number in [0, 1] for each metric is accepted; write it BEFORE "
                 "looking at the table above again.",
                 "P@1 looks at one neighbour; MAP@R looks at the R nearest, where R is the number of OTHER images of "
                 "the query's class, and every image of another class among them lowers it. So count, for each "
                 "query, the other-class images among its R nearest, and average.",
                 "Rank every row of the distance matrix with the query itself left out (a distance of +inf puts it "
                 "last); R differs from class to class, so a mask of the first R positions of each row does it for "
                 "all queries at once."],
          mistakes=["the query counted as its own neighbour", "R counts the query itself",
                    "a fraction instead of a count"],
          graded=("intruders",), sample=_sample_intruders)
def check_prediction(prediction, intruders, results, pixels, labels) -> str:
    """``prediction``: {"p1": ..., "map_r": ...} guessed for raw pixels; ``intruders``: the mean number of
    other-class images among each query's R nearest other images, on the raw ``pixels``."""
    if not isinstance(prediction, dict) or not {"p1", "map_r"} <= set(prediction):
        raise AssertionError('my_prediction must be a dict {"p1": <number>, "map_r": <number>}.')
    for k in ("p1", "map_r"):
        if not 0.0 <= float(prediction[k]) <= 1.0:
            raise AssertionError(f"my_prediction[{k!r}] = {prediction[k]}: both metrics lie in [0, 1].")
    yours = as_number(intruders, "my_intruders", "a mean count over the test images")
    ours = reference_intruders(pixels, labels)
    if abs(yours - ours) > 1e-6 * max(1.0, ours):
        x, y = pixels.double().flatten(1), torch.as_tensor(labels)
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
        r = (y[:, None] == y[None, :]).sum(1) - 1
        with_self = [int((y[torch.argsort(d[i], stable=True)[:r[i]]] != y[i]).sum()) for i in range(len(y))]
        d.fill_diagonal_(float("inf"))
        one_more = [int((y[torch.argsort(d[i], stable=True)[:r[i] + 1]] != y[i]).sum()) for i in range(len(y))]
        wrong = {
            "the query is among its own neighbours (distance 0): leave it out of the ranking":
                sum(with_self) / len(y),
            "that looks at the R + 1 nearest: R counts the OTHER images of the query's class":
                sum(one_more) / len(y),
            "that is a fraction; give the number of other-class images among the R nearest":
                ours / float(r.double().mean()),
        }
        for msg, v in wrong.items():
            if abs(yours - v) < 1e-6 * max(1.0, abs(v)):
                raise AssertionError(f"{yours:.3f}: {msg}.")
        raise AssertionError(f"on these test images the mean is not {yours:.3f}: rank the others by distance to "
                             "each query and count the other-class images among its R nearest.")
    p1, map_r = results["raw pixels (784-d)"]
    off = abs(float(prediction["p1"]) - p1), abs(float(prediction["map_r"]) - map_r)
    mean_r = float(((torch.as_tensor(labels)[:, None] == torch.as_tensor(labels)).sum(1) - 1).double().mean())
    return (f"raw pixels measured P@1 {p1:.3f}, MAP@R {map_r:.3f} (your guesses were off by {off[0]:.2f} and "
            f"{off[1]:.2f}). Among a query's R = {mean_r:.0f} nearest images, {ours:.1f} on average come from other "
            "classes: the single nearest neighbour is often right (P@1), but most of the class lies farther away "
            "than images of other classes, and MAP@R looks at all R.")
