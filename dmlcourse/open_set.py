"""Closed-set versus open-set recognition, retrieval and clustering with an embedding.

Taught in 01_metric_spaces.

* ``split_by_classes`` keeps the *seen* classes for training and holds the others out.
  Closed-set: every test class was seen in training. Open-set: test classes may be new.
* ``nearest_neighbours`` / ``retrieval_grid``: a query image and what the embedding returns.
* ``kmeans_nmi`` clusters an embedding with k-means and scores the clusters against the labels
  with the normalised mutual information (``nmi``, written here from its definition).
* ``class_spread``: how compact each class is compared with how far apart the classes are
  (separable versus discriminative features).
* Applications beyond retrieval: ``knn_distance_scores`` and ``auroc`` (out-of-distribution
  detection: an input far from every training embedding is flagged), ``nearest_class_mean`` and
  ``few_shot_accuracy`` (classes never trained on, recognised from a few labelled examples).
"""

from __future__ import annotations

import torch

from .core.distances import DISTANCES, pairwise_distance
from .core.validate import check_embeddings_labels, check_int, check_tensor

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: matplotlib, scikit-learn.


def split_by_classes(images: torch.Tensor, labels: torch.Tensor, seen_classes):
    """Split a dataset into the seen classes and the held-out (unseen) ones.

    Returns ``(seen_images, seen_labels, unseen_images, unseen_labels)``; labels are unchanged.
    """
    check_tensor("labels", labels, ndim=1)
    if len(images) != len(labels):
        raise ValueError(
            f"images has {len(images)} entries but labels has {len(labels)}; they must match."
        )
    seen = torch.as_tensor(list(seen_classes), dtype=labels.dtype)
    present = torch.unique(labels)
    if len(seen) == 0 or not torch.isin(seen, present).all():
        raise ValueError(
            f"seen_classes={list(seen_classes)!r} must be a non-empty subset of the labels "
            f"{present.tolist()}."
        )
    mask = torch.isin(labels, seen)
    if mask.all():
        raise ValueError("seen_classes holds every class; nothing would be held out.")
    return images[mask], labels[mask], images[~mask], labels[~mask]


def nearest_neighbours(
    queries: torch.Tensor,
    reference: torch.Tensor,
    k: int = 5,
    *,
    distance: str = "euclidean",
    exclude_self: bool = False,
) -> torch.Tensor:
    """Indices (N, k) of the k nearest rows of ``reference`` for each query, nearest first.
    ``exclude_self=True`` when the queries are the reference (a point is not its own neighbour)."""
    check_tensor("queries", queries, ndim=2, floating=True)
    check_tensor("reference", reference, ndim=2, floating=True)
    if distance not in DISTANCES:
        raise ValueError(
            f"distance={distance!r} is not allowed; choose one of {sorted(DISTANCES)}."
        )
    k = check_int("k", k, min_value=1, max_value=len(reference) - (1 if exclude_self else 0))
    if exclude_self and len(queries) != len(reference):
        raise ValueError("exclude_self=True needs the queries to be the reference set.")
    # region: k nearest
    # (N, M): every query against every reference
    d = pairwise_distance(queries, reference, distance)
    if exclude_self:
        d = d.clone().fill_diagonal_(float("inf"))  # a point is not its own neighbour
    return torch.topk(d, k, dim=1, largest=False, sorted=True).indices
    # endregion


