"""Exercises of 03_autoencoders.

The references here are independent of ``dmlcourse.autoencoders`` (which the notebook teaches and the
learner must not call): SciPy's ``subspace_angles`` for the principal angles, the layers run one after
the other on the basis vectors for the collapsed map, and NumPy's eigenvalues (float64) for the
reconstruction error of PCA.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg import subspace_angles

from . import exercise
from ._common import as_number, close, name_the_mistake


def _close(a, b, tol):
    return close(a, b, tol, relative=False)


def reference_principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The principal angles in degrees, largest first (SciPy)."""
    return torch.as_tensor(np.degrees(subspace_angles(a.double().numpy(), b.double().numpy())))


def reference_collapse(weights: list[torch.Tensor]) -> torch.Tensor:
    """The matrix M with x -> M x equal to the layers applied one after the other (x -> W_1 x -> W_2 W_1 x ...):
    run the layers on the basis vectors e_1, ..., e_d and read off the images."""
    basis = torch.eye(weights[0].shape[1], dtype=torch.float64)
    rows = basis
    for w in weights:
        rows = torch.nn.functional.linear(rows, w.double())   # each row e_k goes through the layer
    return rows.T


@exercise("03.1", "Principal angles", writes="my_angles",
          hints=["Make orthonormal bases of both column spaces first: torch.linalg.qr(A) gives Q with orthonormal "
                 "columns spanning the same space as A.",
                 "The singular values of Qa^T Qb are the COSINES of the principal angles; there are min(k, l) of them.",
                 "torch.rad2deg(torch.arccos(torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)))"],
          mistakes=["radians", "the cosines", "A and B not orthonormalised", "wrong number of angles"])
def check_principal_angles(fn) -> str:
    """``fn(A, B) -> angles``: the principal angles, in degrees, between the column
    spaces of A (d, k) and B (d, l) (any order; min(k, l) of them)."""
    g = torch.Generator().manual_seed(0)
    for d, k, l in ((8, 3, 3), (12, 4, 2), (10, 2, 5)):
        a = 3 * torch.randn(d, k, generator=g, dtype=torch.float64)
        b = torch.randn(d, l, generator=g, dtype=torch.float64) * torch.arange(1, l + 1, dtype=torch.float64)
        ours = reference_principal_angles(a, b)
        yours = torch.as_tensor(fn(a.clone(), b.clone()), dtype=torch.float64).flatten()
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
    return "the same as scipy.linalg.subspace_angles on 3 random pairs of subspaces."


@exercise("03.2", "Collapse the layers", writes="my_collapse",
          hints=["nn.Linear computes x -> W x with W of shape (out, in). Two layers give x -> W_2 (W_1 x).",
                 "Matrix products are associative: W_2 (W_1 x) = (W_2 W_1) x. The first layer ends up on the RIGHT.",
                 "m = weights[0]; then for each next w: m = w @ m"],
          mistakes=["the layers multiplied in the wrong order", "the transpose"])
def check_collapse(fn) -> str:
    """``fn([W_1, ..., W_L]) -> M``: the single matrix that the stacked linear layers
    (``nn.Linear`` weights, W_l of shape (out, in), the first layer acting first) compute, x -> M x."""
    g = torch.Generator().manual_seed(0)
    for dims in ((6, 6, 6), (5, 5, 5, 5), (9, 7, 4)):
        ws = [torch.randn(b, a, generator=g, dtype=torch.float64) for a, b in zip(dims[:-1], dims[1:])]
        ours = reference_collapse(ws)
        try:
            yours = torch.as_tensor(fn([w.clone() for w in ws]), dtype=torch.float64)
        except NotImplementedError:   # the stub (a subclass of RuntimeError): not attempted
            raise
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
    return "the same as running the layers one after the other, on 3 random stacks."


def _eigenvalues(xc: torch.Tensor, ddof: int = 0) -> np.ndarray:
    """Eigenvalues of the covariance of the (centred) rows of xc, largest first (NumPy, float64)."""
    x = np.asarray(xc, dtype=np.float64)
    return np.linalg.eigvalsh(x.T @ x / (len(x) - ddof))[::-1]


def reference_pca_floor(xc: torch.Tensor, p: int) -> float:
    """The smallest mean squared reconstruction error of any rank-p linear map on centred xc (Eckart-Young):
    the sum of the eigenvalues of xc^T xc / N that a rank-p map must drop."""
    return float(_eigenvalues(xc)[p:].sum())


@exercise("03.3", "Predict, then explain: can a linear autoencoder beat PCA?", writes="my_prediction and my_floor",
          hints=["A prediction is a guess: any positive ratio is accepted (1 = exactly as good as PCA). Write it "
                 "BEFORE looking at section 3's printout again.",
                 "A rank-p map keeps at most p directions. The best it can do is keep the p directions of largest "
                 "variance; what is lost is the variance of all the others: the smaller eigenvalues of the covariance "
                 "xc^T xc / N (N, not N - 1: reconstruction_error is a mean over the N images).",
                 "evals = torch.linalg.eigvalsh(xc.T @ xc / len(xc)); my_floor = evals[:-p].sum().item()  "
                 "(eigvalsh sorts them in ascending order)"])
def check_linear_floor(prediction, floor, err_ae, err_pca, xc, p) -> str:
    """``prediction``: the guessed ratio err_ae / err_pca (linear autoencoder over PCA, same rank p);
    ``floor``: the smallest mean squared reconstruction error a rank-p linear map can reach on xc."""
    prediction = as_number(prediction, "my_prediction", "your guess of err_ae / err_pca")
    if not prediction > 0:
        raise AssertionError(f"my_prediction = {prediction}: a ratio of two errors is positive.")
    yours = as_number(floor, "my_floor", "a mean squared error, e.g. with .item()")
    evals = _eigenvalues(xc)
    ours = float(evals[p:].sum())
    if abs(yours - ours) > 1e-4 * ours:
        candidates = {
            f"that is the variance the top {p} directions KEEP; the error is what they drop (the other "
            "eigenvalues)": float(evals[:p].sum()),
            "that is the total variance (all eigenvalues): the rank-p map keeps the top p, and loses only the rest":
                float(evals.sum()),
            "you divided by N - 1 (torch.cov): reconstruction_error is a mean over the N images, so use "
            "xc.T @ xc / N": float(_eigenvalues(xc, ddof=1)[p:].sum()),
            "that is a SUM over the N images; reconstruction_error is a mean: divide by N": ours * len(xc),
            "those are singular values of xc, not variances: square them and divide by N":
                float(np.sqrt(np.clip(evals[p:] * len(xc), 0, None)).sum()),
        }
        name_the_mistake(yours, {f"{yours:.4f}: {m}.": v for m, v in candidates.items()},
                         matches=lambda a, b: abs(a - b) <= 1e-4 * abs(b))
        raise AssertionError(f"the smallest error of a rank-{p} linear map on xc is {ours:.4f}, not {yours:.4f}: "
                             "add up the eigenvalues of xc.T @ xc / N beyond the largest p.")
    ratio = err_ae / err_pca
    return (f"measured: linear AE {err_ae:.4f}, PCA {err_pca:.4f}, the floor {ours:.4f}; err_ae / err_pca = "
            f"{ratio:.4f} (your guess was off by {abs(prediction - ratio):.4f}). Whatever its layers, the linear AE "
            f"is one rank-{p} map, and no rank-{p} map loses less than the variance outside the top {p} directions "
            "(Eckart-Young). PCA sits exactly on that floor, so the autoencoder can at best tie.")
