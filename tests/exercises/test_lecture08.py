"""Exercises of 08_uncertainty_pfe: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import math

import torch
from scipy import integrate

from dmlcourse import uncertainty
from dmlcourse.exercises import grade, lecture08

LOG_2PI = math.log(2 * math.pi)


def _gaussians(seed=0, n=7, d=4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64), torch.rand(n, d, generator=g, dtype=torch.float64) + .1,
            torch.randn(n, d, generator=g, dtype=torch.float64), torch.rand(n, d, generator=g, dtype=torch.float64) + .1)


def test_references_match_the_package():
    # the exercise references are float64 loops over the closed forms, independent of dmlcourse.uncertainty
    mu1, var1, mu2, var2 = _gaussians()
    assert torch.allclose(lecture08.reference_mls(mu1, var1, mu2, var2),
                          uncertainty.mutual_likelihood_score(mu1, var1, mu2, var2), atol=1e-10)
    m, v = lecture08.reference_fuse(mu1, var1)
    m_pkg, v_pkg = uncertainty.fuse(mu1, var1)
    assert torch.allclose(m, m_pkg, atol=1e-10) and torch.allclose(v, v_pkg, atol=1e-10)
    log_var = var1.log().requires_grad_(True)
    mu = mu1.clone().requires_grad_(True)
    g_mu, g_lv = torch.autograd.grad(uncertainty.dul_kl(mu, log_var).sum(), (mu, log_var))
    r_mu, r_lv = lecture08.reference_kl_gradients(mu1, var1.log())
    assert torch.allclose(r_mu, g_mu, atol=1e-12) and torch.allclose(r_lv, g_lv, atol=1e-12)


def test_the_mls_reference_is_the_log_of_the_gaussian_integral():
    # log of the integral of N(z; mu1, var1) N(z; mu2, var2) dz, by numerical quadrature, dimension by dimension
    def density(z, m, v):
        return math.exp(-0.5 * (z - m) ** 2 / v) / math.sqrt(2 * math.pi * v)

    def log_overlap(m1, v1, m2, v2):
        value, _ = integrate.quad(lambda z: density(z, m1, v1) * density(z, m2, v2), -40, 40, points=[m1, m2])
        return math.log(value)

    mu1, var1, mu2, var2 = _gaussians(seed=1, n=3, d=2)
    for k in range(3):
        numeric = sum(log_overlap(*(float(t[k, dim]) for t in (mu1, var1, mu2, var2))) for dim in range(2))
        closed = float(lecture08.reference_mls(mu1[k:k + 1], var1[k:k + 1], mu2[k:k + 1], var2[k:k + 1]))
        assert abs(numeric - closed) < 1e-7


def _good_mls(mu1, var1, mu2, var2):
    v = var1 + var2
    return -0.5 * ((mu1 - mu2) ** 2 / v + torch.log(v)).sum(1) - 0.5 * mu1.shape[1] * LOG_2PI


def _expect(exercise_id, cases):
    for expected, fn in cases.items():
        out = grade(exercise_id, fn)
        assert out.status == "wrong" and expected in out.message, (expected, out.message)


def test_08_1(exercise_namespace):
    assert grade("08.1", exercise_namespace("08.1", "learner")["my_mls"]).status == "not attempted"
    assert grade("08.1", exercise_namespace("08.1", "solution")["my_mls"]).passed
    assert grade("08.1", _good_mls).passed
    _expect("08.1", {
        "sign error": lambda *a: -_good_mls(*a),
        "log term is missing": lambda m1, v1, m2, v2: _good_mls(m1, v1, m2, v2) + 0.5 * torch.log(v1 + v2).sum(1),
        "constant": lambda m1, v1, m2, v2: _good_mls(m1, v1, m2, v2) + 0.5 * m1.shape[1] * LOG_2PI,
        "official PFE": lambda m1, v1, m2, v2: -((m1 - m2) ** 2 / (v1 + v2) + torch.log(v1 + v2)).sum(1),
        "SUM var1 + var2": lambda m1, v1, m2, v2: -0.5 * ((m1 - m2) ** 2 / v1 + (m1 - m2) ** 2 / v2
                                                         + torch.log(v1 + v2)).sum(1) - 0.5 * m1.shape[1] * LOG_2PI,
        "average over the D": lambda *a: _good_mls(*a) / a[0].shape[1],
        "do not square": lambda m1, v1, m2, v2: _good_mls(m1, v1 ** 2, m2, v2 ** 2),
        "square root": lambda m1, v1, m2, v2: _good_mls(m1, v1.sqrt(), m2, v2.sqrt()),
        "shape": lambda *a: _good_mls(*a)[:, None],
    })


def test_08_2(exercise_namespace):
    assert grade("08.2", exercise_namespace("08.2", "learner")["my_fuse"]).status == "not attempted"
    assert grade("08.2", exercise_namespace("08.2", "solution")["my_fuse"]).passed

    def good(mu, var):
        p = 1 / var
        return (p * mu).sum(0) / p.sum(0), 1 / p.sum(0)

    _expect("08.2", {
        "plain average": lambda mu, var: (mu.mean(0), good(mu, var)[1]),
        "weight by the variance": lambda mu, var: ((var * mu).sum(0) / var.sum(0), good(mu, var)[1]),
        "average variance": lambda mu, var: (good(mu, var)[0], var.mean(0)),
        "SUM of the precisions": lambda mu, var: (good(mu, var)[0], 1 / (1 / var).mean(0)),
        "return a pair": lambda mu, var: good(mu, var)[0],
    })


def test_08_3(exercise_namespace):
    assert grade("08.3", exercise_namespace("08.3", "learner")["my_kl_gradients"]).status == "not attempted"
    assert grade("08.3", exercise_namespace("08.3", "solution")["my_kl_gradients"]).passed

    def by_autograd(mu, lv):
        mu, lv = mu.clone().requires_grad_(True), lv.clone().requires_grad_(True)
        kl = 0.5 * (mu ** 2 + lv.exp() - lv - 1).sum()
        return torch.autograd.grad(kl, (mu, lv))

    assert grade("08.3", by_autograd).passed      # the right gradients pass, however they are computed
    _expect("08.3", {
        "with respect to the variance": lambda mu, lv: (mu, 0.5 * (1 - 1 / lv.exp())),
        "1/2 is missing": lambda mu, lv: (mu, lv.exp() - 1),
        "−1 is missing": lambda mu, lv: (mu, 0.5 * lv.exp()),
        "dropped the 1/2": lambda mu, lv: (2 * mu, 0.5 * (lv.exp() - 1)),
        "signs are flipped": lambda mu, lv: (-mu, -0.5 * (lv.exp() - 1)),
        "swapped": lambda mu, lv: (0.5 * (lv.exp() - 1), mu),
        "return a pair": lambda mu, lv: mu,
        "shape": lambda mu, lv: (mu, 0.5 * (lv.exp() - 1).sum(1)),
    })


def test_08_4(exercise_namespace):
    dist = torch.linspace(0, 4, 41, dtype=torch.float64)
    var_grid = torch.tensor([0.01, 0.1, 1.0, 10.0], dtype=torch.float64)
    S = torch.stack([uncertainty.mutual_likelihood_score(dist[:, None], torch.full((41, 1), v, dtype=torch.float64),
                                                         torch.zeros(41, 1, dtype=torch.float64),
                                                         torch.full((41, 1), 0.01, dtype=torch.float64))
                     for v in var_grid])
    nb = dict(dist=dist, var_grid=var_grid, S=S)
    learner = exercise_namespace("08.4", "learner", **nb)
    assert grade("08.4", learner["my_prediction"], learner["my_crossing"], dist, S).status == "not attempted"
    sol = exercise_namespace("08.4", "solution", **nb)
    out = grade("08.4", sol["my_prediction"], sol["my_crossing"], dist, S)
    assert out.passed and "0.353" in out.message and "= 0.4," in out.message, out.message

    exact = lecture08.reference_crossing(10.0, 0.01, 0.01)

    def message(crossing, prediction=0.5):
        return grade("08.4", prediction, crossing, dist, S).message

    assert "penalty" in message(0.0)
    assert "add σ2² = 0.01" in message(math.sqrt(math.log(1000) / (100 - 0.1)))
    assert "not standard deviations" in message(lecture08.reference_crossing(100.0, 1e-4, 1e-4))
    assert "only one of them" in message(exact * math.sqrt(2))
    assert "grid" in message(0.4)
    assert ">= 0" in message(exact, prediction=-1)


def test_no_constant_passes():
    # a check of a function rejects constant functions; 08.4's check of values rejects typed-in constants
    from dmlcourse.exercises import constant_answers_that_pass, get

    assert get("08.4").graded == ("crossing",)
    for ex_id in ("08.1", "08.2", "08.3", "08.4"):
        assert constant_answers_that_pass(ex_id) == [], ex_id


def test_the_package_code_is_the_answer():
    # implemented_by names the package functions whose listing would give each answer away
    from dmlcourse.exercises import get, resolve

    assert resolve(get("08.3").implemented_by[0]) is uncertainty.dul_kl
    for ex_id in ("08.1", "08.2", "08.3"):
        assert get(ex_id).implemented_by and all(callable(resolve(n)) for n in get(ex_id).implemented_by)
