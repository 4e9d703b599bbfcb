"""Bayesian-updating triplet sampling against a brute-force reference from the update rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlcourse import losses, miners


def niw_reference(batches, p, kappa0=1.0, prior_var=1.0):
    """The Normal-Inverse-Wishart posterior, one point at a time, in numpy (float64).

    A conjugate update with n points equals n updates with one point each: this loop checks
    the batch formula against the one-point rule applied sequentially.
    """
    post = {}
    for z, y in batches:
        for x, c in zip(z.double().numpy(), y.tolist()):
            mu, k, psi, nu = post.get(c, (np.zeros(p), kappa0, prior_var * np.eye(p), p + 2.0))
            k1, nu1 = k + 1, nu + 1
            mu1 = (k * mu + x) / k1
            psi1 = psi + (k / k1) * np.outer(x - mu, x - mu)
            post[c] = (mu1, k1, psi1, nu1)
    return post


def test_posterior_matches_the_one_point_at_a_time_rule():
    g = torch.Generator().manual_seed(0)
    sampler = miners.BayesianUpdating(kappa0=0.5, prior_var=2.0)
    batches = []
    for _ in range(4):
        y = torch.randint(0, 3, (12,), generator=g)
        z = torch.randn(12, 4, generator=g) + y[:, None].float()
        batches.append((z, y))
        sampler.update(z, y)
    ref = niw_reference(batches, 4, kappa0=0.5, prior_var=2.0)
    for c, (mu, k, psi, nu) in ref.items():
        got_mu, got_k, got_psi, got_nu = sampler.classes[c]
        assert got_k == pytest.approx(k) and got_nu == pytest.approx(nu)
        np.testing.assert_allclose(got_mu.numpy(), mu, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_psi.numpy(), psi, rtol=1e-10, atol=1e-10)
        mean, cov = sampler.mean_and_covariance(c)
        np.testing.assert_allclose(cov.numpy(), psi / (nu - 4 - 1), rtol=1e-10)


def test_with_much_data_the_posterior_is_the_sample_mean_and_covariance():
    g = torch.Generator().manual_seed(1)
    true_cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]])
    chol = torch.linalg.cholesky(true_cov)
    sampler = miners.BayesianUpdating()
    for _ in range(50):
        z = torch.tensor([3.0, -1.0]) + torch.randn(200, 2, generator=g) @ chol.T
        sampler.update(z, torch.zeros(200, dtype=torch.long))
    mu, cov = sampler.mean_and_covariance(0)
    assert torch.allclose(mu.float(), torch.tensor([3.0, -1.0]), atol=0.02)
    assert torch.allclose(cov.float(), true_cov, atol=0.03)


def test_draws_follow_the_posterior_and_are_seeded():
    g = torch.Generator().manual_seed(2)
    y = torch.arange(4).repeat_interleave(800)
    z = 5 * torch.nn.functional.one_hot(y, 4).float() + 0.3 * torch.randn(3200, 4, generator=g)
    s1, s2 = miners.BayesianUpdating(seed=3), miners.BayesianUpdating(seed=3)
    a, pos, neg, neg_class = s1.draw(z, y)
    a2, pos2, neg2, _ = s2.draw(z, y)
    assert torch.equal(pos, pos2) and torch.equal(neg, neg2)
    assert (neg_class != y[a]).all()
    # positives are drawn around the anchor's class mean, negatives around the other class's
    mu = torch.stack([s1.mean_and_covariance(c)[0] for c in range(4)])
    assert (torch.cdist(pos, mu).argmin(1) == y[a]).float().mean() > 0.99
    assert (torch.cdist(neg, mu).argmin(1) == neg_class).float().mean() > 0.99
    emp = torch.cov(
        pos[y[a] == 0].T
    )  # 800 draws: the sd of a variance estimate is about 0.09 * 0.05
    assert torch.allclose(emp, s1.mean_and_covariance(0)[1], atol=0.02)


def test_as_a_miner_indices_are_valid_triplets_and_train():
    g = torch.Generator().manual_seed(4)
    y = torch.arange(4).repeat_interleave(8)
    z = torch.randn(32, 6, generator=g, requires_grad=True)
    a, p, n = miners.BayesianUpdating(seed=0)(z, y)
    assert len(a) == 32
    assert (y[a] == y[p]).all() and (a != p).all() and (y[a] != y[n]).all()
    loss_fn = miners.MinedTripletLoss("bayesian_updating", margin=0.2)
    out = loss_fn(z, y)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and z.grad is not None
    assert len(loss_fn.sampler.classes) == 4  # the state lives in the loss's sampler
    assert losses is not None


def test_bad_input():
    with pytest.raises(ValueError, match="decay"):
        miners.BayesianUpdating(decay=0)
    with pytest.raises(ValueError, match="kappa0"):
        miners.BayesianUpdating(kappa0=-1)
    with pytest.raises(KeyError, match="not been seen"):
        miners.BayesianUpdating().mean_and_covariance(3)
