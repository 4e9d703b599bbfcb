"""One Lab run without widgets: train a :class:`LabConfig` (or load it from the cache) and lay
out its probe snapshots — what the widget, the tests and the benchmark use.

Taught in 05_siamese_triplet, 06_mining_sampling and 07_angular_margins (with the Lab).

:func:`run_lab` returns a :class:`LabRun`. A finished run is stored with the package's one
cache (:func:`dmlcourse.core.cache.cached`, under ``<cache dir>/lab/``); a run that stopped
early is not. :class:`LabRunner` holds the state of one training run: the stop rules it adds
to :func:`dmlcourse.train.train` (divergence, nothing active, a stop request) and the
per-epoch metrics and layouts.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import data, heads, miners, models, siamese
from ..core.cache import cache_path, cached
from ..core.paths import cache_dir
from ..core.validate import check_int
from ..metrics import evaluate
from ..runtime import get_device, seed_everything
from ..train import History
from ..train import train as train_loop
from .config import MARGINS, LabConfig, distance_for
from .layouts import next_layout

CACHE_NAME = "lab/run"  # runs are files <cache dir>/lab/run-<hash of the configuration>.pt
# this many steps in a row (at most one epoch) without an active triplet/pair end the run
INACTIVE_STEPS = 20
DIVERGENCE = 1e3  # a step loss this many times the initial one (or NaN) ends the run: it diverged


@dataclass
class LabRun:
    """The result of one lab run.

    snapshots   (epochs_done + 1, N, D) probe embeddings: before training, after each epoch
    layouts     (epochs_done + 1, N, 2) aligned 2-D layouts of the snapshots
    probe_metrics  one dict per snapshot: precision_at_1, map_at_r (probe set against itself)
    """

    config: dict
    probe_index: torch.Tensor
    probe_labels: torch.Tensor
    snapshots: torch.Tensor
    layouts: np.ndarray
    probe_metrics: list
    step_loss: list
    step_info: dict
    epoch_metrics: list
    interrupted: bool = False
    failed: bool = False  # True when the configuration could not train (diverged, nothing active)
    message: str = ""
    seconds: dict = field(default_factory=dict)
    from_cache: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.layouts) - 1

    def metric(self, name: str) -> list:
        """Per-snapshot values of precision_at_1 / map_at_r (index 0 = before training)."""
        return [m.get(name, float("nan")) for m in self.probe_metrics]

    def active_fraction(self) -> list:
        """Mean fraction of active triplets (pairs) per epoch; empty if the loss does not log it."""
        return [m["active_fraction"] for m in self.epoch_metrics if "active_fraction" in m]


# --------------------------------------------------------------------------- data, model, loss

_DATA: dict = {}


def load_split(dataset: str, split: str, size: str):
    """``data.load``, kept in memory for the session: the Lab loads the same splits many times."""
    key = (dataset, split, size)
    if key not in _DATA:
        _DATA[key] = data.load(dataset, split, size)
    return _DATA[key]


def probe_set(dataset: str, size: str = "mini", per_class: int = 100, *, seed: int = 0):
    """The fixed, class-balanced probe set: (indices into the test split, images, labels)."""
    te = load_split(dataset, "test", size)
    idx = data.balanced_subset(te.labels, check_int("per_class", per_class, min_value=1), seed=seed)
    return idx, te.images[idx], te.labels[idx]


def make_model(config: LabConfig) -> torch.nn.Module:
    """The network of a run (seeded by ``config.seed``): an MLP (fast on a CPU) or the SmallCNN.

    The triplet loss works on L2-normalised embeddings, as in 05_siamese_triplet and
    06_mining_sampling."""
    c = config.normalized()
    seed_everything(c.seed)
    normalize = c.loss == "triplet"
    if c.network == "cnn":
        return models.SmallCNN(c.embedding_dim, normalize=normalize)
    return models.MLP(c.embedding_dim, hidden=(256,), normalize=normalize)


def make_loss(config: LabConfig, num_classes: int = 10) -> torch.nn.Module:
    """The ``loss_fn`` of a run, from the package's losses, miners and heads."""
    c = config.normalized()
    if c.loss == "triplet" and c.miner == "easy_positive":  # the Lab trains eq. 19 (no margin)
        return miners.MinedTripletLoss(
            "easy_positive", None, loss="easy_positive_softmax", seed=c.seed
        )
    if c.loss == "triplet":
        return miners.MinedTripletLoss(c.miner, c.margin, loss="triplet", seed=c.seed)
    if c.loss == "contrastive":
        return siamese.make_batch_loss("contrastive", margin=c.margin)
    if c.loss == "nca":
        return siamese.make_batch_loss("nca")
    kwargs = {}
    if c.loss in MARGINS:
        kwargs["margin"] = int(c.margin) if c.loss == "sphereface" else c.margin
    return heads.HeadLoss(heads.make_head(c.loss, c.embedding_dim, num_classes, **kwargs))


_WARM_TRAIN: dict = {"thread": None, "seconds": None}


