"""Supervised losses whose classifier gives an embedding: MSE, MAE, Huber, KL, hinge, cross-entropy.

Taught in 04_supervised_losses.

Each loss is written from its formula (vectorised torch, autograd gives the gradients)
and matches PyTorch's built-in where there is one:

    mse_loss(pred, target)           mean (pred - target)^2           F.mse_loss
    mae_loss(pred, target)           mean |pred - target|             F.l1_loss
    huber_loss(pred, target, delta)  0.5 r^2 if |r| <= delta,         F.huber_loss
                                     else delta (|r| - 0.5 delta)
    kl_divergence(logits, target)    sum_l t_l log(t_l / q_l),        F.kl_div(log q, t, batchmean)
                                     q = softmax(logits)
    hinge_loss(scores, y, margin)    [m - y f]_+, y in {-1, +1}       2 x F.multi_margin_loss on the
                                                                      logits (-f/2, f/2) (see tests)
    cross_entropy(logits, labels)    -log softmax(logits)_y           F.cross_entropy

The equation numbers are those of the Guelph slides (see 00_start_here).

The network (:class:`Classifier`) is a backbone (``models.MLP`` or ``models.SmallCNN``)
whose output is the EMBEDDING (the one-before-last layer), followed by one linear
layer to the outputs. :class:`SupervisedLoss` holds that last layer, so
``train.train(backbone, SupervisedLoss(...), ...)`` trains both, and evaluates and
embeds with the backbone alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .core.validate import check_choice, check_finite, check_float, check_int, check_tensor

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: matplotlib.

REDUCTIONS = ("mean", "sum", "none")


def _reduce(terms: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice("reduction", reduction, REDUCTIONS)
    if reduction == "none":
        return terms
    return terms.sum() if reduction == "sum" else terms.mean()


def _check_regression(pred, target):
    check_tensor("pred", pred, floating=True)
    check_tensor("target", target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}; they must "
            "match (a single-output network gives (N,): squeeze its (N, 1) output)."
        )
    return pred, target.to(pred.dtype)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error: mean_i (pred_i - target_i)^2 (the Guelph slides' eq. 4, averaged)."""
    pred, target = _check_regression(pred, target)
    return _reduce((pred - target) ** 2, reduction)


