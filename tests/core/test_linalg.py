"""core.linalg: the one PCA, against NumPy's SVD; every caller uses it."""

import numpy as np
import pytest
import torch

from dmlcourse import autoencoders, mahalanobis, plots
from dmlcourse.core import linalg


def test_pca_matches_numpy_and_is_shared():
    x = torch.randn(50, 6, dtype=torch.float64)
    mean, comps = linalg.pca(x, 3)
    _, _, vt = np.linalg.svd(x.numpy() - x.numpy().mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(comps.numpy()), np.abs(vt[:3]), atol=1e-10)
    np.testing.assert_allclose(mean.numpy(), x.numpy().mean(0))
    assert mahalanobis.pca is linalg.pca
    np.testing.assert_allclose(autoencoders.pca(x, 3)[1], comps)
    np.testing.assert_allclose(plots.pca_2d(x), ((x - mean) @ comps[:2].T).numpy())


def test_pca_bad_input():
    with pytest.raises(ValueError, match="n_components must be <= 6"):
        linalg.pca(torch.randn(50, 6), 7)
    with pytest.raises(TypeError, match="floating"):
        linalg.pca(torch.ones(5, 2, dtype=torch.long), 1)


def test_pca_signs_follow_scikit_learn_and_do_not_depend_on_the_svd():
    """The largest entry of each component is positive, as in scikit-learn's PCA: the same
    components, signs included, and the same again for the data negated or permuted."""
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, generator=g, dtype=torch.float64
    )
    mean, comps = linalg.pca(x, 5)
    ref = PCA(5, svd_solver="full").fit(x.numpy())
    np.testing.assert_allclose(comps.numpy(), ref.components_, atol=1e-8)
    largest = comps.gather(1, comps.abs().argmax(1, keepdim=True))
    assert (largest > 0).all()
    # -x has the same principal axes; an SVD may return them with either sign, pca may not
    np.testing.assert_allclose(linalg.pca(-x, 5)[1].numpy(), comps.numpy(), atol=1e-8)
    # the rows in another order: the same components
    perm = torch.randperm(300, generator=g)
    np.testing.assert_allclose(linalg.pca(x[perm], 5)[1].numpy(), comps.numpy(), atol=1e-8)
