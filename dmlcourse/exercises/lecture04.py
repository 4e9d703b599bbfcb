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
from ._common import as_mean, as_number, name_the_mistake, same


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
                 "With r = |pred - target|, one torch.where(r <= delta, <quadratic piece>, <linear piece>) gives the "
                 "loss of every sample; the linear piece is delta (r - 0.5 delta). Then take the mean."],
          mistakes=["smooth_l1_loss (Huber / delta)", "the 0.5 of the quadratic part dropped",
                    "the - 0.5 delta of the linear part dropped", "branches swapped", "sum instead of mean"],
          implemented_by=["dmlcourse.supervised.huber_loss"])
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


def _finite_on(fn, logits, labels) -> bool:
    return math.isfinite(as_mean(fn(logits.clone(), labels.clone()), "my_cross_entropy"))


def _why_not_finite(fn) -> str:
    """Which of three probes makes ``fn`` give inf or nan, and what that says about the code."""
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 7, (16,), generator=g)
    near_1000 = 1000.0 + torch.randn(16, 7, generator=g, dtype=torch.float64)   # every logit close to 1000
    if not _finite_on(fn, near_1000, labels):
        return ("exp overflowed: with every logit near 1000, exp(z) is inf even in float64. Subtract each row's "
                "maximum m before exp, log sum_l exp(z_l) = m + log sum_l exp(z_l - m) (the log-sum-exp trick).")
    rows_apart = torch.randn(16, 7, generator=g, dtype=torch.float64) + 1000.0 * torch.arange(16.0)[:, None]
    if not _finite_on(fn, rows_apart, labels):
        return ("your code handles logits that are all large, but not rows at very different levels: did you "
                "subtract one maximum for the whole batch? A row far below it gets exp(z - M) = 0 for every "
                "class, and log 0 = -inf. Subtract each ROW's own maximum, logits.max(1, keepdim=True).values.")
    true_far_below = torch.randn(16, 7, generator=g, dtype=torch.float64)
    true_far_below[torch.arange(16), labels] -= 1000.0                           # the true class 1000 below the rest
    if not _finite_on(fn, true_far_below, labels):
        return ("the probability of the true class underflowed: when its logit is 1000 below the row maximum, "
                "p_y = exp(z_y - m) / sum_l exp(z_l - m) is exactly 0 in float64 and log 0 = -inf, although "
                "subtracting the maximum kept exp from overflowing. Do not take the log of a probability: "
                "form log p_y = (z_y - m) - log sum_l exp(z_l - m) directly.")
    return ("some exp overflowed or some probability underflowed to 0 before a log. Subtract each row's maximum m "
            "before exp, and form log p_y = (z_y - m) - log sum_l exp(z_l - m) without taking the log of a "
            "probability.")


@exercise("04.2", "Cross-entropy that does not overflow", writes="my_cross_entropy",
          hints=["The loss of sample i is -log softmax(z_i)_y = log sum_l exp(z_il) - z_iy.",
                 "exp(1000) is inf in float64. Subtracting the row maximum M_i changes nothing: "
                 "log sum_l exp(z_il) = M_i + log sum_l exp(z_il - M_i), and now every exponent is <= 0.",
                 "Take the row maxima with logits.max(1, keepdim=True).values, form the log-sum-exp of each row "
                 "from exp(logits - m), and subtract the true class's logit, picked with "
                 "logits[torch.arange(len(labels)), labels]. Never take the log of a probability: for very large "
                 "logits p_y can be exactly 0."],
          mistakes=["exp overflows for large logits", "one maximum for the whole batch",
                    "log of a probability that underflowed", "wrong sign", "the log forgotten",
                    "softmax over the samples (dim=0)", "sum instead of mean"],
          implemented_by=["dmlcourse.supervised.cross_entropy", "dmlcourse.supervised.log_softmax"])
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
            raise AssertionError(f"with logits of size {scale:g} your loss is {yours}: {_why_not_finite(fn)}")
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
                    "sum instead of mean", "squared hinge"],
          implemented_by=["dmlcourse.supervised.hinge_loss"])
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


def _centred(z) -> np.ndarray:
    x = np.asarray(torch.as_tensor(z, dtype=torch.float64).detach().cpu())
    return x - x.mean(0)


def reference_participation_ratio(z) -> float:
    """(sum_j lam_j)^2 / sum_j lam_j^2 over the eigenvalues lam_j of the covariance of ``z`` (N, p).

    Written independently of any eigen-solver: the variances along the principal directions are the squared
    singular values of the centred embedding (NumPy's SVD, float64), divided by N - 1 (a scale the ratio ignores).
    """
    lam = np.linalg.svd(_centred(z), compute_uv=False) ** 2 / (len(z) - 1)
    return float(lam.sum() ** 2 / (lam**2).sum())


def _ratio(lam) -> float:
    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    return float(lam.sum() ** 2 / (lam**2).sum())


def _participation_variants(z) -> dict:
    """What the typical wrong computations give, message -> value."""
    x = np.asarray(torch.as_tensor(z, dtype=torch.float64).detach().cpu())
    xc = _centred(z)
    cov = xc.T @ xc / (len(x) - 1)
    lam = np.linalg.eigvalsh(cov)
    s = np.linalg.svd(xc, compute_uv=False)
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    return {
        "the embedding is not centred: the first 'direction' is then mostly its mean, not a direction of "
        "variance. Subtract z.mean(0) first (torch.cov does it for you).": _ratio(np.linalg.eigvalsh(x.T @ x)),
        "torch.cov treats each ROW as a variable: torch.cov(z) is the N x N covariance of the samples. "
        "Give it the features as rows, torch.cov(z.T), a p x p matrix.": _ratio(np.linalg.eigvalsh(np.cov(x))),
        "those are the singular values of the centred embedding, i.e. standard deviations; the eigenvalues of "
        "the covariance are their SQUARES (variances).": _ratio(s),
        "you standardised the features (the correlation matrix): that gives every embedding unit a variance "
        "of 1 and hides how unevenly the variance is spread. Use the covariance.": _ratio(
            np.linalg.eigvalsh(cov / np.outer(sd, sd))),
        "the ratio is upside down: it is (sum of the eigenvalues)^2 divided by the sum of their squares, "
        "a number between 1 and p.": 1.0 / _ratio(lam),
        "you divided the sum of the eigenvalues by the sum of their squares: square the sum first.":
            float(lam.sum() / (lam**2).sum()),
    }


