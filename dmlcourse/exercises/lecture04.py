"""Check functions for the exercises of 04_supervised_losses."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .. import supervised


def _same(a, b, tol=1e-6) -> bool:
    a, b = float(a), float(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


def check_huber_loss(fn) -> None:
    """Check ``fn(pred, target, delta) -> scalar``: the Huber loss, mean over samples."""
    g = torch.Generator().manual_seed(0)
    for delta in (1.0, 0.5, 2.0):
        pred = 3 * torch.randn(200, generator=g, dtype=torch.float64)
        target = torch.randn(200, generator=g, dtype=torch.float64)
        ours = supervised.huber_loss(pred, target, delta).item()
        yours = float(fn(pred, target, delta))
        if _same(yours, ours):
            continue
        r = (pred - target).abs()
        diagnoses = {
            "this is PyTorch's smooth_l1_loss, which is Huber DIVIDED by delta: multiply back by delta":
                F.smooth_l1_loss(pred, target, beta=delta),
            "the quadratic part is 0.5 r^2, you dropped the 0.5":
                torch.where(r <= delta, r**2, delta * (r - 0.5 * delta)).mean(),
            "the linear part is delta (|r| - 0.5 delta); without the - 0.5 delta the two pieces do not meet at "
            "|r| = delta": torch.where(r <= delta, 0.5 * r**2, delta * r).mean(),
            "the two branches are swapped: quadratic for SMALL residuals, linear for large ones":
                torch.where(r > delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean(),
            "you summed over samples instead of taking the mean": supervised.huber_loss(pred, target, delta, "sum"),
        }
        for message, value in diagnoses.items():
            if _same(yours, value):
                raise AssertionError(message)
        raise AssertionError(f"delta {delta}: expected {ours:.6f}, your function gave {yours:.6f}.")
    print("Huber loss: correct for delta = 1, 0.5 and 2.")


def check_cross_entropy(fn) -> None:
    """Check ``fn(logits, labels) -> scalar``: softmax cross-entropy, mean over samples,
    also for very large logits (where a naive exp overflows)."""
    g = torch.Generator().manual_seed(0)
    for scale in (1.0, 5.0, 1000.0):
        logits = scale * torch.randn(64, 7, generator=g, dtype=torch.float64)
        labels = torch.randint(0, 7, (64,), generator=g)
        ours = F.cross_entropy(logits, labels).item()
        yours = float(fn(logits, labels))
        if _same(yours, ours, 1e-6):
            continue
        if yours != yours or abs(yours) == float("inf"):
            raise AssertionError(f"with logits of size {scale:g} your loss is {yours}: exp overflowed. Subtract the "
                                 "row maximum before exp (log-sum-exp trick) or use torch.log_softmax.")
        p = torch.softmax(logits, 1)
        diagnoses = {
            "the sign is wrong: the loss is MINUS the log-probability of the true class":
                torch.log_softmax(logits, 1).gather(1, labels[:, None]).mean(),
            "you forgot the log: the loss is -log p_y, not -p_y": -p.gather(1, labels[:, None]).mean(),
            "the softmax must normalise over the CLASSES (dim=1), not over the samples (dim=0)":
                -torch.log_softmax(logits, 0).gather(1, labels[:, None]).mean(),
            "you summed over samples instead of taking the mean": F.cross_entropy(logits, labels, reduction="sum"),
        }
        for message, value in diagnoses.items():
            if _same(yours, value, 1e-6):
                raise AssertionError(message)
        raise AssertionError(f"logit scale {scale:g}: expected {ours:.6f}, your function gave {yours:.6f}.")
    print("cross-entropy: correct, including logits of size 1000.")


def check_hinge_loss(fn) -> None:
    """Check ``fn(scores, y, margin) -> scalar``: two-class hinge, y in {-1, +1}, mean over samples."""
    g = torch.Generator().manual_seed(0)
    for margin in (1.0, 0.5, 2.0):
        scores = 2 * torch.randn(100, generator=g, dtype=torch.float64)
        y = 2 * torch.randint(0, 2, (100,), generator=g) - 1
        ours = supervised.hinge_loss(scores, y, margin).item()
        yours = float(fn(scores, y, margin))
        if _same(yours, ours):
            continue
        yf = y.double() * scores
        diagnoses = {
            "the hinge [.]_+ is missing: correct samples beyond the margin must give 0, not a negative number":
                (margin - yf).mean(),
            "the margin has the wrong sign: it is [m - y f]_+": torch.relu(-margin - yf).mean(),
            "the label is missing: it is [m - y f]_+, the sign of y says which side is right":
                torch.relu(margin - scores).mean(),
            "you summed over samples instead of taking the mean": torch.relu(margin - yf).sum(),
            "you squared the hinge (that is the 'squared hinge' loss)": (torch.relu(margin - yf) ** 2).mean(),
        }
        for message, value in diagnoses.items():
            if _same(yours, value):
                raise AssertionError(message)
        raise AssertionError(f"margin {margin}: expected {ours:.6f}, your function gave {yours:.6f}.")
    print("hinge loss: correct for margins 1, 0.5 and 2.")
