"""Pictures of embeddings: 2-D projections, interactive scatters, image grids.

Taught in 00_start_here.

* ``project_2d`` maps embeddings to the plane with UMAP (PCA as the fast
  fallback, or when umap-learn is missing).
* ``embedding_figure`` is a plotly scatter coloured by class; ``embedding_explorer``
  wraps it in a widget that shows the image under the mouse (hover or click).
* ``image_grid`` is a matplotlib grid of images with their labels.
"""

from __future__ import annotations

import base64
import importlib.metadata
import io
import warnings

import numpy as np
import torch

from .core.cache import cached, fingerprint
from .core.linalg import pca
from .core.validate import check_choice, check_float, check_int

# Heavy and needed only for pictures, widgets or fitting, so imported inside the
# functions that use them: Pillow, ipywidgets, matplotlib, plotly, umap (and its numba).

PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def pca_2d(embeddings) -> np.ndarray:
    """The first two principal components (the package's one PCA,
    :func:`dmlcourse.core.linalg.pca`)."""
    x = torch.as_tensor(_numpy(embeddings), dtype=torch.float64)
    if x.shape[1] == 1:
        return np.c_[(x[:, 0] - x[:, 0].mean()).numpy(), np.zeros(len(x))]
    mean, comps = pca(x, min(2, *x.shape))
    out = ((x - mean) @ comps.T).numpy()
    return out if out.shape[1] == 2 else np.c_[out, np.zeros(len(x))]


# For N < 4096 UMAP finds exact nearest neighbours by calling a Python distance function once per
# pair (5.7 of 6.4 s for 1,000 points, benchmarks/bench_lab.py). Below this many points we hand it
# the exact distance matrix instead (metric="precomputed"); above, UMAP's approximate neighbour
# search is the faster route anyway.
EXACT_DISTANCES_BELOW = 4096


def _umap_with_disk_cache():
    """Import umap-learn, with numba's on-disk cache switched on for its compiled functions.

    UMAP's first call in a process compiles about 80 numba functions: 11 of the 12.5 s of a first
    1,000-point layout on a 2-core CPU. umap-learn does not ask numba to keep the machine code, so
    every new kernel paid that again. With the cache the compile is paid once per machine (the
    files go to umap's ``__pycache__``, or to ``NUMBA_CACHE_DIR``): a new process's first layout
    then takes about 0.8 s. Where no cache folder is writable, numba compiles as before.
    """
    import umap
    import umap.distances
    import umap.layouts
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    if not getattr(umap, "_dmlcourse_disk_cache", False):
        for module in (umap.umap_, umap.layouts, umap.utils, umap.distances):
            for function in vars(module).values():
                if isinstance(function, CPUDispatcher):
                    try:
                        function.enable_caching()
                    except RuntimeError:  # numba: no writable folder for this function's cache
                        pass
        umap._dmlcourse_disk_cache = True
    return umap


