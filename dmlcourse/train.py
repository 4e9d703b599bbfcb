"""The training loop shared by every notebook.

Taught in 00_start_here.

``fit_epoch(model, loss_fn, batches, optimizer)`` is the loop itself: one pass over the
batches, one optimisation step per batch. ``train(model, loss_fn, images, labels, ...)``
repeats it for some epochs and trains ``model`` so that
``loss_fn(embeddings, labels)`` goes down. ``loss_fn`` returns a scalar tensor,
or a dict with a "loss" entry plus any scalars to log per step (e.g. the
fraction of active triplets). If ``loss_fn`` is an ``nn.Module`` with
parameters (a classification head, say), they are trained too.

It returns a :class:`History`: the loss of every step, metrics per epoch,
and (with ``probe``) the embeddings of a fixed probe set before training and
after every epoch, which later notebooks animate. Kernel > Interrupt stops
training and keeps everything trained so far.

A diverged network stops training with a message that names what went NaN or infinite (the
loss, the embeddings or the weights: ``History.diverged``), the step, and the usual fixes: after
every step the loop checks all three, in one synchronisation (``TrainingMonitor.non_finite``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .core.io import atomic_torch_save
from .core.validate import (
    NonFiniteError,
    all_finite,
    check_float,
    check_images_labels,
    check_int,
    check_tensor,
)
from .data import ClassBalancedBatchSampler, DeviceLoader
from .metrics import evaluate
from .models import embed
from .runtime import get_device, seed_everything

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: matplotlib.


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
    diverged        what became NaN or infinite ("loss", "embeddings", "weights"), or ""
    """

    step_loss: list = field(default_factory=list)
    step_info: dict = field(default_factory=dict)
    epoch_metrics: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    probe_labels: torch.Tensor | None = None
    interrupted: bool = False
    message: str = ""
    config: dict = field(default_factory=dict)
    diverged: str = ""

    def log_step(self, loss: float, info: dict | None = None) -> float:
        """Record one step: its loss and any other scalars the loss returned."""
        self.step_loss.append(loss)
        for key, value in (info or {}).items():
            self.step_info.setdefault(key, []).append(value)
        return loss

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
        fig, axes = plt.subplots(
            1, 2 if has_metrics else 1, figsize=(10 if has_metrics else 5, 3.2), squeeze=False
        )
        ax = axes[0, 0]
        loss = torch.tensor(self.step_loss, dtype=torch.float)
        ax.plot(loss.numpy(), lw=0.6, alpha=0.4, label="step")
        if len(loss) >= smooth > 1:
            running = torch.nn.functional.avg_pool1d(loss[None, None], smooth, 1).flatten()
            ax.plot(
                range(smooth - 1, len(loss)), running.numpy(), lw=1.5, label=f"mean of {smooth}"
            )
        ax.set(xlabel="step", ylabel="loss", title="training loss")
        ax.legend(frameon=False)
        if has_metrics:
            ax = axes[0, 1]
            ep = [m["epoch"] for m in self.epoch_metrics]
            for name in ("precision_at_1", "map_at_r"):
                ax.plot(ep, self.metric(name), marker="o", label=name)
            ax.set(
                xlabel="epoch", ylim=(0, 1.02), title="retrieval on the evaluation set", xticks=ep
            )
            ax.legend(frameon=False)
        fig.tight_layout()
        return fig


def fit_epoch(
    model: nn.Module,
    loss_fn: Callable,
    batches,
    optimizer,
    *,
    history: History | None = None,
    on_step: Callable | None = None,
) -> float:
    """One epoch: for every batch, embed it, compute the loss, back-propagate, step.

    ``loss_fn(embeddings, labels)`` returns a scalar, or a dict with a "loss" entry and other
    scalars to log. Every step is recorded in ``history``; ``on_step(history)`` returning True
    ends the epoch early. Returns the epoch's mean loss.
    """
    history = history if history is not None else History()
    model.train()
    losses = []
    for x, y in batches:
        out = loss_fn(model(x), y)
        info = {k: float(v) for k, v in out.items() if k != "loss"} if isinstance(out, dict) else {}
        loss = out["loss"] if isinstance(out, dict) else out
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(history.log_step(loss.item(), info))
        if on_step is not None and on_step(history):
            break
    return sum(losses) / max(len(losses), 1)


class Diverged(RuntimeError):
    """A step whose loss or embeddings are NaN or infinite: ``(what, cause in words)``."""


