"""Uncertainty in embeddings: Probabilistic Face Embeddings (PFE), Data Uncertainty Learning (DUL).

Taught in 08_uncertainty_pfe.

A probabilistic embedding maps an input x to a Gaussian N(mu(x), diag(var(x))) instead of a point.

* ``mutual_likelihood_score`` (MLS, Shi & Jain 2019, eq. 3 of the PFE paper): the log-likelihood
  (a log-density) that two inputs share the same latent code,

      s = -1/2 sum_l [ (mu1_l - mu2_l)^2 / (var1_l + var2_l) + log(var1_l + var2_l) ]
          - (D/2) log(2 pi).

  The first term is the *attention* term (a distance that weights confident dimensions more), the
  second the *penalty* term (uncertain dimensions lower the score whatever the distance).
* ``UncertaintyHead`` + ``PFE`` + ``PFELoss``: PFE keeps a trained deterministic embedding (the
  mean) frozen and learns only the variance, by minimising the negative MLS of same-class pairs.
* ``fuse``: several observations of one class combined into one Gaussian by precision weighting.
* ``DULNet`` + ``DULLoss`` (Chang et al., 2020): mean and variance learned together from scratch, an
  embedding sampled with the reparameterisation trick, and a KL term towards N(0, I).
* ``degrade``: blur, occlusion, noise and low contrast written in torch, with a strength in [0, 1].

Variances: every public function takes **variances** (> 0) unless its argument says ``log_var``; the
networks predict log-variances (unconstrained), and ``mutual_likelihood_score(..., log_var=True)``
accepts those directly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import plots
from .autoencoders import gaussian_kl, reparameterize
from .core.validate import check_choice, check_finite, check_float, check_int, check_tensor

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: ipywidgets, plotly.

LOG_2PI = math.log(2 * math.pi)
DEGRADATIONS = ("blur", "occlusion", "noise", "contrast")


# --------------------------------------------------------------------------- checks


def _check_gaussian(name_mu, mu, name_var, var, log_var):
    check_tensor(name_mu, mu, floating=True)
    check_tensor(name_var, var, floating=True)
    if mu.ndim < 1:
        raise ValueError(
            f"{name_mu} must have at least one dimension (the embedding dimension), got a scalar."
        )
    if mu.shape != var.shape:
        raise ValueError(
            f"{name_mu} has shape {tuple(mu.shape)} but {name_var} has shape {tuple(var.shape)}; "
            "a mean and its variance must have the same shape."
        )
    check_finite(name_mu, mu)
    check_finite(name_var, var)
    if not log_var and not (var > 0).all():
        raise ValueError(
            f"{name_var} must hold variances > 0, got a minimum of {var.min().item():.4g}. "
            "Pass log-variances with log_var=True."
        )


def _broadcast(mu1, mu2):
    try:
        return torch.broadcast_shapes(mu1.shape, mu2.shape)
    except RuntimeError:
        raise ValueError(
            f"mu1 has shape {tuple(mu1.shape)} and mu2 has shape {tuple(mu2.shape)}; they must be "
            "equal or broadcastable, with the same embedding dimension last."
        ) from None


# --------------------------------------------------------------------------- the MLS


def mls_terms(mu1, var1, mu2, var2, *, log_var: bool = False) -> dict:
    """The three parts of the MLS, each summed over the last dimension:
    ``attention`` = -1/2 sum (mu1 - mu2)^2 / (var1 + var2), ``penalty`` = -1/2 sum log(var1 + var2),
    ``constant`` = -(D/2) log(2 pi), and ``total`` = their sum (the MLS)."""
    _check_gaussian("mu1", mu1, "var1", var1, log_var)
    _check_gaussian("mu2", mu2, "var2", var2, log_var)
    _broadcast(mu1, mu2)
    return _mls_terms(mu1, var1, mu2, var2, log_var)


def _mls_terms(mu1, var1, mu2, var2, log_var):
    # the computation alone, for callers that validated their inputs once
    # (pairwise_mls, and pfe_loss in training)
    var_sum = None if log_var else var1 + var2
    if var_sum is not None and torch.isfinite(var_sum).all():
        log_sum = torch.log(var_sum)  # a sum of positives never underflows to 0
    else:  # log-variances, or a sum that overflowed
        lv1, lv2 = (var1, var2) if log_var else (torch.log(var1), torch.log(var2))
        log_sum = torch.logaddexp(lv1, lv2)  # log(var1 + var2) without forming the sum
    attention = -0.5 * ((mu1 - mu2) ** 2 * torch.exp(-log_sum)).sum(-1)
    penalty = -0.5 * log_sum.sum(-1)
    constant = torch.full_like(penalty, -0.5 * mu1.shape[-1] * LOG_2PI)
    return {
        "attention": attention,
        "penalty": penalty,
        "constant": constant,
        "total": attention + penalty + constant,
    }


def mutual_likelihood_score(mu1, var1, mu2, var2, *, log_var: bool = False) -> torch.Tensor:
    """MLS of pairs of Gaussian embeddings: log p(z1 = z2) for z1 ~ N(mu1, var1), z2 ~ N(mu2, var2).

        s = -1/2 sum_l [ (mu1_l - mu2_l)^2 / (var1_l + var2_l) + log(var1_l + var2_l) ]
            - (D/2) log(2 pi)

    Parameters
    ----------
    mu1, var1 : (..., D) means and **variances** (> 0) of the first inputs.
    mu2, var2 : (..., D) the second inputs; broadcast against the first ((N, 1, D) and
        (1, M, D) give all N x M scores).
    log_var : if True, ``var1`` and ``var2`` are log-variances (any real number) instead.

    Returns the scores, shape (...): higher = more likely the same. Stable: a sum of positive
    variances cannot underflow to 0, and where it would overflow (or for log-variances)
    log(var1 + var2) is computed as ``logaddexp(log var1, log var2)``; tiny and huge variances
    give finite scores. The official PFE code returns the negative of
    ``sum[(mu1 - mu2)^2 / (var1 + var2) + log(var1 + var2)]``, that is 2 s + D log(2 pi): an
    increasing affine map of s, which ranks pairs identically (see ``pfe_official_score``).
    """
    return mls_terms(mu1, var1, mu2, var2, log_var=log_var)["total"]


def pfe_official_score(mu1, var1, mu2, var2, *, log_var: bool = False) -> torch.Tensor:
    """The form of the official PFE code: -sum[(mu1 - mu2)^2 / (var1 + var2) + log(var1 + var2)],
    i.e. 2 MLS + D log(2 pi). An increasing affine map of the MLS: the same ranking, ROC and EER."""
    t = mls_terms(mu1, var1, mu2, var2, log_var=log_var)
    return 2 * (t["attention"] + t["penalty"])


def pairwise_mls(mu1, var1, mu2, var2, *, log_var: bool = False, chunk: int = 256) -> torch.Tensor:
    """All N x M scores between (N, D) and (M, D) Gaussian embeddings, in chunks of ``chunk`` rows.
    Unlike the cosine it is not a matrix product: every pair needs its own D divisions and logs."""
    for n, t in (("mu1", mu1), ("var1", var1), ("mu2", mu2), ("var2", var2)):
        check_tensor(n, t, ndim=2, floating=True)
    chunk = check_int("chunk", chunk, min_value=1)
    _check_gaussian("mu1", mu1, "var1", var1, log_var)
    _check_gaussian("mu2", mu2, "var2", var2, log_var)
    if mu1.shape[1] != mu2.shape[1]:
        raise ValueError(
            f"mu1 has {mu1.shape[1]} dimensions but mu2 has {mu2.shape[1]}; they must match."
        )
    return torch.cat(
        [
            _mls_terms(
                mu1[s : s + chunk, None], var1[s : s + chunk, None], mu2[None], var2[None], log_var
            )["total"]
            for s in range(0, len(mu1), chunk)
        ]
    )


def harmonic_variance(var: torch.Tensor) -> torch.Tensor:
    """One uncertainty number per embedding: the harmonic mean of its variances over the dimensions
    (as in the PFE paper). (N, D) -> (N,)."""
    check_tensor("var", var, ndim=2, floating=True)
    check_finite("var", var)
    if not (var > 0).all():
        raise ValueError(f"var must hold variances > 0, got a minimum of {var.min().item():.4g}.")
    return var.shape[1] / (1.0 / var).sum(1)


# --------------------------------------------------------------------------- PFE: frozen mean


class UncertaintyHead(nn.Module):
    """Predicts a per-dimension log-variance from backbone features: FC - BN - ReLU - FC - BN, then
    ``gamma * x + beta`` with learnable scalars (the PFE paper's head; ``beta`` starts at
    ``log_var_init``)."""

    def __init__(
        self, in_features: int, embedding_dim: int, hidden: int = 128, log_var_init: float = -4.0
    ):
        super().__init__()
        self.in_features = check_int("in_features", in_features, min_value=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, min_value=1)
        hidden = check_int("hidden", hidden, min_value=1)
        log_var_init = check_float("log_var_init", log_var_init)
        self.net = nn.Sequential(
            nn.Linear(self.in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, self.embedding_dim),
            nn.BatchNorm1d(self.embedding_dim, affine=False),
        )
        self.gamma = nn.Parameter(torch.tensor(1.0))
        self.beta = nn.Parameter(torch.tensor(log_var_init))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        check_tensor("features", features, ndim=2, floating=True)
        if features.shape[1] != self.in_features:
            raise ValueError(
                f"features has {features.shape[1]} columns but the head expects "
                f"in_features={self.in_features}."
            )
        return self.gamma * self.net(features) + self.beta


class PFE(nn.Module):
    """A frozen mean and a trainable variance on top of the same backbone features.

    ``PFE(mean_layer, head)(features)`` returns ``(mu, log_var)``: mu =
    normalize(mean_layer(features)) (frozen: its parameters never get gradients) and log_var =
    head(features). Train with ``train.train(pfe, PFELoss(), ...)`` on the backbone's *features*
    (computed once: the backbone is frozen too)."""

    def __init__(self, mean_layer: nn.Module, head: UncertaintyHead, *, normalize: bool = True):
        super().__init__()
        self.mean_layer, self.head, self.normalize = mean_layer, head, bool(normalize)
        for p in self.mean_layer.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.mean_layer.eval()  # frozen: batch-norm statistics must not move either
        return self

    def forward(self, features: torch.Tensor):
        with torch.no_grad():
            mu = self.mean_layer(features)
            mu = F.normalize(mu, dim=1) if self.normalize else mu
        return mu, self.head(features)


def pfe_loss(mu: torch.Tensor, log_var: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The PFE loss: minus the mean MLS over all same-class pairs (i < j) of a mini-batch.

    Only the variance should learn from it (PFE detaches the mean). Raises if the batch has no
    same-class pair: use class-balanced batches (``samples_per_class``)."""
    check_tensor("mu", mu, ndim=2, floating=True)
    check_tensor("log_var", log_var, ndim=2, floating=True)
    check_tensor("labels", labels, ndim=1)
    if mu.shape != log_var.shape or len(labels) != len(mu):
        raise ValueError(
            f"mu {tuple(mu.shape)}, log_var {tuple(log_var.shape)} and labels "
            f"{tuple(labels.shape)} must describe the same N samples."
        )
    i, j = torch.triu_indices(len(labels), len(labels), 1, device=labels.device)
    keep = labels[i] == labels[j]
    if not keep.any():
        raise ValueError(
            "the batch holds no two samples of the same class; use class-balanced batches."
        )
    i, j = i[keep], j[keep]
    return -_mls_terms(mu[i], log_var[i], mu[j], log_var[j], True)["total"].mean()