def warm_up_training(background: bool = True):
    """Pay torch's one-time costs of a first training step once per process, before Train.

    The first ``torch.optim.Adam(...)`` of a process imports ``torch._dynamo`` (1-2 s on an idle
    CPU, far more on a busy one); without this, a learner's first click waits for it before the
    first epoch. Runs in a background thread (``background=False`` waits for it); returns it.
    """
    if not isinstance(background, bool):
        raise TypeError(f"background must be True or False, got {background!r}.")

    def work():
        t0 = time.perf_counter()
        model = torch.nn.Linear(4, 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model(torch.zeros(3, 4)).sum().backward()
        optimizer.step()
        _WARM_TRAIN["seconds"] = time.perf_counter() - t0

    if _WARM_TRAIN["thread"] is None:
        _WARM_TRAIN["thread"] = threading.Thread(
            target=work, daemon=True, name="dmlcourse-train-warm-up"
        )
        _WARM_TRAIN["thread"].start()
    if not background:
        _WARM_TRAIN["thread"].join()
    return _WARM_TRAIN["thread"]


# --------------------------------------------------------------------------- one run


def lab_cache_dir() -> Path:
    """Where lab runs are cached: ``<cache dir>/lab`` (safe to delete)."""
    return cache_dir() / "lab"


def run_path(config: LabConfig) -> Path:
    """The cache file of ``config``'s run."""
    return cache_path(CACHE_NAME, asdict(config.normalized()))


class LabRunner:
    """One training run of the Lab.

    ``stop_now`` (after every step) and ``epoch_end`` (after every epoch) are the hooks it gives
    :func:`dmlcourse.train.train`; they share this object's attributes: the history, the
    layouts and metrics so far, the count of steps without an active triplet, why it stopped.
    """

    def __init__(
        self,
        config: LabConfig,
        *,
        device=None,
        should_stop: Callable[[], bool] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        on_epoch: Callable[[LabRun], None] | None = None,
    ):
        c = self.config = config.normalized()
        self.device = torch.device(device) if device is not None else get_device(verbose=False)
        self.should_stop, self.on_step, self.on_epoch = should_stop, on_step, on_epoch
        self.t_start = time.perf_counter()
        tr = load_split(c.dataset, "train", c.size)
        if c.train_per_class is not None:
            keep = data.balanced_subset(tr.labels, c.train_per_class, seed=c.seed)
            self.x_train, self.y_train = tr.images[keep], tr.labels[keep]
        else:
            self.x_train, self.y_train = tr.images, tr.labels
        self.probe_index, self.probe_images, self.probe_labels = probe_set(
            c.dataset, c.size, c.probe_per_class
        )
        self.k = min(c.samples_per_class, c.batch_size // 2)
        self.batch_size = (c.batch_size // self.k) * self.k
        self.model = make_model(c)
        self.loss_fn = make_loss(c, num_classes=int(self.y_train.max()) + 1)
        self.distance = distance_for(c.loss)
        n_classes = len(torch.unique(self.y_train))
        sampler = data.ClassBalancedBatchSampler(
            self.y_train, min(self.batch_size // self.k, n_classes), self.k
        )
        self.total = c.epochs * len(sampler)
        self.patience = max(1, min(INACTIVE_STEPS, self.total // c.epochs))

        self.history = History()
        self.layouts: list = []
        self.probe_metrics: list = []
        self.seconds = {"train": 0.0, "layout": 0.0, "metrics": 0.0}
        self.inactive = 0  # steps in a row without an active triplet/pair
        self.reason = ""  # why training stopped early, in words
        self.failed = False
        self.epoch_start_step = 0
        self.t_epoch = time.perf_counter()

    def add_snapshot(self, z: torch.Tensor) -> None:
        """Probe metrics and the aligned layout of one snapshot."""
        c = self.config
        t0 = time.perf_counter()
        self.probe_metrics.append(evaluate(z, self.probe_labels, distance=self.distance))
        t1 = time.perf_counter()
        previous = self.layouts[-1] if self.layouts else None
        self.layouts.append(next_layout(z, previous, loss=c.loss, method=c.layout, seed=c.seed))
        self.seconds["metrics"] += t1 - t0
        self.seconds["layout"] += time.perf_counter() - t1

    def partial(self) -> LabRun:
        """The run so far (what the widget shows after every epoch)."""
        h = self.history
        return LabRun(
            config=asdict(self.config),
            probe_index=self.probe_index,
            probe_labels=self.probe_labels,
            snapshots=torch.stack(h.snapshots[: len(self.layouts)]),
            layouts=np.stack(self.layouts),
            probe_metrics=list(self.probe_metrics),
            step_loss=list(h.step_loss),
            step_info={k: list(v) for k, v in h.step_info.items()},
            epoch_metrics=list(h.epoch_metrics),
            interrupted=h.interrupted,
            message=h.message,
            seconds=dict(self.seconds),
        )

    def _stop(self, reason: str, *, failed: bool) -> bool:
        self.reason, self.failed = reason, failed
        return True

    def stop_now(self) -> bool:
        """After every step: True ends training (divergence, nothing active, a stop request)."""
        h = self.history
        step = len(h.step_loss)
        if self.on_step is not None:
            self.on_step(step, self.total)
        # initial: the loss of the untrained network
        value, initial = h.step_loss[-1], h.step_loss[0]
        if value > DIVERGENCE * max(1.0, abs(initial)):
            return self._stop(
                f"the loss exploded from {initial:.3g} to {value:.3g} at step {step}: training "
                "diverged. Try a smaller learning rate. The picture shows the network where it "
                "stopped.",
                failed=True,
            )
        active = h.step_info.get("active_fraction")
        if active is not None and len(active) == step:
            self.inactive = self.inactive + 1 if active[-1] == 0 else 0
            if self.inactive >= self.patience:
                return self._stop(
                    f"no triplet or pair was active for {self.patience} steps in a row (step "
                    f"{step}): the loss is 0, so nothing is learned. Change the margin or the "
                    "miner (semi-hard needs a margin > 0).",
                    failed=True,
                )
        if self.should_stop is not None and self.should_stop():
            return self._stop(
                f"stopped on request after {step} of {self.total} steps; the result keeps what "
                "was trained.",
                failed=False,
            )
        return False

    def epoch_end(self, h: History) -> None:
        """After every epoch: the epoch's active fraction and step count, metrics and layout."""
        self.seconds["train"] += time.perf_counter() - self.t_epoch
        rec = h.epoch_metrics[-1]
        first, last = self.epoch_start_step, len(h.step_loss)
        active = h.step_info.get("active_fraction", [])[first:last]
        if active:
            rec["active_fraction"] = float(np.mean(active))
        rec["steps"] = last - first
        self.epoch_start_step = last
        self.add_snapshot(h.snapshots[-1])
        if self.on_epoch is not None:
            self.on_epoch(self.partial())
        self.t_epoch = time.perf_counter()

    def run(self) -> LabRun:
        """Train, and return the run (``interrupted`` with a ``message`` if it stopped early)."""
        c, h, device = self.config, self.history, self.device
        threads = torch.get_num_threads()
        try:
            if device.type == "cpu":
                # a small network on a (shared) CPU: one thread beats two that wait for each other
                torch.set_num_threads(1)
            h.snapshots.append(
                models.embed(
                    self.model.to(device), self.probe_images, device=device, name=c.dataset
                )
            )
            self.add_snapshot(h.snapshots[0])
            if self.on_epoch is not None:
                self.on_epoch(self.partial())
            self.t_epoch = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                train_loop(
                    self.model,
                    self.loss_fn,
                    self.x_train,
                    self.y_train,
                    epochs=c.epochs,
                    batch_size=self.batch_size,
                    lr=c.lr,
                    samples_per_class=self.k,
                    name=c.dataset,
                    probe=self.probe_images,
                    probe_labels=self.probe_labels,
                    device=device,
                    seed=c.seed,
                    progress=False,
                    should_stop=self.stop_now,
                    on_epoch_end=self.epoch_end,
                    history=h,
                )
        finally:
            torch.set_num_threads(threads)
        if self.reason:
            h.interrupted, h.message = True, self.reason
        elif h.interrupted and h.diverged:
            self.failed = True
            h.message = (
                f"{h.message.split('; ')[0]}: training diverged. Try a smaller learning rate. "
                "The epochs finished before are shown."
            )
        self.seconds["total"] = time.perf_counter() - self.t_start
        run = self.partial()
        run.failed = self.failed
        return run


def _from_cache(config: dict):
    """The ``check`` for :func:`cached`: a stored run of exactly this configuration."""

    def check(stored) -> LabRun:
        if not isinstance(stored, LabRun) or stored.config != config:
            raise ValueError("the file holds another configuration")
        stored.from_cache = True
        return stored

    return check


def run_lab(
    config: LabConfig,
    *,
    use_cache: bool = True,
    device=None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[LabRun], None] | None = None,
) -> LabRun:
    """Train ``config`` or load it from the cache (``from_cache`` set); lay out its probe snapshots.

    should_stop : called after every step; True ends training after that step (keeping what it did).
    on_step(step, total) : progress; on_epoch(partial_run) : after every epoch (for live display).
    use_cache=False trains even if the run is cached (and stores the new run).
    A run that stops early (stop request, NaN loss, nothing active) is returned with ``interrupted``
    and a ``message`` and is not cached.
    """
    if not isinstance(config, LabConfig):
        raise TypeError(f"config must be a LabConfig, got {type(config).__name__}.")
    c = config.normalized()
    key = asdict(c)

    def compute() -> LabRun:
        return LabRunner(
            c, device=device, should_stop=should_stop, on_step=on_step, on_epoch=on_epoch
        ).run()

    return cached(
        CACHE_NAME, key, compute, refresh=not use_cache, check=_from_cache(key), warn_partial=False
    )
