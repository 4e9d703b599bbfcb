"""Exercises of 02_mahalanobis: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import torch

from dmlcourse import mahalanobis
from dmlcourse.exercises import grade, lecture02


def test_references_match_the_package():
    # the exercise references (SciPy, a loop over points, NumPy) are independent of the package: they must agree
    x, y, W = lecture02._problem(0)
    assert torch.allclose(lecture02.reference_mahalanobis(x, y, W), mahalanobis.mahalanobis_distance(x, y, W),
                          rtol=1e-10)
    L, xs, labels = lecture02._nca_problem(1)
    assert abs(lecture02.reference_nca_loss(L, xs, labels) - mahalanobis.nca_linear_loss(L, xs, labels).item()) < 1e-10
    Lg = L.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(mahalanobis.nca_linear_loss(Lg, xs, labels), Lg)
    assert torch.allclose(lecture02.reference_nca_gradient(L, xs, labels), g, atol=1e-6)
    data = torch.randn(500, 3, dtype=torch.float64) @ torch.randn(3, 3, dtype=torch.float64)
    Lw = mahalanobis.whitening(data, shrinkage=0.0)
    assert torch.allclose(Lw.T @ Lw, lecture02.reference_whitening_target(data), rtol=1e-8)


def _maha(x, y, W):
    d = x - y
    return torch.sqrt(((d @ W) * d).sum(1))


def test_02_1(exercise_namespace):
    assert grade("02.1", exercise_namespace("02.1", "learner")["my_mahalanobis"]).status == "not attempted"
    assert grade("02.1", exercise_namespace("02.1", "solution")["my_mahalanobis"]).passed

    def half(x, y, W):
        evals, evecs = torch.linalg.eigh(W)
        return _maha(x, y, evecs @ torch.diag(evals.sqrt()) @ evecs.T)

    mistakes = {
        "off by a square root": lambda x, y, W: _maha(x, y, W) ** 2,
        "you used W^-1": lambda x, y, W: _maha(x, y, torch.linalg.inv(W)),
        "one distance per row": lambda x, y, W: torch.sqrt((x - y) @ W @ (x - y).T),
        "W is ignored": lambda x, y, W: (x - y).norm(dim=1),
        "W^(1/2) in the quadratic form": half,
    }
    for message, wrong in mistakes.items():
        out = grade("02.1", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)


def _nca(L, x, labels, *, keep_self=False, squared=True, reduce="mean", log=True, sign=1):
    z = x @ L.T
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    if not squared:
        d = (d + torch.eye(len(x), dtype=d.dtype)).sqrt() * (1 - torch.eye(len(x), dtype=d.dtype))
    if not keep_self:
        d = d + torch.diag(torch.full((len(x),), float("inf"), dtype=d.dtype))
    p = (torch.softmax(-d, 1) * (labels[:, None] == labels[None, :])).sum(1)
    terms = -sign * p.log() if log else -p
    return terms.mean() if reduce == "mean" else terms.sum()


def test_02_2(exercise_namespace):
    assert grade("02.2", exercise_namespace("02.2", "learner")["my_nca"]).status == "not attempted"
    assert grade("02.2", exercise_namespace("02.2", "solution")["my_nca"]).passed
    assert grade("02.2", _nca).passed
    mistakes = {
        "summed": lambda L, x, y: _nca(L, x, y, reduce="sum"),
        "j = i": lambda L, x, y: _nca(L, x, y, keep_self=True),
        "SQUARED": lambda L, x, y: _nca(L, x, y, squared=False),
        "-sum p_i (scikit-learn": lambda L, x, y: _nca(L, x, y, log=False, reduce="sum"),
        "-mean p_i": lambda L, x, y: _nca(L, x, y, log=False),
        "sign is wrong": lambda L, x, y: _nca(L, x, y, sign=-1),
        "no gradient": lambda L, x, y: _nca(L.detach(), x, y),
        "scalar tensor": lambda L, x, y: _nca(L, x, y).item(),
    }
    for message, wrong in mistakes.items():
        out = grade("02.2", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)


def test_02_3(exercise_namespace):
    assert grade("02.3", exercise_namespace("02.3", "learner")["my_whitening"]).status == "not attempted"
    assert grade("02.3", exercise_namespace("02.3", "solution")["my_whitening"]).passed
    # L = inv(C) with Sigma = C C^T whitens (L^T L = Sigma^-1): it passes, any rotation of Sigma^(-1/2) does
    inv_c = grade("02.3", lambda x: torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))))
    assert inv_c.passed, inv_c.message
    mistakes = {
        "Sigma^-1 itself": lambda x: torch.linalg.inv(torch.cov(x.T)),
        "you used Sigma": lambda x: torch.linalg.cholesky(torch.cov(x.T)).T,
        # inv(C)^T gives L^T L = inv(C^T C): the message must say to drop the transpose, not to add one
        "Drop the transpose": lambda x: torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T,
        "(D, D) matrix": lambda x: torch.eye(2),
    }
    for message, wrong in mistakes.items():
        out = grade("02.3", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)


def test_02_4(exercise_namespace):
    g = torch.Generator().manual_seed(0)
    coords = torch.randn(200, 30, generator=g) * torch.linspace(3.0, 0.2, 30)   # PCA-like: decreasing spread
    sets = {"mnist": (coords, torch.arange(200) % 10)}
    table = {("Euclidean, 30 dims (L = I)", "mnist"): 0.9, ("Σ⁻¹ Mahalanobis, 30 dims", "mnist"): 0.8}
    learner = exercise_namespace("02.4", "learner", sets=sets, table=table)
    out = grade("02.4", learner["my_prediction"], learner["my_weak_share"], table, coords)
    assert out.status == "not attempted"
    sol = exercise_namespace("02.4", "solution", sets=sets, table=table)
    out = grade("02.4", sol["my_prediction"], sol["my_weak_share"], table, coords)
    assert out.passed, out.message
    share = lecture02.reference_weak_share(coords)
    # the reference (closed form of the pair sums) against a brute-force sum over all pairs
    d2 = ((coords.double()[:, None, :] - coords.double()[None, :, :]) ** 2).sum((0, 1))
    assert abs(share - (d2.sort().values[:20].sum() / d2.sum()).item()) < 1e-10
    var = coords.double().var(0).sort().values
    sd = coords.double().std(0).sort().values
    mistakes = {
        "AFTER whitening": 20 / 30,
        "STRONGEST": (var[-20:].sum() / var.sum()).item(),
        "10 weakest": (var[:10].sum() / var.sum()).item(),
        "VARIANCES": (sd[:20].sum() / sd.sum()).item(),
        "training set": share * 1.3,
    }
    for message, wrong in mistakes.items():
        out = grade("02.4", 0.5, wrong, table, coords)
        assert out.status == "wrong" and message in out.message, (message, out.message)
    assert "[0, 1]" in grade("02.4", 80, share, table, coords).message


def test_02_4_rejects_constants():
    from dmlcourse.exercises import constant_answers_that_pass

    assert constant_answers_that_pass("02.4") == []