class PFELoss(nn.Module):
    """``pfe_loss`` as a ``loss_fn`` for ``train.train`` (the model returns ``(mu, log_var)``)."""

    def forward(self, out, labels):
        mu, log_var = out
        loss = pfe_loss(mu.detach(), log_var, labels)
        return {"loss": loss, "mean_log_var": log_var.mean().item()}


def fuse(mu: torch.Tensor, var: torch.Tensor, dim: int = 0):
    """Precision-weighted fusion of K Gaussian observations of one class along ``dim``:
    1/var_f = sum_k 1/var_k, mu_f = var_f sum_k mu_k / var_k (the normalised product of the K
    Gaussians). Returns ``(mu_f, var_f)``. A confident observation pulls the fused mean towards
    itself."""
    _check_gaussian("mu", mu, "var", var, False)
    dim = check_int("dim", dim, min_value=-mu.ndim, max_value=mu.ndim - 1)
    precision = 1.0 / var
    var_f = 1.0 / precision.sum(dim)
    return var_f * (precision * mu).sum(dim), var_f


# --------------------------------------------------------------------------- DUL: both learned


class DULNet(nn.Module):
    """Backbone features -> (mu, log_var) with two linear layers
    (Data Uncertainty Learning, classification form).

    ``features`` is any module mapping images to (N, feature_dim); both heads are trained together
    with it. ``forward`` returns ``(mu, log_var)``."""

    def __init__(self, features: nn.Module, feature_dim: int, embedding_dim: int = 64):
        super().__init__()
        self.features = features
        self.feature_dim = check_int("feature_dim", feature_dim, min_value=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, min_value=1)
        self.mu = nn.Linear(self.feature_dim, self.embedding_dim)
        self.log_var = nn.Sequential(
            nn.Linear(self.feature_dim, self.embedding_dim), nn.BatchNorm1d(self.embedding_dim)
        )

    def forward(self, x: torch.Tensor):
        f = self.features(x)
        return self.mu(f), self.log_var(f)


