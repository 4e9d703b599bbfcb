"""Triplet miners: which triplets of a batch does the loss see?

Taught in 06_mining_sampling.

Every miner takes ``(z, labels, ...)`` — a batch of embeddings (N, D) and their
labels (N,) — and returns three LongTensors ``(a, p, n)`` of equal length: the
anchors, positives and negatives of the triplets it selects. The loss then takes
the embeddings and these indices (``losses.triplet_loss_from_indices``).

Rules shared by all miners
--------------------------
* An anchor without a positive (alone in its class) or without a negative (the
  batch has one class) is skipped, never an error.
* A batch where nothing can be mined gives three empty tensors; the triplet loss
  of an empty set is a zero that still back-propagates.
* Everything is vectorised over the batch: distance matrices and masks, no
  Python loop over anchors (large batches are processed in chunks of rows).
* Mining looks at distances only; it never back-propagates (indices carry no
  gradient), so it runs under ``torch.no_grad()``.
* Ties: where two candidates are at exactly the same distance, the one with the
  smaller index wins (``argmin``/``argmax`` return the first); a margin test such
  as semi-hard's ``d(a,p) < d(a,n) < d(a,p) + m`` is strict on both sides.
* Non-finite embeddings (NaN, +-inf: a diverged network) raise ``NonFiniteError`` naming
  the rows, instead of mining from meaningless distances.
* Half precision: distances of float16/bfloat16 embeddings are computed in float32
  (``distances.pairwise_distance``), so the choices agree with float64's except
  where two distances differ by less than float32's round-off.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import plots
from .core.distances import DISTANCES, pairwise_distance
from .core.reduction import REDUCTIONS, reduce_terms
from .core.validate import (
    DIVERGED,
    check_choice,
    check_embeddings_labels,
    check_finite,
    check_float,
)
from .losses import (
    EP_NEGATIVES,
    batch_all_triplet_sums,
    easy_positive_loss,
    reduce_triplet_sums,
    triplet_loss,
)

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: ipywidgets, plotly.

CHUNK_ELEMENTS = 1 << 24  # at most ~16M entries per intermediate tensor


def _check_batch(z, labels):
    """The checks every miner starts with. A miner returns indices, which cannot be NaN, so
    non-finite embeddings raise here (a miner synchronises anyway, in ``nonzero``)."""
    check_embeddings_labels(z, labels, name="z")
    check_finite("z", z, why=f"a miner cannot rank the distances of NaN; {DIVERGED}")


def _masks(z, labels, distance):
    _check_batch(z, labels)
    check_choice("distance", distance, DISTANCES)
    with torch.no_grad():
        d = pairwise_distance(z.detach(), distance=distance)
    labels = labels.to(z.device)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    return d, same & ~eye, ~same


def _empty(device):
    e = torch.zeros(0, dtype=torch.long, device=device)
    return e, e.clone(), e.clone()


@torch.no_grad()
def batch_all(z: torch.Tensor, labels: torch.Tensor, *, distance: str = "euclidean"):
    """Every valid triplet of the batch (eq. 15): all (a, p, n) with label(p) = label(a),
    p != a and label(n) != label(a). Their number grows like N^3 / classes."""
    _, pos, neg = _masks(z, labels, distance)
    valid = pos[:, :, None] & neg[:, None, :]
    a, p, n = torch.nonzero(valid, as_tuple=True)
    return a, p, n


@torch.no_grad()
def batch_hard(z: torch.Tensor, labels: torch.Tensor, *, distance: str = "euclidean"):
    """Per anchor, the farthest positive and the closest negative (eq. 16):
    one triplet per anchor."""
    d, pos, neg = _masks(z, labels, distance)
    ok = pos.any(1) & neg.any(1)
    p = d.masked_fill(~pos, float("-inf")).argmax(1)
    n = d.masked_fill(~neg, float("inf")).argmin(1)
    a = torch.nonzero(ok).flatten()
    return a, p[a], n[a]


@torch.no_grad()
def batch_semi_hard(
    z: torch.Tensor,
    labels: torch.Tensor,
    margin: float | None = None,
    *,
    distance: str = "euclidean",
):
    """Per anchor-positive pair, the closest negative that is *farther* than the positive (eq. 17).

    With ``margin`` (FaceNet's version) the negative must also be closer than
    d(a, p) + margin, i.e. inside the margin band where the loss is non-zero.

    Policy when no such negative exists for a pair: the pair is **skipped** (no
    triplet is made from it). It is neither replaced by the hardest negative nor
    by the easiest one, so every returned triplet really is semi-hard.
    """
    if margin is not None:
        margin = check_float("margin", margin, min_value=0.0)
    d, pos, neg = _masks(z, labels, distance)
    a_all, p_all = torch.nonzero(pos & neg.any(1, keepdim=True), as_tuple=True)
    if len(a_all) == 0:
        return _empty(z.device)
    out_a, out_p, out_n = [], [], []
    rows = max(1, CHUNK_ELEMENTS // max(1, d.shape[1]))
    for s in range(0, len(a_all), rows):  # chunks of pairs, vectorised inside
        a, p = a_all[s : s + rows], p_all[s : s + rows]
        d_ap = d[a, p][:, None]
        d_an = d[a]
        # region: band
        ok = neg[a] & (d_an > d_ap)  # farther than the positive ...
        if margin is not None:
            ok &= d_an < d_ap + margin  # ... and, with a margin, inside the band (FaceNet)
        n = d_an.masked_fill(~ok, float("inf")).argmin(1)  # the closest such negative
        found = ok.any(1)  # a pair without one is skipped
        # endregion
        out_a.append(a[found])
        out_p.append(p[found])
        out_n.append(n[found])
    return torch.cat(out_a), torch.cat(out_p), torch.cat(out_n)


@torch.no_grad()
def easy_positive(z: torch.Tensor, labels: torch.Tensor, *, distance: str = "euclidean"):
    """Per anchor, its *closest* positive, paired with every negative (the triplets of eq. 18).

    With the triplet hinge on these triplets this is the Guelph slides' eq. 18. The easy-positive
    paper (Xuan, Stylianou & Pless, 2020) puts the easy positive in a softmax instead,
    ``MinedTripletLoss("easy_positive", loss="easy_positive_softmax")``: against every negative
    as the paper writes it (and the slides' eq. 19), or against one negative per anchor as the
    authors' released code trains it, ``ep_negatives="semi_hard"`` (or ``"hardest"``); see
    :func:`dmlcourse.losses.easy_positive_loss`."""
    d, pos, neg = _masks(z, labels, distance)
    ok = pos.any(1)
    p_best = d.masked_fill(~pos, float("inf")).argmin(1)
    a, n = torch.nonzero(neg & ok[:, None], as_tuple=True)
    return a, p_best[a], n


class NegativeTypes(NamedTuple):
    """Every triplet of a batch with its kind: 0 = hard, 1 = semi-hard, 2 = easy."""

    a: torch.Tensor
    p: torch.Tensor
    n: torch.Tensor
    kind: torch.Tensor

    def fractions(self) -> dict:
        total = max(len(self.kind), 1)
        return {
            name: (self.kind == k).sum().item() / total
            for k, name in enumerate(("hard", "semi_hard", "easy"))
        }


HARD, SEMI_HARD, EASY = 0, 1, 2


@torch.no_grad()
def negative_types(
    z: torch.Tensor, labels: torch.Tensor, margin: float, *, distance: str = "euclidean"
):
    """Classify every triplet of the batch, as in the face-recognition slides:

    * hard:      d(a,n) < d(a,p)                 (the negative is closer than the positive)
    * semi-hard: d(a,p) <= d(a,n) < d(a,p) + m   (right order, but inside the margin)
    * easy:      d(a,p) + m <= d(a,n)            (already satisfied: zero loss)

    Returns :class:`NegativeTypes` (a, p, n, kind); ``.fractions()`` gives the shares.
    """
    margin = check_float("margin", margin, min_value=0.0)
    d, _, _ = _masks(z, labels, distance)
    a, p, n = batch_all(z, labels, distance=distance)
    d_ap, d_an = d[a, p], d[a, n]
    kind = torch.full_like(a, EASY)
    kind[d_an < d_ap + margin] = SEMI_HARD
    kind[d_an < d_ap] = HARD
    return NegativeTypes(a, p, n, kind)


def distance_log_density(d: torch.Tensor, dim: int) -> torch.Tensor:
    """log q(d) up to a constant: the density of the distance between two points drawn
    uniformly on the unit sphere in R^dim (Wu et al. 2017):
    q(d) ∝ d^(dim-2) (1 - d^2/4)^((dim-3)/2)."""
    return (dim - 2) * torch.log(d) + (dim - 3) / 2 * torch.log((1 - d**2 / 4).clamp_min(1e-8))


@torch.no_grad()
def distance_weights(
    z: torch.Tensor, labels: torch.Tensor, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4
) -> torch.Tensor:
    """The sampling probabilities of distance-weighted sampling: an (N, N) matrix whose row a
    gives the probability of drawing each negative for anchor a (rows sum to 1; positives and
    the anchor itself get 0). See :func:`distance_weighted`."""
    _check_batch(z, labels)
    cutoff = check_float("cutoff", cutoff, min_value=0.0, max_value=2.0, strict_min=True)
    nonzero_loss_cutoff = check_float(
        "nonzero_loss_cutoff", nonzero_loss_cutoff, min_value=0.0, max_value=2.0
    )
    zn = torch.nn.functional.normalize(z.detach().float(), dim=1)
    d, _, neg = _masks(zn, labels, "euclidean")
    log_w = -distance_log_density(d.clamp_min(cutoff), z.shape[1])
    log_w = log_w.masked_fill(~neg | (d >= nonzero_loss_cutoff), float("-inf"))
    log_w = log_w - log_w.max(1, keepdim=True).values.nan_to_num(0.0, neginf=0.0)
    w = torch.exp(log_w)
    w = torch.where(w.sum(1, keepdim=True) > 0, w, neg.float())  # fallback: uniform over negatives
    return w / w.sum(1, keepdim=True).clamp_min(1e-30)


@torch.no_grad()
def distance_weighted(
    z: torch.Tensor,
    labels: torch.Tensor,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
    generator: torch.Generator | None = None,
):
    """Distance-weighted sampling (Wu, Manmatha, Smola & Krähenbühl, 2017).

    The embeddings are L2-normalised (the method lives on the unit hypersphere).
    For every anchor-positive pair one negative is drawn with probability
    proportional to 1 / q(d(a, n)), q being the density of the distance between two
    uniform random points on the sphere: for many negatives spread uniformly over the
    sphere, the drawn distances would be uniform instead of concentrating near
    sqrt(2). Uniform in distance is not uniform in rank: with most negatives near
    sqrt(2), the drawn one is closer than most of them, and on a trained embedding the
    steep weights favour each anchor's closest negatives even more. Distances below
    ``cutoff`` are clipped to it
    (the weights of very close negatives would explode), and negatives farther than
    ``nonzero_loss_cutoff`` get weight 0 (under Wu et al.'s margin loss, margin 0.2 and
    initial boundary 1.2, they give zero loss; under the triplet hinge they need not).
    An anchor whose negatives all have weight 0 draws uniformly among its negatives.
    Seeded by ``generator`` (a CPU torch.Generator).
    """
    w = distance_weights(z, labels, cutoff, nonzero_loss_cutoff)
    labels = labels.to(z.device)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=z.device)
    a, p = torch.nonzero(pos & (~same).any(1, keepdim=True), as_tuple=True)
    if len(a) == 0:
        return _empty(z.device)
    n = torch.multinomial(w[a].cpu(), 1, generator=generator).flatten().to(z.device)
    return a, p, n


@torch.no_grad()
def random_triplets(
    z: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
):
    """The baseline: per anchor one uniformly random positive and one random negative."""
    _check_batch(z, labels)
    lab = labels.detach().cpu()
    same = lab[:, None] == lab[None, :]
    pos = same & ~torch.eye(len(lab), dtype=torch.bool)
    a = torch.nonzero(pos.any(1) & (~same).any(1)).flatten()
    if len(a) == 0:
        return _empty(z.device)
    p = torch.rand(len(a), len(lab), generator=generator).masked_fill(~pos[a], -1).argmax(1)
    n = torch.rand(len(a), len(lab), generator=generator).masked_fill(same[a], -1).argmax(1)
    return a.to(z.device), p.to(z.device), n.to(z.device)


class BayesianUpdating:
    """Triplet sampling by Bayesian updating (Sikaroudi, Ghojogh, Karray, Crowley & Tizhoosh, 2021).

    The fourth family of triplet sampling: positives and negatives are drawn *stochastically
    from the distributions of the classes*, not picked among the batch's points. Each class's
    embeddings are modelled as a Gaussian N(mu_c, Sigma_c) with a conjugate Normal-Inverse-Wishart
    prior NIW(mu_0, kappa_0, Psi_0, nu_0). Every batch updates the posterior of the classes it
    contains, the previous posterior acting as the prior (batch-incremental): for the n points
    of class c in the batch, with mean xbar and scatter S = sum (x - xbar)(x - xbar)^T,

        kappa_n = kappa_0 + n          nu_n = nu_0 + n
        mu_n    = (kappa_0 mu_0 + n xbar) / kappa_n
        Psi_n   = Psi_0 + S + (kappa_0 n / kappa_n) (xbar - mu_0)(xbar - mu_0)^T

    and the class's covariance estimate is the posterior mean Psi_n / (nu_n - p - 1).
    For every anchor (a point with another point of its class and one of another class in
    the batch), one point is drawn from N(mu, Sigma) of its own class and one from a uniformly
    chosen other class seen in the batch.

    Calling the sampler on a batch returns index tensors ``(a, p, n)`` like every miner: each
    drawn point is represented by the batch member of that class nearest to it (the loss then
    back-propagates through real embeddings). :meth:`draw` returns the drawn points themselves,
    as the paper uses them. ``decay`` < 1 fades old batches (kappa, nu and Psi shrink by it
    before each update) for embeddings that move while training; ``decay=1`` is the paper's rule.
    State lives in the sampler: use one per training run. Seeded by ``seed``.
    """

    def __init__(
        self, *, kappa0: float = 1.0, prior_var: float = 1.0, decay: float = 1.0, seed: int = 0
    ):
        self.kappa0 = check_float("kappa0", kappa0, min_value=0.0, strict_min=True)
        self.prior_var = check_float("prior_var", prior_var, min_value=0.0, strict_min=True)
        self.decay = check_float("decay", decay, min_value=0.0, max_value=1.0, strict_min=True)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.classes: dict[int, tuple] = {}  # label -> (mu, kappa, Psi, nu), float64 on the CPU

    def _prior(self, p: int):
        # the smallest integer nu0 with a finite mean covariance: E[Sigma] = Psi0 / (nu0 - p - 1)
        nu0 = p + 2.0
        return (
            torch.zeros(p, dtype=torch.float64),
            self.kappa0,
            self.prior_var * torch.eye(p, dtype=torch.float64),
            nu0,
        )

    @torch.no_grad()
    def update(self, z: torch.Tensor, labels: torch.Tensor) -> None:
        """One batch-incremental Bayesian update of every class present in the batch."""
        _check_batch(z, labels)
        x = z.detach().double().cpu()
        lab = labels.detach().cpu()
        p = x.shape[1]
        for c in lab.unique().tolist():
            xc = x[lab == c]
            n = len(xc)
            mu0, k0, psi0, nu0 = self.classes.get(c) or self._prior(p)
            if c in self.classes and self.decay < 1.0:
                k0, nu0, psi0 = k0 * self.decay, nu0 * self.decay, psi0 * self.decay
                nu0 = max(nu0, p + 1.0 + 1e-3)  # keep the mean covariance finite
            xbar = xc.mean(0)
            scatter = (xc - xbar).T @ (xc - xbar)
            kn, nun = k0 + n, nu0 + n
            mun = (k0 * mu0 + n * xbar) / kn
            dev = (xbar - mu0)[:, None]
            psin = psi0 + scatter + (k0 * n / kn) * (dev @ dev.T)
            self.classes[c] = (mun, kn, psin, nun)

    def mean_and_covariance(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior mean of mu_c and of Sigma_c (float64)."""
        if c not in self.classes:
            raise KeyError(f"class {c} has not been seen yet; seen: {sorted(self.classes)}")
        mu, _, psi, nu = self.classes[c]
        return mu, psi / (nu - psi.shape[0] - 1)

    @torch.no_grad()
    def draw(self, z: torch.Tensor, labels: torch.Tensor):
        """Update with the batch, then draw.

        Returns ``(anchors, positive_points, negative_points, negative_labels)``."""
        self.update(z, labels)
        lab = labels.detach().cpu()
        same = lab[:, None] == lab[None, :]
        pos = same & ~torch.eye(len(lab), dtype=torch.bool)
        a = torch.nonzero(pos.any(1) & (~same).any(1)).flatten()
        classes = lab.unique()
        if len(a) == 0:
            e = torch.empty(0, z.shape[1], dtype=torch.float64)
            return a, e, e, torch.empty(0, dtype=torch.long)
        # a uniformly chosen other class (among those in the batch) for each anchor
        others = (classes[None, :] != lab[a][:, None]).float()
        neg_class = classes[torch.multinomial(others, 1, generator=self.generator).flatten()]
        factors = {}
        for c in classes.tolist():
            mu, cov = self.mean_and_covariance(c)
            jitter = 1e-9 * cov.diagonal().mean().clamp_min(1e-12)
            factors[c] = (
                mu,
                torch.linalg.cholesky(cov + jitter * torch.eye(len(mu), dtype=cov.dtype)),
            )
        eps = torch.randn(2, len(a), z.shape[1], generator=self.generator, dtype=torch.float64)
        mus = torch.stack(
            [factors[c][0] for c in lab[a].tolist()] + [factors[c][0] for c in neg_class.tolist()]
        )
        chols = torch.stack(
            [factors[c][1] for c in lab[a].tolist()] + [factors[c][1] for c in neg_class.tolist()]
        )
        points = mus + (chols @ eps.reshape(-1, z.shape[1], 1)).squeeze(-1)
        return a, points[: len(a)], points[len(a) :], neg_class

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, labels: torch.Tensor):
        a, pos_pts, neg_pts, neg_class = self.draw(z, labels)
        if len(a) == 0:
            return _empty(z.device)
        x = z.detach().double().cpu()
        lab = labels.detach().cpu()
        to_pos = torch.cdist(pos_pts, x).masked_fill(lab[None, :] != lab[a][:, None], float("inf"))
        to_pos[torch.arange(len(a)), a] = float("inf")  # the anchor is not its own positive
        to_neg = torch.cdist(neg_pts, x).masked_fill(
            lab[None, :] != neg_class[:, None], float("inf")
        )
        return a.to(z.device), to_pos.argmin(1).to(z.device), to_neg.argmin(1).to(z.device)


MINERS = {
    "batch_all": batch_all,
    "batch_hard": batch_hard,
    "batch_semi_hard": batch_semi_hard,
    "easy_positive": easy_positive,
    "distance_weighted": distance_weighted,
    "random": random_triplets,
}
# Every name MinedTripletLoss accepts: the stateless miners above, and the sampler that keeps
# each class's posterior across batches (one instance per training run).
MINER_NAMES = (*MINERS, "bayesian_updating")


# --------------------------------------------------------------------------- training with a miner


# The losses MinedTripletLoss can put on what is mined: the hinge of eqs. 15-18 on every mined
# triplet, or the easy-positive softmax of eq. 19 (its own positive and negatives: miner
# "easy_positive" only).
MINED_LOSSES = ("triplet", "easy_positive_softmax")


class MinedTripletLoss(torch.nn.Module):
    """A loss on the triplets a miner selects — a ``loss_fn`` for ``train.train``.

    ``miner`` is a name from :data:`MINER_NAMES` (or a callable ``(z, labels) -> (a, p, n)``).
    ``loss`` says which loss is applied, explicitly (nothing switches with the miner):

    * ``"triplet"`` (default): the triplet hinge ``[d(a,p) - d(a,n) + margin]_+`` on every mined
      triplet, reduced by ``reduction``. With ``miner="easy_positive"`` this is eq. 18.
    * ``"easy_positive_softmax"``: :func:`dmlcourse.losses.easy_positive_loss` (scale
      ``ep_scale``) on the easy positive of each anchor, with the negatives ``ep_negatives``:
      ``"all"`` (the Guelph slides' eq. 19), ``"semi_hard"`` or ``"hardest"`` (one negative per
      anchor, as the easy-positive paper's public code trains). It has no margin (pass
      ``margin=None`` or leave it: it is not used) and needs ``miner="easy_positive"``.

    Logs per step with the hinge: ``active_fraction`` (mined triplets with a non-zero loss) and
    ``triplets`` (how many were mined).
    """

    def __init__(
        self,
        miner="batch_hard",
        margin: float | None = 0.2,
        *,
        loss: str = "triplet",
        distance: str = "euclidean",
        reduction: str = "mean",
        semi_hard_margin: bool = True,
        ep_scale: float = 10.0,
        ep_negatives: str = "all",
        seed: int = 0,
    ):
        super().__init__()
        self.loss = check_choice("loss", loss, MINED_LOSSES)
        if isinstance(miner, str):
            check_choice("miner", miner, MINER_NAMES)
        elif not callable(miner):
            raise TypeError(f"miner must be a name or a callable, got {type(miner).__name__}.")
        if loss == "easy_positive_softmax":
            if miner != "easy_positive":
                raise ValueError(
                    f"loss='easy_positive_softmax' (eq. 19) takes the easy-positive triplets; "
                    f"miner must be 'easy_positive', got miner={miner!r}."
                )
            self.margin = None if margin is None else check_float("margin", margin, min_value=0.0)
        else:
            if margin is None:
                raise ValueError(
                    "margin=None: the triplet hinge needs a margin >= 0. The margin-free "
                    "easy-positive loss (eq. 19) is "
                    "MinedTripletLoss('easy_positive', loss='easy_positive_softmax')."
                )
            self.margin = check_float("margin", margin, min_value=0.0)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.miner = miner
        self.semi_hard_margin = semi_hard_margin
        self.ep_scale = check_float("ep_scale", ep_scale, min_value=0.0, strict_min=True)
        self.ep_negatives = check_choice("ep_negatives", ep_negatives, EP_NEGATIVES)
        self.generator = torch.Generator().manual_seed(seed)
        self.sampler = BayesianUpdating(seed=seed) if miner == "bayesian_updating" else None

    def mine(self, z, labels):
        m = self.miner
        if self.sampler is not None:
            return self.sampler(z, labels)
        if callable(m):
            return m(z, labels)
        if m in ("random", "distance_weighted"):
            return MINERS[m](z, labels, generator=self.generator)
        if m == "batch_semi_hard":
            return batch_semi_hard(
                z, labels, self.margin if self.semi_hard_margin else None, distance=self.distance
            )
        return MINERS[m](z, labels, distance=self.distance)

    def forward(self, z, labels):
        if self.loss == "easy_positive_softmax":
            return {
                "loss": easy_positive_loss(
                    z,
                    labels,
                    scale=self.ep_scale,
                    negatives=self.ep_negatives,
                    reduction=self.reduction,
                )
            }
        if self.miner == "batch_all" and self.reduction != "none":
            # Every valid triplet: about b^3/c of them (200,000 in a batch of 128). The same sums
            # as listing them and applying the hinge, from the b x b distances alone
            # (losses.batch_all_triplet_loss): on a CPU, 4 ms against 160 ms with the backward pass.
            total, active, count = batch_all_triplet_sums(
                z, labels, self.margin, distance=self.distance
            )
            return {
                "loss": reduce_triplet_sums(total, active, count, self.reduction),
                "active_fraction": (active / count.clamp_min(1)).item(),
                "triplets": float(count),
            }
        a, p, n = self.mine(z, labels)
        if len(a) == 0:
            return {"loss": z.sum() * 0.0, "active_fraction": 0.0, "triplets": 0.0}
        terms = triplet_loss(z[a], z[p], z[n], self.margin, self.distance, "none")
        return {
            "loss": reduce_terms(terms, self.reduction, anchor=z),
            "active_fraction": (terms > 0).float().mean().item(),
            "triplets": float(len(a)),
        }


# --------------------------------------------------------------------------- widget


def mining_explorer(
    z: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float = 0.2,
    class_names=None,
    distance: str = "euclidean",
):
    """Widget: which positive and negative does each miner pick for an anchor?

    Every sample of the batch is drawn at its distance from the chosen anchor
    (x axis) in the row of its class (y axis); the triplets the chosen miner makes
    for this anchor are circled and joined. Returns an ipywidgets box with
    attributes ``anchor``, ``miner``, ``figure`` and ``readout``.
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    _check_batch(z, labels)
    margin = check_float("margin", margin, min_value=0.0)
    z, labels = z.detach().cpu(), labels.detach().cpu()
    d = pairwise_distance(z.float(), distance=distance)
    names = [str(c) if class_names is None else class_names[c] for c in labels.tolist()]
    choices = [
        "batch_all",
        "batch_hard",
        "batch_semi_hard",
        "easy_positive",
        "distance_weighted",
        "random",
    ]
    anchor = W.IntSlider(value=0, min=0, max=len(z) - 1, description="anchor")
    miner = W.Dropdown(options=choices, value="batch_hard", description="miner")
    readout = W.HTML()
    fig = go.Figure()
    for name, color in (
        ("positives", "#2ca02c"),
        ("negatives", "#d62728"),
        ("anchor", "black"),
        ("mined positive", "#2ca02c"),
        ("mined negative", "#d62728"),
    ):
        mined = name.startswith("mined")
        # an open symbol is stroked with marker.color (a transparent one drew nothing, in the
        # legend too)
        fig.add_trace(
            go.Scatter(
                x=[],
                y=[],
                mode="markers",
                name=name,
                text=[],
                marker=dict(
                    color=color,
                    size=14 if mined else 7,
                    symbol="circle-open" if mined else "circle",
                    line=dict(width=2.5 if mined else 0, color=color),
                ),
            )
        )
    fig.update_layout(
        height=380,
        width=700,
        xaxis_title=f"{distance} distance to the anchor",
        yaxis_title="class",
        margin=dict(l=10, r=10, t=40, b=10),
        shapes=[],
    )

    def update(fig):
        i = anchor.value
        m = miner.value
        gen = torch.Generator().manual_seed(0)
        if m == "batch_semi_hard":
            a, p, n = batch_semi_hard(z, labels, margin, distance=distance)
        elif m in ("random", "distance_weighted"):
            a, p, n = MINERS[m](z, labels, generator=gen)
        else:
            a, p, n = MINERS[m](z, labels, distance=distance)
        sel = a == i
        pos = (labels == labels[i]) & (torch.arange(len(z)) != i)
        neg = labels != labels[i]
        ys = labels.float() + 0.15 * (
            torch.rand(len(z), generator=torch.Generator().manual_seed(1)) - 0.5
        )
        mp, mn = torch.unique(p[sel]), torch.unique(n[sel])
        # no batch_update (see heads.margin_explorer: the browser loses what one trace's
        # update leaves out)
        for k, mask in enumerate((pos, neg)):
            fig.data[k].x, fig.data[k].y = d[i][mask].numpy(), ys[mask].numpy()
            fig.data[k].text = [names[j] for j in torch.nonzero(mask).flatten().tolist()]
        fig.data[2].x, fig.data[2].y = [0.0], [ys[i].item()]
        fig.data[3].x, fig.data[3].y = d[i][mp].numpy(), ys[mp].numpy()
        fig.data[4].x, fig.data[4].y = d[i][mn].numpy(), ys[mn].numpy()
        fig.layout.title = f"anchor {i} (class {names[i]}), miner {m}"
        shapes = []
        if m == "batch_semi_hard" and len(mp):
            for j in mp.tolist()[:1]:
                shapes.append(
                    dict(
                        type="rect",
                        x0=d[i, j].item(),
                        x1=d[i, j].item() + margin,
                        y0=-0.5,
                        y1=float(labels.max()) + 0.5,
                        fillcolor="orange",
                        opacity=0.15,
                        line_width=0,
                    )
                )
        fig.layout.shapes = shapes
        readout.value = (
            f"{int(sel.sum())} triplets for this anchor: {len(mp)} distinct positive(s), "
            f"{len(mn)} distinct negative(s)"
        )

    fig = plots.wire_explorer(fig, (anchor, miner), update)
    box = W.VBox([W.HBox([anchor, miner]), readout, fig])
    box.anchor, box.miner, box.figure, box.readout = anchor, miner, fig, readout
    return box
