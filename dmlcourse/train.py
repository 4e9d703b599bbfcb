"""The training loop shared by every notebook.

Taught in 00_start_here.

``train(model, loss_fn, images, labels, ...)`` trains ``model`` so that
``loss_fn(embeddings, labels)`` goes down. ``loss_fn`` returns a scalar tensor,
or a dict with a "loss" entry plus any scalars to log per step (e.g. the
fraction of active triplets). If ``loss_fn`` is an ``nn.Module`` with
parameters (a classification head, say), they are trained too.

It returns a :class:`History`: the loss of every step, metrics per epoch,
and (with ``probe``) the embeddings of a fixed probe set before training and
after every epoch, which later notebooks animate. Kernel > Interrupt stops
training and keeps everything trained so far.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ._validate import check_float, check_int, check_tensor
from .data import ClassBalancedBatchSampler, DeviceLoader
from .metrics import evaluate
from .models import embed
from .runtime import get_device, seed_everything


@dataclass
class History:
    """What a training run leaves behind.

    step_loss       loss of every optimisation step
    step_info       other per-step scalars returned by the loss (name -> list)
    epoch_metrics   one dict per finished epoch: epoch, loss (mean), seconds,
                    and precision_at_1 / map_at_r on ``eval_data`` if given
    snapshots       probe-set embeddings: [before training, after epoch 1, ...]
    probe_labels    labels of the probe set (if given)
    interrupted     True if training was stopped early (interrupt, stop request, NaN)
    message         why it stopped early, in words
    """

    step_loss: list = field(default_factory=list)
    step_info: dict = field(default_factory=dict)
    epoch_metrics: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    probe_labels: torch.Tensor | None = None
    interrupted: bool = False
    message: str = ""
    config: dict = field(default_factory=dict)

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_metrics)

    def metric(self, name: str) -> list:
        """The per-epoch values of one metric, e.g. ``history.metric("precision_at_1")``."""
        return [m.get(name, float("nan")) for m in self.epoch_metrics]

    def save(self, path) -> Path:
        """Write to ``path`` atomically (a temporary file, then a rename)."""
        return atomic_torch_save(asdict(self), path)

    @classmethod
    def load(cls, path) -> "History":
        return cls(**torch.load(path, map_location="cpu", weights_only=False))

    def plot(self, *, smooth: int = 20):
        """Loss per step (with a running mean) and the per-epoch metrics, in matplotlib."""
        import matplotlib.pyplot as plt

        has_metrics = any("precision_at_1" in m for m in self.epoch_metrics)
        fig, axes = plt.subplots(1, 2 if has_metrics else 1, figsize=(10 if has_metrics else 5, 3.2), squeeze=False)
        ax = axes[0, 0]
        loss = torch.tensor(self.step_loss, dtype=torch.float)
        ax.plot(loss.numpy(), lw=0.6, alpha=0.4, label="step")
        if len(loss) >= smooth > 1:
            running = torch.nn.functional.avg_pool1d(loss[None, None], smooth, 1).flatten()
            ax.plot(range(smooth - 1, len(loss)), running.numpy(), lw=1.5, label=f"mean of {smooth}")
        ax.set(xlabel="step", ylabel="loss", title="training loss")
        ax.legend(frameon=False)
        if has_metrics:
            ax = axes[0, 1]
            ep = [m["epoch"] for m in self.epoch_metrics]
            for name in ("precision_at_1", "map_at_r"):
                ax.plot(ep, self.metric(name), marker="o", label=name)
            ax.set(xlabel="epoch", ylim=(0, 1.02), title="retrieval on the evaluation set", xticks=ep)
            ax.legend(frameon=False)
        fig.tight_layout()
        return fig


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: a reader
    never sees a half-written file, and an interrupt leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def train(
    model: nn.Module,
    loss_fn: Callable,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    samples_per_class: int | None = None,
    name: str | None = None,
    eval_data: tuple | None = None,
    probe: torch.Tensor | None = None,
    probe_labels: torch.Tensor | None = None,
    device=None,
    seed: int = 0,
    progress: bool = True,
    max_steps: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch_end: Callable | None = None,
    history: History | None = None,
) -> History:
    """Train ``model`` with ``loss_fn(embeddings, labels)``; return a :class:`History`.

    Parameters
    ----------
    images, labels : training data (uint8 images are standardised with ``name``'s statistics).
    epochs : int, default 5.
    batch_size : int, default 128.
    lr, weight_decay : Adam's learning rate (default 1e-3) and weight decay (default 0).
    samples_per_class : None (default) for shuffled batches, or K for class-balanced
        batches of P = batch_size // K classes x K samples (needed by miners).
    name : dataset name ("mnist" or "fashion-mnist") for pixel standardisation.
    eval_data : optional (images, labels); Precision@1 and MAP@R on it after every epoch.
    probe : optional images whose embeddings are stored before training and after every epoch.
    device : default: :func:`dmlcourse.runtime.get_device`.
    seed : seeds the initial weights' RNG? No: seeds torch's RNG and the batch order.
        Build the model after :func:`seed_everything` for reproducible weights.
    max_steps : stop after this many steps in total (quick experiments).
    should_stop : called after every step; training ends when it returns True.
    on_epoch_end : called as ``on_epoch_end(history)`` after every epoch.
    history : continue an earlier history (appends to it).
    """
    epochs = check_int("epochs", epochs, min_value=0)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    check_tensor("images", images)
    check_tensor("labels", labels, ndim=1)
    if len(images) != len(labels):
        raise ValueError(f"images has {len(images)} entries but labels has {len(labels)}; they must match.")
    if len(images) == 0:
        raise ValueError("images is empty; there is nothing to train on.")
    if max_steps is not None:
        max_steps = check_int("max_steps", max_steps, min_value=1)
    if probe is not None:
        check_tensor("probe", probe)
        if len(probe) == 0:
            raise ValueError("probe is empty; give at least one image (or probe=None).")
    if eval_data is not None:
        if not (isinstance(eval_data, (tuple, list)) and len(eval_data) == 2):
            raise ValueError("eval_data must be a pair (images, labels).")
        if len(eval_data[0]) != len(eval_data[1]) or len(eval_data[0]) < 2:
            raise ValueError("eval_data must hold at least 2 images with one label each.")
    sampler = None
    if samples_per_class is not None:
        k = check_int("samples_per_class", samples_per_class, min_value=1)
        p = batch_size // k
        if p < 2:
            raise ValueError(
                f"batch_size={batch_size} is smaller than P x K = 2 x {k}: a class-balanced batch needs at "
                f"least 2 classes of samples_per_class={k}. Use batch_size >= {2 * k}."
            )
        if batch_size % k:
            raise ValueError(f"batch_size={batch_size} must be a multiple of samples_per_class={k}.")
        n_classes = len(torch.unique(labels))
        sampler = ClassBalancedBatchSampler(labels, min(p, n_classes), k, seed=seed)

    device = torch.device(device) if device is not None else get_device()
    seed_everything(seed)
    model.to(device)
    params = list(model.parameters())
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
        params += [p for p in loss_fn.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    loader = DeviceLoader(images, labels, batch_size=batch_size, device=device, sampler=sampler,
                          name=name, seed=seed)

    h = history if history is not None else History()
    h.config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                "samples_per_class": samples_per_class, "name": name, "seed": seed, "device": str(device)}
    if probe_labels is not None:
        h.probe_labels = probe_labels.detach().cpu()
    if probe is not None and not h.snapshots:
        h.snapshots.append(embed(model, probe, device=device, name=name))

    from tqdm.auto import tqdm

    total = epochs * len(loader) if max_steps is None else min(max_steps, epochs * len(loader))
    bar = tqdm(total=total, desc="training", disable=not progress, leave=True)
    step = 0
    try:
        for epoch in range(epochs):
            start, epoch_losses = time.perf_counter(), []
            model.train()
            for x, y in loader:
                out = loss_fn(model(x), y)
                info = {}
                if isinstance(out, dict):
                    info = {k: float(v) for k, v in out.items() if k != "loss"}
                    out = out["loss"]
                optimizer.zero_grad(set_to_none=True)
                out.backward()
                optimizer.step()
                value = out.item()
                h.step_loss.append(value)
                epoch_losses.append(value)
                for key, v in info.items():
                    h.step_info.setdefault(key, []).append(v)
                step += 1
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
                if not math.isfinite(value):
                    h.interrupted = True
                    h.message = (f"the loss became {value} at step {step} (epoch {epoch + 1}); training stopped. "
                                 "Try a smaller learning rate or margin.")
                    warnings.warn(h.message, RuntimeWarning, stacklevel=2)
                    return h
                if (max_steps is not None and step >= max_steps) or (should_stop is not None and should_stop()):
                    h.interrupted = max_steps is None or step < total
                    if should_stop is not None and h.interrupted:
                        h.message = f"stopped on request after {step} steps."
                    break
            record = {"epoch": h.epochs_done + 1, "loss": sum(epoch_losses) / max(len(epoch_losses), 1),
                      "seconds": time.perf_counter() - start}
            if eval_data is not None:
                emb = embed(model, eval_data[0], device=device, name=name)
                record.update(evaluate(emb, eval_data[1].cpu()))
            h.epoch_metrics.append(record)
            if probe is not None:
                h.snapshots.append(embed(model, probe, device=device, name=name))
            if on_epoch_end is not None:
                on_epoch_end(h)
            if h.interrupted or (max_steps is not None and step >= max_steps):
                break
    except KeyboardInterrupt:
        h.interrupted = True
        h.message = (f"interrupted after {step} steps ({h.epochs_done} full epochs); "
                     "the model and this history keep what was trained.")
        print("dmlcourse:", h.message)
    finally:
        bar.close()
    model.eval()
    return h
