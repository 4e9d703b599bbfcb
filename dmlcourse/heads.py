"""Classification heads on the hypersphere: Softmax, NormFace, SphereFace, CosFace, ArcFace.

Taught in 07_angular_margins.

A head holds one weight vector W_j per class and turns an embedding x into logits
for cross-entropy. Writing theta_j for the angle between x and W_j, the logit of
the *target* class y is changed so that the network must beat the other classes
by a margin:

    Softmax      W_j . x + b_j                                  (no normalisation)
    NormFace     s cos(theta_j)                                 (no margin)
    SphereFace   ||x|| psi(theta_y),  psi(theta) = (-1)^k cos(m theta) - 2k
                                       on [k pi/m, (k+1) pi/m], integer m
    CosFace      s (cos(theta_y) - m)
    ArcFace      s cos(theta_y + m)                             (m in RADIANS)

Non-target classes keep s cos(theta_j) (SphereFace: ||x|| cos(theta_j)).
``head(x, labels)`` returns training logits (with the margin); ``head(x)`` returns
the plain logits (no margin), which is what inference uses.

Note: pytorch-metric-learning's ArcFaceLoss takes its margin in DEGREES (28.6 = 0.5 rad)
and stores W as (embedding_size, num_classes); ours is (num_classes, in_features).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import plots
from .core.validate import check_float, check_int, check_tensor

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: ipywidgets, plotly.

# acos is clamped to [-1 + EPS, 1 - EPS]: its derivative -1/sqrt(1 - c^2) is infinite at +-1.
ACOS_EPS = 1e-6


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (they cannot hold 1 - 1e-6); float32/float64 unchanged."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _check_inputs(head, x, labels):
    check_tensor("x", x, ndim=2, floating=True)
    if x.shape[1] != head.in_features:
        raise ValueError(
            f"x has {x.shape[1]} features but the head expects in_features={head.in_features}."
        )
    if labels is not None:
        check_tensor("labels", labels, ndim=1)
        if labels.is_floating_point():
            raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}.")
        if labels.shape[0] != x.shape[0]:
            raise ValueError(
                f"labels has {labels.shape[0]} entries but x has {x.shape[0]} rows; they must "
                "match."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= head.num_classes):
            raise ValueError(
                f"labels must lie in 0..{head.num_classes - 1} (num_classes={head.num_classes}), "
                f"got values from {int(labels.min())} to {int(labels.max())}."
            )


class _AngularHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.in_features = check_int("in_features", in_features, min_value=1)
        self.num_classes = check_int("num_classes", num_classes, min_value=2)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_features))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) between every x and every class weight: (N, C)."""
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T

    def _with_target(
        self, other: torch.Tensor, target: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """``other`` everywhere except the target class, which gets ``target`` (one per row)."""
        one_hot = F.one_hot(labels, self.num_classes).bool()
        return torch.where(one_hot, target[:, None].to(other.dtype), other)


class SoftmaxHead(nn.Module):
    """The plain linear classifier W x + b (lectures 4 and 7's baseline)."""

    def __init__(self, in_features: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.in_features = check_int("in_features", in_features, min_value=1)
        self.num_classes = check_int("num_classes", num_classes, min_value=2)
        self.linear = nn.Linear(self.in_features, self.num_classes, bias=bias)
        self.weight = self.linear.weight

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(self, x, labels)
        return self.linear(x)


class NormFaceHead(_AngularHead):
    """s cos(theta_j): weights and features normalised, no margin (Wang et al., 2017)."""

    def __init__(self, in_features: int, num_classes: int, scale: float = 16.0):
        super().__init__(in_features, num_classes)
        self.scale = check_float("scale", scale, min_value=0.0, strict_min=True)

    def forward(self, x, labels=None):
        _check_inputs(self, x, labels)
        return self.scale * self.cosine(x)


class CosFaceHead(_AngularHead):
    """s (cos(theta_y) - m) for the target class (Wang et al., 2018; additive cosine margin).

    AM-Softmax (Wang et al., 2018, other authors) is the same loss; the defaults s = 30,
    m = 0.35 are its setting (the CosFace paper uses s = 64).
    """

    def __init__(
        self, in_features: int, num_classes: int, scale: float = 30.0, margin: float = 0.35
    ):
        super().__init__(in_features, num_classes)
        self.scale = check_float("scale", scale, min_value=0.0, strict_min=True)
        self.margin = check_float("margin", margin, min_value=0.0)

    def forward(self, x, labels=None):
        _check_inputs(self, x, labels)
        cos = self.cosine(x)
        if labels is None:
            return self.scale * cos
        target = cos.gather(1, labels[:, None]).squeeze(1) - self.margin
        return self.scale * self._with_target(cos, target, labels)


def arc_margin_target(cos_target: torch.Tensor, margin: float) -> torch.Tensor:
    """cos(theta + m) for the target class, NaN-free for every cosine in [-1, 1] (NaN for a
    NaN or infinite one, so that a diverged network is not hidden by the clamp).

    Computed in at least float32 (float16/bfloat16 cannot hold 1 - 1e-6), with acos clamped away
    from +-1. Where theta + m > pi, cos(theta + m) would start to *increase* again (a larger
    angle would be rewarded), so we use the usual fallback cos(theta) - m sin(m), which keeps
    decreasing.
    """
    c = _wide(cos_target).clamp(-1 + ACOS_EPS, 1 - ACOS_EPS)
    c = c.masked_fill(~torch.isfinite(cos_target), float("nan"))  # +-inf is no cosine: keep NaN
    theta = torch.acos(c)
    arc = torch.cos(theta + margin)
    fallback = c - margin * math.sin(margin)
    return torch.where(theta + margin <= math.pi, arc, fallback)


class ArcFaceHead(_AngularHead):
    """s cos(theta_y + m) for the target class (Deng et al., 2019; additive angular margin).

    ``margin`` is in radians (0.5 rad = 28.6 degrees). pytorch-metric-learning's
    ArcFaceLoss takes degrees.
    """

    def __init__(
        self, in_features: int, num_classes: int, scale: float = 30.0, margin: float = 0.5
    ):
        super().__init__(in_features, num_classes)
        self.scale = check_float("scale", scale, min_value=0.0, strict_min=True)
        self.margin = check_float("margin", margin, min_value=0.0, max_value=math.pi)

    def forward(self, x, labels=None):
        _check_inputs(self, x, labels)
        cos = self.cosine(x)
        if labels is None:
            return self.scale * cos
        target = arc_margin_target(cos.gather(1, labels[:, None]).squeeze(1), self.margin)
        return self.scale * self._with_target(_wide(cos), target, labels).to(cos.dtype)


def sphereface_psi(theta: torch.Tensor, m: int) -> torch.Tensor:
    """psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi/m, (k+1) pi/m]:
    a monotonically decreasing extension of cos(m theta) to [0, pi]."""
    k = torch.floor(theta * m / math.pi).clamp(0, m - 1)
    sign = 1 - 2 * (k % 2)
    return sign * torch.cos(m * theta) - 2 * k


class SphereFaceHead(_AngularHead):
    """||x|| psi(theta_y) for the target class (Liu et al., 2017; multiplicative angular margin).

    ``margin`` is an integer m >= 1. Weights are normalised, features are not.
    Training needs the paper's annealing: the target logit is mixed with the plain one,
        f_y = (lambda ||x|| cos(theta_y) + ||x|| psi(theta_y)) / (1 + lambda),
    with lambda = max(lambda_min, lambda_base (1 + gamma t)^(-power)) after t training
    steps (one step = one forward pass in training mode). Defaults follow the paper's
    code: lambda_base 1000, gamma 0.12, power 1, lambda_min 5.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        margin: int = 4,
        *,
        lambda_base: float = 1000.0,
        lambda_min: float = 5.0,
        gamma: float = 0.12,
        power: float = 1.0,
    ):
        super().__init__(in_features, num_classes)
        if isinstance(margin, bool) or not float(margin).is_integer() or margin < 1:
            raise ValueError(f"margin must be an integer >= 1 for SphereFace, got {margin!r}.")
        self.margin = int(margin)
        self.lambda_base = check_float("lambda_base", lambda_base, min_value=0.0)
        self.lambda_min = check_float("lambda_min", lambda_min, min_value=0.0)
        self.gamma = check_float("gamma", gamma, min_value=0.0)
        self.power = check_float("power", power, min_value=0.0)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def lambda_(self) -> float:
        t = int(self.steps)
        return max(self.lambda_min, self.lambda_base * (1 + self.gamma * t) ** (-self.power))

    def forward(self, x, labels=None):
        _check_inputs(self, x, labels)
        norm = x.norm(dim=1, keepdim=True)
        cos = self.cosine(x)
        if labels is None:
            return norm * cos
        lam = self.lambda_
        if self.training:
            self.steps += 1
        c = _wide(cos.gather(1, labels[:, None]).squeeze(1)).clamp(-1 + ACOS_EPS, 1 - ACOS_EPS)
        psi = sphereface_psi(torch.acos(c), self.margin)
        target = (lam * c + psi) / (1 + lam)
        return norm * self._with_target(_wide(cos), target, labels).to(cos.dtype)


class HeadLoss(nn.Module):
    """Cross-entropy of a head's logits: a ``loss_fn`` for ``train.train`` (which then
    trains the head's class weights together with the network)."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, z, labels):
        logits = self.head(z, labels)
        return {
            "loss": F.cross_entropy(logits.float(), labels),
            "accuracy": (self.head(z.detach()).argmax(1) == labels).float().mean().item(),
        }


HEADS = {
    "softmax": SoftmaxHead,
    "normface": NormFaceHead,
    "sphereface": SphereFaceHead,
    "cosface": CosFaceHead,
    "arcface": ArcFaceHead,
}


def make_head(name: str, in_features: int, num_classes: int, **kwargs) -> nn.Module:
    """A head by name: "softmax", "normface", "sphereface", "cosface" or "arcface"."""
    if name not in HEADS:
        raise ValueError(f"name={name!r} is not allowed; choose one of {sorted(HEADS)}.")
    return HEADS[name](in_features, num_classes, **kwargs)


# --------------------------------------------------------------------------- curves and widgets


def target_logit_curves(
    theta: torch.Tensor, *, sphere_m: int = 4, cos_m: float = 0.35, arc_m: float = 0.5
) -> dict:
    """The target logit (before the scale s) of each head as a function of the angle theta."""
    return {
        "softmax / NormFace: cos θ": torch.cos(theta),
        f"SphereFace: ψ(θ), m={sphere_m}": sphereface_psi(theta, sphere_m),
        f"CosFace: cos θ − {cos_m:g}": torch.cos(theta) - cos_m,
        f"ArcFace: cos(θ + {arc_m:g})": arc_margin_target(torch.cos(theta), arc_m),
    }


def decision_boundaries(
    theta1: torch.Tensor, *, sphere_m: int = 4, cos_m: float = 0.35, arc_m: float = 0.5
) -> dict:
    """theta2 on the boundary where class 1 starts to win, for two classes, from the
    papers' decision rules (equal scales, no biases): softmax θ2 = θ1;
    SphereFace cos(m θ1) = cos θ2; CosFace cos θ1 − m = cos θ2; ArcFace cos(θ1 + m) = cos θ2.
    NaN where the boundary leaves [0, π]."""
    nan = torch.full_like(theta1, float("nan"))
    acos = lambda c: torch.where((c >= -1) & (c <= 1), torch.acos(c.clamp(-1, 1)), nan)
    return {
        "softmax": theta1,
        "SphereFace": torch.where(theta1 * sphere_m <= math.pi, theta1 * sphere_m, nan),
        "CosFace": acos(torch.cos(theta1) - cos_m),
        "ArcFace": torch.where(theta1 + arc_m <= math.pi, theta1 + arc_m, nan),
    }


def true_class_probability(
    theta: torch.Tensor, scale: float, num_classes: int = 10
) -> torch.Tensor:
    """Softmax probability of the true class at angle theta when the other num_classes - 1
    class weights are at 90 degrees (cos = 0): e^{s cos θ} / (e^{s cos θ} + C − 1)."""
    logit = scale * torch.cos(theta)
    return torch.exp(logit) / (torch.exp(logit) + num_classes - 1)


def scale_explorer(
    scale: float = 16.0, *, num_classes: int = 10, references=(1.0, 4.0, 16.0, 64.0)
):
    """Widget: the true-class probability against θ for a scale s (slider), with reference curves.
    Attributes: ``slider``, ``figure``."""
    import ipywidgets as W
    import plotly.graph_objects as go

    theta = torch.linspace(0, math.pi, 181)
    deg = torch.rad2deg(theta).numpy()
    fig = go.Figure()
    for s in references:
        fig.add_trace(
            go.Scatter(
                x=deg,
                y=true_class_probability(theta, s, num_classes).numpy(),
                mode="lines",
                name=f"s = {s:g}",
                line=dict(dash="dot", width=1),
            )
        )
    fig.add_trace(
        go.Scatter(x=deg, y=[], mode="lines", name="chosen s", line=dict(width=4, color="black"))
    )
    fig.update_layout(
        height=360,
        width=620,
        xaxis_title="angle θ to the true class weight (degrees)",
        yaxis_title="softmax probability of the true class",
        margin=dict(l=10, r=10, t=40, b=10),
    )
    # powers of two (1 .. 128, half steps): 16 on a base-10 grid came back from the browser as 15.85
    slider = W.FloatLogSlider(value=scale, base=2, min=0, max=7, step=0.5, description="scale s")

    def update(fig):
        with fig.batch_update():
            fig.data[-1].update(
                x=deg, y=true_class_probability(theta, slider.value, num_classes).numpy()
            )
            fig.layout.title = (
                f"s = {slider.value:.1f}: p(true | θ = 0) = "
                f"{float(true_class_probability(torch.tensor(0.0), slider.value, num_classes)):.3f}"
            )

    fig = plots.wire_explorer(fig, (slider,), update)
    box = W.VBox([slider, fig])
    box.slider, box.figure = slider, fig
    return box


def margin_explorer(*, sphere_m: int = 4, cos_m: float = 0.35, arc_m: float = 0.5):
    """Widget: target-logit curves and two-class decision boundaries, with margin sliders.
    Attributes: ``sphere``, ``cos``, ``arc`` (sliders) and ``figure``."""
    import ipywidgets as W
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    theta = torch.linspace(0, math.pi, 361)
    deg = torch.rad2deg(theta).numpy()
    base = go.Figure(
        make_subplots(
            rows=1,
            cols=2,
            subplot_titles=(
                "target logit ÷ s (SphereFace: ÷ ‖x‖) against θ",
                "boundary of class 1 (solid) and class 2 (dashed)",
            ),
        )
    )
    colors = ["#7f7f7f", "#1f77b4", "#2ca02c", "#d62728"]
    for k, c in enumerate(colors):
        base.add_trace(
            go.Scatter(x=deg, y=[], mode="lines", line=dict(color=c), name=str(k)), row=1, col=1
        )
    for c in colors:
        base.add_trace(
            go.Scatter(x=deg, y=[], mode="lines", line=dict(color=c), showlegend=False),
            row=1,
            col=2,
        )
        base.add_trace(
            go.Scatter(
                x=[], y=deg, mode="lines", line=dict(color=c, dash="dash"), showlegend=False
            ),
            row=1,
            col=2,
        )
    base.update_xaxes(title_text="θ (degrees)", row=1, col=1)
    base.update_xaxes(title_text="θ1 (degrees)", range=[0, 180], row=1, col=2)
    base.update_yaxes(title_text="θ2 (degrees)", range=[0, 180], row=1, col=2)
    base.update_layout(height=400, width=950, margin=dict(l=10, r=10, t=40, b=10))
    fig = go.Figure(base)
    style = {"description_width": "initial"}
    sphere = W.IntSlider(value=sphere_m, min=1, max=6, description="SphereFace m", style=style)
    cos = W.FloatSlider(
        value=cos_m, min=0.0, max=0.8, step=0.05, description="CosFace m", style=style
    )
    # max 1.25, not 1.2: on 0..1.2 the browser's slider turns 0.5 into 0.5000000000000001
    arc = W.FloatSlider(
        value=arc_m, min=0.0, max=1.25, step=0.05, description="ArcFace m (rad)", style=style
    )

    def update(fig):
        curves = target_logit_curves(theta, sphere_m=sphere.value, cos_m=cos.value, arc_m=arc.value)
        bounds = decision_boundaries(theta, sphere_m=sphere.value, cos_m=cos.value, arc_m=arc.value)
        # no batch_update: one that sets y on some traces and x on others makes the browser drop
        # the other coordinate (plotted against the point index); trace by trace, each update
        # carries all it changes
        for k, (name, y) in enumerate(curves.items()):
            fig.data[k].update(x=deg, y=y.numpy(), name=name)
        for k, y in enumerate(bounds.values()):
            fig.data[4 + 2 * k].update(x=deg, y=torch.rad2deg(y).numpy())
            # class 2: the mirror image
            fig.data[5 + 2 * k].update(x=torch.rad2deg(y).numpy(), y=deg)

    fig = plots.wire_explorer(fig, (sphere, cos, arc), update)
    box = W.VBox([W.HBox([sphere, cos, arc]), fig])
    box.sphere, box.cos, box.arc, box.figure = sphere, cos, arc, fig
    return box
