"""Check functions for the exercises of 05_siamese_triplet."""

from __future__ import annotations

import torch

from .. import losses


def _random_triplets(seed, n=64, dim=4):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, dim, generator=g, dtype=torch.float64) for _ in range(3))


def check_triplet_loss(fn) -> None:
    """Check ``fn(za, zp, zn, margin) -> scalar`` (Euclidean distance, mean over triplets)."""
    for seed, margin in ((0, 0.5), (1, 2.0), (2, 0.0)):
        za, zp, zn = _random_triplets(seed)
        ours = losses.triplet_loss(za, zp, zn, margin, distance="euclidean", reduction="mean").item()
        yours = float(fn(za, zp, zn, margin))
        if abs(ours - yours) <= 1e-6 * max(1.0, abs(ours)):
            continue
        dap = torch.linalg.norm(za - zp, dim=1)
        dan = torch.linalg.norm(za - zn, dim=1)
        diagnoses = {
            "the margin has the wrong sign: it must be + m inside the hinge": torch.relu(dap - dan - margin).mean(),
            "the hinge [.]_+ is missing: easy triplets must contribute 0, not a negative number":
                (dap - dan + margin).mean(),
            "you used the squared distance; this exercise uses the Euclidean distance ||a - p||":
                torch.relu(dap**2 - dan**2 + margin).mean(),
            "positive and negative are swapped": torch.relu(dan - dap + margin).mean(),
            "you summed over triplets instead of taking the mean": torch.relu(dap - dan + margin).sum(),
        }
        for message, value in diagnoses.items():
            if abs(value.item() - yours) <= 1e-6 * max(1.0, abs(yours)):
                raise AssertionError(message)
        raise AssertionError(f"margin {margin}: expected {ours:.6f}, your function gave {yours:.6f}.")
    print("triplet loss: correct on 3 random problems (including m = 0).")


def check_contrastive_loss(fn) -> None:
    """Check ``fn(z1, z2, dissimilar, margin) -> scalar``: eq. 11 with the squared Euclidean
    distance, mean over pairs."""
    for seed, margin in ((0, 1.0), (1, 4.0)):
        z1, z2, _ = _random_triplets(seed)
        y = torch.randint(0, 2, (len(z1),), generator=torch.Generator().manual_seed(seed))
        ours = losses.contrastive_loss(z1, z2, y, margin).item()
        yours = float(fn(z1, z2, y, margin))
        if abs(ours - yours) <= 1e-6 * max(1.0, abs(ours)):
            continue
        swapped = losses.contrastive_loss(z1, z2, 1 - y, margin).item()
        if abs(swapped - yours) <= 1e-6 * max(1.0, abs(yours)):
            raise AssertionError("similar and dissimilar are swapped: y = 1 marks a DISSIMILAR pair.")
        euclid = losses.contrastive_loss(z1, z2, y, margin, distance="euclidean").item()
        if abs(euclid - yours) <= 1e-6 * max(1.0, abs(yours)):
            raise AssertionError("you used the Euclidean distance; this exercise uses the squared one.")
        raise AssertionError(f"margin {margin}: expected {ours:.6f}, your function gave {yours:.6f}.")
    print("contrastive loss: correct on 2 random problems.")