def project_2d(
    embeddings,
    method: str = "umap",
    *,
    seed: int = 0,
    init=None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
    learning_rate: float = 1.0,
    exact_distances: bool = True,
    cache: bool = False,
) -> np.ndarray:
    """Project (N, D) embeddings to (N, 2).

    method : "umap" (default; falls back to PCA with a warning if umap-learn is
        missing) or "pca". Embeddings of dimension 2 are returned as they are
        with method="identity".
    init : optional (N, 2) starting layout for UMAP (e.g. the previous epoch's,
        so that consecutive pictures stay aligned).
    n_neighbors, min_dist, n_epochs, learning_rate : UMAP's own parameters (its defaults;
        ``n_epochs=None`` lets UMAP choose).
    exact_distances : for N < ``EXACT_DISTANCES_BELOW``, compute the Euclidean distance matrix
        with NumPy and hand it to UMAP (``metric="precomputed"``): the same layout input, several
        times faster. False leaves the distances to UMAP.
    cache : True keeps a UMAP layout in the result cache (:func:`dmlcourse.core.cache.cached`,
        taught in 00_start_here), keyed by the embeddings' values and these parameters: a re-run
        after a kernel restart loads it instead of computing it again (a few seconds per
        thousand points on a CPU). The layout is the same either way (UMAP with a seed is
        deterministic). It pays only for embeddings that are the same to the bit on a re-run,
        i.e. from a cached model: retraining on a CPU need not repeat bit for bit. Default
        False: the Embedding Lab lays out every epoch and keeps its own.

    UMAP's compiled code is kept on disk (:func:`_umap_with_disk_cache`): only the first UMAP
    layout on a machine pays numba's compile, about 11 s on a 2-core CPU.
    """
    check_choice("method", method, ("umap", "pca", "identity"))
    if not isinstance(cache, bool):
        raise TypeError(f"cache must be True or False, got {cache!r}.")
    x = _numpy(embeddings).astype(np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {x.shape}.")
    if method == "identity":
        if x.shape[1] != 2:
            raise ValueError(
                f"method='identity' needs 2-D embeddings, got {x.shape[1]} dimensions."
            )
        return x.astype(np.float64)
    learning_rate = check_float("learning_rate", learning_rate, min_value=0.0, strict_min=True)
    if method == "pca" or len(x) < 10:
        return pca_2d(x)
    try:  # umap-learn itself is imported only where a layout is computed (4 s of a new kernel)
        umap_version = importlib.metadata.version("umap-learn")
    except importlib.metadata.PackageNotFoundError:
        warnings.warn("umap-learn is not installed; using PCA instead.", stacklevel=2)
        return pca_2d(x)
    kwargs = dict(
        n_components=2,
        n_neighbors=min(n_neighbors, len(x) - 1),
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
        learning_rate=learning_rate,
    )
    if init is not None:
        init = np.asarray(init, dtype=np.float32)
        if init.shape != (len(x), 2):
            raise ValueError(f"init must have shape ({len(x)}, 2), got {init.shape}.")
        kwargs["init"] = init
    if n_epochs is not None:
        kwargs["n_epochs"] = check_int("n_epochs", n_epochs, min_value=1)
    exact = exact_distances and len(x) < EXACT_DISTANCES_BELOW

    def layout():
        points = x
        if exact:
            x64 = x.astype(np.float64)
            sq = (x64 * x64).sum(1)
            points = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x64 @ x64.T, 0.0))
            points = points.astype(np.float32)
            np.fill_diagonal(points, 0.0)
            kwargs["metric"] = "precomputed"
        # umap's numba code sets the OpenMP thread count that torch shares: a session at one torch
        # thread would train at two after its first layout. Put torch's own count back.
        threads = torch.get_num_threads()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                umap = _umap_with_disk_cache()
                return umap.UMAP(**kwargs).fit_transform(points).astype(np.float64)
        finally:
            torch.set_num_threads(threads)

    if not cache:
        return layout()
    config = dict(
        data=fingerprint([("x", x)] + ([("init", init)] if init is not None else [])),
        shape=list(x.shape),
        exact=exact,
        umap=umap_version,
        **{k: v for k, v in kwargs.items() if k != "init"},
    )
    return cached("umap-layouts/layout", config, layout)


