"""Metric axioms, checked numerically, and the distances of lecture 1.

Taught in 01_metric_spaces.

A *metric* d satisfies, for all points x, y, z:

1. identity:      d(x, x) = 0
2. positivity:    d(x, y) > 0 whenever x != y
3. symmetry:      d(x, y) = d(y, x)
4. triangle:      d(x, z) <= d(x, y) + d(y, z)

``check_axioms(d, points)`` evaluates d on every pair and triple of a sample
(vectorised) and reports which axiom fails, with the offending points. A sample
can only *refute* an axiom, never prove it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import plots
from .core.distances import pairwise_distance
from .core.validate import (
    check_choice,
    check_embeddings_labels,
    check_float,
    check_int,
    check_tensor,
)

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: ipywidgets, plotly.


def euclidean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise ||u - v||."""
    return torch.linalg.norm(u - v, dim=-1)


def squared_euclidean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise ||u - v||^2 (not a metric: the triangle inequality fails)."""
    return ((u - v) ** 2).sum(-1)


def cosine_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise 1 - cos(u, v); not a metric: the triangle inequality fails, and d(u, 2u) = 0."""
    return 1 - torch.nn.functional.cosine_similarity(u, v, dim=-1)


def manhattan(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise sum |u - v| (the L1 or city-block metric)."""
    return (u - v).abs().sum(-1)


def chebyshev(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise max |u - v| (the L-infinity metric)."""
    return (u - v).abs().amax(-1)


def mahalanobis(W: torch.Tensor):
    """The distance sqrt((u - v)^T W (u - v)) as a function (see ``dmlcourse.mahalanobis``)."""

    def d(u, v):
        diff = u - v
        return torch.sqrt(
            torch.einsum("...i,ij,...j->...", diff, W.to(diff.dtype), diff).clamp_min(0)
        )

    return d


DISTANCE_FUNCTIONS = {
    "euclidean": euclidean,
    "squared euclidean": squared_euclidean,
    "manhattan": manhattan,
    "chebyshev": chebyshev,
    "cosine (1 - cos)": cosine_distance,
}


def pairwise(x: torch.Tensor, y: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """The (N, M) matrix of distances between the rows of x (N, D) and y (M, D), for any
    name in ``DISTANCE_FUNCTIONS``: ``dmlcourse.distances.pairwise_distance`` for the three the
    losses use, and ``torch.cdist`` for the Manhattan and Chebyshev metrics."""
    check_choice("distance", distance, DISTANCE_FUNCTIONS)
    check_tensor("x", x, ndim=2, floating=True)
    check_tensor("y", y, ndim=2, floating=True)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} dimensions but y has {y.shape[1]}; they must match.")
    shared = {
        "euclidean": "euclidean",
        "squared euclidean": "squared_euclidean",
        "cosine (1 - cos)": "cosine",
    }
    if distance in shared:  # the distances of the losses (dmlcourse.core.distances)
        return pairwise_distance(x, y, shared[distance])
    return torch.cdist(x, y, p={"manhattan": 1.0, "chebyshev": float("inf")}[distance])


def knn_accuracy(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    *,
    distance: str = "euclidean",
    k: int = 1,
    chunk: int = 256,
) -> float:
    """Accuracy of the k-nearest-neighbour classifier under any distance of ``DISTANCE_FUNCTIONS``
    (majority vote of the k nearest references, ties to the smallest label, as in scikit-learn).

    ``dmlcourse.metrics.knn_accuracy`` does the same for the three distances of the losses;
    this one also knows the Manhattan and Chebyshev metrics of 01_metric_spaces."""
    check_embeddings_labels(queries, query_labels, name="queries", labels_name="query_labels")
    check_embeddings_labels(
        reference, reference_labels, name="reference", labels_name="reference_labels"
    )
    k = check_int("k", k, min_value=1, max_value=len(reference))
    reference = reference.to(queries.device, queries.dtype)
    classes, inverse = torch.unique(reference_labels.to(queries.device), return_inverse=True)
    query_labels = query_labels.to(queries.device)
    correct = 0
    for s in range(0, len(queries), chunk):
        d = pairwise(queries[s : s + chunk], reference, distance)
        nn = torch.topk(d, k, dim=1, largest=False).indices
        votes = torch.zeros(len(d), len(classes), device=d.device)
        votes.scatter_add_(1, inverse[nn], torch.ones(nn.shape, device=d.device))
        correct += int((classes[votes.argmax(1)] == query_labels[s : s + chunk]).sum())
    return correct / len(queries)


@dataclass
class AxiomReport:
    """Which axioms hold on the sample; for each failing one, up to a few offending index tuples."""

    holds: dict = field(default_factory=dict)  # axiom -> bool
    examples: dict = field(default_factory=dict)  # axiom -> list of index tuples
    worst: dict = field(default_factory=dict)  # axiom -> size of the worst violation

    @property
    def is_metric(self) -> bool:
        return all(self.holds.values())

    def failing(self) -> list:
        return [a for a, ok in self.holds.items() if not ok]

    def __str__(self) -> str:
        lines = []
        for axiom, ok in self.holds.items():
            if ok:
                lines.append(f"{axiom:<12} holds")
                continue
            # positivity's worst case is the smallest distance of two distinct points (stored
            # negated, so that the largest comes first): show the distance itself (+ 0.0: no "-0")
            size = (
                f"at distance {-self.worst[axiom] + 0.0:.3g}"
                if axiom == "positivity"
                else f"by {self.worst[axiom]:.3g}"
            )
            lines.append(f"{axiom:<12} FAILS, e.g. at {self.examples[axiom][:2]} ({size})")
        return "\n".join(lines)


def check_axioms(
    distance, points: torch.Tensor, *, atol: float = 1e-9, max_examples: int = 5
) -> AxiomReport:
    """Check the four metric axioms of ``distance`` on every pair and triple of ``points``.

    ``distance(u, v)`` computes row-wise distances of two (M, D) tensors (-> (M,)).
    Tolerance ``atol`` absorbs round-off. Triples are checked in chunks (no loop over points).
    """
    check_tensor("points", points, ndim=2, floating=True)
    if len(points) < 3:
        raise ValueError(
            "points must hold at least 3 points to check the triangle inequality, got "
            f"{len(points)}."
        )
    atol = check_float("atol", atol, min_value=0.0)
    x = points.double()
    n = len(x)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    i, j = i.flatten(), j.flatten()
    D = torch.as_tensor(distance(x[i], x[j])).double().view(n, n)
    if D.shape != (n, n):
        raise ValueError("distance(u, v) must return one distance per row of u and v.")
    report = AxiomReport()

    def record(name, bad, size, idx):
        bad, size, idx = bad.flatten(), size.flatten(), [t.flatten() for t in idx]
        report.holds[name] = not bool(bad.any())
        if bad.any():
            order = torch.argsort(size[bad], descending=True)[:max_examples]
            report.examples[name] = [
                tuple(int(t[k]) for t in idx) for k in torch.nonzero(bad).flatten()[order]
            ]
            report.worst[name] = float(size[bad].max())

    # region: pairs
    diag = torch.diagonal(D)  # d(x, x): must be 0
    ar = torch.arange(n)
    record("identity", diag.abs() > atol, diag.abs(), (ar,))
    distinct = (x[:, None, :] != x[None, :, :]).any(-1)  # pairs of different points: d must be > 0
    record("positivity", distinct & (D <= atol), -D, torch.meshgrid(ar, ar, indexing="ij"))
    asym = (D - D.T).abs()  # d(x, y) against d(y, x)
    record("symmetry", asym > atol, asym, torch.meshgrid(ar, ar, indexing="ij"))
    # endregion
    # region: triangle
    # triangle: d(a, c) <= d(a, b) + d(b, c) for all (a, b, c), chunked over a
    worst, examples = 0.0, []
    chunk = max(1, (1 << 22) // (n * n))
    for s in range(0, n, chunk):
        Da = D[s : s + chunk]
        # [a, b, c] = d(a,c) - d(a,b) - d(b,c)
        excess = Da[:, None, :] - (Da[:, :, None] + D[None, :, :])
        bad = excess > atol
        if bad.any():
            worst = max(worst, float(excess[bad].max()))
            a, b, c = torch.nonzero(bad, as_tuple=True)
            order = torch.argsort(excess[bad], descending=True)[:max_examples]
            examples += [(int(a[k]) + s, int(b[k]), int(c[k])) for k in order]
    # endregion
    report.holds["triangle"] = not examples
    if examples:
        exc = [float(D[a, c] - D[a, b] - D[b, c]) for a, b, c in examples]
        examples = [e for _, e in sorted(zip(exc, examples), reverse=True)][:max_examples]
        report.examples["triangle"], report.worst["triangle"] = examples, worst
    return report


def triangle_explorer(points=((0.0, 0.0), (1.0, 0.2), (2.0, 0.0)), distance: str = "euclidean"):
    """Widget: three points x, y, z moved with sliders, a distance dropdown and a live readout of
    d(x, z) against d(x, y) + d(y, z).

    Attributes: ``sliders`` (dict), ``distance``, ``figure``, ``readout``."""
    import ipywidgets as W
    import plotly.graph_objects as go

    if distance not in DISTANCE_FUNCTIONS:
        raise ValueError(
            f"distance={distance!r} is not allowed; choose one of {sorted(DISTANCE_FUNCTIONS)}."
        )
    names = ("x", "y", "z")
    sliders = {}
    # 0..4 (not -3..3): the browser's slider turns 0.2 on -3..3 into 0.20000000000000018 (and sends
    # it back); from 0, every multiple of 0.05 survives its round trip exactly
    for (px, py), nm in zip(points, names):
        sliders[nm + "1"] = W.FloatSlider(value=px, min=0, max=4, step=0.05, description=f"{nm}₁")
        sliders[nm + "2"] = W.FloatSlider(value=py, min=0, max=4, step=0.05, description=f"{nm}₂")
    dropdown = W.Dropdown(options=list(DISTANCE_FUNCTIONS), value=distance, description="distance")
    readout = W.HTML()
    fig = go.Figure(
        go.Scatter(
            x=[],
            y=[],
            mode="lines+markers+text",
            text=[],
            textposition="top center",
            marker=dict(size=12),
            line=dict(color="#888"),
        )
    )
    plots.square_plane(fig, -0.3, 4.3, height=380, width=420)

    def update(fig):
        p = {
            nm: torch.tensor(
                [[sliders[nm + "1"].value, sliders[nm + "2"].value]], dtype=torch.float64
            )
            for nm in names
        }
        d = DISTANCE_FUNCTIONS[dropdown.value]
        dxz, dxy, dyz = (float(d(p[a], p[b])) for a, b in (("x", "z"), ("x", "y"), ("y", "z")))
        ok = dxz <= dxy + dyz + 1e-12
        with fig.batch_update():
            fig.data[0].x = [p[nm][0, 0].item() for nm in names + ("x",)]
            fig.data[0].y = [p[nm][0, 1].item() for nm in names + ("x",)]
            fig.data[0].text = list(names) + [""]
            fig.layout.title = "triangle inequality holds" if ok else "triangle inequality VIOLATED"
        readout.value = (
            f"d(x,z) = <b>{dxz:.3f}</b> {'≤' if ok else '>'} d(x,y) + d(y,z) = "
            f"{dxy:.3f} + {dyz:.3f} = <b>{dxy + dyz:.3f}</b>"
        )

    fig = plots.wire_explorer(fig, list(sliders.values()) + [dropdown], update)
    box = W.HBox([W.VBox([dropdown] + list(sliders.values()) + [readout]), fig])
    box.sliders, box.distance, box.figure, box.readout = sliders, dropdown, fig, readout
    return box
