"""The checkers of 02_mahalanobis accept a correct answer and name the typical mistakes."""

import pytest
import torch

from dmlcourse.exercises import lecture02


def _maha(x, y, W):
    d = x - y
    return torch.sqrt(((d @ W) * d).sum(1))


def test_mahalanobis_checker():
    lecture02.check_mahalanobis(_maha)
    with pytest.raises(AssertionError, match="off by a square root"):
        lecture02.check_mahalanobis(lambda x, y, W: _maha(x, y, W) ** 2)
    with pytest.raises(AssertionError, match="W\\^-1"):
        lecture02.check_mahalanobis(lambda x, y, W: _maha(x, y, torch.linalg.inv(W)))
    with pytest.raises(AssertionError, match="one distance per row"):
        lecture02.check_mahalanobis(lambda x, y, W: torch.sqrt((x - y) @ W @ (x - y).T))
    with pytest.raises(AssertionError, match="Euclidean"):
        lecture02.check_mahalanobis(lambda x, y, W: (x - y).norm(dim=1))


def _nca(L, x, labels, *, keep_self=False, squared=True, reduce="mean", log=True):
    z = x @ L.T
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    if not squared:
        d = (d + torch.eye(len(x), dtype=d.dtype)).sqrt() * (1 - torch.eye(len(x), dtype=d.dtype))
    if not keep_self:
        d = d + torch.diag(torch.full((len(x),), float("inf"), dtype=d.dtype))
    p = (torch.softmax(-d, 1) * (labels[:, None] == labels[None, :])).sum(1)
    terms = -p.log() if log else -p
    return terms.mean() if reduce == "mean" else terms.sum()


def test_nca_checker():
    lecture02.check_nca_loss(_nca)
    with pytest.raises(AssertionError, match="summed"):
        lecture02.check_nca_loss(lambda L, x, y: _nca(L, x, y, reduce="sum"))
    with pytest.raises(AssertionError, match="j = i"):
        lecture02.check_nca_loss(lambda L, x, y: _nca(L, x, y, keep_self=True))
    with pytest.raises(AssertionError, match="SQUARED"):
        lecture02.check_nca_loss(lambda L, x, y: _nca(L, x, y, squared=False))
    with pytest.raises(AssertionError, match="scikit-learn"):
        lecture02.check_nca_loss(lambda L, x, y: _nca(L, x, y, log=False, reduce="sum"))
    with pytest.raises(AssertionError, match="no gradient"):
        lecture02.check_nca_loss(lambda L, x, y: _nca(L.detach(), x, y))


def test_whitening_checker():
    def good(x):
        evals, evecs = torch.linalg.eigh(torch.cov(x.T))
        return evecs @ torch.diag(evals.rsqrt()) @ evecs.T

    lecture02.check_whitening(good)
    lecture02.check_whitening(lambda x: torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))))   # any rotation
    with pytest.raises(AssertionError, match="Sigma\\^-1 itself"):
        lecture02.check_whitening(lambda x: torch.linalg.inv(torch.cov(x.T)))
    with pytest.raises(AssertionError, match="you used Sigma"):
        lecture02.check_whitening(lambda x: torch.linalg.cholesky(torch.cov(x.T)).T)
    with pytest.raises(AssertionError, match="TRANSPOSE"):
        lecture02.check_whitening(lambda x: torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T)
