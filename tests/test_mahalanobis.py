import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from dmlcourse import losses, mahalanobis


def _psd(seed, d=4):
    A = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return A @ A.T + 0.1 * torch.eye(d, dtype=torch.float64), A


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_matches_scipy_and_the_linear_map(seed):
    W, _ = _psd(seed)
    g = torch.Generator().manual_seed(seed + 10)
    x, y = (
        torch.randn(20, 4, generator=g, dtype=torch.float64),
        torch.randn(20, 4, generator=g, dtype=torch.float64),
    )
    ours = mahalanobis.mahalanobis_distance(x, y, W)
    ref = [scipy_mahalanobis(a.numpy(), b.numpy(), W.numpy()) for a, b in zip(x, y)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)
    L = torch.linalg.cholesky(W).T  # W = L^T L
    assert torch.allclose(ours, torch.linalg.norm(x @ L.T - y @ L.T, dim=1))


def test_psd_is_required():
    W = torch.diag(torch.tensor([1.0, -0.5]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        mahalanobis.mahalanobis_distance(torch.zeros(1, 2), torch.ones(1, 2), W)
    with pytest.raises(ValueError, match="must have shape"):
        mahalanobis.mahalanobis_distance(torch.zeros(1, 3), torch.ones(1, 3), torch.eye(2))


def test_covariance_metric_whitens():
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[2.0, 0.0], [1.5, 0.5]], dtype=torch.float64)
    x = torch.randn(5000, 2, generator=g, dtype=torch.float64) @ A.T
    W = mahalanobis.covariance_metric(x, shrinkage=0.0)
    L = torch.linalg.cholesky(W).T
    assert torch.allclose(torch.cov((x @ L.T).T), torch.eye(2, dtype=torch.float64), atol=1e-6)


def test_lda_spans_the_same_subspace_as_scikit_learn():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(300) % 3
    x = (
        torch.randn(300, 5, generator=g, dtype=torch.float64)
        + torch.nn.functional.one_hot(labels, 5).double() * 3
    )
    L = mahalanobis.lda(x, labels, shrinkage=0.0)
    ref = LinearDiscriminantAnalysis(solver="eigen").fit(x.numpy(), labels.numpy()).scalings_[:, :2]
    q1, _ = torch.linalg.qr(L.T)
    q2, _ = torch.linalg.qr(torch.as_tensor(ref))
    cos = torch.linalg.svdvals(q1.T @ q2)  # cosines of the principal angles
    assert torch.all(cos > 1 - 1e-6)


def test_nca_loss_value_and_gradient_against_a_loop():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2])
    L = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    loss = mahalanobis.nca_linear_loss(L, x, y)
    z = (x @ L.T).detach()
    total = 0.0
    for i in range(12):
        w = [float(torch.exp(-((z[i] - z[j]) ** 2).sum())) if j != i else 0.0 for j in range(12)]
        p = sum(w[j] for j in range(12) if y[j] == y[i]) / sum(w)
        total += -np.log(p)
    assert loss.item() == pytest.approx(total / 12, rel=1e-10)
    assert torch.autograd.gradcheck(lambda t: mahalanobis.nca_linear_loss(t, x, y), (L,))
    # the same formula as the deep version of lecture 5, applied to the linear embedding
    assert loss.item() == pytest.approx(losses.nca_loss(x @ L.T, y).item())


def test_nca_fit_improves_knn_on_a_problem_with_a_noisy_dimension():
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(400) % 2
    signal = labels.double()[:, None] * 1.0 + 0.3 * torch.randn(
        400, 1, generator=g, dtype=torch.float64
    )
    noise = 5 * torch.randn(400, 3, generator=g, dtype=torch.float64)
    x = torch.cat([signal, noise], 1)
    model = mahalanobis.NCA(2, max_iter=150, lr=0.05, batch_size=None).fit(x[:200], labels[:200])
    from dmlcourse import metrics

    before = metrics.knn_accuracy(x[200:].float(), labels[200:], x[:200].float(), labels[:200])
    after = metrics.knn_accuracy(
        model.transform(x[200:]), labels[200:], model.transform(x[:200]), labels[:200]
    )
    assert after > before + 0.1 and model.losses_[-1] < model.losses_[0]


def test_unit_ball_explorer_moves_the_nearest_neighbour():
    pts = torch.tensor([[1.0, 0.0], [0.0, 1.2]], dtype=torch.float64)
    box = mahalanobis.unit_ball_explorer(pts, eig1=1.0, eig2=1.0, angle=0.0)
    assert box.state["nearest"] == 0
    box.eig1.value = 10.0  # stretching the x-axis makes point 0 far
    assert box.state["nearest"] == 1
    x = np.asarray(box.figure.data[0].x)
    assert abs(x.max() - 1 / np.sqrt(10)) < 1e-3


def test_psd_sqrt_and_whitening():
    W, _ = _psd(5)
    L = mahalanobis.psd_sqrt(W)
    assert torch.allclose(L, L.T) and torch.allclose(L.T @ L, W, atol=1e-10)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3000, 3, generator=g, dtype=torch.float64) @ torch.randn(
        3, 3, generator=g, dtype=torch.float64
    )
    Lw = mahalanobis.whitening(x, shrinkage=0.0)
    assert torch.allclose(torch.cov((x @ Lw.T).T), torch.eye(3, dtype=torch.float64), atol=1e-8)
    ref = np.linalg.inv(np.cov(x.numpy().T))  # numpy's covariance, inverted
    np.testing.assert_allclose((Lw.T @ Lw).numpy(), ref, rtol=1e-8)


def test_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(7)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64) @ torch.diag(
        torch.tensor([5.0, 3, 2, 1, 0.5, 0.1], dtype=torch.float64)
    )
    mean, comps = mahalanobis.pca(x, 3)
    ref = PCA(3).fit(x.numpy())
    np.testing.assert_allclose(mean.numpy(), ref.mean_)
    np.testing.assert_allclose(
        np.abs(comps.numpy() @ ref.components_.T), np.eye(3), atol=1e-8
    )  # up to sign


def test_nca_probabilities_and_sklearn_objective_against_a_loop():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 2])
    L = torch.randn(2, 3, generator=g, dtype=torch.float64)
    p = mahalanobis.nca_probabilities(L, x, y)
    z = x @ L.T
    for i in range(10):
        w = [
            float(np.exp(-((z[i] - z[j]) ** 2).sum().item())) if j != i else 0.0 for j in range(10)
        ]
        assert p[i].item() == pytest.approx(
            sum(w[j] for j in range(10) if y[j] == y[i]) / sum(w), rel=1e-10
        )
    assert mahalanobis.sklearn_nca_objective(L, x, y).item() == pytest.approx(p.sum().item())
    assert mahalanobis.nca_linear_loss(L, x, y).item() == pytest.approx((-p.log()).mean().item())


def test_unit_ball_explorer_defaults_change_the_nearest_and_survive_the_browser():
    from tests.browser.nouislider import snapped

    box = mahalanobis.unit_ball_explorer()
    assert snapped(box) == {}
    box2 = mahalanobis.unit_ball_explorer(eig1=10.0, eig2=0.01, angle=30.0)
    assert snapped(box2) == {}
    seen = set()
    for e1 in (0.01, 0.1, 1.0, 10.0):
        for e2 in (0.01, 0.1, 1.0, 10.0):
            for a in (0, 45, 90, 135):
                box.eig1.value, box.eig2.value, box.angle.value = e1, e2, a
                seen.add(box.state["nearest"])
    assert len(seen) >= 4  # "the nearest point changes as W does"
    assert box.eig1.style.description_width == "initial"
