"""Exercises of 04_supervised_losses.

The references here are plain loops over the samples in float64, written from the formulas, independent of
``dmlcourse.supervised`` (which the notebook teaches) and of PyTorch's built-in losses. A learner's function that
gives the right value by calling one of those is told to write the formula instead.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import ast
import inspect
import math
import textwrap

import numpy as np
import torch

from . import exercise
from ._common import as_mean, name_the_mistake, same


def _floats(t) -> list[float]:
    return [float(v) for v in torch.as_tensor(t, dtype=torch.float64).flatten()]


def reference_huber(pred, target, delta: float) -> float:
    """mean_i of 0.5 r_i^2 if |r_i| <= delta else delta (|r_i| - 0.5 delta), with r = pred - target."""
    terms = []
    for p, t in zip(_floats(pred), _floats(target)):
        r = abs(p - t)
        terms.append(0.5 * r * r if r <= delta else delta * (r - 0.5 * delta))
    return math.fsum(terms) / len(terms)


def reference_cross_entropy(logits, labels) -> float:
    """mean_i of log sum_l exp(z_il) - z_iy, with the row maximum taken out before exp."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    terms = []
    for row, y in zip(z.tolist(), torch.as_tensor(labels).tolist()):
        m = max(row)
        terms.append(m + math.log(math.fsum(math.exp(v - m) for v in row)) - row[y])
    return math.fsum(terms) / len(terms)


def reference_hinge(scores, y, margin: float) -> float:
    """mean_i of max(0, m - y_i f_i), y_i in {-1, +1}."""
    terms = [max(0.0, margin - yi * f) for f, yi in zip(_floats(scores), _floats(y))]
    return math.fsum(terms) / len(terms)


