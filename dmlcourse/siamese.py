"""Siamese networks: two ways to share weights, batch losses, and the widgets of 05_siamese_triplet.

Taught in 05_siamese_triplet.

A Siamese network is k sub-networks with *equal* weights. Two implementations:

* ``SiameseCopies``: k real copies in memory. Each copy computes its part; the
  gradients of all copies are summed (the weights are one parameter, so its
  gradient is the sum over the places it is used), one update is made, and the
  new weights are copied into every copy. Costs k times the parameter memory.
* ``SharedSiamese``: one sub-network applied to each element of the tuple.
  Autograd sums the gradients by itself. This is what everybody does in practice.

Both give the same outputs and the same update (checked in the notebook and the tests).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from . import plots
from .core.distances import pairwise_distance
from .core.validate import check_choice, check_float, check_int
from .losses import contrastive_loss, nca_loss, reduce_terms, triplet_loss

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: ipywidgets, plotly.


class SharedSiamese(nn.Module):
    """One sub-network applied to every element of a tuple: ``forward(x1, x2, ...)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *xs):
        return tuple(self.net(x) for x in xs)


class SiameseCopies(nn.Module):
    """k copies of a sub-network, kept equal by summing gradients and copying weights.

    Use: ``outs = model(x1, x2)``; ``loss.backward()``; ``model.step(optimizer)``, where
    ``optimizer`` was built on ``model.branches[0].parameters()``.
    """

    def __init__(self, net: nn.Module, k: int = 2):
        super().__init__()
        k = check_int("k", k, min_value=1)
        self.branches = nn.ModuleList([copy.deepcopy(net) for _ in range(k)])

    def forward(self, *xs):
        if len(xs) != len(self.branches):
            raise ValueError(
                f"got {len(xs)} inputs for {len(self.branches)} branches; they must match."
            )
        return tuple(branch(x) for branch, x in zip(self.branches, xs))

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Sum the copies' gradients into branch 0, update it, copy its weights to the others."""
        first = list(self.branches[0].parameters())
        for other in self.branches[1:]:
            for p0, p in zip(first, other.parameters()):
                if p.grad is not None:
                    p0.grad = p.grad.clone() if p0.grad is None else p0.grad + p.grad
        optimizer.step()
        for other in self.branches[1:]:
            other.load_state_dict(self.branches[0].state_dict())
            for p in other.parameters():
                p.grad = None


def parameter_bytes(module: nn.Module) -> int:
    """Bytes held by a module's parameters."""
    return sum(p.numel() * p.element_size() for p in module.parameters())


def gradient_bytes(module: nn.Module) -> int:
    """Bytes held by the gradients currently allocated on a module's parameters."""
    return sum(
        p.grad.numel() * p.grad.element_size() for p in module.parameters() if p.grad is not None
    )


# --------------------------------------------------------------------------- batch losses


class BatchContrastive(nn.Module):
    """Contrastive loss over every pair (i < j) of a labelled batch (eq. 11 per pair).

    Returns a dict with the loss and the fraction of active (non-zero) terms.
    """

    def __init__(
        self,
        margin: float = 1.0,
        distance: str = "euclidean",
        reduction: str = "mean",
        form: str = "lecture",
    ):
        super().__init__()
        self.margin = check_float("margin", margin, min_value=0.0)
        self.distance, self.reduction, self.form = distance, reduction, form

    def forward(self, z, labels):
        i, j = torch.triu_indices(len(z), len(z), 1, device=z.device)
        y = (labels[i] != labels[j]).long()
        terms = contrastive_loss(z[i], z[j], y, self.margin, self.distance, "none", self.form)
        return {
            "loss": reduce_terms(terms, self.reduction, anchor=z),
            "active_fraction": (terms > 0).float().mean().item() if len(terms) else 0.0,
        }


