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
