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


def _floor(xc, p):
    evals = torch.linalg.eigvalsh(xc.double().T @ xc.double() / len(xc))
    return evals[:-p].sum().item()


def test_03_3(exercise_namespace):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 20, generator=g) @ torch.randn(20, 20, generator=g)
    xc = x - x.mean(0)                                   # float32, as the notebook's
    floor = lecture03.reference_pca_floor(xc, 4)
    nb = dict(xc=xc, p=4, err_ae=1.01 * floor, err_pca=floor)
    args = (nb["err_ae"], nb["err_pca"], xc, 4)
    learner = exercise_namespace("03.3", "learner", **nb)
    assert grade("03.3", learner["my_floor"], learner["my_prediction"], *args).status == "not attempted"
    assert grade("03.3", _floor, None, *args).status == "not attempted"      # the prediction's stub
    sol = exercise_namespace("03.3", "solution", **nb)
    out = grade("03.3", sol["my_floor"], sol["my_prediction"], *args)
    assert out.passed and "Eckart-Young" in out.message, out.message
    assert grade("03.3", _floor, 0.3, *args).passed                        # any guess from 0 to 1
    # the values on screen in the notebook do not pass: the floor is checked as a function on fresh data
    for number in (floor, nb["err_ae"], round(floor, 4)):
        out = grade("03.3", number, 0.5, *args)
        assert out.status == "wrong" and "function" in out.message, out.message
        out = grade("03.3", lambda xc, p, v=number: v, 0.5, *args)
        assert out.status == "wrong" and "random centred data" in out.message, out.message

    def evals_of(xc, ddof=0):
        return torch.linalg.eigvalsh(xc.T @ xc / (len(xc) - ddof))        # ascending

    mistakes = {
        "KEEP": lambda xc, p: evals_of(xc)[-p:].sum().item(),
        "SMALLEST": lambda xc, p: evals_of(xc)[:p].sum().item(),
        "instead of the": lambda xc, p: evals_of(xc)[p:].sum().item(),
        "total variance": lambda xc, p: evals_of(xc).sum().item(),
        "N - 1": lambda xc, p: evals_of(xc, ddof=1)[:-p].sum().item(),
        "divide by N": lambda xc, p: (evals_of(xc)[:-p].sum() * len(xc)).item(),
        "singular values": lambda xc, p: torch.linalg.svdvals(xc)[p:].sum().item(),
    }
    for message, wrong in mistakes.items():
        out = grade("03.3", wrong, 0.5, *args)
        assert out.status == "wrong" and message in out.message, (message, out.message)
    assert "between 0" in grade("03.3", _floor, -1.0, *args).message
    assert "between 0" in grade("03.3", _floor, 1.5, *args).message
    # float32 on the notebook's data: right on the float64 problems, off on a float32 xc
    def float32_floor(xc, p):
        evals = torch.linalg.eigvalsh(xc.float().T @ xc.float() / len(xc)).double()
        return evals[:-p].sum().item() * (1 + 1e-2 * (xc.dtype == torch.float32))
    assert "float64" in grade("03.3", float32_floor, 0.5, *args).message
    # the package's own function is refused
    from dmlcourse import autoencoders
    out = grade("03.3", lambda xc, p: autoencoders.pca_reconstruction_error(xc, p), 0.5, *args)
    assert out.status == "wrong" and "pca_reconstruction_error" in out.message, out.message


def test_03_3_constants_fail_and_the_sample_passes():
    from dmlcourse.exercises import constant_answers_that_pass, get

    sample = get("03.3").sample()
    assert "floor" not in sample                    # the function is what the probe of constants puts in
    assert grade("03.3", _floor, *sample.values()).passed
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