class TrainingMonitor:
    """What happens around :func:`fit_epoch` in :func:`train`: the progress bar, the stop
    rules (a non-finite loss, ``max_steps``, ``should_stop()``) and the per-epoch record
    (evaluation, probe snapshot, ``on_epoch_end(history)``)."""

    def __init__(
        self,
        history: History,
        total: int,
        *,
        params: list | None = None,
        progress: bool = True,
        max_steps: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_epoch_end: Callable | None = None,
        embed_probe: Callable | None = None,
        evaluate_epoch: Callable | None = None,
    ):
        self.history, self.total = history, total
        self.max_steps, self.should_stop, self.on_epoch_end = max_steps, should_stop, on_epoch_end
        self.embed_probe, self.evaluate_epoch = embed_probe, evaluate_epoch
        self.bar = tqdm(total=total, desc="training", disable=not progress, leave=True)
        self.step = 0
        self.epoch = 0
        self.diverged = False
        self.finished = False  # True once no further epoch should run
        self.params = list(params or [])

    def watch(self, loss_fn: Callable) -> Callable:
        """``loss_fn`` checked before the update: a step whose loss or embeddings are NaN or
        infinite raises :class:`Diverged` before ``backward()``, so the weights keep the last
        finite values. One sum per output and one synchronisation (which ``loss.item()`` would
        make a moment later anyway); the weights are only looked at when something failed."""

        def watched(outputs, labels):
            tensors = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
            tensors = [t.detach() for t in tensors if isinstance(t, torch.Tensor)]
            try:
                out = loss_fn(outputs, labels)
            except NonFiniteError as e:  # a miner refuses NaN embeddings
                raise Diverged(*self._diagnose("embeddings", str(e).split(";")[0])) from None
            loss = (out["loss"] if isinstance(out, dict) else out).detach()
            value = loss.item()  # one item() each: cheaper than stacking a few tensors
            outputs_finite = all(all_finite(t) for t in tensors)
            name = "NaN" if math.isnan(value) else f"{value:.4g}"
            if not outputs_finite:
                raise Diverged(*self._diagnose("embeddings", f"the loss was {name}"))
            if not math.isfinite(value):
                raise Diverged("loss", f"the loss became {name} at {self._where()}")
            return out

        return watched

    def _where(self, step: int | None = None) -> str:
        return f"step {step or self.step + 1} (epoch {self.epoch + 1})"

    def weights_finite(self) -> bool:
        return all(all_finite(p) for p in self.params)

    def _diagnose(self, what: str, detail: str) -> tuple[str, str]:
        """Non-finite embeddings at this step: were the weights already so (then the last update
        broke them) or did the forward pass overflow with finite weights?"""
        if not self.weights_finite():
            last = self.history.step_loss[-1] if self.history.step_loss else float("nan")
            return "weights", (
                f"the weights became NaN or infinite in the update of {self._where(self.step)}, "
                f"whose loss was finite ({last:.4g}): the gradient overflowed"
            )
        return what, f"the {what} became NaN or infinite at {self._where()} ({detail})"

    def stop_diverged(self, what: str, cause: str) -> None:
        h = self.history
        self.diverged = self.finished = h.interrupted = True
        h.diverged = what
        h.message = (
            f"{cause}; training stopped before its update, so the weights keep their last finite "
            "values. Try a smaller learning rate or margin, or float32 instead of float16."
        )
        warnings.warn(h.message, RuntimeWarning, stacklevel=4)

    def after_step(self, h: History) -> bool:
        """Called by :func:`fit_epoch` after every step; True ends the epoch."""
        self.step += 1
        value = h.step_loss[-1]
        self.bar.update(1)
        if self.step % 10 == 0:
            self.bar.set_postfix(epoch=self.epoch + 1, loss=f"{value:.4f}")
        max_steps, should_stop = self.max_steps, self.should_stop
        if (max_steps is not None and self.step >= max_steps) or (
            should_stop is not None and should_stop()
        ):
            h.interrupted = max_steps is None or self.step < self.total
            if should_stop is not None and h.interrupted:
                h.message = f"stopped on request after {self.step} steps."
            self.finished = True
            return True
        return False

    def after_epoch(self, mean_loss: float, seconds: float) -> None:
        """Record the epoch that just ended (unless the loss diverged in it)."""
        h = self.history
        self.epoch += 1
        if self.diverged:
            return
        if not self.weights_finite():  # the epoch's last update (the next step would tell)
            self.epoch -= 1
            self.stop_diverged(
                "weights",
                f"the weights became NaN or infinite in the update of "
                f"{self._where(self.step)}: the gradient overflowed",
            )
            return
        record = {"epoch": h.epochs_done + 1, "loss": mean_loss, "seconds": seconds}
        if self.evaluate_epoch is not None:
            try:
                record.update(self.evaluate_epoch())
            except NonFiniteError as e:  # finite in training mode, not in eval mode
                self.epoch -= 1
                self.stop_diverged(
                    "embeddings",
                    f"the evaluation embeddings after "
                    f"{self._where(self.step)} are not finite ({e})",
                )
                return
        h.epoch_metrics.append(record)
        if self.embed_probe is not None:
            h.snapshots.append(self.embed_probe())
        if self.on_epoch_end is not None:
            self.on_epoch_end(h)
        self.finished = self.finished or h.interrupted

    def interrupted(self) -> None:
        h = self.history
        h.interrupted = True
        h.message = (
            f"interrupted after {self.step} steps ({h.epochs_done} full epochs); "
            "the model and this history keep what was trained."
        )
        print("dmlcourse:", h.message)


