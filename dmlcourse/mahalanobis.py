"""The generalised Mahalanobis distance, and learning it: covariance, LDA and NCA.

Taught in 02_mahalanobis.

||x - y||_W = sqrt((x - y)^T W (x - y)) with W positive semi-definite. Writing
W = L^T L, it is the Euclidean distance after the linear map x -> L x; learning
W is learning L. Three ways to choose it:

* ``covariance_metric``: W = Sigma^-1, the classical Mahalanobis distance (whitening);
* ``LDA``: Fisher's discriminant directions (implemented here, not scikit-learn's);
* ``NCA``: neighbourhood components analysis, L trained by gradient descent in PyTorch.

``nca_loss`` — NCA over a mini-batch of embeddings — lives here, with NCA; the first notebook
trains with it already and lecture 05 lists it with the other losses (``losses.nca_loss``).
"""

from __future__ import annotations

import math

import torch

from . import plots
from .core.distances import DISTANCES, pairwise_distance
from .core.linalg import pca  # the one PCA (notebooks call it as mahalanobis.pca)
from .core.reduction import REDUCTIONS, reduce_terms
from .core.validate import (
    check_choice,
    check_embeddings_labels,
    check_float,
    check_int,
    check_tensor,
)

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: ipywidgets, plotly.


def mahalanobis_distance(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Row-wise sqrt((x - y)^T W (x - y)) of two (N, D) tensors, for a PSD (D, D) matrix W."""
    check_tensor("x", x, floating=True)
    check_tensor("y", y, floating=True)
    check_tensor("W", W, ndim=2, floating=True)
    if x.shape != y.shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)} but y has {tuple(y.shape)}; they must match."
        )
    d = x.shape[-1]
    if W.shape != (d, d):
        raise ValueError(
            f"W must have shape ({d}, {d}) for {d}-dimensional points, got {tuple(W.shape)}."
        )
    check_psd(W)
    diff = x - y
    return torch.sqrt(torch.einsum("...i,ij,...j->...", diff, W.to(diff.dtype), diff).clamp_min(0))


def check_psd(W: torch.Tensor, *, tol: float = 1e-8) -> None:
    """Raise a clear error unless W is symmetric positive semi-definite."""
    if not torch.allclose(W, W.T, atol=1e-8 * max(1.0, W.abs().max().item())):
        raise ValueError("W must be symmetric.")
    smallest = torch.linalg.eigvalsh(W.double()).min().item()
    if smallest < -tol * max(1.0, W.abs().max().item()):
        raise ValueError(
            f"W must be positive semi-definite; its smallest eigenvalue is {smallest:.3g}, "
            "so some 'squared distances' would be negative."
        )


def covariance_metric(x: torch.Tensor, *, shrinkage: float = 1e-3) -> torch.Tensor:
    """W = (Sigma + eps I)^-1 for data x (N, D): the classical Mahalanobis distance.
    A little shrinkage keeps W finite when Sigma is singular."""
    check_tensor("x", x, ndim=2, floating=True)
    shrinkage = check_float("shrinkage", shrinkage, min_value=0.0)
    cov = torch.cov(x.T.double())
    cov = cov + shrinkage * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    return torch.linalg.inv(cov).to(x.dtype)


def psd_sqrt(W: torch.Tensor) -> torch.Tensor:
    """The symmetric square root L = W^(1/2) of a PSD matrix (eigen-decomposition), so that
    W = L^T L and ||x - y||_W = ||L x - L y||."""
    check_tensor("W", W, ndim=2, floating=True)
    check_psd(W)
    evals, evecs = torch.linalg.eigh(W.double())
    return (evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T).to(W.dtype)


def whitening(x: torch.Tensor, *, shrinkage: float = 1e-3) -> torch.Tensor:
    """The whitening map L = Sigma^(-1/2): x -> L x has identity covariance, and the Euclidean
    distance after it is the classical Mahalanobis distance (L^T L = Sigma^-1)."""
    return psd_sqrt(covariance_metric(x, shrinkage=shrinkage))


def lda(
    x: torch.Tensor,
    labels: torch.Tensor,
    n_components: int | None = None,
    *,
    shrinkage: float = 1e-3,
):
    """Fisher's linear discriminant: the rows of L maximise between-class scatter over
    within-class scatter (generalised eigenvectors of (S_b, S_w)). Returns L (k, D)
    with k = n_components (default: classes - 1); W = L^T L."""
    check_tensor("x", x, ndim=2, floating=True)
    classes = torch.unique(labels)
    k = n_components if n_components is not None else len(classes) - 1
    k = check_int("n_components", k, min_value=1, max_value=x.shape[1])
    xd = x.double()
    # region: scatter
    mu = xd.mean(0)
    Sw = torch.zeros(x.shape[1], x.shape[1], dtype=torch.double)
    Sb = torch.zeros_like(Sw)
    for c in classes.tolist():  # a loop over classes (10), not samples
        xc = xd[labels == c]
        mc = xc.mean(0)
        Sw += (xc - mc).T @ (xc - mc)  # the points around their class mean
        Sb += len(xc) * torch.outer(mc - mu, mc - mu)  # the class means around the overall mean
    # endregion
    Sw += shrinkage * Sw.diagonal().mean() * torch.eye(len(Sw), dtype=torch.double)
    # S_w^-1/2 S_b S_w^-1/2 is symmetric: its eigenvectors give the discriminant directions
    evals, evecs = torch.linalg.eigh(Sw)
    Sw_inv_half = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    ev, V = torch.linalg.eigh(Sw_inv_half @ Sb @ Sw_inv_half)
    return (Sw_inv_half @ V[:, torch.argsort(ev, descending=True)[:k]]).T.to(x.dtype)


def nca_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    *,
    variant: str = "goldberger",
    distance: str = "squared_euclidean",
    scale: float = 1.0,
    reduction: str = "mean",
):
    """NCA over the mini-batch.

    variant="goldberger" (Goldberger et al. 2005): point i picks neighbour j with
        p_ij = exp(-s d_ij) / sum_{k != i} exp(-s d_ik); the term for i is
        -log sum_{j in class(i), j != i} p_ij. Points with no other member of
        their class in the batch contribute no term.
    variant="negatives_only" (the Guelph slides' eq. 14): for every anchor-positive
        pair (i, j), -log[ exp(-s d_ij) / sum_{k not in class(i)} exp(-s d_ik) ];
        the positive is not in its own denominator, so a term can be negative.
    """
    check_embeddings_labels(z, labels, name="z")
    check_choice("variant", variant, ("goldberger", "negatives_only"))
    check_choice("distance", distance, DISTANCES)
    check_choice("reduction", reduction, REDUCTIONS)
    scale = check_float("scale", scale, min_value=0.0, strict_min=True)
    n = z.shape[0]
    logits = -scale * pairwise_distance(z, distance=distance)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    pos = same & ~eye
    neg = ~same
    neg_inf = torch.finfo(logits.dtype).min
    if variant == "goldberger":
        has_pos = pos.any(1)
        log_den = torch.logsumexp(logits.masked_fill(eye, neg_inf), dim=1)
        log_num = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=1)
        terms = (log_den - log_num)[has_pos]
    else:
        has_neg = neg.any(1)
        log_den = torch.logsumexp(logits.masked_fill(~neg, neg_inf), dim=1)
        ii, jj = torch.nonzero(pos & has_neg[:, None], as_tuple=True)
        terms = log_den[ii] - logits[ii, jj]
    return reduce_terms(terms, reduction, anchor=z)


def nca_linear_loss(L: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NCA's objective for a linear map L: the mean over i of -log p_i, with
    p_i = sum_{j in class(i), j != i} softmax_j(-||L x_i - L x_j||^2)."""
    return nca_loss(x @ L.T, labels)


def nca_probabilities(L: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p_i for every point: the probability that x_i's stochastic nearest neighbour (chosen with
    p_ij = softmax_j(-||L x_i - L x_j||^2), j != i) has x_i's class."""
    check_tensor("L", L, ndim=2, floating=True)
    check_tensor("x", x, ndim=2, floating=True)
    z = x @ L.T
    d = torch.cdist(z, z) ** 2
    eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
    p = torch.softmax((-d).masked_fill(eye, float("-inf")), dim=1)
    return (p * (labels[:, None] == labels[None, :])).sum(1)


def sklearn_nca_objective(L: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What scikit-learn's ``NeighborhoodComponentsAnalysis`` maximises: sum_i p_i
    (Goldberger et al.'s first objective). Ours minimises mean_i -log p_i (their second)."""
    return nca_probabilities(L, x, labels).sum()


class NCA:
    """Neighbourhood components analysis, trained by gradient descent in PyTorch.

    ``fit(x, labels)`` learns L (n_components x D) by minimising ``nca_linear_loss`` with
    Adam on mini-batches (full batch if ``batch_size`` is None). scikit-learn's
    ``NeighborhoodComponentsAnalysis`` maximises sum_i p_i instead (with L-BFGS); the
    optimum differs slightly but both reward the same thing: a soft nearest neighbour
    of the same class. ``transform(x)`` returns x L^T; ``W`` = L^T L.
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        max_iter: int = 200,
        lr: float = 0.01,
        batch_size: int | None = 1024,
        init: str = "pca",
        seed: int = 0,
    ):
        self.n_components = n_components
        self.max_iter = check_int("max_iter", max_iter, min_value=1)
        self.lr = check_float("lr", lr, min_value=0.0, strict_min=True)
        self.batch_size = batch_size
        if init not in ("pca", "identity", "random"):
            raise ValueError(f"init={init!r} is not allowed; choose 'pca', 'identity' or 'random'.")
        self.init, self.seed = init, seed
        self.losses_: list = []

    def fit(self, x: torch.Tensor, labels: torch.Tensor) -> "NCA":
        check_tensor("x", x, ndim=2, floating=True)
        n, d = x.shape
        k = check_int("n_components", self.n_components or d, min_value=1, max_value=d)
        g = torch.Generator().manual_seed(self.seed)
        xd = x.float()
        if self.init == "pca":
            _, comps = pca(xd, min(k, *xd.shape))
            L0 = comps / (xd @ comps.T).std() * 0.5  # unit-ish scale
        elif self.init == "identity":
            L0 = torch.eye(k, d) / xd.std()
        else:
            L0 = torch.randn(k, d, generator=g) / math.sqrt(d) / xd.std()
        # region: steps
        L = L0.clone().requires_grad_(True)
        opt = torch.optim.Adam([L], lr=self.lr)
        bs = n if self.batch_size is None else min(self.batch_size, n)
        for _ in range(self.max_iter):
            # a random batch of bs points: the loss of one step is a stochastic estimate of
            # the full-set objective (each point's neighbours are drawn from the batch only)
            idx = torch.randperm(n, generator=g)[:bs]
            loss = nca_linear_loss(L, xd[idx], labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.losses_.append(loss.item())
        # endregion
        self.L_ = L.detach()
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.L_.T

    @property
    def W(self) -> torch.Tensor:
        return self.L_.T @ self.L_


def unit_ball_explorer(points=None, *, eig1: float = 1.0, eig2: float = 0.1, angle: float = 30.0):
    """Widget: the unit ball {x : ||x||_W = 1} (an ellipse) of W = R diag(l1, l2) R^T, with
    sliders for the eigenvalues and the rotation; a query point (black) and its nearest
    neighbour under W (circled). Attributes: ``eig1``, ``eig2``, ``angle``, ``figure``, ``state``.

    The default points lie on a ring around the query, so the nearest one changes with W.
    Eigenvalues are shown exactly at the powers of ten and their 20th roots (0.01, 0.1, 1, 10, ...)
    and the rotation in whole degrees: a value off that grid is snapped by the browser."""
    import ipywidgets as W_
    import plotly.graph_objects as go

    if points is None:
        # 16 points on a ring of radius 1.2-2.4: each direction has its own nearest point
        g = torch.Generator().manual_seed(0)
        a = torch.arange(16, dtype=torch.float64) * (2 * math.pi / 16) + 0.3 * torch.rand(
            16, generator=g, dtype=torch.float64
        )
        r = 1.2 + 1.2 * torch.rand(16, generator=g, dtype=torch.float64)
        points = torch.stack([r * torch.cos(a), r * torch.sin(a)], dim=1)
    pts = torch.as_tensor(points, dtype=torch.float64)
    query = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.linspace(0, 2 * math.pi, 200, dtype=torch.float64)
    style = {"description_width": "initial"}
    s1 = W_.FloatLogSlider(
        value=eig1, base=10, min=-2, max=1, step=0.05, description="eigenvalue 1", style=style
    )
    s2 = W_.FloatLogSlider(
        value=eig2, base=10, min=-2, max=1, step=0.05, description="eigenvalue 2", style=style
    )
    # whole degrees: a FloatSlider's 30 comes back from the browser as 29.999999999999996
    ang = W_.IntSlider(
        value=round(angle), min=0, max=180, step=5, description="rotation °", style=style
    )
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[], y=[], mode="lines", name="||x||_W = 1", line=dict(color="#1f77b4"))
    )
    fig.add_trace(
        go.Scatter(
            x=pts[:, 0].numpy(),
            y=pts[:, 1].numpy(),
            mode="markers",
            name="points",
            marker=dict(color="#7f7f7f", size=7),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0.0], y=[0.0], mode="markers", name="query", marker=dict(color="black", size=10)
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[],
            y=[],
            mode="markers",
            name="nearest under W",
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=3, color="#d62728")),
        )
    )
    plots.square_plane(fig, -3, 3, height=420, width=470)
    box_state = {}

    def matrix():
        a = math.radians(ang.value)
        R = torch.tensor(
            [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
        )
        return R @ torch.diag(torch.tensor([s1.value, s2.value], dtype=torch.float64)) @ R.T, R

    def update(fig):
        Wm, R = matrix()
        # ||x||_W = 1  <=>  x = R diag(1/sqrt(l)) (cos t, sin t)
        circle = torch.stack(
            [torch.cos(t) / math.sqrt(s1.value), torch.sin(t) / math.sqrt(s2.value)]
        )
        ell = (R @ circle).T
        d = mahalanobis_distance(pts, query.expand_as(pts), Wm)
        k = int(torch.argmin(d))
        box_state["nearest"] = k
        # no batch_update (see heads.margin_explorer: the browser loses what one trace's
        # update leaves out)
        fig.data[0].x, fig.data[0].y = ell[:, 0].numpy(), ell[:, 1].numpy()
        fig.data[3].x, fig.data[3].y = [pts[k, 0].item()], [pts[k, 1].item()]
        fig.layout.title = f"W eigenvalues {s1.value:.2f}, {s2.value:.2f}; nearest point: #{k}"

    fig = plots.wire_explorer(fig, (s1, s2, ang), update)
    box = W_.HBox([W_.VBox([s1, s2, ang]), fig])
    box.eig1, box.eig2, box.angle, box.figure = s1, s2, ang, fig
    box.state = box_state  # box.state["nearest"]: index of the current nearest neighbour
    return box
