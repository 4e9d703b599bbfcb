"""Exercises of 06: stubs are 'not attempted', typical mistakes are named, solutions pass."""

from types import SimpleNamespace

import torch

from dmlcourse import miners
from dmlcourse.exercises import grade, lecture06


def _triplets(a, p, n):
    return sorted(zip(a.tolist(), p.tolist(), n.tolist()))


def test_references_match_the_package():
    # the exercise references are loops over anchors in float64, independent of dmlcourse.miners: they must agree
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 3, (14,), generator=g)
        z = torch.randn(14, 3, generator=g, dtype=torch.float64)
        assert lecture06.reference_batch_hard(z, y) == _triplets(*miners.batch_hard(z, y))
        for margin in (0.3, 1.0):
            assert lecture06.reference_semi_hard(z, y, margin) == _triplets(*miners.batch_semi_hard(z, y, margin))
            assert lecture06.reference_semi_hard(z, y, margin, squared=True) == _triplets(
                *miners.batch_semi_hard(z, y, margin, distance="squared_euclidean"))
        assert lecture06.reference_semi_hard(z, y, 0.5, upper=False) == _triplets(*miners.batch_semi_hard(z, y))


def _masks(y):
    same = y[:, None] == y[None, :]
    return same & ~torch.eye(len(y), dtype=torch.bool), ~same


def test_06_1(exercise_namespace):
    assert grade("06.1", exercise_namespace("06.1", "learner")["my_batch_hard"]).status == "not attempted"
    assert grade("06.1", exercise_namespace("06.1", "solution")["my_batch_hard"]).passed

    def variant(positive="farthest", negative="closest", skip=True, self_positive=False):
        def fn(z, y):
            d = torch.cdist(z, z)
            pos, neg = _masks(y)
            if self_positive:
                pos = pos | torch.eye(len(y), dtype=torch.bool)
            p = (d.masked_fill(~pos, -float("inf")).argmax(1) if positive == "farthest"
                 else d.masked_fill(~pos, float("inf")).argmin(1))
            n = (d.masked_fill(~neg, float("inf")).argmin(1) if negative == "closest"
                 else d.masked_fill(~neg, -float("inf")).argmax(1))
            ok = pos.any(1) & neg.any(1) if skip else torch.ones(len(y), dtype=torch.bool)
            a = torch.nonzero(ok).flatten()
            return a, p[a], n[a]

        return fn

    assert grade("06.1", variant()).passed
    assert "FARTHEST positive" in grade("06.1", variant(positive="closest")).message
    assert "CLOSEST negative" in grade("06.1", variant(negative="farthest")).message
    assert "own positive" in grade("06.1", variant(self_positive=True)).message
    assert "must be skipped" in grade("06.1", variant(skip=False)).message
    assert "three index tensors" in grade("06.1", lambda z, y: torch.zeros(3)).message


def _semi_hard(squared=False, upper=True, pick="closest", fallback=False, per_anchor=False):
    def fn(z, y, margin):
        d = torch.cdist(z, z)
        if squared:
            d = d**2
        pos, neg = _masks(y)
        out = []
        for a, p in zip(*torch.nonzero(pos, as_tuple=True)):
            ok = neg[a] & (d[a] > d[a, p])
            if upper:
                ok &= d[a] < d[a, p] + margin
            if ok.any():
                dn = d[a].masked_fill(~ok, float("inf")) if pick == "closest" else d[a].masked_fill(~ok, -1.0)
                out.append((int(a), int(p), int(dn.argmin() if pick == "closest" else dn.argmax())))
            elif fallback and neg[a].any():
                out.append((int(a), int(p), int(d[a].masked_fill(~neg[a], float("inf")).argmin())))
        if per_anchor:
            seen, kept = set(), []
            for t in out:
                if t[0] not in seen:
                    seen.add(t[0])
                    kept.append(t)
            out = kept
        t = torch.tensor(out, dtype=torch.long).reshape(-1, 3)
        return t[:, 0], t[:, 1], t[:, 2]

    return fn


