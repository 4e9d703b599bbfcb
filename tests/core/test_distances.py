"""core.distances: against SciPy, and finite gradients at zero distance."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from dmlcourse.core import distances


@pytest.mark.parametrize(
    "name, scipy_name",
    [("euclidean", "euclidean"), ("squared_euclidean", "sqeuclidean"), ("cosine", "cosine")],
)
def test_pairwise_distance_matches_scipy(name, scipy_name):
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(30, 5, generator=g, dtype=torch.float64),
        torch.randn(20, 5, generator=g, dtype=torch.float64),
    )
    np.testing.assert_allclose(
        distances.pairwise_distance(x, y, name).numpy(), cdist(x, y, scipy_name), atol=1e-9
    )
    np.testing.assert_allclose(
        distances.paired_distance(x[:20], y, name).numpy(),
        np.diag(cdist(x[:20], y, scipy_name)),
        atol=1e-9,
    )
    self_d = distances.pairwise_distance(x, distance=name)
    assert torch.all(torch.diagonal(self_d) == 0)


def test_euclidean_gradient_is_finite_at_zero_distance():
    x = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    distances.pairwise_distance(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    z = torch.zeros(2, 3, requires_grad=True)
    distances.paired_distance(z, z.detach().clone()).sum().backward()
    assert torch.isfinite(z.grad).all()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: distances.pairwise_distance(t, distance="euclidean"), (x,)
    )
