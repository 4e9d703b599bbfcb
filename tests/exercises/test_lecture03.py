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
