"""The Embedding Lab: change the loss, the miner and the margin, train, and watch the embedding move.

Taught in 05_siamese_triplet (losses), 06_mining_sampling (miners) and 07_angular_margins (heads).

``EmbeddingLab(...)`` is an ipywidgets box. Pick a configuration with the controls
and press **Train**: a network is trained with ``train.train`` and, after every
epoch, a fixed class-balanced *probe set* of test images is embedded and laid out
in 2-D with UMAP. The epoch slider (and its play button) moves the points from one
epoch's layout to the next; the layouts are aligned so that a point whose embedding
did not change stays where it was (each epoch's UMAP starts from the previous
epoch's layout, see :func:`chain_layouts`). Beside the picture: the loss curve,
Precision@1 and MAP@R of the probe set per epoch and the fraction of active
triplets (pairs) per epoch.

"Keep this run" pins a result; kept runs are shown side by side with a metrics
table. A finished run is saved in ``cache.cache_dir() / "lab"`` (atomic writes,
safe to delete) and the same configuration is shown from there at once.

The pieces work without widgets too (what the tests and the benchmark use):
:class:`LabConfig` describes a run, :func:`run_lab` trains it (or loads it from the
cache) and returns a :class:`LabRun`.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import data, heads, miners, models, siamese
from .core.validate import check_choice, check_float, check_int
from .metrics import evaluate
from .plots import PALETTE, image_to_data_uri, project_2d
from .runtime import get_device, seed_everything
from .train import History, atomic_torch_save
from .train import train as train_loop

CACHE_VERSION = 1  # bump when a change makes old cached runs wrong

METRIC_LOSSES = ("contrastive", "triplet", "nca")
HEAD_LOSSES = tuple(heads.HEADS)  # softmax, normface, sphereface, cosface, arcface
LOSSES = METRIC_LOSSES + HEAD_LOSSES
MINERS = tuple(miners.MINERS)
NETWORKS = ("mlp", "cnn")
EMBEDDING_DIMS = (2, 8, 16, 32, 64, 128)

# margin slider per loss: (min, max, step, default). SphereFace's margin is the integer m of cos(m theta).
MARGINS = {
    "contrastive": (0.0, 2.0, 0.05, 1.0),
    "triplet": (0.0, 1.0, 0.01, 0.2),
    "sphereface": (1.0, 4.0, 1.0, 4.0),
    "cosface": (0.0, 0.6, 0.05, 0.35),
    "arcface": (0.0, 1.0, 0.05, 0.5),
}
ANGULAR = ("normface", "sphereface", "cosface", "arcface")  # compared with the cosine


def uses_miner(loss: str) -> bool:
    """Only the triplet loss picks its triplets with a miner."""
    return loss == "triplet"


def uses_margin(loss: str, miner: str | None = None) -> bool:
    """Losses with a margin; the easy-positive "miner" replaces the hinge by a softmax, so it has none."""
    return loss in MARGINS and not (loss == "triplet" and miner == "easy_positive")


def distance_for(loss: str) -> str:
    """The distance the retrieval metrics use: cosine for the angular heads, Euclidean otherwise."""
    return "cosine" if loss in ANGULAR else "euclidean"


@dataclass(frozen=True)
class LabConfig:
    """Everything that determines a lab run (and so its cache key).

    Settings that do not apply to the loss are stored as None (``normalized()``),
    so that, say, NCA runs with different margin slider positions share one cache file.
    """

    dataset: str = "mnist"
    size: str = "mini"
    loss: str = "triplet"
    miner: str | None = "batch_semi_hard"
    margin: float | None = None  # None: the loss's usual margin (MARGINS)
    embedding_dim: int = 32
    epochs: int = 5
    lr: float = 2e-3
    seed: int = 0
    network: str = "mlp"
    batch_size: int = 128
    samples_per_class: int = 16
    train_per_class: int | None = None  # None: every training image of ``size``
    probe_per_class: int = 100
    layout: str = "chain"  # how epochs' pictures are aligned: "chain", "procrustes" or "pca" (see next_layout)

    def normalized(self) -> "LabConfig":
        """Check every field and blank the ones that do not apply to the loss."""
        check_choice("dataset", self.dataset, data.DATASETS)
        check_choice("size", self.size, ("mini", "full"))
        check_choice("loss", self.loss, LOSSES)
        check_choice("network", self.network, NETWORKS)
        check_int("embedding_dim", self.embedding_dim, min_value=1)
        check_int("epochs", self.epochs, min_value=1)
        check_float("lr", self.lr, min_value=0.0, strict_min=True)
        check_int("seed", self.seed, min_value=0)
        check_int("batch_size", self.batch_size, min_value=4)
        check_int("samples_per_class", self.samples_per_class, min_value=2)
        check_int("probe_per_class", self.probe_per_class, min_value=2)
        check_choice("layout", self.layout, ("chain", "procrustes", "pca"))
        if self.train_per_class is not None:
            check_int("train_per_class", self.train_per_class, min_value=2)
        miner = self.miner if uses_miner(self.loss) else None
        if miner is not None:
            check_choice("miner", miner, MINERS)
        elif uses_miner(self.loss):
            raise ValueError("miner=None is not allowed with loss='triplet'; choose one of " f"{sorted(MINERS)}.")
        margin = None
        if uses_margin(self.loss, miner):
            lo, hi, _, default = MARGINS[self.loss]
            margin = default if self.margin is None else check_float("margin", self.margin, min_value=0.0)
            if self.loss == "sphereface":
                margin = float(check_int("margin", int(round(margin)), min_value=1, max_value=int(hi)))
        return replace(self, miner=miner, margin=margin, lr=float(self.lr))

    def key(self) -> str:
        """A short hash of the (normalised) configuration: the cache file's name."""
        text = json.dumps({"v": CACHE_VERSION, **asdict(self.normalized())}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        c = self.normalized()
        parts = [c.loss] + ([c.miner] if c.miner else []) + ([f"m={c.margin:g}"] if c.margin is not None else [])
        return " · ".join(parts + [f"d={c.embedding_dim}", f"lr={c.lr:g}", f"{c.epochs} ep", f"seed {c.seed}"])


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
        """Mean fraction of active triplets (or pairs) per epoch; empty if the loss does not log it."""
        return [m["active_fraction"] for m in self.epoch_metrics if "active_fraction" in m]


# --------------------------------------------------------------------------- data, model, loss

_DATA: dict = {}


def _load(dataset: str, split: str, size: str):
    key = (dataset, split, size)
    if key not in _DATA:
        _DATA[key] = data.load(dataset, split, size)
    return _DATA[key]


def probe_set(dataset: str, size: str = "mini", per_class: int = 100, *, seed: int = 0):
    """The fixed, class-balanced probe set: (indices into the test split, images, labels)."""
    te = _load(dataset, "test", size)
    idx = data.balanced_subset(te.labels, check_int("per_class", per_class, min_value=1), seed=seed)
    return idx, te.images[idx], te.labels[idx]


def make_model(config: LabConfig) -> torch.nn.Module:
    """The network of a run (seeded by ``config.seed``): an MLP (fast on a CPU) or the course's SmallCNN.
    The triplet loss works on L2-normalised embeddings, as in lectures 5 and 6."""
    c = config.normalized()
    seed_everything(c.seed)
    normalize = c.loss == "triplet"
    if c.network == "cnn":
        return models.SmallCNN(c.embedding_dim, normalize=normalize)
    return models.MLP(c.embedding_dim, hidden=(256,), normalize=normalize)


def make_loss(config: LabConfig, num_classes: int = 10) -> torch.nn.Module:
    """The ``loss_fn`` of a run, from the package's losses, miners and heads."""
    c = config.normalized()
    if c.loss == "triplet":
        return miners.MinedTripletLoss(c.miner, c.margin, seed=c.seed)
    if c.loss == "contrastive":
        return siamese.make_batch_loss("contrastive", margin=c.margin)
    if c.loss == "nca":
        return siamese.make_batch_loss("nca")
    kwargs = {}
    if c.loss in MARGINS:
        kwargs["margin"] = int(c.margin) if c.loss == "sphereface" else c.margin
    return heads.HeadLoss(heads.make_head(c.loss, c.embedding_dim, num_classes, **kwargs))


# --------------------------------------------------------------------------- aligned 2-D layouts

def umap_layout(x, *, init=None, n_epochs: int | None = None, seed: int = 0, n_neighbors: int = 15,
                min_dist: float = 0.1, learning_rate: float = 1.0) -> np.ndarray:
    """UMAP of (N, D) points, float32: :func:`dmlcourse.plots.project_2d` (taught in 00_start_here), which
    hands UMAP the exact distance matrix for N < 4096."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"x must be an (N, D) array with N >= 3, got shape {x.shape}.")
    return project_2d(x, "umap", init=init, n_epochs=n_epochs, seed=seed, n_neighbors=n_neighbors,
                      min_dist=min_dist, learning_rate=learning_rate).astype(np.float32)


def procrustes_align(xy: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate (or reflect), scale and shift ``xy`` to best match ``reference`` (least squares)."""
    a, b = np.asarray(xy, np.float64), np.asarray(reference, np.float64)
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, s, vt = np.linalg.svd(a0.T @ b0)
    r = u @ vt
    scale = s.sum() / max((a0 ** 2).sum(), 1e-12)
    return (scale * a0 @ r + mb).astype(np.float32)


def _prepare(z: torch.Tensor, loss: str) -> np.ndarray:
    z = z.float()
    if loss in ANGULAR:
        z = torch.nn.functional.normalize(z, dim=1)
    return z.numpy()


def next_layout(z: torch.Tensor, previous: np.ndarray | None, *, loss: str = "triplet", method: str = "chain",
                seed: int = 0, n_epochs_first: int = 200, n_epochs_next: int = 50,
                learning_rate_next: float = 0.1) -> np.ndarray:
    """The layout of one snapshot, aligned with the previous one.

    method="chain" (default): UMAP started from ``previous`` with a small step size (``learning_rate_next``)
        and few optimisation epochs, then shifted and scaled back onto ``previous`` (UMAP rescales its
        starting layout). Measured on 1,000 MNIST probe points (benchmarks/bench_lab.py): the same
        embedding laid out again moves by 6% of the picture's radius (100 UMAP epochs at UMAP's default
        step 1.0: 23%), and the 2-D nearest neighbours agree with the classes as well as a fresh UMAP's;
    method="procrustes": an independent UMAP, then rotated/scaled onto ``previous``;
    method="pca": PCA, sign-aligned with the previous layout (instant, no UMAP).
    """
    check_choice("method", method, ("chain", "procrustes", "pca"))
    x = _prepare(z, loss)
    if method == "pca" or len(x) < 10:
        from .plots import pca_2d

        xy = pca_2d(x).astype(np.float32)
        return xy if previous is None else procrustes_align(xy, previous)
    if previous is None:
        return umap_layout(x, n_epochs=n_epochs_first, seed=seed)
    if method == "chain":
        # UMAP rescales its init into a [0, 10] box; the Procrustes step undoes that shift and scale
        xy = umap_layout(x, init=previous, n_epochs=n_epochs_next, seed=seed, learning_rate=learning_rate_next)
        return procrustes_align(xy, previous)
    return procrustes_align(umap_layout(x, n_epochs=n_epochs_first, seed=seed), previous)


def chain_layouts(snapshots, *, loss: str = "triplet", method: str = "chain", seed: int = 0) -> np.ndarray:
    """Aligned layouts of a sequence of snapshots, (T, N, 2)."""
    out, prev = [], None
    for z in snapshots:
        prev = next_layout(torch.as_tensor(z), prev, loss=loss, method=method, seed=seed)
        out.append(prev)
    return np.stack(out)


def interpolate(layouts: np.ndarray, t: float) -> np.ndarray:
    """The picture at fractional epoch ``t``: straight-line motion between consecutive layouts."""
    t = min(max(float(t), 0.0), len(layouts) - 1)
    i = min(int(np.floor(t)), len(layouts) - 2) if len(layouts) > 1 else 0
    a = t - i
    return layouts[i] if len(layouts) == 1 else (1 - a) * layouts[i] + a * layouts[i + 1]


_WARM = {"thread": None, "seconds": None}


def warm_up_umap(background: bool = True):
    """Compile UMAP's numba functions once per process (the first call takes ~10 s; later ones do not)."""
    def work():
        t0 = time.perf_counter()
        x = np.random.default_rng(0).normal(size=(40, 4))
        prev = umap_layout(x, n_epochs=5)
        umap_layout(x, init=prev, n_epochs=5)
        _WARM["seconds"] = time.perf_counter() - t0

    if _WARM["thread"] is None:
        _WARM["thread"] = threading.Thread(target=work, daemon=True, name="dmlcourse-umap-warm-up")
        _WARM["thread"].start()
    if not background:
        _WARM["thread"].join()
    return _WARM["thread"]


# --------------------------------------------------------------------------- one run

def lab_cache_dir() -> Path:
    """Where lab runs are cached: ``<cache.cache_dir()>/lab`` (safe to delete)."""
    from .cache import cache_dir

    return cache_dir() / "lab"


def run_path(config: LabConfig) -> Path:
    return lab_cache_dir() / f"run-{config.key()}.pt"


def load_cached(config: LabConfig) -> LabRun | None:
    """The cached run of ``config``, or None (a file that cannot be read is ignored, never trusted)."""
    path = run_path(config)
    if not path.exists():
        return None
    try:
        d = torch.load(path, map_location="cpu", weights_only=False)
        run = LabRun(**{f.name: d[f.name] for f in fields(LabRun) if f.name in d})
        if run.config != asdict(config.normalized()):
            raise ValueError("the file holds another configuration")
    except Exception as exc:  # unreadable or foreign: recompute
        warnings.warn(f"ignoring unreadable lab cache file {path} ({exc}); training again.", stacklevel=2)
        return None
    run.from_cache = True
    return run


INACTIVE_STEPS = 20  # this many steps in a row (at most one epoch) without an active triplet/pair end the run
DIVERGENCE = 1e3  # a step loss this many times the initial one (or NaN) ends the run: it diverged


def run_lab(config: LabConfig, *, use_cache: bool = True, device=None, should_stop: Callable[[], bool] | None = None,
            on_step: Callable[[int, int], None] | None = None,
            on_epoch: Callable[[LabRun], None] | None = None) -> LabRun:
    """Train ``config`` (or load it from the cache) and lay out its probe snapshots.

    should_stop : called after every step; True ends training after that step (what was trained is kept).
    on_step(step, total) : progress; on_epoch(partial_run) : after every epoch (for live display).
    A run that stops early (stop request, NaN loss, nothing active) is returned with ``interrupted``
    and a ``message`` and is not cached. Every finished run is written atomically to :func:`run_path`.
    """
    if not isinstance(config, LabConfig):
        raise TypeError(f"config must be a LabConfig, got {type(config).__name__}.")
    c = config.normalized()
    if use_cache:
        run = load_cached(c)
        if run is not None:
            return run
    device = torch.device(device) if device is not None else get_device(verbose=False)
    t_start = time.perf_counter()
    tr = _load(c.dataset, "train", c.size)
    if c.train_per_class is not None:
        keep = data.balanced_subset(tr.labels, c.train_per_class, seed=c.seed)
        x_train, y_train = tr.images[keep], tr.labels[keep]
    else:
        x_train, y_train = tr.images, tr.labels
    p_idx, p_images, p_labels = probe_set(c.dataset, c.size, c.probe_per_class)
    k = min(c.samples_per_class, c.batch_size // 2)
    batch = (c.batch_size // k) * k
    model = make_model(c)
    loss_fn = make_loss(c, num_classes=int(y_train.max()) + 1)
    distance = distance_for(c.loss)
    total = c.epochs * len(data.ClassBalancedBatchSampler(y_train, min(batch // k, len(torch.unique(y_train))), k))

    h = History()
    layouts: list = []
    probe_metrics: list = []
    seconds = {"train": 0.0, "layout": 0.0, "metrics": 0.0}
    state = {"inactive": 0, "reason": "", "failed": False, "epoch_start_step": 0, "t": time.perf_counter()}
    patience = max(1, min(INACTIVE_STEPS, total // c.epochs))

    def add_snapshot(z):
        t0 = time.perf_counter()
        probe_metrics.append(evaluate(z, p_labels, distance=distance))
        t1 = time.perf_counter()
        layouts.append(next_layout(z, layouts[-1] if layouts else None, loss=c.loss, method=c.layout,
                                   seed=c.seed))
        t2 = time.perf_counter()
        seconds["metrics"] += t1 - t0
        seconds["layout"] += t2 - t1

    def partial() -> LabRun:
        return LabRun(config=asdict(c), probe_index=p_idx, probe_labels=p_labels,
                      snapshots=torch.stack(h.snapshots[:len(layouts)]), layouts=np.stack(layouts),
                      probe_metrics=list(probe_metrics), step_loss=list(h.step_loss),
                      step_info={k: list(v) for k, v in h.step_info.items()}, epoch_metrics=list(h.epoch_metrics),
                      interrupted=h.interrupted, message=h.message, seconds=dict(seconds))

    def stop_now() -> bool:
        step = len(h.step_loss)
        if on_step is not None:
            on_step(step, total)
        value = h.step_loss[-1]
        initial = h.step_loss[0]  # the loss of the untrained network
        if value > DIVERGENCE * max(1.0, abs(initial)):
            state["reason"] = (f"the loss exploded from {initial:.3g} to {value:.3g} at step {step}: training "
                               "diverged. Try a smaller learning rate. The picture shows the network where it stopped.")
            state["failed"] = True
            return True
        active = h.step_info.get("active_fraction")
        if active is not None and len(active) == step:
            state["inactive"] = state["inactive"] + 1 if active[-1] == 0 else 0
            if state["inactive"] >= patience:
                state["reason"] = (f"no triplet or pair was active for {patience} steps in a row (step {step}): "
                                   "the loss is 0, so nothing is learned. Change the margin or the miner "
                                   "(semi-hard needs a margin > 0).")
                state["failed"] = True
                return True
        if should_stop is not None and should_stop():
            state["reason"] = (f"stopped on request after {step} of {total} steps; "
                               "the result keeps what was trained.")
            return True
        return False

    def epoch_end(hist):
        seconds["train"] += time.perf_counter() - state["t"]
        rec = hist.epoch_metrics[-1]
        first, last = state["epoch_start_step"], len(hist.step_loss)
        active = hist.step_info.get("active_fraction", [])[first:last]
        if active:
            rec["active_fraction"] = float(np.mean(active))
        rec["steps"] = last - first
        state["epoch_start_step"] = last
        add_snapshot(hist.snapshots[-1])
        if on_epoch is not None:
            on_epoch(partial())
        state["t"] = time.perf_counter()

    threads = torch.get_num_threads()
    try:
        if device.type == "cpu":
            # a small network on a (shared) CPU: one thread is faster than two that wait for each other
            torch.set_num_threads(1)
        h.snapshots.append(models.embed(model.to(device), p_images, device=device, name=c.dataset))
        add_snapshot(h.snapshots[0])
        if on_epoch is not None:
            on_epoch(partial())
        state["t"] = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            train_loop(model, loss_fn, x_train, y_train, epochs=c.epochs, batch_size=batch, lr=c.lr,
                       samples_per_class=k, name=c.dataset, probe=p_images, probe_labels=p_labels, device=device,
                       seed=c.seed, progress=False, should_stop=stop_now, on_epoch_end=epoch_end, history=h)
    finally:
        torch.set_num_threads(threads)
    if state["reason"]:
        h.interrupted, h.message = True, state["reason"]
    elif h.interrupted and "loss became" in h.message:
        state["failed"] = True
        h.message = (f"the loss became NaN or infinite ({h.message.split('; ')[0].replace('the loss became ', '')}): "
                     "training diverged. Try a smaller learning rate. The epochs finished before are shown.")
    seconds["total"] = time.perf_counter() - t_start
    run = partial()
    run.failed = state["failed"]
    if not run.interrupted and run.epochs_done == c.epochs:
        atomic_torch_save({**asdict(run), "from_cache": False}, run_path(c))
    return run


# --------------------------------------------------------------------------- the widget

def _fmt(v, digits=3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


class EmbeddingLab:
    """The Embedding Lab widget (display it, or ``display(lab.widget)``).

    Parameters
    ----------
    losses, miners : the choices offered (default: all of them); the first is preselected.
    dataset, size, margin, embedding_dim, epochs, lr, seed, network : initial control values
        (size and network default to "mini"/"mlp" on a CPU and "full"/"cnn" on a GPU).
    train_per_class : None (default) trains on every image of the size; an int takes a class-balanced subset.
    probe_per_class : probe images per class (100: 1,000 points).
    layout : how the epochs' 2-D pictures are aligned: "chain" (default; each epoch's UMAP starts from the
        previous layout), "procrustes" (independent UMAPs, rotated onto each other) or "pca" (instant).
    background : train in a background thread (default) so the notebook stays responsive; False trains
        inside ``train_button.click()`` (headless tests, quick-mode notebooks).
    warm_up : compile UMAP's numba code in a background thread when the lab opens.

    While a run trains on the CPU, torch in this Python process uses one thread (a small network on a shared
    CPU trains faster that way); the previous thread count is restored when the run ends.

    Attributes for scripts and tests: the controls (``dataset``, ``size``, ``loss``, ``miner``, ``margin``,
    ``embedding_dim``, ``epochs``, ``lr``, ``seed``, ``network``), ``train_button``, ``stop_button``,
    ``keep_button``, ``progress``, ``status``, ``figure`` (the scatter), ``curves``, ``epoch`` (slider),
    ``play``, ``run`` (the run shown), ``kept`` (pinned runs), ``table`` (their metrics), ``wait()``.
    """

    def __init__(self, losses=None, miners=None, *, dataset: str = "mnist", size: str | None = None,
                 margin: float | None = None, embedding_dim: int = 32, epochs: int = 5, lr: float = 2e-3,
                 seed: int = 0, network: str | None = None, train_per_class: int | None = None,
                 probe_per_class: int = 100, layout: str = "chain", background: bool = True, warm_up: bool = True,
                 device=None):
        import ipywidgets as W

        losses = list(LOSSES if losses is None else losses)
        miner_names = list(MINERS if miners is None else miners)
        if not losses:
            raise ValueError("losses is empty; give at least one of " f"{list(LOSSES)}.")
        for name in losses:
            check_choice("losses[i]", name, LOSSES)
        for name in miner_names:
            check_choice("miners[i]", name, MINERS)
        if "triplet" in losses and not miner_names:
            raise ValueError("miners is empty but losses contains 'triplet'; give at least one miner.")
        check_choice("dataset", dataset, data.DATASETS)
        check_choice("embedding_dim", embedding_dim, EMBEDDING_DIMS)
        check_int("epochs", epochs, min_value=1, max_value=30)
        check_float("lr", lr, min_value=1e-5, max_value=100.0)
        check_int("seed", seed, min_value=0)
        if size is not None:
            check_choice("size", size, ("mini", "full"))
        if network is not None:
            check_choice("network", network, NETWORKS)
        self.device = torch.device(device) if device is not None else get_device(verbose=False)
        gpu = self.device.type != "cpu"
        size = size or ("full" if gpu and _full_available() else "mini")
        network = network or ("cnn" if gpu else "mlp")
        if train_per_class is not None:
            train_per_class = check_int("train_per_class", train_per_class, min_value=1)
        probe_per_class = check_int("probe_per_class", probe_per_class, min_value=1, max_value=1000)
        self._fixed = dict(train_per_class=train_per_class, probe_per_class=probe_per_class,
                           layout=check_choice("layout", layout, ("chain", "procrustes", "pca")))
        self.background = bool(background)
        self.run: LabRun | None = None
        self.kept: list[LabRun] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running_config: LabConfig | None = None
        self.runs_started = 0

        style = dict(description_width="initial")
        self.dataset = W.Dropdown(options=list(data.DATASETS), value=dataset, description="dataset", style=style)
        self.size = W.Dropdown(options=["mini", "full"], value=size, description="size", style=style)
        self.network = W.Dropdown(options=list(NETWORKS), value=network, description="network", style=style)
        self.loss = W.Dropdown(options=losses, value=losses[0], description="loss", style=style)
        self.miner = W.Dropdown(options=miner_names or ["batch_semi_hard"],
                                value=("batch_semi_hard" if "batch_semi_hard" in miner_names else
                                       (miner_names or ["batch_semi_hard"])[0]),
                                description="miner", style=style)
        self.margin = W.FloatSlider(value=0.2, min=0.0, max=1.0, step=0.01, description="margin",
                                    continuous_update=False, style=style)
        self.embedding_dim = W.Dropdown(options=list(EMBEDDING_DIMS), value=embedding_dim,
                                        description="embedding size", style=style)
        self.epochs = W.IntSlider(value=epochs, min=1, max=30, description="epochs", continuous_update=False,
                                  style=style)
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-5, max=2, step=0.1, description="learning rate",
                                   readout_format=".1e", continuous_update=False, style=style)
        self.seed = W.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", style=style,
                                     layout=W.Layout(width="150px"))
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True)
        self.keep_button = W.Button(description="Keep this run", icon="thumb-tack", disabled=True)
        self.clear_button = W.Button(description="Clear kept runs", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="260px"))
        self.status = W.HTML("Choose a configuration and press <b>Train</b>.")
        self.where = W.HTML(f"<small>Runs are cached in <code>{html.escape(str(lab_cache_dir()))}</code> "
                            "(safe to delete).</small>")

        self.figure = self._scatter_figure(height=460)
        self.preview = W.HTML("<i>hover over a point</i>", layout=W.Layout(width="130px"))
        self.epoch = W.FloatSlider(value=0, min=0, max=1, step=0.1, description="epoch", readout_format=".1f",
                                   layout=W.Layout(width="420px"))
        self.play = W.Play(value=0, min=0, max=10, step=1, interval=80, description="play")
        self.curves = self._curves_figure()
        self.kept_box = W.HBox([], layout=W.Layout(flex_flow="row wrap"))
        self.table = W.HTML("")

        self._controls = [self.dataset, self.size, self.network, self.loss, self.miner, self.margin,
                          self.embedding_dim, self.epochs, self.lr, self.seed]
        self.loss.observe(self._on_loss, names="value")
        self.miner.observe(self._sync_enabled, names="value")
        for w in self._controls:
            w.observe(self._on_control, names="value")
        self.train_button.on_click(lambda _b: self.train())
        self.stop_button.on_click(lambda _b: self.stop())
        self.keep_button.on_click(lambda _b: self.keep())
        self.clear_button.on_click(lambda _b: self.clear_kept())
        self.epoch.observe(lambda ch: self.show_epoch(ch["new"]), names="value")
        self.play.observe(self._on_play, names="value")
        self._on_loss({"new": self.loss.value})
        if margin is not None:
            self.margin.value = margin

        row = lambda ws: W.HBox(ws, layout=W.Layout(flex_flow="row wrap"))  # noqa: E731
        self.widget = W.VBox([
            W.HTML("<h3 style='margin:0'>Embedding Lab</h3>"),
            row([self.dataset, self.size, self.network, self.loss, self.miner]),
            row([self.margin, self.embedding_dim, self.epochs, self.lr, self.seed]),
            row([self.train_button, self.stop_button, self.progress, self.keep_button, self.clear_button]),
            self.status, self.where,
            W.HBox([self.figure, self.preview]),
            W.HBox([self.play, self.epoch]),
            self.curves,
            W.HTML("<b>Kept runs</b> (same probe set; press <i>Keep this run</i> to add the run shown)"),
            self.kept_box, self.table,
        ])
        if warm_up:
            warm_up_umap(background=True)

    # ---- display
    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ---- controls
    def config(self) -> LabConfig:
        """The configuration the controls describe now."""
        return LabConfig(dataset=self.dataset.value, size=self.size.value, loss=self.loss.value,
                         miner=self.miner.value, margin=float(self.margin.value),
                         embedding_dim=int(self.embedding_dim.value), epochs=int(self.epochs.value),
                         lr=float(self.lr.value), seed=int(self.seed.value), network=self.network.value,
                         **self._fixed).normalized()

    def _on_loss(self, change):
        loss = change["new"]
        if loss in MARGINS:
            lo, hi, step, default = MARGINS[loss]
            m = self.margin
            # widen first so that no intermediate state is invalid, then set the range, then the value
            m.min, m.max = min(m.min, lo), max(m.max, hi)
            m.value = default
            m.min, m.max, m.step = lo, hi, step
            m.value = default
        self._sync_enabled()

    def _sync_enabled(self, _change=None):
        loss = self.loss.value
        self.miner.disabled = not uses_miner(loss)
        self.margin.disabled = not uses_margin(loss, self.miner.value)

    def _on_control(self, _change):
        running = self._running_config  # read once: the training thread may reset it meanwhile
        if self._lock.locked() and running is not None and self.config() != running:
            self._set_status("Training <b>" + html.escape(running.label()) + "</b>; the changed "
                             "settings apply to the next run.", "info")

    def _set_status(self, text: str, kind: str = "info"):
        color = {"info": "#333", "ok": "#1a7f37", "warn": "#9a6700", "error": "#cf222e"}[kind]
        self.status.value = f"<span style='color:{color}'>{text}</span>"

    # ---- training
    def train(self):
        """What the Train button does. A second press while a run trains is ignored (with a note)."""
        if not self._lock.acquire(blocking=False):
            running = self._running_config  # read once: the training thread may reset it meanwhile
            what = html.escape(running.label()) if running is not None else "a run"
            self._set_status("Already training " + what + ": press <b>Stop</b> first, or wait.", "warn")
            return None
        try:
            cfg = self.config()
        except (TypeError, ValueError) as exc:
            self._lock.release()
            self._set_status(f"Cannot train this configuration: {html.escape(str(exc))}", "error")
            return None
        self._running_config = cfg
        self._stop.clear()
        self.runs_started += 1
        self.train_button.disabled = True
        self.stop_button.disabled = False
        self.progress.value, self.progress.bar_style = 0, ""
        if self.background:
            self._thread = threading.Thread(target=self._job, args=(cfg,), daemon=True, name="dmlcourse-lab")
            self._thread.start()
            return self._thread
        self._job(cfg)
        return None

    def stop(self):
        """What the Stop button does: training ends after the current step and keeps what was trained."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background run to finish; True if none is running any more."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self._lock.locked()

    @property
    def training(self) -> bool:
        return self._lock.locked()

    def _job(self, cfg: LabConfig):
        t0 = time.perf_counter()
        try:
            cached = load_cached(cfg)
            if cached is not None:
                self._show(cached)
                self._set_status(f"<b>{html.escape(cfg.label())}</b>: loaded from the cache in "
                                 f"{time.perf_counter() - t0:.2f} s.", "ok")
                self.progress.max, self.progress.value = 1, 1
                return
            self._set_status(f"Training <b>{html.escape(cfg.label())}</b> …", "info")
            first = {"shown": False}

            def on_step(step, total):
                if step == 1 or step % 5 == 0 or step == total:
                    self.progress.max, self.progress.value = max(total, 1), min(step, total)

            def on_epoch(partial):
                self._show(partial, follow=True, rebuild=not first["shown"])
                first["shown"] = True

            run = run_lab(cfg, use_cache=False, device=self.device, should_stop=self._stop.is_set,
                          on_step=on_step, on_epoch=on_epoch)
            self._show(run)
            dt = time.perf_counter() - t0
            if run.interrupted:
                bad = run.failed
                self._set_status(f"<b>{html.escape(cfg.label())}</b>: {html.escape(run.message)}",
                                 "error" if bad else "warn")
                self.progress.bar_style = "danger" if bad else "warning"
            else:
                s = run.seconds
                self._set_status(f"<b>{html.escape(cfg.label())}</b>: trained in {dt:.1f} s (training "
                                 f"{s.get('train', 0):.1f} s, UMAP layouts {s.get('layout', 0):.1f} s); saved in "
                                 "the cache.", "ok")
                self.progress.bar_style = "success"
        except Exception as exc:  # the widget must stay usable: report, never raise into the event loop
            self._set_status(f"<b>{html.escape(cfg.label())}</b> failed: {html.escape(type(exc).__name__)}: "
                             f"{html.escape(str(exc))}", "error")
            self.progress.bar_style = "danger"
        finally:
            self.train_button.disabled = False
            self.stop_button.disabled = True
            self._running_config = None
            self._lock.release()

    # ---- figures
    def _scatter_figure(self, height=460, width=None, title="", showlegend=True, run_of=None):
        """An empty scatter with one trace per class; hovering shows the image of ``run_of()``'s probe point."""
        import plotly.graph_objects as go

        run_of = run_of or (lambda: self.run)

        def hover(trace, points, _state=None):
            if points.point_inds and run_of() is not None:
                self.show_probe(int(trace.customdata[points.point_inds[0]]), run_of())

        fig = go.FigureWidget()
        for c in range(10):
            fig.add_trace(go.Scattergl(x=[], y=[], mode="markers", name=str(c), customdata=[],
                                       marker=dict(size=5, color=PALETTE[c], opacity=0.8),
                                       hovertemplate="%{text}<extra></extra>", text=[]))
            fig.data[-1].on_hover(hover)
            fig.data[-1].on_click(hover)
        fig.update_layout(height=height, width=width, title=title, showlegend=showlegend,
                          margin=dict(l=10, r=10, t=40, b=10), legend=dict(itemsizing="constant"),
                          xaxis=dict(showticklabels=False, zeroline=False),
                          yaxis=dict(showticklabels=False, zeroline=False, scaleanchor="x"))
        return fig

    def _curves_figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = go.FigureWidget(make_subplots(rows=1, cols=3, subplot_titles=(
            "training loss per step", "probe-set retrieval per epoch", "active triplets / pairs per epoch")))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="loss", line=dict(width=1, color="#999")), 1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="loss (mean of 10)", line=dict(color="#000")),
                      1, 1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="Precision@1"), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="MAP@R"), 1, 2)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="active fraction"), 1, 3)
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_xaxes(title_text="epoch", row=1, col=2)
        fig.update_xaxes(title_text="epoch", row=1, col=3)
        fig.update_yaxes(range=[0, 1.02], row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], row=1, col=3)
        return fig

    def _class_names(self, run):
        return data.CLASS_NAMES[run.config["dataset"]]

    def _fill(self, fig, run, xy, title):
        labels = run.probe_labels.numpy()
        names = self._class_names(run)
        with fig.batch_update():
            for c, trace in enumerate(fig.data):
                idx = np.flatnonzero(labels == c)
                trace.x, trace.y = xy[idx, 0], xy[idx, 1]
                trace.customdata = idx
                trace.name = f"{c}: {names[c]}"
                trace.text = [f"{names[c]} · probe {i}" for i in idx]
            fig.layout.title = title
            lo, hi = run.layouts.reshape(-1, 2).min(0), run.layouts.reshape(-1, 2).max(0)
            pad = 0.05 * (hi - lo + 1e-6)
            fig.layout.xaxis.range = [float(lo[0] - pad[0]), float(hi[0] + pad[0])]
            fig.layout.yaxis.range = [float(lo[1] - pad[1]), float(hi[1] + pad[1])]

    def _show(self, run: LabRun, *, follow: bool = False, rebuild: bool = True):
        """Show a (possibly partial) run: scatter, slider range, curves."""
        self.run = run
        n = run.epochs_done
        self.epoch.max = max(n, 0.1 if n == 0 else n)
        self.play.max = max(10 * n, 1)
        target = float(n) if (follow or rebuild) else min(self.epoch.value, n)
        if self.epoch.value != target:
            self.epoch.value = target  # triggers show_epoch
        else:
            self.show_epoch(target)
        self._update_curves(run)
        self.keep_button.disabled = False

    def show_epoch(self, t: float):
        """Draw every figure at (fractional) epoch ``t`` (what the slider and the play button do)."""
        if self.run is None:
            return
        t = float(t)
        run = self.run
        m = run.probe_metrics[min(int(round(t)), run.epochs_done)]
        self._fill(self.figure, run, interpolate(run.layouts, t),
                   f"epoch {t:.1f} of {run.epochs_done} · P@1 {_fmt(m.get('precision_at_1'))} · "
                   f"MAP@R {_fmt(m.get('map_at_r'))}")
        for fig, kept in zip(self.kept_box.children, self.kept):
            tk = min(t, kept.epochs_done)
            fig_title = f"{LabConfig(**kept.config).label()}<br>epoch {tk:.1f}"
            self._fill(fig, kept, interpolate(kept.layouts, tk), fig_title)

    def _on_play(self, change):
        self.epoch.value = min(change["new"] / 10, self.epoch.max)

    def _update_curves(self, run: LabRun):
        loss = np.asarray(run.step_loss, dtype=float)
        steps = np.arange(1, len(loss) + 1)
        smooth = np.convolve(loss, np.ones(10) / 10, mode="valid") if len(loss) >= 10 else loss
        ep = list(range(len(run.probe_metrics)))
        act = run.active_fraction()
        with self.curves.batch_update():
            d = self.curves.data
            d[0].x, d[0].y = steps, loss
            d[1].x, d[1].y = steps[len(steps) - len(smooth):], smooth
            d[2].x, d[2].y = ep, run.metric("precision_at_1")
            d[3].x, d[3].y = ep, run.metric("map_at_r")
            d[4].x, d[4].y = list(range(1, len(act) + 1)), act

    def show_probe(self, i: int, run: LabRun | None = None):
        """Show probe image ``i`` of ``run`` (default: the run shown) beside the scatter (what hovering
        or clicking a point does)."""
        run = run or self.run
        te = _load(run.config["dataset"], "test", run.config["size"])
        j = int(run.probe_index[i])
        lab = int(run.probe_labels[i])
        self.preview.value = (f"<img src='{image_to_data_uri(te.images[j])}' width='112'/><br>"
                              f"<b>{html.escape(self._class_names(run)[lab])}</b><br>test image {j}")

    # ---- comparing runs
    def keep(self):
        """Pin the run shown (what "Keep this run" does)."""
        if self.run is None:
            return
        if any(k is self.run for k in self.kept):
            self._set_status("This run is kept already.", "info")
            return
        kept = self.run
        self.kept.append(kept)
        fig = self._scatter_figure(height=340, width=420, showlegend=False, run_of=lambda: kept)
        children = list(self.kept_box.children) + [fig]
        self.kept_box.children = tuple(children)
        self.clear_button.disabled = False
        self.show_epoch(self.epoch.value)
        self.table.value = self.metrics_table()

    def clear_kept(self):
        self.kept = []
        self.kept_box.children = ()
        self.table.value = ""
        self.clear_button.disabled = True

    def metrics_rows(self) -> list:
        """One dict per kept run: its configuration and its final metrics."""
        rows = []
        for r in self.kept:
            c = r.config
            act = r.active_fraction()
            rows.append({"loss": c["loss"], "miner": c["miner"] or "–",
                         "margin": "–" if c["margin"] is None else f"{c['margin']:g}",
                         "dim": c["embedding_dim"], "lr": f"{c['lr']:g}", "seed": c["seed"],
                         "epochs": r.epochs_done, "P@1": r.metric("precision_at_1")[-1],
                         "MAP@R": r.metric("map_at_r")[-1],
                         "active (last epoch)": act[-1] if act else None,
                         "note": "stopped early" if r.interrupted else ("cached" if r.from_cache else "")})
        return rows

    def metrics_table(self) -> str:
        rows = self.metrics_rows()
        if not rows:
            return ""
        head = "".join(f"<th style='padding:2px 8px'>{html.escape(k)}</th>" for k in rows[0])
        body = ""
        for r in rows:
            cells = "".join(f"<td style='padding:2px 8px'>{_fmt(v) if isinstance(v, float) or v is None else html.escape(str(v))}</td>"  # noqa: E501
                            for v in r.values())
            body += f"<tr>{cells}</tr>"
        return f"<table><tr>{head}</tr>{body}</table>"


def _full_available() -> bool:
    d = data.data_dir()
    try:
        return all((d / n / f).exists() for n in data.DATASETS for s in data.SPLITS for f in data.FILES[s])
    except AttributeError:
        return False