def _check_data(images, labels, eval_data, probe) -> None:
    check_images_labels(images, labels, why="there is nothing to train on")
    if probe is not None:
        check_tensor("probe", probe)
        if len(probe) == 0:
            raise ValueError("probe is empty; give at least one image (or probe=None).")
    if eval_data is not None:
        if not (isinstance(eval_data, (tuple, list)) and len(eval_data) == 2):
            raise ValueError("eval_data must be a pair (images, labels).")
        if len(eval_data[0]) != len(eval_data[1]) or len(eval_data[0]) < 2:
            raise ValueError("eval_data must hold at least 2 images with one label each.")


def class_balanced_sampler(
    labels: torch.Tensor, batch_size: int, samples_per_class: int, *, seed: int = 0
) -> ClassBalancedBatchSampler:
    """P x K batches for ``train(..., samples_per_class=K)``: P = batch_size // K classes."""
    check_tensor("labels", labels, ndim=1)
    k = check_int("samples_per_class", samples_per_class, min_value=1)
    p = batch_size // k
    if p < 2:
        raise ValueError(
            f"batch_size={batch_size} is smaller than P x K = 2 x {k}: a class-balanced batch "
            "needs "
            f"at least 2 classes of samples_per_class={k}. Use batch_size >= {2 * k}."
        )
    if batch_size % k:
        raise ValueError(f"batch_size={batch_size} must be a multiple of samples_per_class={k}.")
    n_classes = len(torch.unique(labels))
    return ClassBalancedBatchSampler(labels, min(p, n_classes), k, seed=seed)


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
    """Train ``model`` with ``loss_fn(embeddings, labels)`` (Adam, :func:`fit_epoch` per epoch).

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
    seed : seeds torch's RNG and the batch order (not the initial weights: build the
        model after :func:`seed_everything` for reproducible weights).
    max_steps, should_stop, on_epoch_end, history : hooks for the Lab and the benchmarks,
        handled by :class:`TrainingMonitor`: stop after ``max_steps`` steps in total; stop
        when ``should_stop()`` (called after every step) returns True; call
        ``on_epoch_end(history)`` after every epoch; append to an earlier ``history``.
    """
    epochs = check_int("epochs", epochs, min_value=0)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    _check_data(images, labels, eval_data, probe)
    if max_steps is not None:
        max_steps = check_int("max_steps", max_steps, min_value=1)
    sampler = None
    if samples_per_class is not None:
        sampler = class_balanced_sampler(labels, batch_size, samples_per_class, seed=seed)

    device = torch.device(device) if device is not None else get_device()
    seed_everything(seed)
    model.to(device)
    params = list(model.parameters())
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)
        params += [p for p in loss_fn.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    loader = DeviceLoader(
        images, labels, batch_size=batch_size, device=device, sampler=sampler, name=name, seed=seed
    )

    h = history if history is not None else History()
    h.config = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "samples_per_class": samples_per_class,
        "name": name,
        "seed": seed,
        "device": str(device),
    }
    if probe_labels is not None:
        h.probe_labels = probe_labels.detach().cpu()
    embed_probe = None if probe is None else (lambda: embed(model, probe, device=device, name=name))
    if embed_probe is not None and not h.snapshots:
        h.snapshots.append(embed_probe())
    evaluate_epoch = (
        None
        if eval_data is None
        else (
            lambda: evaluate(
                embed(model, eval_data[0], device=device, name=name), eval_data[1].cpu()
            )
        )
    )

    total = epochs * len(loader) if max_steps is None else min(max_steps, epochs * len(loader))
    # a keyword list (one a line, as ruff formats long calls): alike in shape to others, not logic
    monitor = TrainingMonitor(
        h,
        total,
        params=params,
        progress=progress,
        max_steps=max_steps,
        should_stop=should_stop,
        on_epoch_end=on_epoch_end,
        embed_probe=embed_probe,
        evaluate_epoch=evaluate_epoch,
    )
    try:
        for _ in range(epochs):
            start = time.perf_counter()
            mean_loss = fit_epoch(
                model,
                monitor.watch(loss_fn),
                loader,
                optimizer,
                history=h,
                on_step=monitor.after_step,
            )
            monitor.after_epoch(mean_loss, time.perf_counter() - start)
            if monitor.finished:
                break
    except Diverged as e:  # raised by monitor.watch before the update of the failing step
        monitor.stop_diverged(*e.args)
    except KeyboardInterrupt:
        monitor.interrupted()
    finally:
        monitor.bar.close()
    model.eval()
    return h
