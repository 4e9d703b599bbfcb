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