class BatchTriplet(nn.Module):
    """Triplet loss over random triplets of a labelled batch (``n_per_anchor`` per sample).

    Random triplets are 05_siamese_triplet's baseline; 06_mining_sampling replaces them with
    mined ones.
    """

    def __init__(
        self,
        margin: float = 0.2,
        distance: str = "euclidean",
        reduction: str = "mean",
        n_per_anchor: int = 4,
        seed: int = 0,
    ):
        super().__init__()
        self.margin = check_float("margin", margin, min_value=0.0)
        self.distance, self.reduction = distance, reduction
        self.n_per_anchor = check_int("n_per_anchor", n_per_anchor, min_value=1)
        self.generator = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))

    def forward(self, z, labels):
        lab = labels.cpu()
        same = lab[:, None] == lab[None, :]
        pos = same & ~torch.eye(len(lab), dtype=torch.bool)
        ok = torch.nonzero(pos.any(1) & (~same).any(1)).flatten()
        if len(ok) == 0:
            return {"loss": z.sum() * 0.0, "active_fraction": 0.0}
        a = ok.repeat(self.n_per_anchor)
        p = (
            torch.rand(len(a), len(lab), generator=self.generator).masked_fill(~pos[a], -1)
        ).argmax(1)
        n = (
            torch.rand(len(a), len(lab), generator=self.generator).masked_fill(same[a], -1)
        ).argmax(1)
        a, p, n = (t.to(z.device) for t in (a, p, n))
        terms = triplet_loss(z[a], z[p], z[n], self.margin, self.distance, "none")
        return {
            "loss": reduce_terms(terms, self.reduction, anchor=z),
            "active_fraction": (terms > 0).float().mean().item(),
        }


class BatchNCA(nn.Module):
    """NCA over the batch (a thin wrapper so that all three losses log the same way)."""

    def __init__(
        self, variant: str = "goldberger", distance: str = "squared_euclidean", scale: float = 1.0
    ):
        super().__init__()
        self.variant, self.distance, self.scale = variant, distance, scale

    def forward(self, z, labels):
        return {
            "loss": nca_loss(
                z, labels, variant=self.variant, distance=self.distance, scale=self.scale
            )
        }


def make_batch_loss(name: str, **kwargs) -> nn.Module:
    """``"contrastive"``, ``"triplet"`` or ``"nca"`` as a batch loss for ``train.train``."""
    check_choice("name", name, ("contrastive", "triplet", "nca"))
    return {"contrastive": BatchContrastive, "triplet": BatchTriplet, "nca": BatchNCA}[name](
        **kwargs
    )


# --------------------------------------------------------------------------- pair distances


def pair_distances(
    z: torch.Tensor,
    labels: torch.Tensor,
    distance: str = "euclidean",
    max_pairs: int = 20000,
    seed: int = 0,
):
    """Distances of (up to ``max_pairs``) similar and dissimilar pairs of a set:
    (similar, dissimilar)."""
    d = pairwise_distance(z.detach().float(), distance=distance)
    i, j = torch.triu_indices(len(z), len(z), 1)
    same = labels[i] == labels[j]
    g = torch.Generator().manual_seed(seed)
    out = []
    for mask in (same, ~same):
        ii, jj = i[mask], j[mask]
        if len(ii) > max_pairs:
            keep = torch.randperm(len(ii), generator=g)[:max_pairs]
            ii, jj = ii[keep], jj[keep]
        out.append(d[ii, jj])
    return tuple(out)


# --------------------------------------------------------------------------- widgets


def loss_surface(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float) -> torch.Tensor:
    """The triplet loss [d_ap - d_an + m]_+ on a grid of (d_ap, d_an)."""
    return torch.relu(d_ap[None, :] - d_an[:, None] + margin)