def _called(fn, names) -> str | None:
    """The first of ``names`` that ``fn`` calls (read from its source, docstring and comments ignored)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None))
    return next((n for n in names if n in called), None)


def _diagnose(yours: float, diagnoses: dict, where: str, expected: float) -> None:
    name_the_mistake(yours, diagnoses, matches=lambda a, b: same(a, float(b)))
    raise AssertionError(f"{where}: expected {expected:.6f}, your function gave {yours:.6f}.")


@exercise("04.1", "The Huber loss", writes="my_huber",
          hints=["Start from the residual r = pred - target and its absolute value.",
                 "torch.where(condition, a, b) picks a where the condition holds and b elsewhere: quadratic "
                 "0.5 r^2 for |r| <= delta, linear beyond.",
                 "r = (pred - target).abs(); torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean()"],
          mistakes=["smooth_l1_loss (Huber / delta)", "the 0.5 of the quadratic part dropped",
                    "the - 0.5 delta of the linear part dropped", "branches swapped", "sum instead of mean"])
def check_huber(fn) -> str:
    """``fn(pred, target, delta) -> scalar``: the Huber loss, mean over samples."""
    g = torch.Generator().manual_seed(0)
    for delta in (1.0, 0.5, 2.0):
        pred = 3 * torch.randn(200, generator=g, dtype=torch.float64)
        target = torch.randn(200, generator=g, dtype=torch.float64)
        yours = as_mean(fn(pred.clone(), target.clone(), delta), "my_huber")
        ours = reference_huber(pred, target, delta)
        if same(yours, ours):
            continue
        r = (pred - target).abs()
        _diagnose(yours, {
            "this is PyTorch's smooth_l1_loss, which is Huber DIVIDED by delta: multiply back by delta.":
                torch.where(r <= delta, 0.5 * r**2 / delta, r - 0.5 * delta).mean(),
            "the quadratic part is 0.5 r^2: you dropped the 0.5.":
                torch.where(r <= delta, r**2, delta * (r - 0.5 * delta)).mean(),
            "the linear part is delta (|r| - 0.5 delta); without the - 0.5 delta the two pieces do not meet at "
            "|r| = delta.": torch.where(r <= delta, 0.5 * r**2, delta * r).mean(),
            "the two branches are swapped: quadratic for SMALL residuals, linear for large ones.":
                torch.where(r > delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean(),
            "you summed over samples instead of taking the mean.": ours * len(r),
        }, f"delta {delta}", ours)
    used = _called(fn, ("huber_loss", "smooth_l1_loss"))
    if used:
        raise AssertionError(f"the value is right, but you called {used}: write the formula yourself.")
    return "the same as a loop over the formula for delta = 1, 0.5 and 2."


@exercise("04.2", "Cross-entropy that does not overflow", writes="my_cross_entropy",
          hints=["The loss of sample i is -log softmax(z_i)_y = log sum_l exp(z_il) - z_iy.",
                 "exp(1000) is inf in float64. Subtracting the row maximum M_i changes nothing: "
                 "log sum_l exp(z_il) = M_i + log sum_l exp(z_il - M_i), and now every exponent is <= 0.",
                 "m = logits.max(1, keepdim=True).values; lse = m.squeeze(1) + torch.log(torch.exp(logits - m)"
                 ".sum(1)); return (lse - logits[torch.arange(len(labels)), labels]).mean()"],
          mistakes=["exp overflows for large logits", "wrong sign", "the log forgotten",
                    "softmax over the samples (dim=0)", "sum instead of mean"])
def check_cross_entropy(fn) -> str:
    """``fn(logits, labels) -> scalar``: softmax cross-entropy, mean over samples, also for logits of size 1000."""
    g = torch.Generator().manual_seed(0)
    for scale in (1.0, 5.0, 1000.0):
        logits = scale * torch.randn(64, 7, generator=g, dtype=torch.float64)
        labels = torch.randint(0, 7, (64,), generator=g)
        yours = as_mean(fn(logits.clone(), labels.clone()), "my_cross_entropy")
        ours = reference_cross_entropy(logits, labels)
        if same(yours, ours):
            continue
        if not math.isfinite(yours):
            raise AssertionError(f"with logits of size {scale:g} your loss is {yours}: exp overflowed. Subtract each "
                                 "row's maximum before exp (the log-sum-exp trick).")
        idx = labels[:, None]
        logp = logits - logits.max(1, keepdim=True).values
        logp = logp - torch.log(torch.exp(logp).sum(1, keepdim=True))
        logp0 = logits - logits.max(0, keepdim=True).values
        logp0 = logp0 - torch.log(torch.exp(logp0).sum(0, keepdim=True))
        _diagnose(yours, {
            "the sign is wrong: the loss is MINUS the log-probability of the true class.": logp.gather(1, idx).mean(),
            "you forgot the log: the loss is -log p_y, not -p_y.": -logp.exp().gather(1, idx).mean(),
            "the softmax must normalise over the CLASSES (dim=1), not over the samples (dim=0).":
                -logp0.gather(1, idx).mean(),
            "you summed over samples instead of taking the mean.": ours * len(labels),
        }, f"logit scale {scale:g}", ours)
    used = _called(fn, ("cross_entropy", "log_softmax", "logsumexp", "nll_loss", "softmax"))
    if used:
        raise AssertionError(f"the value is right, but you called {used}: write the log-sum-exp trick yourself "
                             "(torch.exp, torch.log and the row maximum).")
    return "the same as a loop over the formula, including logits of size 1000."


@exercise("04.3", "The two-class hinge", writes="my_hinge",
          hints=["y f(x) is positive when the sign of the score is right, and at least m when it is right with "
                 "the margin.",
                 "The loss of one sample is [m - y f]_+ = max(0, m - y f): torch.relu or .clamp_min(0).",
                 "torch.relu(margin - y * scores).mean()"],
          mistakes=["the hinge [.]_+ missing", "margin with the wrong sign", "the label y missing",
                    "sum instead of mean", "squared hinge"])
def check_hinge(fn) -> str:
    """``fn(scores, y, margin) -> scalar``: [m - y f]_+ with y in {-1, +1}, mean over samples."""
    g = torch.Generator().manual_seed(0)
    for margin in (1.0, 0.5, 2.0):
        scores = 2 * torch.randn(100, generator=g, dtype=torch.float64)
        y = 2 * torch.randint(0, 2, (100,), generator=g) - 1
        yours = as_mean(fn(scores.clone(), y.clone(), margin), "my_hinge")
        ours = reference_hinge(scores, y, margin)
        if same(yours, ours):
            continue
        yf = y.double() * scores
        _diagnose(yours, {
            "the hinge [.]_+ is missing: samples beyond the margin must give 0, not a negative number.":
                (margin - yf).mean(),
            "the margin has the wrong sign: it is [m - y f]_+.": torch.relu(-margin - yf).mean(),
            "the label is missing: it is [m - y f]_+, the sign of y says which side is right.":
                torch.relu(margin - scores).mean(),
            "you summed over samples instead of taking the mean.": ours * len(y),
            "you squared the hinge (that is the 'squared hinge' loss).": (torch.relu(margin - yf) ** 2).mean(),
        }, f"margin {margin}", ours)
    used = _called(fn, ("hinge_loss", "multi_margin_loss", "hinge_embedding_loss"))
    if used:
        raise AssertionError(f"the value is right, but you called {used}: write the formula yourself.")
    return "the same as a loop over the formula for margins 1, 0.5 and 2."


def reference_dims_for_variance(z, share: float = 0.9) -> int:
    """The number of principal directions that hold ``share`` of the variance of ``z`` (NumPy, float64)."""
    x = np.asarray(torch.as_tensor(z, dtype=torch.float64))
    s2 = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    return int(np.searchsorted(np.cumsum(s2) / s2.sum(), share) + 1)


def _dims_variants(z) -> dict:
    x = np.asarray(torch.as_tensor(z, dtype=torch.float64))
    s2 = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    s_raw = np.linalg.svd(x, compute_uv=False) ** 2
    s1 = np.sqrt(s2)
    k = reference_dims_for_variance(z)
    return {
        "not centred": int(np.searchsorted(np.cumsum(s_raw) / s_raw.sum(), 0.9) + 1),
        "singular values": int(np.searchsorted(np.cumsum(s1) / s1.sum(), 0.9) + 1),
        "one short": k - 1,
    }


@exercise("04.4", "Predict, then explain: how much of the embedding does single-output MSE use?",
          writes="my_prediction and my_dims",
          hints=["A prediction is a guess: any numbers in [0, 1] are accepted; write them BEFORE you look at the "
                 "table of section 3 again.",
                 "The variance along the principal directions is the squared singular values of the CENTRED "
                 "embedding: torch.linalg.svdvals(z - z.mean(0)) ** 2. Accumulate them (largest first) until "
                 "90% of their sum is reached.",
                 "s = torch.linalg.svdvals(z - z.mean(0)) ** 2; share = s.cumsum(0) / s.sum(); "
                 "k = int((share < 0.9).sum()) + 1"],
          mistakes=["embedding not centred", "singular values instead of their squares", "one direction short"])
def check_prediction(prediction, dims, results, dataset) -> str:
    """``prediction``: {"mse": P@1, "cross_entropy": P@1} guessed; ``dims``: the number of principal
    directions holding 90% of each embedding's variance, {"mse": k, "cross_entropy": k}."""
    keys = {"mse", "cross_entropy"}
    for name, value in (("my_prediction", prediction), ("my_dims", dims)):
        if not isinstance(value, dict) or not keys <= set(value):
            raise AssertionError(f'{name} must be a dict {{"mse": <number>, "cross_entropy": <number>}}.')
    for k in keys:
        if not 0.0 <= float(prediction[k]) <= 1.0:
            raise AssertionError(f"my_prediction[{k!r}] = {prediction[k]}: Precision@1 lies in [0, 1].")
    true = {k: reference_dims_for_variance(results[k, dataset]["z"]) for k in keys}
    for k in sorted(keys):
        yours = dims[k]
        if isinstance(yours, float) and not yours.is_integer():
            raise AssertionError(f"my_dims[{k!r}] = {yours}: count directions, a whole number.")
        if int(yours) == true[k]:
            continue
        for mistake, v in _dims_variants(results[k, dataset]["z"]).items():
            if int(yours) == v and v != true[k]:
                raise AssertionError({
                    "not centred": f"my_dims[{k!r}]: centre the embedding first (z - z.mean(0)); otherwise the "
                                   "first direction is mostly the mean, not a direction of variance.",
                    "singular values": f"my_dims[{k!r}]: the variance along a direction is the SQUARED singular "
                                       "value.",
                    "one short": f"my_dims[{k!r}] is one short: count the direction at which 90% is reached.",
                }[mistake])
        raise AssertionError(f"my_dims[{k!r}] = {yours}: the number of principal directions holding 90% of the "
                             f"variance of the {k} embedding is not that; see hint(\"04.4\").")
    p1 = {k: results[k, dataset]["p1"] for k in keys}
    off = {k: abs(float(prediction[k]) - p1[k]) for k in keys}
    total = int(torch.as_tensor(results["mse", dataset]["z"]).shape[1])
    fewer = ("far fewer" if true["mse"] < true["cross_entropy"] / 2 else
             "fewer" if true["mse"] < true["cross_entropy"] else "no fewer")
    return (f"measured P@1: MSE (1 output) {p1['mse']:.3f}, cross-entropy {p1['cross_entropy']:.3f} (your guesses "
            f"were off by {off['mse']:.2f} and {off['cross_entropy']:.2f}). 90% of the variance lies in "
            f"{true['mse']} of {total} directions for MSE and {true['cross_entropy']} for cross-entropy: "
            f"{fewer} for MSE. One output neuron only rewards moving f(x) along one direction w, so the "
            "embedding has little reason to spread classes apart in the others, and nearest neighbours suffer.")