def mae_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error: mean_i |pred_i - target_i| (the Guelph slides' eq. 5). Autograd uses the
    subgradient sign(r), which is 0 at r = 0 (as PyTorch's l1_loss)."""
    pred, target = _check_regression(pred, target)
    return _reduce((pred - target).abs(), reduction)


def huber_loss(
    pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Huber loss (the Guelph slides' eq. 6): 0.5 r^2 where |r| <= delta, else
    delta (|r| - 0.5 delta).

    Quadratic near 0 (like MSE), linear far away (like MAE, slope delta), and the two
    pieces meet with the same value and slope at |r| = delta. (PyTorch's smooth_l1_loss
    with beta is this divided by beta: a different scale.)
    """
    pred, target = _check_regression(pred, target)
    delta = check_float("delta", delta, min_value=0.0, strict_min=True)
    r = (pred - target).abs()
    terms = torch.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))
    return _reduce(terms, reduction)


def _check_logits(logits, labels):
    check_tensor("logits", logits, ndim=2, floating=True)
    check_tensor("labels", labels, ndim=1)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(
            f"labels must be an integer tensor of class indices, got dtype {labels.dtype}."
        )
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but logits has {logits.shape[0]} rows; they "
            "must match."
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"labels must lie in 0..{logits.shape[1] - 1} (one logit per class), got values from "
            f"{int(labels.min())} to {int(labels.max())}."
        )


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log softmax along dim 1, stably: z - max - log sum exp(z - max)."""
    z = logits - logits.max(dim=1, keepdim=True).values.detach()
    return z - torch.log(torch.exp(z).sum(dim=1, keepdim=True))


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy with softmax (the Guelph slides' eq. 9): -sum_l (y_i)_l log softmax(f_o(x_i))_l
    with one-hot y_i, i.e. -log of the softmax probability of the true class."""
    _check_logits(logits, labels)
    return _reduce(-log_softmax(logits).gather(1, labels[:, None]).squeeze(1), reduction)


def kl_divergence(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """KL(target || softmax(logits)) = sum_l t_l (log t_l - log q_l), with 0 log 0 = 0.

    ``target`` is (N, c) rows of probabilities. This is the direction that works with
    one-hot or smoothed labels (it then equals cross-entropy minus the target's entropy);
    the Guelph slides' eq. 7 writes the other direction, KL(prediction || target), which is
    infinite as soon as a one-hot target has a 0 where the prediction does not.
    reduction "mean" averages over samples (PyTorch's "batchmean").
    """
    check_tensor("logits", logits, ndim=2, floating=True)
    check_tensor("target", target, ndim=2, floating=True)
    if target.shape != logits.shape:
        raise ValueError(
            f"target has shape {tuple(target.shape)} but logits has {tuple(logits.shape)}; they "
            "must match."
        )
    check_finite("target", target, why="target rows must be probability vectors")
    if (target < 0).any() or not torch.allclose(
        target.sum(1), torch.ones_like(target[:, 0]), atol=1e-4
    ):
        raise ValueError("target rows must be probability vectors (non-negative, summing to 1).")
    # region: formula
    t_log_t = torch.where(  # t log t, with 0 log 0 = 0
        target > 0, target * torch.log(target.clamp_min(1e-300)), torch.zeros_like(target)
    )
    return _reduce((t_log_t - target * log_softmax(logits)).sum(1), reduction)
    # endregion


def smooth_labels(labels: torch.Tensor, num_classes: int, smoothing: float = 0.1) -> torch.Tensor:
    """One-hot targets with ``smoothing`` spread evenly over all classes (label smoothing)."""
    check_tensor("labels", labels, ndim=1)
    num_classes = check_int("num_classes", num_classes, min_value=2)
    smoothing = check_float("smoothing", smoothing, min_value=0.0, max_value=1.0)
    t = F.one_hot(labels.long(), num_classes).float()
    return (1 - smoothing) * t + smoothing / num_classes


def hinge_loss(
    scores: torch.Tensor, labels: torch.Tensor, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Two-class hinge loss (the Guelph slides' eq. 8): [m - y_i f_o(x_i)]_+, y_i in {-1, +1}.

    Zero once the score has the right sign AND is at least m away from 0.
    """
    check_tensor("scores", scores, ndim=1, floating=True)
    check_tensor("labels", labels, ndim=1)
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels has shape {tuple(labels.shape)} but scores has {tuple(scores.shape)}; they "
            "must match."
        )
    if labels.numel() and not ((labels == 1) | (labels == -1)).all():
        bad = sorted(set(labels.unique().tolist()) - {-1, 1})
        raise ValueError(
            f"labels must be -1 or +1 (two classes), got also {bad[:5]}; map 0/1 labels with 2 * y "
            "- 1."
        )
    margin = check_float("margin", margin, min_value=0.0, strict_min=True)
    return _reduce(torch.relu(margin - labels.to(scores.dtype) * scores), reduction)


def loss_curves(residual: torch.Tensor, *, delta: float = 1.0, margin: float = 1.0) -> dict:
    """Each loss as a function of one number, for plotting.

    MSE, MAE and Huber against the residual r = prediction - target; hinge against the
    signed score y f with margin m; cross-entropy (two classes) against the logit
    margin z_y - z_other; KL(one-hot || q) equals that cross-entropy. Returns name -> tensor.
    """
    check_tensor("residual", residual, ndim=1, floating=True)
    zero = torch.zeros_like(residual)
    ones = torch.ones_like(residual, dtype=torch.long)
    two_logits = torch.stack([zero, residual], 1)  # class 1 is the true one: margin = residual
    return {
        "MSE": mse_loss(residual, zero, "none"),
        "MAE": mae_loss(residual, zero, "none"),
        f"Huber (delta={delta:g})": huber_loss(residual, zero, delta, "none"),
        f"hinge (m={margin:g})": hinge_loss(residual, ones, margin, "none"),
        "cross-entropy = KL(one-hot || q)": cross_entropy(two_logits, ones, "none"),
    }


def plot_losses(*, delta: float = 1.0, margin: float = 1.0, lim: float = 3.0):
    """Matplotlib figure: the losses of :func:`loss_curves` (left) and their derivatives (right)."""
    import matplotlib.pyplot as plt

    lim = check_float("lim", lim, min_value=0.0, strict_min=True)
    r = torch.linspace(-lim, lim, 601, dtype=torch.float64, requires_grad=True)
    curves = loss_curves(r, delta=delta, margin=margin)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, v in curves.items():
        (g,) = torch.autograd.grad(v.sum(), r, retain_graph=True)
        style = "--" if name.startswith(("hinge", "cross")) else "-"
        axes[0].plot(r.detach(), v.detach(), style, label=name)
        axes[1].plot(r.detach(), g, style, label=name)
    axes[0].set(
        xlabel="residual r (MSE, MAE, Huber)  /  margin y f or z_y - z_other (hinge, CE)",
        ylabel="loss",
        ylim=(-0.1, min(lim**2, 5)),
        title="loss",
    )
    axes[1].set(
        xlabel="same horizontal axis", ylabel="d loss / d r", ylim=(-2.2, 2.2), title="gradient"
    )
    axes[0].legend(frameon=False, fontsize=8)
    for ax in axes:
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- networks and training

LOSSES = ("cross_entropy", "kl", "mse", "mae", "huber", "hinge")


class SupervisedLoss(nn.Module):
    """The last layer of a classifier plus its loss: a ``loss_fn`` for ``train.train``.

    loss : "cross_entropy" and "kl" (c outputs; "kl" uses label-smoothed targets,
        ``smoothing``, since with one-hot targets KL equals cross-entropy exactly);
        "mse", "mae", "huber" (ONE output neuron regressing the class index, the
        Guelph slides' single-output set-up); "hinge" (one output, two classes, labels
        0/1 are mapped to -1/+1, ``margin``).
    ``forward(z, labels)`` returns {"loss", "accuracy"}; ``predict(z)`` the class.
    """

    def __init__(
        self,
        loss: str,
        embedding_dim: int,
        num_classes: int = 10,
        *,
        delta: float = 1.0,
        margin: float = 1.0,
        smoothing: float = 0.1,
        bias: bool = True,
    ):
        super().__init__()
        self.loss = check_choice("loss", loss, LOSSES)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, min_value=1)
        self.num_classes = check_int("num_classes", num_classes, min_value=2)
        if loss == "hinge" and num_classes != 2:
            raise ValueError(
                f"loss='hinge' is the two-class hinge: num_classes must be 2, got {num_classes}."
            )
        self.delta = check_float("delta", delta, min_value=0.0, strict_min=True)
        self.margin = check_float("margin", margin, min_value=0.0, strict_min=True)
        self.smoothing = check_float("smoothing", smoothing, min_value=0.0, max_value=1.0)
        outputs = self.num_classes if loss in ("cross_entropy", "kl") else 1
        self.head = nn.Linear(self.embedding_dim, outputs, bias=bias)

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self._predict_from(self.head(z))

    def _predict_from(self, out: torch.Tensor) -> torch.Tensor:
        if self.loss in ("cross_entropy", "kl"):
            return out.argmax(1)
        if self.loss == "hinge":
            return (out.squeeze(1) > 0).long()
        return out.squeeze(1).round().clamp(0, self.num_classes - 1).long()

    def forward(self, z: torch.Tensor, labels: torch.Tensor):
        out = self.head(z.float())
        if self.loss == "cross_entropy":
            loss = cross_entropy(out, labels)
        elif self.loss == "kl":
            loss = kl_divergence(
                out, smooth_labels(labels, self.num_classes, self.smoothing).to(out.device)
            )
        elif self.loss == "hinge":
            loss = hinge_loss(out.squeeze(1), 2 * labels - 1, self.margin)
        else:
            fn = {
                "mse": mse_loss,
                "mae": mae_loss,
                "huber": lambda p, t: huber_loss(p, t, self.delta),
            }[self.loss]
            loss = fn(out.squeeze(1), labels.float())
        with torch.no_grad():
            acc = (self._predict_from(out.detach()) == labels).float().mean().item()
        return {"loss": loss, "accuracy": acc}


class Classifier(nn.Module):
    """backbone (x -> embedding f(x), the one-before-last layer) followed by the last layer.

    ``model(x)`` gives the outputs f_o(x); ``model.embed(x)`` the embedding that retrieval uses.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        if not isinstance(backbone, nn.Module) or not isinstance(head, nn.Module):
            raise TypeError("backbone and head must be torch.nn.Module instances.")
        self.backbone, self.head = backbone, head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def two_class_subset(labels: torch.Tensor, classes=(3, 5)):
    """Indices of the samples of two classes, and their labels remapped to 0 / 1."""
    check_tensor("labels", labels, ndim=1)
    if len(classes) != 2 or classes[0] == classes[1]:
        raise ValueError(f"classes must be two different labels, got {classes!r}.")
    a, b = (int(c) for c in classes)
    idx = torch.nonzero((labels == a) | (labels == b)).flatten()
    if len(idx) == 0:
        raise ValueError(f"no sample has label {a} or {b}.")
    return idx, (labels[idx] == b).long()


def norm_and_angle_stats(z: torch.Tensor, labels: torch.Tensor) -> dict:
    """For a 2-D embedding: how spread each class is along the radius and around the circle.

    radius_cv: mean over classes of std(||z||) / mean(||z||) within the class (0 = all on one
    circle); angle_std_deg: mean over classes of the circular std of the angle, in degrees;
    compactness: mean within-class distance to the class mean / mean distance between class means.
    """
    check_tensor("z", z, ndim=2, floating=True)
    check_tensor("labels", labels, ndim=1)
    if z.shape[1] != 2:
        raise ValueError(f"z must be 2-D embeddings (N, 2), got shape {tuple(z.shape)}.")
    if len(labels) != len(z):
        raise ValueError(f"z has {len(z)} rows but labels has {len(labels)}; they must match.")
    check_finite("z", z)
    classes = torch.unique(labels)
    r = z.norm(dim=1)
    u = z / r[:, None].clamp_min(1e-12)
    cv, ang, within, means = [], [], [], []
    for c in classes.tolist():  # one iteration per class (10), not per sample
        m = labels == c
        cv.append((r[m].std() / r[m].mean()).item())
        mean_u = u[m].mean(0).norm().clamp(1e-12, 1.0)
        ang.append(torch.rad2deg(torch.sqrt(-2 * torch.log(mean_u))).item())
        mu = z[m].mean(0)
        means.append(mu)
        within.append((z[m] - mu).norm(dim=1).mean().item())
    means = torch.stack(means)
    between = torch.pdist(means).mean().item()
    return {
        "radius_cv": sum(cv) / len(cv),
        "angle_std_deg": sum(ang) / len(ang),
        "compactness": (sum(within) / len(within)) / between,
    }
