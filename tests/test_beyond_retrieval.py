"""Kernel PCA, the VAE, out-of-distribution detection and few-shot classification,
against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import KernelPCA
from sklearn.metrics import roc_auc_score

from dmlcourse import autoencoders as ae
from dmlcourse import open_set


def test_kernel_pca_matches_scikit_learn_up_to_sign():
    x, _ = ae.make_circles(200, seed=0)
    ours = ae.rbf_kernel_pca(x, 3, gamma=2.0).double().numpy()
    ref = KernelPCA(3, kernel="rbf", gamma=2.0, eigen_solver="dense").fit(
        x.numpy().astype(np.float64)
    )
    theirs = ref.transform(x.numpy().astype(np.float64))
    for j in range(3):
        sign = np.sign(ours[:, j] @ theirs[:, j])
        np.testing.assert_allclose(sign * ours[:, j], theirs[:, j], atol=1e-4)
    new = x[:20] + 0.01
    ours_new = ae.rbf_kernel_pca(x, 3, gamma=2.0, x_new=new).double().numpy()
    theirs_new = ref.transform(new.numpy().astype(np.float64))
    for j in range(3):
        sign = np.sign(ours[:, j] @ theirs[:, j])
        np.testing.assert_allclose(sign * ours_new[:, j], theirs_new[:, j], atol=1e-4)


def test_kernel_pca_makes_circles_linearly_separable():
    x, y = ae.make_circles(300, seed=1)
    assert ae.linear_accuracy(x, y) < 0.75
    assert ae.linear_accuracy(ae.rbf_kernel_pca(x, 5, gamma=2.0), y) > 0.95  # 5 kernel-PCA axes


def test_gaussian_kl_against_torch_distributions_and_the_reparameterisation():
    g = torch.Generator().manual_seed(0)
    mu, log_var = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    q = torch.distributions.Normal(mu, (0.5 * log_var).exp())
    p = torch.distributions.Normal(
        torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    )
    assert torch.allclose(
        ae.gaussian_kl(mu, log_var), torch.distributions.kl_divergence(q, p).sum(1)
    )
    draws = ae.reparameterize(mu[:1].expand(100_000, 3), log_var[:1].expand(100_000, 3), g)
    assert torch.allclose(draws.mean(0), mu[0], atol=0.03)
    assert torch.allclose(draws.var(0), log_var[0].exp(), rtol=0.03)
    m, lv = mu.clone().requires_grad_(True), log_var.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(ae.gaussian_kl, (m, lv))


def test_the_vae_trains_its_kl_shrinks_codes_and_decodes_prior_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 20, generator=g)
    plain = ae.VariationalAutoencoder(code_dim=4, hidden=(32,), in_features=20, beta=0.0)
    strong = ae.VariationalAutoencoder(code_dim=4, hidden=(32,), in_features=20, beta=50.0)
    lp = ae.train_autoencoder(plain, x, epochs=30, batch_size=64, lr=3e-3, device="cpu")
    ae.train_autoencoder(strong, x, epochs=30, batch_size=64, lr=3e-3, device="cpu")
    assert lp[-1] < lp[0]
    with torch.no_grad():
        kl_plain = ae.gaussian_kl(*plain.encode_distribution(x)).mean()
        kl_strong = ae.gaussian_kl(*strong.encode_distribution(x)).mean()
    assert kl_strong < 0.5 * kl_plain  # beta pulls q(f | x) to the prior
    assert ae.sample_from_prior(strong, 7).shape == (7, 20)
    assert torch.equal(plain(x), plain.encode(x)) and plain(x).shape == (256, 4)
    with pytest.raises(ValueError, match="beta"):
        ae.VariationalAutoencoder(beta=-1)


def test_auroc_matches_scikit_learn_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (40,), generator=g).float()
    b = torch.randint(2, 8, (30,), generator=g).float()
    ref = roc_auc_score(np.r_[np.zeros(40), np.ones(30)], np.r_[a.numpy(), b.numpy()])
    assert open_set.auroc(a, b) == pytest.approx(ref, abs=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        open_set.auroc(a, a[:0])


def test_knn_distance_scores_against_a_loop():
    g = torch.Generator().manual_seed(1)
    ref, q = torch.randn(30, 4, generator=g), torch.randn(7, 4, generator=g)
    got = open_set.knn_distance_scores(q, ref, k=3)
    for i in range(7):
        d = sorted(float((q[i] - r).norm()) for r in ref)
        assert got[i].item() == pytest.approx(d[2], rel=1e-5)


def test_nearest_class_mean_and_few_shot():
    g = torch.Generator().manual_seed(2)
    y = torch.arange(5).repeat_interleave(20)
    z = 4 * torch.nn.functional.one_hot(y, 5).float() + torch.randn(100, 5, generator=g)
    support = torch.tensor([0, 20, 40, 60, 80])
    pred = open_set.nearest_class_mean(z[support], y[support], z)
    means = z[support]
    loop = torch.tensor(
        [int(torch.argmin(torch.stack([(zi - m).norm() for m in means]))) for zi in z]
    )
    assert torch.equal(pred, loop)
    one, sd1 = open_set.few_shot_accuracy(z, y, 1, episodes=10)
    ten, _ = open_set.few_shot_accuracy(z, y, 10, episodes=10)
    assert 0.2 < one <= ten <= 1.0 and sd1 >= 0
    with pytest.raises(ValueError, match="shots=20"):
        open_set.few_shot_accuracy(z, y, 20)