def triplet_margin_explorer(d_ap=None, d_an=None, *, margin: float = 0.2, d_max: float = 2.0):
    """Widget: the triplet-loss surface over (d(a,p), d(a,n)) with a margin slider.

    ``d_ap``, ``d_an`` (optional): distances of real triplets of the current embedding,
    drawn on top; the readout says how many are active (loss > 0) at the chosen margin.
    Returns an ipywidgets box with attributes ``slider``, ``figure`` and ``readout``.
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    margin = check_float("margin", margin, min_value=0.0)
    # the axes fit the triplets (at most d_max): 0-0.4 of a 0-2 square showed nothing
    if d_ap is not None:
        d_max = min(d_max, 1.1 * float(torch.quantile(torch.cat([d_ap, d_an]).float(), 0.99)))
    # the slider's range, set from the axes: the boundary d(a,n) = d(a,p) + m crosses the square
    # for m < d_max, so a larger m would move a line that is off the plot. Its end is the margin
    # asked for times a power of two, the first at or beyond d_max: the browser stores a slider's
    # value as a fraction of its range, and margin / m_max = 2^-k converts back exactly (with an end
    # of 0.37 the front end sent 0.2 back as 0.19999999999999996, overwriting the cell's value)
    if margin > 0:
        m_max = margin * 2 ** max(0, math.ceil(math.log2(d_max / margin)))
    else:
        m_max = math.ceil(100 * d_max) / 100
    grid = torch.linspace(0, d_max, 81)
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            x=grid.numpy(),
            y=grid.numpy(),
            z=loss_surface(grid, grid, margin).numpy(),
            colorscale="Viridis",
            colorbar=dict(title="loss"),
            zmin=0,
            zmax=d_max + m_max,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0, d_max],
            y=[margin, d_max + margin],
            mode="lines",  # seen on white too
            line=dict(color="#ff7f0e", dash="dash", width=2),
            name="d(a,n) = d(a,p) + m",
        )
    )
    if d_ap is not None:
        fig.add_trace(
            go.Scattergl(
                x=d_ap.numpy(),
                y=d_an.numpy(),
                mode="markers",
                name="triplets",
                marker=dict(size=3, color="red", opacity=0.4),
            )
        )
    fig.update_layout(
        height=420,
        width=560,
        xaxis_title="d(a, p)",
        yaxis_title="d(a, n)",
        xaxis_range=[0, d_max],
        yaxis_range=[0, d_max],
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(x=0.02, y=0.98),
    )
    slider = W.FloatSlider(value=margin, min=0.0, max=m_max, step=0.01, description="margin m")
    readout = W.HTML()

    def update(fig):
        m = slider.value
        # no batch_update (see heads.margin_explorer: the browser loses what one trace's
        # update leaves out)
        fig.data[0].z = loss_surface(grid, grid, m).numpy()
        fig.data[1].y = [m, d_max + m]
        if d_ap is not None:
            active = (d_ap - d_an + m > 0).float().mean().item()
            readout.value = (
                f"<b>{100 * active:.1f}%</b> of the {len(d_ap)} triplets are active at m = {m:.2f}"
            )
        else:
            readout.value = f"m = {m:.2f}"

    fig = plots.wire_explorer(fig, (slider,), update)
    box = W.VBox([slider, readout, fig])
    box.slider, box.figure, box.readout = slider, fig, readout
    return box


def histogram_browser(per_epoch: list, *, bins: int = 40, title: str = "pair distances"):
    """Widget: histograms of similar vs dissimilar pair distances, one per epoch, with a slider.

    ``per_epoch`` is a list of (similar, dissimilar) distance tensors (epoch 0 = before training).
    Returns an ipywidgets box with attributes ``slider`` and ``figure``.
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    if not per_epoch:
        raise ValueError("per_epoch is empty; record at least the distances before training.")
    hi = max(float(torch.cat([s, d]).max()) for s, d in per_epoch)
    fig = go.Figure()
    for name, color in (("similar pairs", "#2ca02c"), ("dissimilar pairs", "#d62728")):
        fig.add_trace(
            go.Histogram(
                x=[],
                name=name,
                marker_color=color,
                opacity=0.6,
                histnorm="probability density",
                xbins=dict(start=0, end=hi, size=hi / bins),
            )
        )
    fig.update_layout(
        barmode="overlay",
        height=320,
        width=620,
        xaxis_title="distance",
        yaxis_title="density",
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis_range=[0, hi],
    )
    slider = W.IntSlider(
        value=len(per_epoch) - 1, min=0, max=len(per_epoch) - 1, description="epoch"
    )

    def update(fig):
        sim, dis = per_epoch[slider.value]
        # this epoch's range: epoch 0 may sit below 0.22
        top = max(float(torch.cat([sim, dis]).max()), 1e-6)
        # no batch_update (see heads.margin_explorer: the browser loses what one trace's
        # update leaves out)
        fig.data[0].x = sim.numpy()
        fig.data[1].x = dis.numpy()
        for tr in fig.data:
            tr.xbins = dict(start=0, end=top, size=top / bins)
        fig.layout.xaxis.range = [0, 1.02 * top]
        fig.layout.title = f"{title} — epoch {slider.value}" + (
            " (before training)" if slider.value == 0 else ""
        )

    fig = plots.wire_explorer(fig, (slider,), update)
    box = W.VBox([slider, fig])
    box.slider, box.figure = slider, fig
    return box