def image_to_data_uri(image, *, scale: int = 3) -> str:
    """A 28x28 uint8 image as a PNG data URI (for hover previews)."""
    from PIL import Image

    arr = _numpy(image)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        arr = (255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1e-12)).astype(np.uint8)
    img = Image.fromarray(arr.reshape(28, 28)).resize((28 * scale, 28 * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def embedding_figure(
    xy, labels, *, class_names=None, title: str = "", marker_size: int = 5, height: int = 480
):
    """A plotly scatter of 2-D points coloured by class (one trace per class, so
    the legend toggles classes). Each point's ``customdata`` is its index."""
    import plotly.graph_objects as go

    xy, labels = _numpy(xy), _numpy(labels).astype(int)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2), got {xy.shape}; use project_2d first.")
    if len(xy) != len(labels):
        raise ValueError(f"xy has {len(xy)} points but labels has {len(labels)}; they must match.")
    fig = go.Figure()
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        label = class_names[c] if class_names is not None else str(c)
        fig.add_trace(
            go.Scattergl(
                x=xy[idx, 0],
                y=xy[idx, 1],
                mode="markers",
                name=f"{c}: {label}" if class_names else label,
                customdata=idx,
                marker=dict(size=marker_size, color=PALETTE[c % 10], opacity=0.8),
                hovertemplate=f"class {label}<br>index %{{customdata}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(itemsizing="constant"),
        xaxis=dict(showticklabels=False),
        yaxis=dict(showticklabels=False, scaleanchor="x"),
    )
    return fig


def live_figure(fig):
    """The interactive version of a finished plotly figure: a ``FigureWidget`` created with its
    data. Widgets are built this way: an update sent to a FigureWidget before the browser has
    loaded plotly's widget code can be lost, and the figure would then show empty."""
    import plotly.graph_objects as go

    return go.FigureWidget(fig)


def square_plane(fig, low: float, high: float, *, height: int, width: int):
    """Lay ``fig`` out as a square piece of the plane: both axes over [low, high], one unit as
    long on each (so a circle looks round, and a distance can be judged by eye)."""
    fig.update_layout(
        height=height,
        width=width,
        xaxis_range=[low, high],
        yaxis_range=[low, high],
        yaxis_scaleanchor="x",
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig


def wire_explorer(fig, controls, draw):
    """The wiring every explorer of the course shares: ``draw(fig)`` draws the controls' current
    values into ``fig``. It draws once into the finished figure, which then becomes live (see
    :func:`live_figure`), and again into the live one whenever a control in ``controls`` moves.
    Returns the live figure, to be shown beside the controls."""
    draw(fig)
    live = live_figure(fig)
    for control in controls:
        control.observe(lambda _change: draw(live), names="value")
    return live


def embedding_explorer(xy, labels, images, *, class_names=None, title: str = ""):
    """An interactive scatter that shows the image under the mouse.

    Returns an ipywidgets box: a plotly ``FigureWidget`` and, beside it, the
    hovered (or clicked) image with its class. Needs ipywidgets and anywidget.
    """
    import ipywidgets as W
    import plotly.graph_objects as go

    fig = go.FigureWidget(embedding_figure(xy, labels, class_names=class_names, title=title))
    preview = W.HTML(value="<i>hover over a point</i>", layout=W.Layout(width="140px"))
    labels_np = _numpy(labels).astype(int)

    def show(trace, points, _state=None):
        if not points.point_inds:
            return
        i = int(trace.customdata[points.point_inds[0]])
        name = class_names[labels_np[i]] if class_names is not None else str(labels_np[i])
        preview.value = (
            f"<img src='{image_to_data_uri(images[i])}' width='112'/><br><b>{name}</b><br>index {i}"
        )

    for trace in fig.data:
        trace.on_hover(show)
        trace.on_click(show)
    box = W.HBox([fig, preview])
    box.figure, box.preview, box.show_point = fig, preview, show
    return box


def image_grid(
    images, labels=None, *, class_names=None, ncols: int = 10, size: float = 1.0, title: str = ""
):
    """A matplotlib grid of 28x28 images, each titled with its label."""
    import matplotlib.pyplot as plt

    ncols = check_int("ncols", ncols, min_value=1)
    imgs = _numpy(images)
    if imgs.ndim == 4:
        imgs = imgs[:, 0]
    n = len(imgs)
    if n == 0:
        raise ValueError("images is empty; nothing to draw.")
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        min(ncols, n),
        figsize=(size * min(ncols, n), size * 1.35 * nrows + (0.4 if title else 0)),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(imgs[i], cmap="gray_r")
        if labels is not None:
            lab = int(_numpy(labels)[i])
            ax.set_title(class_names[lab] if class_names is not None else str(lab), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def scatter_2d(xy, labels, *, class_names=None, ax=None, title: str = "", s: float = 4):
    """A static matplotlib scatter of 2-D points coloured by class."""
    import matplotlib.pyplot as plt

    xy, labels = _numpy(xy), _numpy(labels).astype(int)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    for c in np.unique(labels):
        m = labels == c
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            s=s,
            color=PALETTE[c % 10],
            label=class_names[c] if class_names is not None else str(c),
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax
