"""Check functions for the exercises of 00_start_here."""

from __future__ import annotations

import torch

from .. import metrics


def check_precision_at_1(fn) -> None:
    """Check your ``fn(embeddings, labels) -> float`` (Precision@1, self excluded)
    against ``dmlcourse.metrics.precision_at_1`` on random data."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(200, 5, generator=g)
        y = torch.randint(0, 4, (200,), generator=g)
        ours, yours = metrics.precision_at_1(z, y), float(fn(z, y))
        if abs(yours - 1.0) < 1e-9 and ours < 0.9:
            raise AssertionError("you get 1.0: did you forget to exclude each point from its own neighbours?")
        if abs(ours - yours) > 1e-6:
            raise AssertionError(f"seed {seed}: expected {ours:.4f}, your function gave {yours:.4f}.")
    print("precision_at_1: correct on 3 random problems.")


def check_embedding_dim_experiment(results: dict) -> None:
    """``results`` maps embedding sizes to Precision@1; check it covers 2 and 32."""
    if not isinstance(results, dict) or not {2, 32} <= set(results):
        raise AssertionError("results must be a dict with at least the keys 2 and 32.")
    if not all(0.0 <= float(v) <= 1.0 for v in results.values()):
        raise AssertionError("Precision@1 values lie in [0, 1].")
    best = max(results, key=results.get)
    print(f"ok: the best embedding size here is {best} (P@1 {results[best]:.3f}).")
