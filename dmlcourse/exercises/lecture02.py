"""Exercises of 02_mahalanobis.

The references here are independent of ``dmlcourse.mahalanobis`` (which the notebook teaches and the
learner must not call): SciPy's ``mahalanobis`` for the distance, a plain float64 loop over points for
the NCA loss (its gradient by finite differences of that loop), NumPy's covariance and inverse
for whitening, and a closed form of the sums over pairs of points for 02.4.
"""

# Every check here has the layout of the checks of the other lectures, on purpose, so that one
# reads like the next: an @exercise with its hints, a few random problems against an independent
# reference, the known mistakes named (_common.name_the_mistake), then the general message. The
# shapes repeat (a duplicate finder lists them); the code they share lives in _common.

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg import sqrtm
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from . import exercise
from ._common import as_number, name_the_mistake, same
from ._common import close as _close


def reference_mahalanobis(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Row-wise sqrt((x_i - y_i)^T W (x_i - y_i)), one SciPy call per row (float64)."""
    Wn = W.double().numpy()
    return torch.tensor([scipy_mahalanobis(a, b, Wn) for a, b in zip(x.double().numpy(), y.double().numpy())],
                        dtype=torch.float64)


def _nca_terms(L, x, labels, *, keep_self=False, squared=True):
    """p_i for every point, by a loop over points, from the formula (float64)."""
    z = np.asarray(x, dtype=np.float64) @ np.asarray(L, dtype=np.float64).T
    labels = np.asarray(labels)
    n = len(z)
    p = []
    for i in range(n):
        others = [j for j in range(n) if keep_self or j != i]
        d = [float(((z[i] - z[j]) ** 2).sum()) for j in others]
        if not squared:
            d = [math.sqrt(v) for v in d]
        m = min(d)
        w = [math.exp(-(v - m)) for v in d]          # exp(-d) / sum exp(-d), shifted for stability
        p.append(sum(wj for wj, j in zip(w, others) if labels[j] == labels[i]) / sum(w))
    return np.array(p)


def reference_nca_loss(L: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> float:
    """The mean over i of -log p_i, p_i = sum_{j != i, c_j = c_i} exp(-||Lx_i - Lx_j||^2) / sum_{k != i} exp(...)."""
    return float(-np.log(_nca_terms(L.detach().double().numpy(), x.double().numpy(), labels.numpy())).mean())


def reference_nca_gradient(L: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """d loss / d L by central finite differences of :func:`reference_nca_loss` (float64)."""
    L = L.detach().double()
    grad = torch.zeros_like(L)
    for idx in np.ndindex(*L.shape):
        up, down = L.clone(), L.clone()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (reference_nca_loss(up, x, labels) - reference_nca_loss(down, x, labels)) / (2 * h)
    return grad


def reference_whitening_target(x: torch.Tensor) -> torch.Tensor:
    """Sigma^-1 of the data (NumPy, float64): whatever L whitens x satisfies L^T L = Sigma^-1."""
    return torch.as_tensor(np.linalg.inv(np.cov(x.double().numpy(), rowvar=False)))


def _problem(seed, n=20, dim=4):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    W = A @ A.T + 0.1 * torch.eye(dim, dtype=torch.float64)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randn(n, dim, generator=g,
                                                                               dtype=torch.float64), W


@exercise("02.1", "The Mahalanobis distance", writes="my_mahalanobis",
          hints=["Work with the differences diff = x - y, one row per pair: the answer has one number per row.",
                 "(diff @ W) * diff, summed over the last axis, is the quadratic form of every row at once "
                 "(diff @ W @ diff.T would compute all N x N cross terms).",
                 "torch.sqrt(((diff @ W) * diff).sum(-1))"],
          mistakes=["no square root", "W^-1 instead of W", "W ignored", "W^(1/2) in the quadratic form",
                    "the N x N matrix"],
          implemented_by=["dmlcourse.mahalanobis.mahalanobis_distance"])
def check_mahalanobis(fn) -> str:
    """``fn(x, y, W) -> (N,)``: row-wise sqrt((x_i - y_i)^T W (x_i - y_i))."""
    for seed in range(3):
        x, y, W = _problem(seed)
        ours = reference_mahalanobis(x, y, W)
        yours = torch.as_tensor(fn(x.clone(), y.clone(), W.clone()))
        if yours.shape != ours.shape:
            raise AssertionError(f"return one distance per row: expected shape {tuple(ours.shape)}, got "
                                 f"{tuple(yours.shape)} (diff @ W @ diff.T gives all N x N cross terms; "
                                 "you need only its diagonal).")
        if _close(yours, ours):
            continue
        W_half = torch.as_tensor(np.real(sqrtm(W.numpy())))
        diagnoses = {
            "off by a square root: you returned the squared distance (x - y)^T W (x - y)": ours**2,
            "you used W^-1; the generalised distance uses W itself (W = Sigma^-1 is one special choice)":
                reference_mahalanobis(x, y, torch.linalg.inv(W)),
            "W is ignored: that is the Euclidean distance (W = I)": torch.linalg.norm(x - y, dim=1),
            "you used W^(1/2) in the quadratic form; it is (x - y)^T W (x - y) with W itself "
            "(W^(1/2) is the linear map L, to apply once: ||L (x - y)||)": reference_mahalanobis(x, y, W_half),
        }
        name_the_mistake(yours, diagnoses, matches=_close)
        i = int((yours - ours).abs().argmax())
        raise AssertionError(f"row {i}: expected {ours[i].item():.6f}, your function gave {yours[i].item():.6f}.")
    return "the same as SciPy's mahalanobis on 3 random problems."


def _nca_problem(seed, n=18, dim=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(n) % 3
    L = torch.randn(2, dim, generator=g, dtype=torch.float64)
    return L, x, labels


@exercise("02.2", "The NCA loss", writes="my_nca",
          hints=["Map the points first, z = x @ L.T, then take all SQUARED distances ||z_i - z_j||^2 "
                 "(torch.cdist(z, z) ** 2).",
                 "p_ij is a softmax over j of -d_ij with the diagonal excluded: fill the diagonal of -d with -inf "
                 "before torch.softmax(..., dim=1). Then p_i sums p_ij over the j of i's class.",
                 "same = labels[:, None] == labels[None, :]; p = (torch.softmax(logits, 1) * same).sum(1); "
                 "return -p.log().mean()"],
          mistakes=["a sum instead of a mean", "scikit-learn's objective sum p_i", "p_ii left in",
                    "unsquared distance", "wrong sign", "no gradient (detach/item)"],
          implemented_by=["dmlcourse.mahalanobis.nca_linear_loss", "dmlcourse.mahalanobis.nca_loss"])
def check_nca_loss(fn) -> str:
    """``fn(L, x, labels) -> scalar``: the mean over i of -log p_i, with
    p_i = sum_{j in class(i), j != i} p_ij and p_ij = softmax_{j != i}(-||L x_i - L x_j||^2).
    The gradient with respect to L is checked too."""
    for seed in range(3):
        L, x, labels = _nca_problem(seed)
        ours = reference_nca_loss(L, x, labels)
        Ly = L.clone().requires_grad_(True)
        yours = fn(Ly, x.clone(), labels.clone())
        if not isinstance(yours, torch.Tensor) or yours.numel() != 1:
            raise AssertionError("return a scalar tensor (the mean over points), so that it can be minimised.")
        value = float(yours.detach())
        if abs(value - ours) <= 1e-6 * max(1.0, abs(ours)):
            if not yours.requires_grad:
                raise AssertionError("your loss has no gradient with respect to L: keep the computation in torch "
                                     "(no .item(), .numpy() or .detach() in the middle).")
            (g_yours,) = torch.autograd.grad(yours, Ly)
            if not _close(g_yours, reference_nca_gradient(L, x, labels), 1e-5):
                raise AssertionError("the value is right but the gradient is not (a .detach() or an in-place "
                                     "change in the middle?).")
            continue
        xn, Ln, yn = x.numpy(), L.numpy(), labels.numpy()
        p = _nca_terms(Ln, xn, yn)
        diagnoses = {
            "you summed -log p_i over the points instead of taking the mean": -np.log(p).sum(),
            "you returned -mean p_i (scikit-learn's objective, sum_i p_i, up to scale); ours is mean -log p_i":
                -p.mean(),
            "you returned -sum p_i (scikit-learn's objective); ours is mean -log p_i": -p.sum(),
            "you left j = i in the softmax and in the sum: p_ii must be 0 (a point is not its own neighbour)":
                -np.log(_nca_terms(Ln, xn, yn, keep_self=True)).mean(),
            "you used the Euclidean distance; NCA uses the SQUARED distance ||L x_i - L x_j||^2":
                -np.log(_nca_terms(Ln, xn, yn, squared=False)).mean(),
            "the sign is wrong: minimise -log p_i, not log p_i": np.log(p).mean(),
        }
        name_the_mistake(value, diagnoses, matches=lambda a, b: same(a, float(b)))
        raise AssertionError(f"on a random problem (seed {seed}) the loss is {ours:.6f}; your function gave "
                             f"{value:.6f}.")
    return "value and gradient the same as a loop over the points (gradient by finite differences), 3 problems."


@exercise("02.3", "Whitening", writes="my_whitening",
          hints=["Return only the matrix L (do not transform x). Start from the covariance Sigma = torch.cov(x.T).",
                 "Any L with L^T L = Sigma^-1 works: the symmetric Sigma^(-1/2) from torch.linalg.eigh(Sigma), or a "
                 "Cholesky factor of Sigma inverted.",
                 "evals, evecs = torch.linalg.eigh(torch.cov(x.T)); return evecs @ torch.diag(evals.rsqrt()) @ evecs.T"],
          mistakes=["Sigma instead of its inverse", "Sigma^-1 itself", "inv(cholesky(Sigma)) transposed"],
          implemented_by=["dmlcourse.mahalanobis.whitening", "dmlcourse.mahalanobis.psd_sqrt"])
def check_whitening(fn) -> str:
    """``fn(x) -> L`` (D, D): after x -> x L^T the data have identity covariance, i.e.
    L^T L = Sigma^-1 (any rotation of Sigma^(-1/2) is accepted)."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        A = torch.randn(3, 3, generator=g, dtype=torch.float64)
        x = torch.randn(2000, 3, generator=g, dtype=torch.float64) @ A.T + 5.0
        Lw = torch.as_tensor(fn(x.clone()), dtype=torch.float64)
        if Lw.shape != (3, 3):
            raise AssertionError(f"return a (D, D) matrix L; got shape {tuple(Lw.shape)}.")
        target = reference_whitening_target(x)
        cov = torch.linalg.inv(target)
        if torch.allclose(Lw.T @ Lw, target, rtol=2e-3, atol=1e-8):
            continue
        if torch.allclose(Lw.T @ Lw, cov, rtol=2e-3):
            raise AssertionError("you used Sigma; whitening needs Sigma^(-1/2) (the inverse).")
        if torch.allclose(Lw, target, rtol=2e-3):
            raise AssertionError("you returned Sigma^-1 itself: that is W, and then L^T L = Sigma^-2. "
                                 "L must be a square root of W (eigen-decomposition or Cholesky).")
        if torch.allclose(Lw, torch.linalg.inv(torch.linalg.cholesky(cov)).T, rtol=2e-3):
            raise AssertionError("close: you returned inv(C) transposed, with C = cholesky(Sigma) (Sigma = C C^T). "
                                 "Drop the transpose: L = inv(C) gives L^T L = inv(C C^T) = Sigma^-1, while "
                                 "L = inv(C)^T gives L^T L = inv(C^T C), which is not Sigma^-1.")
        whitened = torch.cov((x @ Lw.T).T)
        raise AssertionError(f"x @ L.T does not have identity covariance; its covariance is\n{whitened.numpy().round(3)}")
    return "correct on 3 random data sets (L^T L = Sigma^-1, as NumPy computes it)."


WEAKEST = 20   # exercise 02.4: the coordinates of smallest spread, out of the 30 PCA coordinates


def reference_weak_share(train_coords: torch.Tensor, weakest: int = WEAKEST) -> float:
    """The share of sum_{i != j} ||x_i - x_j||^2 (all pairs of training points) carried by the ``weakest``
    coordinates of smallest spread. Per coordinate k the pair sum has the closed form
    2 n sum_i x_ik^2 - 2 (sum_i x_ik)^2 (NumPy, float64)."""
    x = np.asarray(train_coords, dtype=np.float64)
    per_coord = 2 * len(x) * (x**2).sum(0) - 2 * x.sum(0) ** 2
    return float(np.sort(per_coord)[:weakest].sum() / per_coord.sum())


def _sample_weak_share() -> dict:
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(300, 30, generator=g, dtype=torch.float64) * torch.linspace(3.0, 0.2, 30,
                                                                                       dtype=torch.float64)
    table = {("Euclidean, 30 dims (L = I)", "mnist"): 0.9, ("Σ⁻¹ Mahalanobis, 30 dims", "mnist"): 0.85}
    return dict(prediction=0.5, weak_share=reference_weak_share(coords), table=table, train_coords=coords)


@exercise("02.4", "Predict, then explain: whitening", writes="my_prediction and my_weak_share",
          hints=["A prediction is a guess: any share in [0, 1] is accepted. Write it BEFORE computing anything.",
                 "A squared Euclidean distance is a sum of one term per coordinate, (x_k - y_k)^2. Average it over "
                 "all pairs of training images: what does the term of coordinate k become? (Subtract the mean of "
                 "x_k first, then expand the square.)",
                 "Averaged over all pairs, coordinate k contributes twice its variance, so a group of coordinates "
                 "carries its share of the total variance. Find the 20 coordinates of smallest variance in the "
                 "training set (sets['mnist'][0]) and divide the sum of their variances by the sum over all 30."],
          mistakes=["the share after whitening (20/30)", "the 20 strongest coordinates",
                    "the 10 weakest (coordinates 21-30)", "standard deviations added instead of variances"],
          graded=("weak_share",), sample=_sample_weak_share)
def check_whitening_prediction(prediction, weak_share, table, train_coords) -> str:
    """``prediction``: the guessed share, before computing it; ``weak_share``: the share of the squared Euclidean
    distance between two training images, averaged over all pairs, that the 20 coordinates of smallest spread
    carry."""
    prediction = as_number(prediction, "my_prediction", "your guess of a share")
    if not 0.0 <= prediction <= 1.0:
        raise AssertionError(f"my_prediction = {prediction}: a share lies in [0, 1].")
    yours = as_number(weak_share, "my_weak_share", "a share of the squared distance, between 0 and 1")
    ours = reference_weak_share(train_coords)
    if abs(yours - ours) > 1e-4 * max(ours, 1e-3):
        x = np.asarray(train_coords, dtype=np.float64)
        if abs(yours - WEAKEST / x.shape[1]) <= 1e-2:
            raise AssertionError(f"{yours:.4f} is about {WEAKEST}/{x.shape[1]}, the share AFTER whitening (then every "
                                 "coordinate has variance 1); the question is about the Euclidean distance on the "
                                 "PCA coordinates, before whitening.")
        var, sd = np.sort(x.var(0)), np.sort(x.std(0))
        diagnoses = {
            "that is the share of the 20 STRONGEST coordinates (largest variance); take the 20 weakest":
                float(var[-WEAKEST:].sum() / var.sum()),
            "that is the share of the 10 weakest coordinates; the question asks for the 20 weakest of the 30":
                float(var[:10].sum() / var.sum()),
            "you added standard deviations; a squared distance adds (x_k - y_k)^2, so its mean over pairs adds "
            "VARIANCES": float(sd[:WEAKEST].sum() / sd.sum()),
        }
        name_the_mistake(yours, {f"{yours:.4f}: {m}.": v for m, v in diagnoses.items()},
                         matches=lambda a, b: abs(a - b) <= 1e-4 * max(b, 1e-3))
        raise AssertionError(f"on these {x.shape[1]} training coordinates (sets['mnist'][0]) the 20 weakest carry "
                             f"a share of the mean squared distance other than {yours:.4f} (use the training set: "
                             "whitening is fit on it).")
    # the notebook's table holds (mean, sd over seeds) pairs; a plain accuracy is accepted too
    eu, wh = (float(v[0]) if isinstance(v, (tuple, list)) else float(v)
              for v in (table["Euclidean, 30 dims (L = I)", "mnist"], table["Σ⁻¹ Mahalanobis, 30 dims", "mnist"]))
    return (f"under the Euclidean distance the 20 weakest PCA coordinates carry {ours:.1%} of a typical squared "
            f"distance between two training images (your guess was off by {abs(prediction - ours):.1%}). On PCA "
            "coordinates Σ is diagonal, so Σ⁻¹ only rescales each coordinate to variance 1: under it the same 20 "
            "carry about 20/30 of the distance, and the neighbour search listens mostly to the directions along "
            f"which the images vary least. The 1-NN accuracy went from {eu:.3f} (Euclidean) to {wh:.3f} (Σ⁻¹): the "
            "smaller the change, the more class information those weak directions still hold. Σ⁻¹ uses no labels: "
            "nothing in it says which directions matter for the class.")
