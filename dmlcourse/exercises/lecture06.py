"""Check functions for the exercises of 06_mining_sampling."""

from __future__ import annotations

import torch

from .. import miners


def check_batch_hard(fn) -> None:
    """Check ``fn(z, labels) -> (a, p, n)`` (Euclidean batch-hard) against the package on random
    batches; on a difference, print the smallest batch where it shows."""
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        n = 4 + seed % 8
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (n,), generator=g)
        a, p, neg = miners.batch_hard(z, y)
        ya, yp, yn = (torch.as_tensor(t).long() for t in fn(z, y))
        d = torch.cdist(z, z)
        ours = sorted(zip(a.tolist(), d[a, p].tolist(), d[a, neg].tolist()))
        yours = sorted(zip(ya.tolist(), d[ya, yp].tolist(), d[ya, yn].tolist()))
        if len(ours) != len(yours) or any(o[0] != w[0] or abs(o[1] - w[1]) > 1e-9 or abs(o[2] - w[2]) > 1e-9
                                          for o, w in zip(ours, yours)):
            hint = ""
            if set(ya.tolist()) - set(a.tolist()):
                hint = " Anchors without a positive or without a negative must be skipped."
            elif any(abs(o[1] - w[1]) > 1e-9 for o, w in zip(ours, yours)):
                hint = " Check the positive: batch-hard takes the FARTHEST positive (not the anchor itself)."
            elif any(abs(o[2] - w[2]) > 1e-9 for o, w in zip(ours, yours)):
                hint = " Check the negative: batch-hard takes the CLOSEST negative."
            raise AssertionError(
                f"differs on this batch (seed {seed}):\nz = {z.tolist()}\nlabels = {y.tolist()}\n"
                f"expected (anchor, d(a,p), d(a,n)) = {ours}\nyours = {yours}.{hint}")
    print("batch_hard: same triplets as the package on 20 random batches.")
