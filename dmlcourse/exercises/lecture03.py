"""Check functions for the exercises of 03_autoencoders."""

from __future__ import annotations

import math

import torch

from .. import autoencoders
from ._common import close


def _close(a, b, tol):
    return close(a, b, tol, relative=False)


def check_principal_angles(fn) -> None:
    """Check ``fn(A, B) -> angles``: the principal angles, in degrees, between the column
    spaces of A (d, k) and B (d, l) (any order; min(k, l) of them)."""
    g = torch.Generator().manual_seed(0)
    for d, k, l in ((8, 3, 3), (12, 4, 2), (10, 2, 5)):
        a = 3 * torch.randn(d, k, generator=g, dtype=torch.float64)
        b = torch.randn(d, l, generator=g, dtype=torch.float64) * torch.arange(1, l + 1, dtype=torch.float64)
        ours = autoencoders.principal_angles(a, b)
        yours = torch.as_tensor(fn(a, b), dtype=torch.float64).flatten()
        yours_sorted = torch.sort(yours, descending=True).values
        if _close(yours_sorted, ours, 1e-3):
            continue
        if _close(torch.sort(yours * 180 / math.pi, descending=True).values, ours, 1e-3):
            raise AssertionError("your angles are in RADIANS; the exercise asks for degrees (torch.rad2deg).")
        cosines = torch.sort(torch.cos(torch.deg2rad(ours))).values
        if _close(torch.sort(yours).values, cosines, 1e-6):
            raise AssertionError("you returned the cosines (the singular values); take arccos to get the angles.")
        raw = torch.linalg.svdvals(a.T @ b)
        if yours.numel() == raw.numel() and (
                _close(torch.sort(yours).values, torch.sort(raw).values, 1e-6)
                or _close(torch.sort(yours).values,
                          torch.sort(torch.rad2deg(torch.arccos(raw.clamp(-1, 1)))).values, 1e-6)):
            raise AssertionError("you used A and B directly: first make ORTHONORMAL bases of both column spaces "
                                 "(torch.linalg.qr or svd), otherwise the singular values are not cosines.")
        if yours.numel() != ours.numel():
            raise AssertionError(f"A is {d}x{k} and B is {d}x{l}: there are min(k, l) = {ours.numel()} principal "
                                 f"angles, you returned {yours.numel()}.")
        raise AssertionError(f"A {d}x{k}, B {d}x{l}: expected {ours.numpy().round(3)} degrees, "
                             f"got {yours_sorted.numpy().round(3)}.")
    print("principal angles: correct on 3 random pairs of subspaces.")


def check_collapsed_encoder(fn) -> None:
    """Check ``fn([W_1, ..., W_L]) -> M``: the single matrix that the stacked linear layers
    (``nn.Linear`` weights, W_l of shape (out, in), the first layer acting first) compute, x -> M x."""
    g = torch.Generator().manual_seed(0)
    for dims in ((6, 6, 6), (5, 5, 5, 5), (9, 7, 4)):
        ws = [torch.randn(b, a, generator=g, dtype=torch.float64) for a, b in zip(dims[:-1], dims[1:])]
        ours = ws[0]
        for w in ws[1:]:
            ours = w @ ours
        try:
            yours = torch.as_tensor(fn([w.clone() for w in ws]), dtype=torch.float64)
        except RuntimeError as exc:
            raise AssertionError("the shapes do not fit, so the layers multiply in the wrong order: the first layer "
                                 "acts first, so it is on the RIGHT, M = W_L ... W_2 W_1.") from exc
        if _close(yours, ours, 1e-8):
            continue
        rev = ws[0]
        for w in ws[1:]:
            rev = rev @ w
        if _close(yours, rev, 1e-8):
            raise AssertionError("the layers multiply in the wrong order: the first layer acts first, so it is on "
                                 "the RIGHT, M = W_L ... W_2 W_1.")
        if _close(yours, ours.T, 1e-8):
            raise AssertionError("you returned the transpose: nn.Linear stores W as (out, in) and computes W x, so "
                                 "M must have shape (out of the last layer, in of the first).")
        raise AssertionError(f"layers {dims}: your matrix differs from W_L ... W_1 by "
                             f"{(yours - ours).abs().max().item() if yours.shape == ours.shape else 'its shape'}.")
    print("collapsed encoder: correct on 3 random stacks of layers.")
