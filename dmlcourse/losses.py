"""Metric-learning losses: contrastive, triplet and NCA.

Taught in 05_siamese_triplet (reductions and the empty-set rule in 06_mining_sampling).

Conventions shared by every loss here
-------------------------------------
* ``distance`` in {"euclidean", "squared_euclidean", "cosine"} (see ``dmlcourse.core.distances``).
* ``reduction`` in {"mean", "sum", "mean_nonzero", "none"}:
  mean over all terms; sum (as the Guelph slides' formulas are written); mean over
  the terms that are > 0 (pytorch-metric-learning's default: the loss does not
  shrink just because most terms are already satisfied); or the per-term vector.
* An empty set of pairs/triplets gives a zero that is still connected to the
  graph, so ``loss.backward()`` works (and gives zero gradients).
"""

from __future__ import annotations

import torch

from .core.distances import DISTANCES, paired_distance, pairwise_distance
from .core.reduction import REDUCTIONS, reduce_terms
from .core.validate import check_choice, check_embeddings_labels, check_float, check_tensor

# NCA is taught in 02_mahalanobis (and first used in 00_start_here): it lives there.
from .mahalanobis import nca_loss  # noqa: F401


def _check_pair(z1, z2, name1="z1", name2="z2"):
    check_tensor(name1, z1, ndim=2, floating=True)
    check_tensor(name2, z2, ndim=2, floating=True)
    if z1.shape != z2.shape:
        raise ValueError(
            f"{name1} has shape {tuple(z1.shape)} but {name2} has {tuple(z2.shape)}; they must "
            "match."
        )


def contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    dissimilar: torch.Tensor,
    margin: float = 1.0,
    distance: str = "squared_euclidean",
    reduction: str = "mean",
    form: str = "lecture",
):
    """Contrastive loss over pairs (z1[i], z2[i]); ``dissimilar[i]`` is y_i (1 = dissimilar).

    form="lecture" (eq. 11 of the Guelph slides):  (1 - y) d + y [m - d]_+
    form="hadsell" (Hadsell, Chopra & LeCun 2006): (1 - y) D^2 / 2 + y [m - D]_+^2 / 2,
        with D the chosen ``distance`` (the paper's D is the Euclidean distance:
        use ``distance="euclidean"`` for it).
    """
    _check_pair(z1, z2)
    check_tensor("dissimilar", dissimilar, ndim=1)
    if dissimilar.shape[0] != z1.shape[0]:
        raise ValueError(
            f"dissimilar has {dissimilar.shape[0]} entries but z1 has {z1.shape[0]} rows; they "
            "must match."
        )
    if dissimilar.numel() and not torch.all((dissimilar == 0) | (dissimilar == 1)):
        raise ValueError("dissimilar must hold only 0 (similar pair) and 1 (dissimilar pair).")
    margin = check_float("margin", margin, min_value=0.0)
    check_choice("distance", distance, DISTANCES)
    check_choice("reduction", reduction, REDUCTIONS)
    check_choice("form", form, ("lecture", "hadsell"))
    y = dissimilar.to(z1.dtype)
    d = paired_distance(z1, z2, distance)
    if form == "lecture":
        terms = (1 - y) * d + y * torch.relu(margin - d)
    else:
        terms = 0.5 * (1 - y) * d**2 + 0.5 * y * torch.relu(margin - d) ** 2
    return reduce_terms(terms, reduction, anchor=z1)


# the losses share one signature on purpose: inputs, margin, distance, reduction
def triplet_loss(
    za: torch.Tensor,
    zp: torch.Tensor,
    zn: torch.Tensor,
    margin: float = 0.2,
    distance: str = "euclidean",
    reduction: str = "mean",
):
    """Triplet loss (eq. 12): [d(a, p) - d(a, n) + m]_+ for each row."""
    _check_pair(za, zp, "za", "zp")
    _check_pair(za, zn, "za", "zn")
    margin = check_float("margin", margin, min_value=0.0)
    check_choice("distance", distance, DISTANCES)
    check_choice("reduction", reduction, REDUCTIONS)
    terms = torch.relu(
        paired_distance(za, zp, distance) - paired_distance(za, zn, distance) + margin
    )
    return reduce_terms(terms, reduction, anchor=za)


def triplet_loss_from_indices(
    z: torch.Tensor,
    a,
    p,
    n,
    margin: float = 0.2,
    distance: str = "euclidean",
    reduction: str = "mean",
):
    """Triplet loss on the triplets (z[a], z[p], z[n]) that a miner returned."""
    check_tensor("z", z, ndim=2, floating=True)
    for nm, t in (("a", a), ("p", p), ("n", n)):
        check_tensor(nm, t, ndim=1)
    if not (len(a) == len(p) == len(n)):
        raise ValueError(f"a, p and n must have the same length, got {len(a)}, {len(p)}, {len(n)}.")
    return (
        triplet_loss(z[a], z[p], z[n], margin, distance, reduction)
        if len(a)
        else reduce_terms(z.new_zeros(0), reduction, anchor=z)
    )


EP_NEGATIVES = ("all", "hardest", "semi_hard")


