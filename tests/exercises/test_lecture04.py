"""Exercises of 04: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import torch
from torch.nn import functional as F

from dmlcourse import supervised
from dmlcourse.exercises import grade, lecture04


def test_references_match_the_package():
    # the exercise references are loops over the formulas, independent of dmlcourse.supervised: they must agree
    g = torch.Generator().manual_seed(1)
    pred, target = 3 * torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g,
                                                                                      dtype=torch.float64)
    for delta in (0.5, 1.0, 2.0):
        assert abs(lecture04.reference_huber(pred, target, delta) - supervised.huber_loss(pred, target, delta).item()) < 1e-9
    logits, labels = 30 * torch.randn(20, 6, generator=g, dtype=torch.float64), torch.randint(0, 6, (20,), generator=g)
    assert abs(lecture04.reference_cross_entropy(logits, labels) - supervised.cross_entropy(logits, labels).item()) < 1e-9
    y = 2 * torch.randint(0, 2, (50,), generator=g) - 1
    assert abs(lecture04.reference_hinge(pred, y, 1.0) - supervised.hinge_loss(pred, y, 1.0).item()) < 1e-9
    z = torch.randn(40, 8, generator=g, dtype=torch.float64) * torch.tensor([5.0, 3, 1, 1, 0.5, 0.1, 0.1, 0.1])
    lam = torch.linalg.eigvalsh(torch.cov(z.T))
    assert abs(lecture04.reference_participation_ratio(z) - (lam.sum() ** 2 / (lam**2).sum()).item()) < 1e-9


def test_participation_ratio_counts_even_directions():
    # variance spread evenly over k orthogonal directions (and none elsewhere) gives exactly k; one direction gives 1
    for k in (1, 3, 5):
        z = torch.cat([torch.eye(8, dtype=torch.float64)[:k], -torch.eye(8, dtype=torch.float64)[:k]])
        assert abs(lecture04.reference_participation_ratio(z) - k) < 1e-9


def test_04_1(exercise_namespace):
    assert grade("04.1", exercise_namespace("04.1", "learner")["my_huber"]).status == "not attempted"
    assert grade("04.1", exercise_namespace("04.1", "solution")["my_huber"]).passed

    def no_half(p, t, d):
        r = (p - t).abs()
        return torch.where(r <= d, r**2, d * (r - 0.5 * d)).mean()

    def no_offset(p, t, d):
        r = (p - t).abs()
        return torch.where(r <= d, 0.5 * r**2, d * r).mean()

    def swapped(p, t, d):
        r = (p - t).abs()
        return torch.where(r > d, 0.5 * r**2, d * (r - 0.5 * d)).mean()

    def per_sample(p, t, d):
        return F.huber_loss(p, t, delta=d, reduction="none")

    assert "smooth_l1_loss" in grade("04.1", lambda p, t, d: F.smooth_l1_loss(p, t, beta=d)).message
    assert "dropped the 0.5" in grade("04.1", no_half).message
    assert "do not meet" in grade("04.1", no_offset).message
    assert "swapped" in grade("04.1", swapped).message
    assert "summed" in grade("04.1", lambda p, t, d: F.huber_loss(p, t, delta=d, reduction="sum")).message
    assert "one number" in grade("04.1", per_sample).message


def test_04_1_package_call_is_refused():
    def calls_the_package(p, t, d):
        return F.huber_loss(p, t, delta=d)

    out = grade("04.1", calls_the_package)
    assert out.status == "wrong" and "write the formula yourself" in out.message


def test_04_2(exercise_namespace):
    assert grade("04.2", exercise_namespace("04.2", "learner")["my_cross_entropy"]).status == "not attempted"
    assert grade("04.2", exercise_namespace("04.2", "solution")["my_cross_entropy"]).passed

    def naive(z, y):
        p = torch.exp(z) / torch.exp(z).sum(1, keepdim=True)
        return -torch.log(p[torch.arange(len(y)), y]).mean()

    def wrong_sign(z, y):
        m = z.max(1, keepdim=True).values
        return -(m.squeeze(1) + torch.log(torch.exp(z - m).sum(1)) - z[torch.arange(len(y)), y]).mean()

    def no_log(z, y):
        m = z.max(1, keepdim=True).values
        p = torch.exp(z - m) / torch.exp(z - m).sum(1, keepdim=True)
        return -p[torch.arange(len(y)), y].mean()

    def over_samples(z, y):
        m = z.max(0, keepdim=True).values
        lse = m + torch.log(torch.exp(z - m).sum(0, keepdim=True))
        return -(z - lse)[torch.arange(len(y)), y].mean()

    def softmax_then_log(z, y):   # stable against overflow, but p_y underflows to 0 for large logits
        e = torch.exp(z - z.max(1, keepdim=True).values)
        return -torch.log((e / e.sum(1, keepdim=True))[torch.arange(len(y)), y]).mean()

    def global_max(z, y):          # one maximum for the whole batch
        m = z.max()
        lse = m + torch.log(torch.exp(z - m).sum(1))
        return (lse - z[torch.arange(len(y)), y]).mean()

    def global_max_softmax(z, y):
        e = torch.exp(z - z.max())
        return -torch.log((e / e.sum(1, keepdim=True))[torch.arange(len(y)), y]).mean()

    def calls_the_package(z, y):
        return F.cross_entropy(z, y)

    assert "overflow" in grade("04.2", naive).message
    message = grade("04.2", softmax_then_log).message
    assert "underflowed" in message and "overflowed" not in message, message
    assert "ROW's own maximum" in grade("04.2", global_max).message
    assert "ROW's own maximum" in grade("04.2", global_max_softmax).message
    assert "sign is wrong" in grade("04.2", wrong_sign).message
    assert "forgot the log" in grade("04.2", no_log).message
    assert "dim=1" in grade("04.2", over_samples).message
    assert "log-sum-exp trick yourself" in grade("04.2", calls_the_package).message


def test_04_3(exercise_namespace):
    assert grade("04.3", exercise_namespace("04.3", "learner")["my_hinge"]).status == "not attempted"
    assert grade("04.3", exercise_namespace("04.3", "solution")["my_hinge"]).passed
    assert "hinge [.]_+ is missing" in grade("04.3", lambda s, y, m: (m - y * s).mean()).message
    assert "label is missing" in grade("04.3", lambda s, y, m: torch.relu(m - s).mean()).message
    assert "wrong sign" in grade("04.3", lambda s, y, m: torch.relu(-m - y * s).mean()).message
    assert "squared" in grade("04.3", lambda s, y, m: (torch.relu(m - y * s) ** 2).mean()).message
    assert "summed" in grade("04.3", lambda s, y, m: torch.relu(m - y * s).sum()).message


def _fake_results():
    return lecture04._sample_participation()["results"]


def test_04_4(exercise_namespace):
    results = _fake_results()
    learner = exercise_namespace("04.4", "learner", results=results, d0="mnist")
    answers = ("my_prediction", "my_effective_dims")
    assert grade("04.4", *(learner[a] for a in answers), results, "mnist").status == "not attempted"
    sol = exercise_namespace("04.4", "solution", results=results, d0="mnist")
    out = grade("04.4", *(sol[a] for a in answers), results, "mnist")
    assert out.passed and "you guessed" in out.message and "far fewer" in out.message
    true = {k: lecture04.reference_participation_ratio(results[k, "mnist"]["z"]) for k in ("mse", "cross_entropy")}
    guess = {"mse": 2, "cross_entropy": 8}
    assert grade("04.4", guess, true, results, "mnist").passed
    assert grade("04.4", {"mse": 1, "cross_entropy": 16}, true, results, "mnist").passed   # any guess in [1, p]
    assert "between 1" in grade("04.4", {"mse": 55, "cross_entropy": 8}, true, results, "mnist").message
    assert "between 1" in grade("04.4", {"mse": 0.5, "cross_entropy": 8}, true, results, "mnist").message
    assert "dict" in grade("04.4", 0.5, true, results, "mnist").message
    assert "dict" in grade("04.4", guess, 3.0, results, "mnist").message


def _ratio(v):
    return (v.sum() ** 2 / (v**2).sum()).item()


def _wrong_ratio(z, how):
    """What a typical wrong computation of the participation ratio gives (written with torch, as a learner would)."""
    lam = torch.linalg.eigvalsh(torch.cov(z.T))
    if how == "uncentred":
        return _ratio(torch.linalg.eigvalsh(z.T @ z))
    if how == "cov rows":
        return _ratio(torch.linalg.eigvalsh(torch.cov(z)).clamp_min(0))
    if how == "singular values":
        return _ratio(torch.linalg.svdvals(z - z.mean(0)))
    if how == "correlation":
        return _ratio(torch.linalg.eigvalsh(torch.corrcoef(z.T)))
    if how == "inverted":
        return 1 / _ratio(lam)
    return (lam.sum() / (lam**2).sum()).item()  # the sum not squared


def _wrong(results, how):
    return {k: _wrong_ratio(results[k, "mnist"]["z"], how) for k in ("mse", "cross_entropy")}


def test_04_4_mistakes_are_named():
    results, guess = _fake_results(), {"mse": 2, "cross_entropy": 8}
    for how, words in {"uncentred": "not centred", "cov rows": "ROW as a variable",
                       "singular values": "SQUARES", "correlation": "standardised",
                       "inverted": "upside down", "not squared": "square the sum"}.items():
        message = grade("04.4", guess, _wrong(results, how), results, "mnist").message
        assert words in message, (how, message)


def test_04_4_constants_do_not_pass():
    from dmlcourse.exercises import constant_answers_that_pass

    assert constant_answers_that_pass("04.4") == []
