"""Check functions for the exercises of 02_mahalanobis."""

from __future__ import annotations

import torch

from .. import mahalanobis
from ._common import close as _close


def _problem(seed, n=20, dim=4):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    W = A @ A.T + 0.1 * torch.eye(dim, dtype=torch.float64)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randn(n, dim, generator=g,
                                                                               dtype=torch.float64), W


def check_mahalanobis(fn) -> None:
    """Check ``fn(x, y, W) -> (N,)``: row-wise sqrt((x_i - y_i)^T W (x_i - y_i))."""
    for seed in range(3):
        x, y, W = _problem(seed)
        ours = mahalanobis.mahalanobis_distance(x, y, W)
        yours = torch.as_tensor(fn(x, y, W))
        if yours.shape != ours.shape:
            raise AssertionError(f"return one distance per row: expected shape {tuple(ours.shape)}, got "
                                 f"{tuple(yours.shape)} (diff @ W @ diff.T gives all N x N cross terms; "
                                 "you need only its diagonal).")
        if _close(yours, ours):
            continue
        diagnoses = {
            "off by a square root: you returned the squared distance (x - y)^T W (x - y)": ours**2,
            "you used W^-1; the generalised distance uses W itself (W = Sigma^-1 is one special choice)":
                mahalanobis.mahalanobis_distance(x, y, torch.linalg.inv(W)),
            "W is ignored: that is the Euclidean distance (W = I)": torch.linalg.norm(x - y, dim=1),
            "you used W^(1/2) in the quadratic form; it is (x - y)^T W (x - y) with W itself "
            "(W^(1/2) is the linear map L, to apply once: ||L (x - y)||)": mahalanobis.mahalanobis_distance(
                x, y, mahalanobis.psd_sqrt(W)),
        }
        for message, value in diagnoses.items():
            if _close(yours, value):
                raise AssertionError(message)
        i = int((yours - ours).abs().argmax())
        raise AssertionError(f"row {i}: expected {ours[i].item():.6f}, your function gave {yours[i].item():.6f}.")
    print("Mahalanobis distance: correct on 3 random problems.")


def _nca_problem(seed, n=18, dim=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(n) % 3
    L = torch.randn(2, dim, generator=g, dtype=torch.float64)
    return L, x, labels


def check_nca_loss(fn) -> None:
    """Check ``fn(L, x, labels) -> scalar``: the mean over i of -log p_i, with
    p_i = sum_{j in class(i), j != i} p_ij and p_ij = softmax_{j != i}(-||L x_i - L x_j||^2).
    The gradient with respect to L is checked too."""
    for seed in range(3):
        L, x, labels = _nca_problem(seed)
        ours = mahalanobis.nca_linear_loss(L, x, labels)
        Ly = L.clone().requires_grad_(True)
        yours = fn(Ly, x, labels)
        if not isinstance(yours, torch.Tensor) or yours.numel() != 1:
            raise AssertionError("return a scalar tensor (the mean over points), so that it can be minimised.")
        if _close(yours.detach(), ours):
            if not yours.requires_grad:
                raise AssertionError("your loss has no gradient with respect to L: keep the computation in torch "
                                     "(no .item(), .numpy() or .detach() in the middle).")
            (g_yours,) = torch.autograd.grad(yours, Ly)
            Lo = L.clone().requires_grad_(True)
            (g_ours,) = torch.autograd.grad(mahalanobis.nca_linear_loss(Lo, x, labels), Lo)
            if not _close(g_yours, g_ours, 1e-5):
                raise AssertionError("the value is right but the gradient is not.")
            continue
        p = mahalanobis.nca_probabilities(L, x, labels)
        z = x @ L.T
        d2 = torch.cdist(z, z) ** 2
        same = labels[:, None] == labels[None, :]
        p_self = (torch.softmax(-d2, 1) * same).sum(1)               # j = i left in
        p_eucl = (torch.softmax((-d2.sqrt()).fill_diagonal_(float("-inf")), 1) * same).sum(1)
        value = float(yours.detach())
        diagnoses = {
            "you summed -log p_i over the points instead of taking the mean": -p.log().sum(),
            "you returned -mean p_i (scikit-learn's objective, sum_i p_i, up to scale); ours is mean -log p_i":
                -p.mean(),
            "you returned -sum p_i (scikit-learn's objective); ours is mean -log p_i": -p.sum(),
            "you left j = i in the softmax and in the sum: p_ii must be 0 (a point is not its own neighbour)":
                -p_self.log().mean(),
            "you used the Euclidean distance; NCA uses the SQUARED distance ||L x_i - L x_j||^2":
                -p_eucl.log().mean(),
            "the sign is wrong: minimise -log p_i, not log p_i": p.log().mean(),
        }
        for message, v in diagnoses.items():
            if abs(float(v) - value) <= 1e-6 * max(1.0, abs(value)):
                raise AssertionError(message)
        raise AssertionError(f"expected {ours.item():.6f}, your function gave {value:.6f}.")
    print("NCA loss: value and gradient correct on 3 random problems.")


def check_whitening(fn) -> None:
    """Check ``fn(x) -> L`` (D, D): after x -> x L^T the data have identity covariance, i.e.
    L^T L = Sigma^-1 (any rotation of Sigma^(-1/2) is accepted)."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        A = torch.randn(3, 3, generator=g, dtype=torch.float64)
        x = torch.randn(2000, 3, generator=g, dtype=torch.float64) @ A.T + 5.0
        Lw = torch.as_tensor(fn(x), dtype=torch.float64)
        if Lw.shape != (3, 3):
            raise AssertionError(f"return a (D, D) matrix L; got shape {tuple(Lw.shape)}.")
        cov = torch.cov(x.T)
        target = torch.linalg.inv(cov)
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
    print("whitening: correct on 3 random data sets (covariance of x L^T is the identity).")