# The VAE's two building blocks (taught in 03_autoencoders), reused by DUL.
dul_kl = gaussian_kl


class DULLoss(nn.Module):
    """The DUL classification loss: cross-entropy of ``head`` on a sampled
    embedding plus ``kl_weight`` x KL.

    ``head`` is a classification head of lecture 7 (``heads.CosFaceHead`` ...); its parameters
    train too."""

    def __init__(self, head: nn.Module, kl_weight: float = 0.01):
        super().__init__()
        self.head = head
        self.kl_weight = check_float("kl_weight", kl_weight, min_value=0.0)

    def forward(self, out, labels):
        mu, log_var = out
        z = reparameterize(mu, log_var)
        ce = F.cross_entropy(self.head(z, labels).float(), labels)
        kl = dul_kl(mu, log_var).mean()
        return {"loss": ce + self.kl_weight * kl, "cross_entropy": ce.item(), "kl": kl.item()}


# --------------------------------------------------------------------------- degradations


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def degrade(images: torch.Tensor, kind: str, strength: float, *, seed: int = 0) -> torch.Tensor:
    """Degrade (N, 28, 28) or (N, 1, 28, 28) images; ``strength`` in [0, 1] (0 = unchanged,
    1 = severe).

    blur       Gaussian blur, sigma = 2.5 x strength pixels
    occlusion  a grey square (value 0.5) of side 0.7 x 28 x strength at a random place in each
               image
    noise      additive Gaussian noise, standard deviation 0.8 x strength (pixels in [0, 1]),
               clipped
    contrast   pixels pulled towards each image's mean: x' = m + (1 - 0.9 strength)(x - m)

    uint8 images come back as uint8; float images are taken to be in [0, 1] and come back as
    float. Seeded.
    """
    check_tensor("images", images)
    check_choice("kind", kind, DEGRADATIONS)
    strength = check_float("strength", strength, min_value=0.0, max_value=1.0)
    if images.ndim not in (3, 4) or images.shape[-2:] != (28, 28):
        raise ValueError(
            f"images must have shape (N, 28, 28) or (N, 1, 28, 28), got {tuple(images.shape)}."
        )
    is_uint8 = images.dtype == torch.uint8
    x = images.float() / 255.0 if is_uint8 else images.float()
    shape = x.shape
    x = x.reshape(-1, 1, 28, 28)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    if strength > 0:
        if kind == "blur":
            k = _gaussian_kernel(2.5 * strength).to(x.device)
            r = len(k) // 2
            x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
        elif kind == "occlusion":
            side = max(1, round(0.7 * 28 * strength))
            top = torch.randint(0, 28 - side + 1, (len(x), 1, 1), generator=g).to(x.device)
            left = torch.randint(0, 28 - side + 1, (len(x), 1, 1), generator=g).to(x.device)
            rows = torch.arange(28, device=x.device).view(1, 28, 1)
            cols = torch.arange(28, device=x.device).view(1, 1, 28)
            box = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
            x = torch.where(box[:, None], torch.full_like(x, 0.5), x)
        elif kind == "noise":
            x = (x + 0.8 * strength * torch.randn(x.shape, generator=g).to(x.device)).clamp(0, 1)
        else:
            m = x.mean(dim=(2, 3), keepdim=True)
            x = m + (1 - 0.9 * strength) * (x - m)
    x = x.reshape(shape)
    return (x * 255).round().clamp(0, 255).to(torch.uint8) if is_uint8 else x


