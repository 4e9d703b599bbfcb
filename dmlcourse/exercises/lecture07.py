"""Check functions for the exercises of 07_angular_margins."""

from __future__ import annotations

import torch

from .. import heads


def check_cosface_logits(fn) -> None:
    """Check ``fn(x, W, labels, s, m) -> logits`` (CosFace: s (cos θ_y − m) for the target class,
    s cos θ_j for the others; W is (num_classes, dim)) against the package."""
    for seed, (s, m) in enumerate(((30.0, 0.35), (10.0, 0.2))):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(16, 5, generator=g, dtype=torch.float64)
        head = heads.CosFaceHead(5, 7, scale=s, margin=m).double()
        labels = torch.randint(0, 7, (16,), generator=g)
        W = head.weight.detach().clone()
        ours = head(x, labels).detach()
        yours = torch.as_tensor(fn(x, W, labels, s, m)).double()
        if yours.shape != ours.shape:
            raise AssertionError(f"expected logits of shape {tuple(ours.shape)}, got {tuple(yours.shape)}.")
        if torch.allclose(yours, ours, atol=1e-6):
            continue
        cos = ours / s
        cos[torch.arange(16), labels] += m
        if torch.allclose(yours, ours / s, atol=1e-6):
            raise AssertionError("the scale s is missing: multiply the logits by s.")
        if torch.allclose(yours, s * (cos - m), atol=1e-6):
            raise AssertionError("the margin is applied to every class; only the target class gets - m.")
        if torch.allclose(yours, s * cos, atol=1e-6):
            raise AssertionError("the margin is missing: the target class gets s (cos θ_y - m).")
        unnorm = s * (x @ W.T)
        unnorm[torch.arange(16), labels] -= s * m
        if torch.allclose(yours, unnorm, atol=1e-6):
            raise AssertionError("normalise x and the rows of W before the dot product (cosines, not dot products).")
        raise AssertionError(f"s={s}, m={m}: your logits differ from CosFace's by up to "
                             f"{(yours - ours).abs().max().item():.3g}.")
    print("CosFace logits: correct on 2 random problems.")
