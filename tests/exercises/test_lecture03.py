"""Exercises of 03_autoencoders: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import torch

from dmlcourse import autoencoders as ae
from dmlcourse.exercises import grade, lecture03


def test_references_match_the_package():
    # the exercise references (SciPy, the layers run on basis vectors, NumPy) are independent of the package
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(9, 3, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(lecture03.reference_principal_angles(a, b), ae.principal_angles(a, b), atol=1e-8)
    model = ae.LinearAutoencoder((12, 7, 3))
    weights = [layer.weight.detach() for layer in model.encoder]
    assert torch.allclose(lecture03.reference_collapse(weights), ae.collapsed_encoder(model).double(), atol=1e-6)
    x = torch.randn(300, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    xc = x - x.mean(0)
    assert abs(lecture03.reference_pca_floor(xc, 3) - ae.pca_reconstruction_error(xc, 3)) < 1e-8


def _angles(a, b):
    qa, _ = torch.linalg.qr(a)
    qb, _ = torch.linalg.qr(b)
    return torch.rad2deg(torch.arccos(torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)))


def test_03_1(exercise_namespace):
    assert grade("03.1", exercise_namespace("03.1", "learner")["my_angles"]).status == "not attempted"
    assert grade("03.1", exercise_namespace("03.1", "solution")["my_angles"]).passed
    assert grade("03.1", lambda a, b: _angles(a, b).flip(0)).passed   # any order is fine
    mistakes = {
        "RADIANS": lambda a, b: torch.deg2rad(_angles(a, b)),
        "ORTHONORMAL": lambda a, b: torch.rad2deg(torch.arccos(torch.linalg.svdvals(a.T @ b).clamp(-1, 1))),
        "cosines": lambda a, b: torch.cos(torch.deg2rad(_angles(a, b))),
        "min(k, l)": lambda a, b: torch.cat([_angles(a, b), torch.zeros(1, dtype=torch.float64)]),
    }
    for message, wrong in mistakes.items():
        out = grade("03.1", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)


def _collapse(ws):
    m = ws[0]
    for w in ws[1:]:
        m = w @ m
    return m


def test_03_2(exercise_namespace):
    assert grade("03.2", exercise_namespace("03.2", "learner")["my_collapse"]).status == "not attempted"
    assert grade("03.2", exercise_namespace("03.2", "solution")["my_collapse"]).passed

    def wrong_order(ws):
        m = ws[0]
        for w in ws[1:]:
            m = m @ w
        return m

    assert "wrong order" in grade("03.2", wrong_order).message
    assert "transpose" in grade("03.2", lambda ws: _collapse(ws).T).message


def test_03_3(exercise_namespace):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 20, generator=g) @ torch.randn(20, 20, generator=g)
    xc = x - x.mean(0)
    nb = dict(xc=xc, p=4, err_ae=1.01, err_pca=1.0)
    args = (nb["err_ae"], nb["err_pca"], xc, 4)
    learner = exercise_namespace("03.3", "learner", **nb)
    assert grade("03.3", learner["my_prediction"], learner["my_floor"], *args).status == "not attempted"
    sol = exercise_namespace("03.3", "solution", **nb)
    out = grade("03.3", sol["my_prediction"], sol["my_floor"], *args)
    assert out.passed and "Eckart-Young" in out.message
    evals = torch.linalg.eigvalsh(xc.T.double() @ xc.double() / len(xc))
    mistakes = {
        "KEEP": evals[-4:].sum().item(),
        "total variance": evals.sum().item(),
        "N - 1": torch.linalg.eigvalsh(torch.cov(xc.T.double()))[:-4].sum().item(),
        "divide by N": (evals[:-4].sum() * len(xc)).item(),
        "singular values": torch.linalg.svdvals(xc.double())[4:].sum().item(),
    }
    for message, value in mistakes.items():
        out = grade("03.3", 1.0, value, *args)
        assert out.status == "wrong" and message in out.message, (message, out.message)
    assert "positive" in grade("03.3", -1.0, sol["my_floor"], *args).message


def test_03_3_constants_fail_and_the_sample_passes():
    from dmlcourse.exercises import constant_answers_that_pass, get

    sample = get("03.3").sample()
    assert grade("03.3", *sample.values()).passed
    assert constant_answers_that_pass("03.3") == []


def test_03_4_reference_matches_the_package():
    # the check's reference (torch.distributions) and the package's reparameterize + gaussian_kl agree
    for _, x, mu, log_var, eps, decoder in lecture03._vae_problems():
        f = mu + torch.exp(0.5 * log_var) * eps
        ours = ((x - decoder(f)).pow(2).sum(1) + 2.0 * ae.gaussian_kl(mu, log_var)).mean()
        assert torch.allclose(lecture03.reference_vae_loss(x, mu, log_var, eps, decoder, 2.0), ours, atol=1e-10)


def _vae(x, mu, log_var, eps, decoder, beta=1.0):
    f = mu + torch.exp(0.5 * log_var) * eps
    kl = 0.5 * (mu**2 + log_var.exp() - log_var - 1).sum(1)
    return ((x - decoder(f)).pow(2).sum(1) + beta * kl).mean()


def test_03_4(exercise_namespace):
    from dmlcourse.exercises import constant_answers_that_pass

    assert grade("03.4", exercise_namespace("03.4", "learner")["my_vae_loss"]).status == "not attempted"
    assert grade("03.4", exercise_namespace("03.4", "solution")["my_vae_loss"]).passed
    assert grade("03.4", _vae).passed
    variant = lecture03._vae_variant
    mistakes = {
        "exp(log_var / 2)": lambda *a: variant(*a, std="exp"),
        "1/2 is missing": lambda *a: variant(*a, half=False),
        "SUM over the batch": lambda *a: variant(*a, reduce="sum"),
        "every entry": lambda *a: variant(*a, reduce="mean_all"),
        "where you put sigma": lambda *a: variant(*a, kl_var="std"),
        "does not use eps": lambda *a: variant(*a, use_eps=False),
        "ignores it": lambda *a: variant(*a, use_beta=False),
        "the sign of log sigma^2": lambda *a: variant(*a, log_sign=1.0),
        "do not draw new random numbers": lambda x, mu, lv, eps, dec, b: _vae(x, mu, lv, torch.randn_like(eps), dec, b),
        "not a variance": lambda x, mu, lv, eps, dec, b: _vae(x, mu, lv.sqrt().log() * 2, eps, dec, b),
        "gradient with respect to mu": lambda x, mu, lv, eps, dec, b: _vae(x, mu.detach(), lv, eps, dec, b)
        + 0.0 * mu.sum(),
        "gradient with respect to log_var": lambda x, mu, lv, eps, dec, b: (
            (x - dec(mu + torch.exp(0.5 * lv).detach() * eps)).pow(2).sum(1)
            + b * 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)).mean(),
        "one loss per image": lambda x, mu, lv, eps, dec, b: (
            (x - dec(mu + torch.exp(0.5 * lv) * eps)).pow(2).sum(1) + b * 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)),
        "no .item()": lambda *a: _vae(*a).item(),
    }
    for message, wrong in mistakes.items():
        out = grade("03.4", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)
    assert constant_answers_that_pass("03.4") == []