def easy_positive_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    *,
    scale: float = 1.0,
    negatives: str = "all",
    reduction: str = "mean",
):
    """Easy-positive softmax loss (Xuan, Stylianou & Pless, WACV 2020), in the form you choose.

    Taught in 06_mining_sampling.

    On L2-normalised embeddings, with s = ``scale`` and cosine similarities f_i.f_j, every anchor
    i is paired with its *most similar* (easiest) positive p*, and

        -log( exp(s f_i.f_p*) / (exp(s f_i.f_p*) + sum_{n in N_i} exp(s f_i.f_n)) ).

    ``negatives`` says which negatives N_i enter the denominator:

    * ``"all"`` (default): every negative of the batch, as the paper writes its loss and as the
      Guelph slides' eq. 19 does (the slides write the ratio with a ``min`` over positives and
      without the -log; minimising that ratio as written would push the positive away);
    * ``"semi_hard"``: one negative, the most similar one that is still less similar than p*,
      as the authors' released code trains in the setting its run script selects (the
      EasyPositiveHardNegative repository, ``EPHNLoss`` with ``semi=True``, "EPSHN"); an anchor
      without one contributes no term;
    * ``"hardest"``: one negative, the most similar one (the same code with ``semi=False``,
      "EPHN"), a two-way softmax over [s f_i.f_p*, s f_i.f_n].

    The released code uses a temperature of 0.1, i.e. ``scale=10``, and sums over the anchors. An
    anchor needs a positive and a negative. The embeddings are normalised here.
    """
    check_embeddings_labels(z, labels, name="z")
    scale = check_float("scale", scale, min_value=0.0, strict_min=True)
    check_choice("negatives", negatives, EP_NEGATIVES)
    check_choice("reduction", reduction, REDUCTIONS)
    zn = torch.nn.functional.normalize(z, dim=1)
    sim = scale * (zn @ zn.T)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    pos, neg = same & ~eye, ~same
    ok = pos.any(1) & neg.any(1)
    very_negative = torch.finfo(sim.dtype).min
    # region: easy positive
    s_pos = sim.masked_fill(~pos, very_negative).max(1).values  # the most similar positive
    # endregion
    if negatives == "semi_hard":  # only the negatives less similar than the easy positive
        # (written "not at least as similar" so that a NaN similarity stays in, and its NaN
        # reaches the loss instead of silently dropping a diverged anchor)
        neg = neg & ~(sim.detach() >= s_pos.detach()[:, None])
        ok = ok & neg.any(1)
    s_neg = sim.masked_fill(~neg, very_negative)
    if negatives != "all":  # one negative per anchor: the most similar of those allowed
        s_neg = s_neg.max(1, keepdim=True).values
    log_den = torch.logsumexp(torch.cat([s_pos[:, None], s_neg], 1), dim=1)
    terms = (log_den - s_pos)[ok]
    return reduce_terms(terms, reduction, anchor=z)


def batch_all_triplet_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    *,
    distance: str = "euclidean",
    reduction: str = "mean_nonzero",
):
    """The triplet loss over every valid triplet of the batch (eq. 15) without listing them.

    Taught in 06_mining_sampling.

    Equal to ``triplet_loss_from_indices(z, *miners.batch_all(z, labels), ...)``, but the
    b^3 candidate triplets are never materialised, not even by autograd. The sum of the active
    hinges is linear in the distances,

        sum_{active (a,p,n)} d(a,p) - d(a,n) + m
            = sum_{a,p} d(a,p) P[a,p] - sum_{a,n} d(a,n) N[a,n] + m * #active,

    where P[a,p] counts the negatives n with d(a,n) < d(a,p) + m (those make (a, p, n) active)
    and N[a,n] the positives p with d(a,p) + m > d(a,n). Both counts come from sorting each
    anchor's negative (positive) distances and ``torch.searchsorted``: O(b^2 log b) time and
    O(b^2) memory. The loss then back-propagates through the b x b distance matrix only.
    ``reduction`` in mean / sum / mean_nonzero (no "none": there is no list of triplets).
    """
    check_embeddings_labels(z, labels, name="z")
    margin = check_float("margin", margin, min_value=0.0)
    check_choice("distance", distance, DISTANCES)
    check_choice("reduction", reduction, ("mean", "sum", "mean_nonzero"))
    return reduce_triplet_sums(
        *batch_all_triplet_sums(z, labels, margin, distance=distance), reduction
    )


def reduce_triplet_sums(total, active, count, reduction):
    """``reduction`` (sum / mean over every valid triplet / mean over the active ones) from the
    sums of :func:`batch_all_triplet_sums`."""
    if reduction == "sum":
        return total
    denominator = count if reduction == "mean" else active
    return total / denominator.clamp_min(1).to(total.dtype)


def batch_all_triplet_sums(z, labels, margin, *, distance="euclidean"):
    """The parts of :func:`batch_all_triplet_loss` (inputs already checked): the sum of the
    hinges over every valid triplet, the number of active triplets (hinge > 0) and the number
    of valid triplets. ``miners.MinedTripletLoss("batch_all")`` uses it too."""
    n = len(z)
    d = pairwise_distance(z, distance=distance)
    labels = labels.to(z.device)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(n, dtype=torch.bool, device=z.device)
    neg = ~same
    with torch.no_grad():  # counting which triplets are active needs no gradient
        dd = d.detach()
        shifted = dd + margin  # d(a,p) + m: both counts use the same test d(a,n) < d(a,p) + m
        neg_sorted = dd.masked_fill(~neg, float("inf")).sort(dim=1).values
        pos_sorted = shifted.masked_fill(~pos, float("-inf")).sort(dim=1).values
        # P[a, p] = #{n : d(a,n) < d(a,p) + m};  N[a, n] = #{p : d(a,p) + m > d(a,n)}
        n_active_p = torch.searchsorted(neg_sorted, shifted.contiguous(), side="left")
        n_active_n = n - torch.searchsorted(pos_sorted, dd.contiguous(), side="right")
        n_active_p = (n_active_p * pos).to(d.dtype)
        n_active_n = (n_active_n * neg).to(d.dtype)
    active = n_active_p.sum()
    total = (d * n_active_p).sum() - (d * n_active_n).sum() + margin * active
    count = (pos.sum(1) * neg.sum(1)).sum()  # every valid triplet, active or not
    return total, active, count