def test_06_2(exercise_namespace):
    assert grade("06.2", exercise_namespace("06.2", "learner")["my_semi_hard"], "plain").status == "not attempted"
    assert grade("06.2", exercise_namespace("06.2", "solution")["my_semi_hard"], "plain").passed
    assert grade("06.2", _semi_hard(), "plain").passed
    assert grade("06.2", _semi_hard(squared=True), "squared").passed
    assert 'you told the check "plain"' in grade("06.2", _semi_hard(squared=True), "plain").message
    assert 'you told the check "squared"' in grade("06.2", _semi_hard(), "squared").message
    assert "ignore the margin" in grade("06.2", _semi_hard(upper=False), "plain").message
    assert "CLOSEST negative inside the band" in grade("06.2", _semi_hard(pick="farthest"), "plain").message
    assert "skipped" in grade("06.2", _semi_hard(fallback=True), "plain").message
    assert "anchor-POSITIVE pair" in grade("06.2", _semi_hard(per_anchor=True), "plain").message

    def hard_negatives(z, y, margin):   # negatives closer than the positive
        d = torch.cdist(z, z)
        pos, neg = _masks(y)
        a, p = torch.nonzero(pos, as_tuple=True)
        ok = neg[a] & (d[a] < d[a, p][:, None])
        n = d[a].masked_fill(~ok, float("inf")).argmin(1)
        return a[ok.any(1)], p[ok.any(1)], n[ok.any(1)]

    assert "HARD" in grade("06.2", hard_negatives, "plain").message


def _collapse(zero=(0.9, 0.97, 1.0), big=(1.0, 1.0, 1.0)):
    def run(active):
        return {"p1": 0.42, "map_r": 0.3, "spread": 0.02, "history": SimpleNamespace(step_info={"active_fraction": list(active)})}

    return {"batch_hard, m = 0": run(zero), "batch_hard, m = 0.2": run(big)}


def test_06_3(exercise_namespace):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(4)
    z = torch.nn.functional.normalize(torch.randn(40, 10, generator=g) + 4.0 * torch.nn.functional.one_hot(y, 10), dim=1)
    fake = dict(models=SimpleNamespace(embed=lambda *a, **k: z), untrained=None,
                te=SimpleNamespace(images=torch.zeros(40, 28, 28)), probe=torch.arange(40), y_probe=y,
                collapse=_collapse())
    learner = exercise_namespace("06.3", "learner", **fake)
    args = (learner["z_start"], y, fake["collapse"])
    assert grade("06.3", learner["my_prediction"], learner["my_wrong_order"], *args).status == "not attempted"
    sol_batch_hard = exercise_namespace("06.1", "solution")["my_batch_hard"]
    sol = exercise_namespace("06.3", "solution", my_batch_hard=sol_batch_hard, **fake)
    out = grade("06.3", sol["my_prediction"], sol["my_wrong_order"], *args)
    assert out.passed and "off by" in out.message and "any margin" in out.message
    # at m = 0 some step had an inactive triplet, at m = 0.2 none: the runs part
    assert "0.90" in out.message and "the two runs part" in out.message and "EVERY step" not in out.message
    assert "2 of the 3 steps" in out.message and "end close" in out.message
    every_step = grade("06.3", sol["my_prediction"], sol["my_wrong_order"], learner["z_start"], y,
                       _collapse(zero=(1.0, 1.0)))
    assert every_step.passed and "EVERY step of both runs" in every_step.message
    both_inactive = grade("06.3", sol["my_prediction"], sol["my_wrong_order"], learner["z_start"], y,
                          _collapse(big=(1.0, 0.97, 1.0)))
    assert both_inactive.passed and "0.97 at m = 0.2" in both_inactive.message
    assert "need not be the same" in both_inactive.message

    true = sol["my_wrong_order"]
    assert 0.0 < true < 1.0  # the fake batch has both kinds, so the mistakes below are distinguishable
    d = torch.cdist(z, z)
    a, p, n = miners.batch_all(z, y)
    every = (d[a, n] < d[a, p]).float().mean().item()
    assert "batch-all" in grade("06.3", 0.5, every, *args).message
    assert "RIGHT order" in grade("06.3", 0.5, 1 - true, *args).message
    a, p, n = sol_batch_hard(z, y)
    at_margin = (d[a, n] < d[a, p] + 0.2).float().mean().item()
    assert at_margin != true
    assert "active fraction at m = 0.2" in grade("06.3", 0.5, at_margin, *args).message
    assert "[0, 1]" in grade("06.3", 42, true, *args).message
    assert "one number" in grade("06.3", 0.5, torch.ones(3), *args).message


def test_no_constant_answer_passes():
    from dmlcourse.exercises import constant_answers_that_pass

    for ex_id in ("06.1", "06.2", "06.3"):
        assert constant_answers_that_pass(ex_id) == [], ex_id
    # the sample call of 06.3 is a real problem: its answer is neither 0 nor 1
    sample = lecture06._sample_wrong_order()
    wrong, ties = lecture06.reference_wrong_order(sample["z_start"], sample["labels"])
    assert 0.0 < wrong < 1.0 and wrong != 0.5 and ties == 0.0