def _sample_participation() -> dict:
    """A valid call on a small synthetic problem: a nearly one-dimensional 'MSE' embedding and a spread-out
    'cross-entropy' one, off-centre on purpose."""
    g = torch.Generator().manual_seed(0)
    spread_mse = torch.tensor([6.0, 1.0, 0.5] + [0.1] * 13)
    spread_ce = torch.linspace(3.0, 0.5, 16)
    results = {("mse", "mnist"): {"z": torch.randn(60, 16, generator=g) * spread_mse + 4.0, "p1": 0.55},
               ("cross_entropy", "mnist"): {"z": torch.randn(60, 16, generator=g) * spread_ce + 4.0, "p1": 0.91}}
    dims = {k: reference_participation_ratio(results[k, "mnist"]["z"]) for k in ("mse", "cross_entropy")}
    return dict(prediction={"mse": 2, "cross_entropy": 8}, dims=dims, results=results, dataset="mnist")


@exercise("04.4", "Predict, then explain: how many dimensions does each embedding use?",
          writes="my_prediction and my_effective_dims",
          hints=["A prediction is a guess: any number from 1 to the embedding's dimension (32) is accepted. Write "
                 "it BEFORE you compute anything. Section 3's share of the variance on the first principal axis "
                 "is a clue.",
                 "The participation ratio turns a spectrum of variances into one 'number of dimensions used': if "
                 "the variance is spread evenly over k principal directions (and none elsewhere) it is exactly k, "
                 "and it is 1 when all the variance lies along one direction. The variances along the principal "
                 "directions are the eigenvalues of the embedding's covariance matrix.",
                 "Centre the test embedding (subtract the mean of each column), form its p x p covariance matrix "
                 "(features against features, not samples against samples), take the eigenvalues of that "
                 "symmetric matrix, then divide the square of their sum by the sum of their squares. Do it once "
                 "per loss."],
          mistakes=["embedding not centred", "torch.cov without the transpose (N x N)",
                    "singular values instead of their squares", "correlation instead of covariance",
                    "the ratio upside down", "the sum not squared"],
          graded=("dims",), sample=_sample_participation)
def check_prediction(prediction, dims, results, dataset) -> str:
    """``prediction``: {"mse": ..., "cross_entropy": ...}, the participation ratio of each test embedding guessed
    (from 1 to its dimension p); ``dims``: the participation ratio (sum lam)^2 / sum lam^2 of the covariance of
    each test embedding, computed, {"mse": ..., "cross_entropy": ...}."""
    keys = ("mse", "cross_entropy")
    for name, value in (("my_prediction", prediction), ("my_effective_dims", dims)):
        if not isinstance(value, dict) or not set(keys) <= set(value):
            raise AssertionError(f'{name} must be a dict {{"mse": <number>, "cross_entropy": <number>}}.')
    total = int(torch.as_tensor(results["mse", dataset]["z"]).shape[1])
    for k in keys:
        guess = as_number(prediction[k], f"my_prediction[{k!r}]", "your guess of a participation ratio")
        if not 1.0 <= guess <= total:
            raise AssertionError(f"my_prediction[{k!r}] = {prediction[k]}: a participation ratio lies between 1 "
                                 f"(all the variance on one direction) and {total} (spread evenly over all "
                                 f"{total} dimensions).")
    true = {k: reference_participation_ratio(results[k, dataset]["z"]) for k in keys}
    for k in keys:
        yours = as_number(dims[k], f"my_effective_dims[{k!r}]", "a participation ratio, e.g. with .item()")
        if same(yours, true[k], 1e-4):
            continue
        name_the_mistake(yours, {f"my_effective_dims[{k!r}]: {m}": v
                                 for m, v in _participation_variants(results[k, dataset]["z"]).items()},
                         matches=lambda a, b: same(a, b, 1e-4))
        raise AssertionError(f"my_effective_dims[{k!r}] = {yours:.3f}: the participation ratio of the {k} test "
                             "embedding's covariance is not that; see hint(\"04.4\").")
    p1 = {k: results[k, dataset]["p1"] for k in keys}
    fewer = ("far fewer" if true["mse"] < true["cross_entropy"] / 2 else
             "fewer" if true["mse"] < true["cross_entropy"] else "no fewer")
    return (f"of its {total} dimensions the MSE embedding uses about {true['mse']:.1f}, the cross-entropy one about "
            f"{true['cross_entropy']:.1f} (you guessed {float(prediction['mse']):g} and "
            f"{float(prediction['cross_entropy']):g}): {fewer} for MSE. Their P@1 in section 3: MSE (1 output) "
            f"{p1['mse']:.3f}, cross-entropy {p1['cross_entropy']:.3f}." + (
                " One output neuron only rewards moving f(x) along one direction w, so the embedding has little "
                "reason to spread the classes apart in the others, and nearest neighbours suffer."
                if true["mse"] < true["cross_entropy"] else ""))
