"""Exercises of 00_start_here: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import torch

from dmlcourse import metrics
from dmlcourse.exercises import grade, lecture00


def _problem(seed=0, n=80):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    return torch.randn(n, 3, generator=g) + torch.nn.functional.one_hot(y, 5)[:, :3].float(), y


def test_references_match_the_package():
    # the exercise references are brute-force loops, independent of dmlcourse.metrics: they must agree
    z, y = _problem()
    assert abs(lecture00.reference_precision_at_1(z, y) - metrics.precision_at_1(z, y)) < 1e-6
    assert abs(lecture00.reference_r_precision(z, y) - metrics.r_precision(z, y)) < 1e-6


def test_00_1(exercise_namespace):
    assert grade("00.1", exercise_namespace("00.1", "learner")["my_precision_at_1"]).status == "not attempted"
    assert grade("00.1", exercise_namespace("00.1", "solution")["my_precision_at_1"]).passed

    def with_self(z, y):
        return (y[torch.cdist(z, z).argmin(1)] == y).float().mean().item()

    def farthest(z, y):
        d = torch.cdist(z, z)
        return (y[d.argmax(1)] == y).float().mean().item()

    def per_point(z, y):
        d = torch.cdist(z, z).fill_diagonal_(float("inf"))
        return (y[d.argmin(1)] == y).float()

    assert "Exclude it" in grade("00.1", with_self).message
    assert "FARTHEST" in grade("00.1", farthest).message
    assert "one number" in grade("00.1", per_point).message


def test_00_2(exercise_namespace):
    assert grade("00.2", exercise_namespace("00.2", "learner")["my_r_precision"]).status == "not attempted"
    assert grade("00.2", exercise_namespace("00.2", "solution")["my_r_precision"]).passed

    def with_self(z, y):
        d = torch.cdist(z, z)
        order = d.argsort(1)
        r = (y[:, None] == y[None, :]).sum(1) - 1
        return torch.stack([(y[order[i, : r[i]]] == y[i]).float().mean() for i in range(len(y))]).mean().item()

    def r_counts_self(z, y):
        d = torch.cdist(z, z).fill_diagonal_(float("inf"))
        order = d.argsort(1)
        r = (y[:, None] == y[None, :]).sum(1)
        return torch.stack([(y[order[i, : r[i]]] == y[i]).float().mean() for i in range(len(y))]).mean().item()

    assert "counted among its own" in grade("00.2", with_self).message
    assert "OTHER points" in grade("00.2", r_counts_self).message


def test_00_3(exercise_namespace):
    from dmlcourse.exercises import lecture00

    g = torch.Generator().manual_seed(1)
    y = torch.arange(10).repeat_interleave(7)
    x = torch.randn(70, 5, generator=g) + 0.8 * torch.nn.functional.one_hot(y % 5, 5).float()
    results = {"raw pixels (784-d)": (0.9, 0.4)}
    learner = exercise_namespace("00.3", "learner", y_test=y, raw=x, results=results)
    out = grade("00.3", learner["my_prediction"], learner["my_intruders"], results, x, y)
    assert out.status == "not attempted"
    sol = exercise_namespace("00.3", "solution", y_test=y, raw=x, results=results)
    assert grade("00.3", sol["my_prediction"], sol["my_intruders"], results, x, y).passed
    ours = lecture00.reference_intruders(x, y)
    assert abs(sol["my_intruders"] - ours) < 1e-5  # the solution runs in float32
    # independent: R x (1 - R-precision), from the brute-force loop of exercise 00.2
    assert abs(ours - 6 * (1 - lecture00.reference_r_precision(x, y))) < 1e-9
    guess = {"p1": 0.5, "map_r": 0.5}
    assert "[0, 1]" in grade("00.3", {"p1": 5, "map_r": 0.5}, ours, results, x, y).message
    assert "fraction" in grade("00.3", guess, ours / 6, results, x, y).message
    assert "not" in grade("00.3", guess, ours + 1, results, x, y).message


def test_strict_mode_raises_on_anything_but_a_pass(monkeypatch, capsys):
    from dmlcourse.exercises import check

    def stub(z, y):
        raise NotImplementedError()

    check("00.1", stub)
    assert "not attempted yet: write `my_precision_at_1`" in capsys.readouterr().out
    monkeypatch.setenv("DMLCOURSE_EXERCISES_STRICT", "1")
    import pytest

    with pytest.raises(AssertionError, match="strict"):
        check("00.1", stub)