def nmi(labels_a: torch.Tensor, labels_b: torch.Tensor) -> float:
    """Normalised mutual information I(A; B) / ((H(A) + H(B)) / 2) of two labelings (the
    "arithmetic" normalisation, scikit-learn's default): 1 = the same partition, 0 = independent."""
    a, b = torch.as_tensor(labels_a).flatten(), torch.as_tensor(labels_b).flatten()
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(
            f"labels_a and labels_b must have the same non-zero length, got {len(a)} and {len(b)}."
        )
    _, ia = torch.unique(a, return_inverse=True)
    _, ib = torch.unique(b, return_inverse=True)
    joint = torch.zeros(int(ia.max()) + 1, int(ib.max()) + 1, dtype=torch.float64)
    joint.index_put_((ia, ib), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    joint /= len(a)
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = (joint[nz] * (joint[nz] / (pa[:, None] * pb[None, :])[nz]).log()).sum()
    ha, hb = -(pa * pa.log()).sum(), -(pb * pb.log()).sum()
    if ha + hb == 0:  # both labelings put everything in one group: identical partitions
        return 1.0
    return float((mi / ((ha + hb) / 2)).clamp(0, 1))


def kmeans_nmi(
    embeddings: torch.Tensor, labels: torch.Tensor, n_clusters: int | None = None, *, seed: int = 0
):
    """Cluster ``embeddings`` with k-means (scikit-learn, 10 restarts; ``n_clusters`` defaults to
    the number of classes) and return ``(nmi(clusters, labels), clusters)``."""
    from sklearn.cluster import KMeans

    check_embeddings_labels(embeddings, labels)
    n_clusters = check_int(
        "n_clusters",
        n_clusters if n_clusters is not None else len(torch.unique(labels)),
        min_value=1,
        max_value=len(labels),
    )
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    clusters = torch.as_tensor(km.fit_predict(embeddings.detach().double().cpu().numpy()))
    return nmi(clusters, labels), clusters


def class_spread(embeddings: torch.Tensor, labels: torch.Tensor) -> dict:
    """Compactness against separation, in the embedding's own units:

    ``intra``: mean distance of a point to its class centroid;
    ``inter``: mean distance between two class centroids;
    ``ratio``: intra / inter (small = discriminative: tight classes far apart).
    """
    check_embeddings_labels(embeddings, labels)
    z = embeddings.double()
    classes, inverse = torch.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("labels must hold at least two classes.")
    sums = torch.zeros(len(classes), z.shape[1], dtype=z.dtype, device=z.device).index_add_(
        0, inverse, z
    )
    centroids = sums / torch.bincount(inverse, minlength=len(classes))[:, None]
    intra = torch.linalg.norm(z - centroids[inverse], dim=1).mean()
    dc = torch.cdist(centroids, centroids)
    inter = dc.sum() / (len(classes) * (len(classes) - 1))
    return {"intra": float(intra), "inter": float(inter), "ratio": float(intra / inter)}


def retrieval_grid(
    query_images,
    reference_images,
    neighbours,
    query_labels,
    reference_labels,
    *,
    class_names=None,
    title: str = "",
):
    """Matplotlib grid: one row per query (the query, then its neighbours in order); a neighbour's
    title is green when its class is the query's, red otherwise."""
    import matplotlib.pyplot as plt

    neighbours = torch.as_tensor(neighbours)
    n, k = neighbours.shape
    fig, axes = plt.subplots(
        n, k + 1, figsize=(1.05 * (k + 1), 1.25 * n + (0.35 if title else 0)), squeeze=False
    )
    name = (lambda c: class_names[c]) if class_names is not None else str
    for r in range(n):
        q = int(query_labels[r])
        axes[r, 0].imshow(query_images[r], cmap="gray_r")
        axes[r, 0].set_title(f"query: {name(q)}", fontsize=8, fontweight="bold")
        for c in range(k):
            j = int(neighbours[r, c])
            lab = int(reference_labels[j])
            axes[r, c + 1].imshow(reference_images[j], cmap="gray_r")
            axes[r, c + 1].set_title(
                name(lab), fontsize=8, color="#2ca02c" if lab == q else "#d62728"
            )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- beyond retrieval


def knn_distance_scores(
    queries: torch.Tensor, reference: torch.Tensor, k: int = 1, *, distance: str = "euclidean"
) -> torch.Tensor:
    """Out-of-distribution score of each query: its distance to the k-th nearest reference embedding
    (the training set). Larger = less like anything seen in training. (N,)"""
    check_tensor("queries", queries, ndim=2, floating=True)
    check_tensor("reference", reference, ndim=2, floating=True)
    k = check_int("k", k, min_value=1, max_value=len(reference))
    d = pairwise_distance(queries, reference, distance)
    return torch.topk(d, k, dim=1, largest=False, sorted=True).values[:, -1]


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """Area under the ROC curve for telling ``scores_out`` (positives, e.g. out-of-distribution)
    from ``scores_in``: the probability that a random positive scores higher than a random
    negative, ties counting one half (the Mann-Whitney U statistic / (n_in n_out))."""
    check_tensor("scores_in", scores_in, ndim=1)
    check_tensor("scores_out", scores_out, ndim=1)
    if len(scores_in) == 0 or len(scores_out) == 0:
        raise ValueError(
            f"both score sets must be non-empty; got {len(scores_in)} and {len(scores_out)}."
        )
    a, b = scores_out.double(), scores_in.double()
    greater = (a[:, None] > b[None, :]).double().sum()
    ties = (a[:, None] == b[None, :]).double().sum()
    return ((greater + 0.5 * ties) / (len(a) * len(b))).item()


def nearest_class_mean(
    support: torch.Tensor, support_labels: torch.Tensor, queries: torch.Tensor
) -> torch.Tensor:
    """Classify each query by the nearest class mean of the support set (Euclidean).
    Returns labels (N,)."""
    check_embeddings_labels(support, support_labels, name="support")
    check_tensor("queries", queries, ndim=2, floating=True)
    classes = torch.unique(support_labels)
    means = torch.stack([support[support_labels == c].mean(0) for c in classes])
    return classes[pairwise_distance(queries, means).argmin(1)]


def few_shot_accuracy(
    embeddings: torch.Tensor, labels: torch.Tensor, shots: int, *, episodes: int = 20, seed: int = 0
) -> tuple[float, float]:
    """Mean and standard deviation over ``episodes`` of nearest-class-mean accuracy when each class
    has ``shots`` labelled examples (drawn at random) and every other example is a query."""
    check_embeddings_labels(embeddings, labels, name="embeddings")
    shots = check_int("shots", shots, min_value=1)
    episodes = check_int("episodes", episodes, min_value=1)
    classes = torch.unique(labels)
    smallest = min(int((labels == c).sum()) for c in classes)
    if shots >= smallest:
        raise ValueError(
            f"shots={shots} leaves no query in the smallest class ({smallest} examples); "
            f"use shots < {smallest}."
        )
    g = torch.Generator().manual_seed(int(seed))
    accs = []
    for _ in range(episodes):
        support = torch.zeros(len(labels), dtype=torch.bool)
        for c in classes:
            idx = torch.nonzero(labels == c).flatten()
            support[idx[torch.randperm(len(idx), generator=g)[:shots]]] = True
        pred = nearest_class_mean(embeddings[support], labels[support], embeddings[~support])
        accs.append((pred == labels[~support]).double().mean())
    accs = torch.stack(accs)
    return accs.mean().item(), (accs.std().item() if episodes > 1 else 0.0)
