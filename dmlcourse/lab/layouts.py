"""Aligned 2-D layouts: one picture per epoch, a point that did not move stays in place.

Taught in 05_siamese_triplet (with the Lab). :func:`next_layout` lays out one snapshot of
the probe embeddings, aligned with the previous one; :func:`chain_layouts` does a sequence;
:func:`interpolate` gives the picture between two epochs.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from ..core.validate import check_choice
from ..plots import pca_2d, project_2d
from .config import ANGULAR, LAYOUTS


def umap_layout(
    x,
    *,
    init=None,
    n_epochs: int | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    learning_rate: float = 1.0,
) -> np.ndarray:
    """UMAP of (N, D) points, float32: :func:`dmlcourse.plots.project_2d` (taught in 00_start_here),
    which hands UMAP the exact distance matrix for N < 4096."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"x must be an (N, D) array with N >= 3, got shape {x.shape}.")
    # a keyword list (one a line, as ruff formats long calls): alike in shape to others, not logic
    return project_2d(
        x,
        "umap",
        init=init,
        n_epochs=n_epochs,
        seed=seed,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        learning_rate=learning_rate,
    ).astype(np.float32)


def procrustes_align(xy: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate (or reflect), scale and shift ``xy`` to best match ``reference`` (least squares)."""
    a, b = np.asarray(xy, np.float64), np.asarray(reference, np.float64)
    ma, mb = a.mean(0), b.mean(0)
    a0, b0 = a - ma, b - mb
    u, s, vt = np.linalg.svd(a0.T @ b0)
    r = u @ vt
    scale = s.sum() / max((a0**2).sum(), 1e-12)
    return (scale * a0 @ r + mb).astype(np.float32)


def _prepare(z: torch.Tensor, loss: str) -> np.ndarray:
    z = z.float()
    if loss in ANGULAR:
        z = torch.nn.functional.normalize(z, dim=1)
    return z.numpy()


def next_layout(
    z: torch.Tensor,
    previous: np.ndarray | None,
    *,
    loss: str = "triplet",
    method: str = "chain",
    seed: int = 0,
    n_epochs_first: int = 200,
    n_epochs_next: int = 50,
    learning_rate_next: float = 0.1,
) -> np.ndarray:
    """The layout of one snapshot, aligned with the previous one.

    method="chain" (default): UMAP started from ``previous`` with a small step size
        (``learning_rate_next``) and few optimisation epochs, then shifted and scaled back onto
        ``previous`` (UMAP rescales its starting layout). Measured on 1,000 MNIST probe points
        (benchmarks/bench_lab.py): the same embedding laid out again moves by 6% of the picture's
        radius (100 UMAP epochs at UMAP's default step 1.0: 23%), and the 2-D nearest neighbours
        agree with the classes as well as a fresh UMAP's;
    method="procrustes": an independent UMAP, then rotated/scaled onto ``previous``;
    method="pca": PCA, sign-aligned with the previous layout (instant, no UMAP).
    """
    check_choice("method", method, LAYOUTS)
    x = _prepare(z, loss)
    if method == "pca" or len(x) < 10:
        xy = pca_2d(x).astype(np.float32)
        return xy if previous is None else procrustes_align(xy, previous)
    if previous is None:
        return umap_layout(x, n_epochs=n_epochs_first, seed=seed)
    if method == "chain":
        # UMAP rescales its init into a [0, 10] box; the Procrustes step undoes that shift and scale
        xy = umap_layout(
            x, init=previous, n_epochs=n_epochs_next, seed=seed, learning_rate=learning_rate_next
        )
        return procrustes_align(xy, previous)
    return procrustes_align(umap_layout(x, n_epochs=n_epochs_first, seed=seed), previous)


def chain_layouts(
    snapshots, *, loss: str = "triplet", method: str = "chain", seed: int = 0
) -> np.ndarray:
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
    """Get UMAP's numba functions ready in this process, in a background thread: compiled on a
    machine's first UMAP call (about 10 s), loaded from numba's disk cache after that (about 1 s,
    :func:`dmlcourse.plots.project_2d`)."""

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