def degrade_mixed(images: torch.Tensor, *, max_strength: float = 1.0, seed: int = 0):
    """Each image degraded by a random kind at a random strength: drawn uniformly from
    [0, max_strength] and rounded to a multiple of 0.05, so with max_strength = 1 about one image
    in forty gets strength 0 (untouched). Returns ``(degraded, kinds, strengths)`` (kinds as
    indices into ``DEGRADATIONS``; the rounded strengths)."""
    check_tensor("images", images)
    max_strength = check_float("max_strength", max_strength, min_value=0.0, max_value=1.0)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    kinds = torch.randint(0, len(DEGRADATIONS), (len(images),), generator=g)
    strengths = torch.rand(len(images), generator=g) * max_strength
    out = images.clone()
    # one call per (kind, strength level): strengths are quantised to 20 levels to stay vectorised
    levels = torch.round(strengths * 20) / 20
    for k, kind in enumerate(DEGRADATIONS):
        for lev in torch.unique(levels[kinds == k]).tolist():
            idx = torch.nonzero((kinds == k) & (levels == lev)).flatten()
            out[idx] = degrade(images[idx], kind, float(lev), seed=seed + 1000 * k + int(lev * 20))
    return out, kinds, levels


# --------------------------------------------------------------------------- widget


def mls_explorer(mu1: float = 0.0, var1: float = 0.5, mu2: float = 1.0, var2: float = 0.5):
    """Widget: two 1-D Gaussians (sliders for both means and variances), the product whose area is
    exp(MLS), and the MLS split into its attention, penalty and constant terms (bars).
    Attributes: ``mu1``, ``var1``, ``mu2``, ``var2`` (sliders) and ``figure``."""
    import ipywidgets as W
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    z = torch.linspace(-6, 6, 601, dtype=torch.float64)
    base = go.Figure(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.62, 0.38],
            subplot_titles=(
                "p(z | x1), p(z | x2) and their product (area = exp MLS)",
                "MLS = attention + penalty + constant",
            ),
        )
    )
    for name, color in (("p(z | x1)", "#1f77b4"), ("p(z | x2)", "#ff7f0e")):
        base.add_trace(
            go.Scatter(x=z.numpy(), y=[], mode="lines", name=name, line=dict(color=color)),
            row=1,
            col=1,
        )
    base.add_trace(
        go.Scatter(
            x=z.numpy(),
            y=[],
            mode="lines",
            name="product",
            fill="tozeroy",
            line=dict(color="#2ca02c"),
        ),
        row=1,
        col=1,
    )
    base.add_trace(
        go.Bar(
            x=["attention", "penalty", "constant", "MLS"],
            y=[0, 0, 0, 0],
            showlegend=False,
            marker_color=["#9467bd", "#d62728", "#7f7f7f", "#000000"],
        ),
        row=1,
        col=2,
    )
    base.update_xaxes(title_text="z (one embedding dimension)", row=1, col=1)
    base.update_layout(height=380, width=950, margin=dict(l=10, r=10, t=50, b=10))
    fig = go.Figure(base)
    s_mu1 = W.FloatSlider(value=mu1, min=-4, max=4, step=0.1, description="μ1")
    s_mu2 = W.FloatSlider(value=mu2, min=-4, max=4, step=0.1, description="μ2")
    # powers of two (1/64 .. 4, half steps): 0.5 on a base-10 grid came back from the
    # browser as 0.501
    s_var1 = W.FloatLogSlider(value=var1, base=2, min=-6, max=2, step=0.5, description="σ1²")
    s_var2 = W.FloatLogSlider(value=var2, base=2, min=-6, max=2, step=0.5, description="σ2²")

    def update(fig):
        m1, v1, m2, v2 = s_mu1.value, s_var1.value, s_mu2.value, s_var2.value
        p1 = torch.exp(-0.5 * (z - m1) ** 2 / v1) / math.sqrt(2 * math.pi * v1)
        p2 = torch.exp(-0.5 * (z - m2) ** 2 / v2) / math.sqrt(2 * math.pi * v2)
        t = mls_terms(*(torch.tensor([[v]], dtype=torch.float64) for v in (m1, v1, m2, v2)))
        # no batch_update (see heads.margin_explorer: the browser loses what
        # one trace's update leaves out)
        fig.data[0].y, fig.data[1].y, fig.data[2].y = p1.numpy(), p2.numpy(), (p1 * p2).numpy()
        bars = [t[k].item() for k in ("attention", "penalty", "constant", "total")]
        fig.data[3].y, fig.data[3].text = bars, [f"{b:.2f}" for b in bars]
        lo, hi = min(bars + [0.0]), max(bars + [0.0])  # the bars' own range: -8.9 and -399 differ
        fig.layout.yaxis2.range = [lo - 0.15 * (hi - lo) - 0.5, hi + 0.15 * (hi - lo) + 0.5]

        def show(key):  # 3 decimals, and no "-0.000" for a term that rounds to zero
            v = t[key].item()
            return f"{0.0 if abs(v) < 5e-4 else v:.3f}"

        fig.layout.title = (
            f"MLS = {show('total')}   (attention {show('attention')}, penalty {show('penalty')})"
        )

    fig = plots.wire_explorer(fig, (s_mu1, s_var1, s_mu2, s_var2), update)
    box = W.VBox([W.HBox([s_mu1, s_var1]), W.HBox([s_mu2, s_var2]), fig])
    box.mu1, box.var1, box.mu2, box.var2, box.figure = s_mu1, s_var1, s_mu2, s_var2, fig
    return box
