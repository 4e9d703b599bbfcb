"""Exercises of 07_angular_margins: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import math

import torch
import torch.nn.functional as F

from dmlcourse import heads
from dmlcourse.exercises import grade, lecture07


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 6, (12,), generator=g)
    return x, y


def test_references_match_the_package():
    # the exercise references are float64 loops over the formulas, independent of dmlcourse.heads: they must agree
    x, y = _problem()
    cos_head = heads.CosFaceHead(5, 6, scale=20.0, margin=0.3).double()
    W = cos_head.weight.detach()
    assert torch.allclose(lecture07.reference_cosface_logits(x, W, y, 20.0, 0.3), cos_head(x, y).detach(), atol=1e-9)
    for m in (1, 2, 3, 4):
        sphere = heads.SphereFaceHead(5, 6, margin=m, lambda_base=0.0, lambda_min=0.0).double()  # no annealing
        ref = lecture07.reference_sphereface_logits(x, sphere.weight.detach(), y, m)
        assert torch.allclose(ref, sphere(x, y).detach(), atol=1e-5)  # the head clamps acos at 1 - 1e-6
        theta = torch.linspace(0, math.pi, 50, dtype=torch.float64)
        assert torch.allclose(torch.tensor([lecture07.reference_psi(float(t), m) for t in theta], dtype=torch.float64),
                              heads.sphereface_psi(theta, m), atol=1e-12)


def test_room_and_gap_references():
    # 10 evenly spaced weights: gap 2 pi / 10; at m = 0.6 about 0.81 degrees each side; no room from m = 2 pi / 10 on
    angles = torch.arange(10, dtype=torch.float64) * 2 * math.pi / 10 + 0.3
    W = torch.stack([angles.cos(), angles.sin()], 1)[torch.randperm(10, generator=torch.Generator().manual_seed(0))]
    assert abs(lecture07.reference_smallest_gap(W) - 2 * math.pi / 10) < 1e-12
    assert abs(math.degrees(lecture07.reference_room(10, 0.6)) - 0.8113) < 1e-3
    assert lecture07.reference_room(10, 2 * math.pi / 10) == 0.0
    # a point phi inside the room meets the ArcFace margin against both neighbours, one just outside does not
    phi = lecture07.reference_room(10, 0.6)
    for p, ok in ((0.99 * phi, True), (1.01 * phi, False)):
        assert (p + 0.6 < 2 * math.pi / 10 - p) == ok


def _good_cosface(x, W, y, s, m):
    cos = F.normalize(x, dim=1) @ F.normalize(W, dim=1).T
    cos[torch.arange(len(y)), y] -= m
    return s * cos


def test_07_1(exercise_namespace):
    assert grade("07.1", exercise_namespace("07.1", "learner")["my_cosface"]).status == "not attempted"
    assert grade("07.1", exercise_namespace("07.1", "solution")["my_cosface"]).passed
    assert grade("07.1", _good_cosface).passed

    def after_scale(x, W, y, s, m):
        out = s * (F.normalize(x, dim=1) @ F.normalize(W, dim=1).T)
        out[torch.arange(len(y)), y] -= m
        return out

    def unnormalised(x, W, y, s, m):
        out = s * (x @ W.T)
        out[torch.arange(len(y)), y] -= s * m
        return out

    def columns(x, W, y, s, m):
        out = s * (F.normalize(x, dim=1) @ F.normalize(W, dim=0).T)
        out[torch.arange(len(y)), y] -= s * m
        return out

    cases = {
        "scale s is missing": lambda x, W, y, s, m: _good_cosface(x, W, y, s, m) / s,
        "after the scale": after_scale,
        "every class": lambda x, W, y, s, m: _good_cosface(x, W, y, s, 0.0) - s * m,
        "margin is missing": lambda x, W, y, s, m: _good_cosface(x, W, y, s, 0.0),
        "x and W not normalised": unnormalised,
        "normalise with dim=1": columns,
        "shape": lambda x, W, y, s, m: _good_cosface(x, W, y, s, m).T,
    }
    for expected, fn in cases.items():
        out = grade("07.1", fn)
        assert out.status == "wrong" and expected in out.message, (expected, out.message)


def test_07_2(exercise_namespace):
    assert grade("07.2", exercise_namespace("07.2", "learner")["my_sphereface"]).status == "not attempted"
    solution = exercise_namespace("07.2", "solution")["my_sphereface"]
    assert grade("07.2", solution).passed

    def variant(psi_of=None, scale_x=True, scale_others=True, norm_w=True):
        def fn(x, W, y, m):
            rows = torch.arange(len(y))
            norm = x.norm(dim=1, keepdim=True)
            cos = F.normalize(x, dim=1) @ (F.normalize(W, dim=1) if norm_w else W).T
            t = torch.acos(cos[rows, y].clamp(-1, 1))
            k = torch.floor(t * m / math.pi).clamp(max=m - 1)
            psi = psi_of(t, k, m) if psi_of else (1 - 2 * (k % 2)) * torch.cos(m * t) - 2 * k
            out = cos * (norm if scale_x and scale_others else 1)
            out[rows, y] = psi * (norm[:, 0] if scale_x else 1)
            return out
        return fn

    assert grade("07.2", variant()).passed
    cases = {
        "not monotone": variant(psi_of=lambda t, k, m: torch.cos(m * t)),
        "-2k of ψ is missing": variant(psi_of=lambda t, k, m: (1 - 2 * (k % 2)) * torch.cos(m * t)),
        "sign (-1)^k": variant(psi_of=lambda t, k, m: torch.cos(m * t) - 2 * k),
        "does not normalise the features": variant(scale_x=False),
        "non-target logits are ||x|| cos": variant(scale_others=False),
        "W is not normalised": variant(norm_w=False),
    }
    for expected, fn in cases.items():
        out = grade("07.2", fn)
        assert out.status == "wrong" and expected in out.message, (expected, out.message)


def test_07_3(exercise_namespace):
    angles = torch.tensor([0.0, 3.0, 0.5, 1.2, 5.0, 2.2, 4.1, 1.7, 5.6, 3.5], dtype=torch.float64)
    W = torch.stack([angles.cos(), angles.sin()], 1).float()  # classes NOT in index order around the circle
    nb = dict(flat={"arcface": (None, W)}, class_weights=lambda head: W)
    learner = exercise_namespace("07.3", "learner", **nb)
    args = [learner[k] for k in ("my_prediction", "my_max_margin", "my_room_deg", "my_smallest_gap")]
    assert grade("07.3", *args, learner["W_arc"]).status == "not attempted"
    sol = exercise_namespace("07.3", "solution", **nb)
    args = [sol[k] for k in ("my_prediction", "my_max_margin", "my_room_deg", "my_smallest_gap")]
    out = grade("07.3", *args, sol["W_arc"])
    assert out.passed, out.message
    assert abs(sol["my_smallest_gap"] - 0.5) < 1e-5 and "0.500 rad apart" in out.message
    # the message's CosFace remark: with 10 evenly spaced weights no point meets cos θ_y - 0.2 > cos θ_j, wherever it
    # sits between its weight and a neighbour (a brute-force scan of the angle, the neighbour on the other side mirrors)
    assert "acos(0.8) = 36.9° away" in out.message and "no point can meet it" in out.message
    gap = 2 * math.pi / 10
    assert all(math.cos(phi) - 0.2 <= math.cos(gap - phi) for phi in torch.linspace(0, gap / 2, 1001).tolist())

    good = dict(prediction=1.0, max_margin=2 * math.pi / 10, room=math.degrees((2 * math.pi / 10 - 0.6) / 2), gap=0.5)
    assert grade("07.3", *good.values(), W).passed

    def message(**wrong):
        return grade("07.3", *{**good, **wrong}.values(), W).message

    assert "RADIANS" in message(max_margin=36.0)
    assert "not shared" in message(max_margin=math.pi / 10)
    assert "twice the room" in message(room=2 * good["room"])
    assert "in radians" in message(room=math.radians(good["room"]))
    assert "34.4°" in message(room=(36 - 0.6) / 2)
    assert "with itself" in message(gap=0.0)
    assert "index order" in message(gap=min(abs(float(angles[k] - angles[k + 1])) for k in range(9)))
    assert "in degrees" in message(gap=math.degrees(0.5))
    assert "must be a number" in message(prediction="no")


def test_constants_do_not_pass():
    # a typed-in number or a function that ignores its input never passes; 07.3 is probed from its sample call
    from dmlcourse.exercises import constant_answers_that_pass, get

    for ex_id in ("07.1", "07.2", "07.3"):
        assert constant_answers_that_pass(ex_id) == [], ex_id
    sample = get("07.3").sample()
    assert grade("07.3", *sample.values()).passed
    third = get("07.3").hints[2]
    assert not any(code in third for code in ("math.", "torch.", "my_", "acos"))   # the method, not the code
