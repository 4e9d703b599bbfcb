"""Exercises of 02_mahalanobis.

The references here are independent of ``dmlcourse.mahalanobis`` (which the notebook teaches and the
learner must not call): SciPy's ``mahalanobis`` for the distance, a plain float64 loop over points for
the NCA loss (its gradient by finite differences of that loop), and NumPy's covariance and inverse
for whitening.
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
                    "the N x N matrix"])
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
                    "unsquared distance", "wrong sign", "no gradient (detach/item)"])
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
          mistakes=["Sigma instead of its inverse", "Sigma^-1 itself", "inv(cholesky) not transposed"])
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
            raise AssertionError("close: you need the TRANSPOSE of inv(cholesky(Sigma)) here (x L^T is whitened "
                                 "when L = inv(C) with Sigma = C C^T).")
        whitened = torch.cov((x @ Lw.T).T)
        raise AssertionError(f"x @ L.T does not have identity covariance; its covariance is\n{whitened.numpy().round(3)}")
    return "correct on 3 random data sets (L^T L = Sigma^-1, as NumPy computes it)."


def reference_amplification(train_coords: torch.Tensor) -> float:
    """Largest over smallest standard deviation of the coordinates (NumPy, float64)."""
    s = np.asarray(train_coords, dtype=np.float64).std(0)
    return float(s.max() / s.min())


@exercise("02.4", "Predict, then explain: whitening", writes="my_prediction and my_amplification",
          hints=["A prediction is a guess: any accuracy in [0, 1] is accepted. Write it BEFORE looking at the kNN "
                 "table of section 4 again.",
                 "On PCA coordinates the covariance Sigma is diagonal (the coordinates are uncorrelated), so the "
                 "whitening map Sigma^(-1/2) only divides each coordinate by its standard deviation. Which coordinate "
                 "is divided by the smallest number?",
                 "s = sets['mnist'][0].std(0); my_amplification = (s.max() / s.min()).item()"])
def check_whitening_prediction(prediction, amplification, table, train_coords) -> str:
    """``prediction``: the guessed 1-NN accuracy of Sigma^-1 on MNIST's 30 PCA coordinates;
    ``amplification``: how many times more whitening stretches the weakest PCA coordinate of the training set
    than the strongest (the ratio of their standard deviations)."""
    prediction = as_number(prediction, "my_prediction", "your guess of an accuracy")
    if not 0.0 <= prediction <= 1.0:
        raise AssertionError(f"my_prediction = {prediction}: an accuracy lies in [0, 1].")
    yours = as_number(amplification, "my_amplification", "a ratio of two standard deviations")
    ours = reference_amplification(train_coords)
    if abs(yours - ours) > 1e-3 * ours:
        if abs(yours - ours**2) <= 1e-3 * ours**2:
            raise AssertionError(f"{yours:.1f} is the ratio of the VARIANCES; whitening divides each coordinate by "
                                 "its standard deviation, so the stretch is the square root of that.")
        if abs(yours * ours - 1) <= 1e-3:
            raise AssertionError(f"{yours:.4f} is the ratio upside down: the weakest coordinate is divided by the "
                                 "SMALLEST standard deviation, so it is stretched the most (a ratio above 1).")
        raise AssertionError(f"the standard deviations of the {train_coords.shape[1]} training coordinates "
                             f"(sets['mnist'][0]) range over a factor of {ours:.2f}, not {yours:.2f} (use the "
                             "training set: whitening is fit on it).")
    eu, wh = table["Euclidean, 30 dims (L = I)", "mnist"], table["Σ⁻¹ Mahalanobis, 30 dims", "mnist"]
    verdict = "hurts" if wh < eu else "does not hurt"
    return (f"measured on MNIST: Euclidean {eu:.3f}, Σ⁻¹ {wh:.3f} (your guess was off by {abs(prediction - wh):.3f}). "
            f"On PCA coordinates Σ is diagonal, so Σ⁻¹ only rescales: the 30th coordinate, mostly fine detail and "
            f"noise, ends up stretched {ours:.1f} times more than the first, and counts as much in every distance. "
            f"Here that {verdict}: Σ⁻¹ uses no labels, so nothing tells it which directions matter.")
