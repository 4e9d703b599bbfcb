import numpy as np
import pytest
import torch

from dmlcourse import plots


def test_project_2d_shapes_and_pca_matches_svd():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, 5, generator=g) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    xy = plots.project_2d(z, method="pca")
    assert xy.shape == (60, 2)
    # the first coordinate carries the largest variance, as PCA promises
    assert xy[:, 0].var() > xy[:, 1].var() > 0
    from sklearn.decomposition import PCA

    ref = PCA(2).fit_transform(z.numpy().astype(np.float64))
    np.testing.assert_allclose(np.abs(xy), np.abs(ref), atol=1e-4)
    um = plots.project_2d(z, method="umap", seed=0, n_epochs=20)
    assert um.shape == (60, 2) and np.isfinite(um).all()
    own = plots.project_2d(z, method="umap", seed=0, n_epochs=20, exact_distances=False)
    assert own.shape == (60, 2) and np.isfinite(own).all()
    with pytest.raises(ValueError, match="learning_rate"):
        plots.project_2d(z, learning_rate=0.0)
    with pytest.raises(ValueError, match="method='tsne'"):
        plots.project_2d(z, method="tsne")


_UMAP_TWICE = """
import json, torch
from dmlcourse import plots
z = torch.randn(80, 6, generator=torch.Generator().manual_seed(0))
plots.project_2d(z, seed=0, n_epochs=20)
import umap.layouts, umap.umap_
used = [umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths,
        umap.layouts._nb_optimize_layout_euclidean_single_epoch]
print(json.dumps([[sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())]
                  for f in used]))
"""


def test_umap_compiled_code_is_reused_by_the_next_process():
    # A learner's second kernel (and CI's second notebook) must not pay numba's compile again.
    # The first process compiles (or loads, if the machine already has the cache); the second
    # must load every one of these functions from numba's disk cache: hits, no misses.
    import json
    import subprocess
    import sys

    run = lambda: json.loads(  # noqa: E731
        subprocess.run(
            [sys.executable, "-c", _UMAP_TWICE], capture_output=True, text=True, check=True
        ).stdout.splitlines()[-1]
    )
    run()
    for hits, misses in run():
        assert hits >= 1 and misses == 0, (hits, misses)


def test_embedding_figure_one_trace_per_class():
    xy = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.arange(30) % 3
    fig = plots.embedding_figure(xy, labels, class_names=["a", "b", "c"])
    assert len(fig.data) == 3 and sorted(len(t.x) for t in fig.data) == [10, 10, 10]
    assert list(fig.data[1].customdata) == list(range(1, 30, 3))
    with pytest.raises(ValueError, match="xy must have shape"):
        plots.embedding_figure(np.zeros((5, 3)), labels[:5])


def test_embedding_explorer_shows_the_hovered_image():
    xy = np.random.default_rng(0).normal(size=(20, 2))
    labels = torch.arange(20) % 2
    images = torch.randint(0, 255, (20, 28, 28), dtype=torch.uint8)
    box = plots.embedding_explorer(xy, labels, images, class_names=["even", "odd"])
    assert "hover" in box.preview.value

    class Points:  # what plotly passes to a hover callback
        point_inds = [2]

    trace = box.figure.data[1]  # the "odd" class: indices 1, 3, 5, ...
    box.show_point(trace, Points())
    assert (
        "index 5" in box.preview.value
        and "odd" in box.preview.value
        and "data:image/png;base64" in box.preview.value
    )


def test_image_grid_and_data_uri():
    images = torch.randint(0, 255, (7, 28, 28), dtype=torch.uint8)
    fig = plots.image_grid(images, torch.arange(7), ncols=4)
    assert len([a for a in fig.axes if a.images]) == 7
    assert plots.image_to_data_uri(images[0]).startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="images is empty"):
        plots.image_grid(images[:0])


def test_project_2d_cache_stores_the_same_layout_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(80, 6, generator=g)
    fresh = plots.project_2d(z, seed=0, n_epochs=20)
    stored = plots.project_2d(z, seed=0, n_epochs=20, cache=True)
    np.testing.assert_array_equal(stored, fresh)  # caching does not change the layout
    assert len(list(tmp_path.rglob("layout-*.pt"))) == 1

    import umap

    def no_umap(*args, **kwargs):
        raise AssertionError("UMAP ran although the layout was cached")

    monkeypatch.setattr(umap, "UMAP", no_umap)
    np.testing.assert_array_equal(plots.project_2d(z, seed=0, n_epochs=20, cache=True), fresh)
    # other points, another seed or another parameter are other layouts: computed, not loaded
    for args, kwargs in [((z + 1e-3,), {}), ((z,), {"seed": 1}), ((z,), {"min_dist": 0.5})]:
        kwargs = {"seed": 0, "n_epochs": 20, "cache": True, **kwargs}
        with pytest.raises(AssertionError, match="UMAP ran"):
            plots.project_2d(*args, **kwargs)
    with pytest.raises(TypeError, match="cache must be True or False, got 'yes'"):
        plots.project_2d(z, cache="yes")


def test_a_umap_layout_leaves_torchs_thread_count_as_it_was():
    # umap's numba code sets the OpenMP thread count torch shares (1 -> 2 with metric="precomputed",
    # the exact-distance path below): a one-thread session would then train at two threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
        plots.project_2d(x, seed=0, exact_distances=True)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
