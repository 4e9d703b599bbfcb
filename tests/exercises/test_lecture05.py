"""Exercises of 05: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import torch

from dmlcourse import losses
from dmlcourse.exercises import grade, lecture05


def test_references_match_the_package():
    # the exercise references are loops over the formulas, independent of dmlcourse.losses: they must agree
    g = torch.Generator().manual_seed(3)
    z1, z2, z3 = (torch.randn(30, 5, generator=g, dtype=torch.float64) for _ in range(3))
    y = torch.randint(0, 2, (30,), generator=g)
    for margin in (1.0, 6.0):
        assert abs(lecture05.reference_contrastive(z1, z2, y, margin)
                   - losses.contrastive_loss(z1, z2, y, margin).item()) < 1e-9
        assert abs(lecture05.reference_contrastive(z1, z2, y, margin, squared=False)
                   - losses.contrastive_loss(z1, z2, y, margin, distance="euclidean").item()) < 1e-9
        assert abs(lecture05.reference_triplet(z1, z2, z3, margin)
                   - losses.triplet_loss(z1, z2, z3, margin, distance="euclidean").item()) < 1e-9
        assert abs(lecture05.reference_triplet(z1, z2, z3, margin, squared=True)
                   - losses.triplet_loss(z1, z2, z3, margin, distance="squared_euclidean").item()) < 1e-9


def test_05_1(exercise_namespace):
    assert grade("05.1", exercise_namespace("05.1", "learner")["my_contrastive"]).status == "not attempted"
    assert grade("05.1", exercise_namespace("05.1", "solution")["my_contrastive"]).passed

    def good(z1, z2, y, m):
        d = ((z1 - z2) ** 2).sum(1)
        return ((1 - y) * d + y * torch.relu(m - d)).mean()

    def plain(z1, z2, y, m):
        d = torch.linalg.norm(z1 - z2, dim=1)
        return ((1 - y) * d + y * torch.relu(m - d)).mean()

    def no_hinge(z1, z2, y, m):
        d = ((z1 - z2) ** 2).sum(1)
        return ((1 - y) * d + y * (m - d)).mean()

    def hadsell(z1, z2, y, m):
        d = torch.linalg.norm(z1 - z2, dim=1)
        return (0.5 * (1 - y) * d**2 + 0.5 * y * torch.relu(m - d) ** 2).mean()

    assert grade("05.1", good).passed
    assert "swapped" in grade("05.1", lambda z1, z2, y, m: good(z1, z2, 1 - y, m)).message
    assert "Euclidean distance ||z1 - z2||" in grade("05.1", plain).message
    assert "hinge [.]_+ is missing" in grade("05.1", no_hinge).message
    assert "Hadsell" in grade("05.1", hadsell).message
    assert "summed" in grade("05.1", lambda z1, z2, y, m: good(z1, z2, y, m) * len(y)).message


def _triplet(squared):
    def fn(a, p, n, m):
        dap, dan = ((a - p) ** 2).sum(1), ((a - n) ** 2).sum(1)
        if not squared:
            dap, dan = dap.sqrt(), dan.sqrt()
        return torch.relu(dap - dan + m).mean()

    return fn


def test_05_2(exercise_namespace):
    assert grade("05.2", exercise_namespace("05.2", "learner")["my_triplet"], "plain").status == "not attempted"
    assert grade("05.2", exercise_namespace("05.2", "solution")["my_triplet"], "plain").passed
    # either distance is accepted when declared ...
    assert grade("05.2", _triplet(False), "plain").passed
    ok = grade("05.2", _triplet(True), "squared")
    assert ok.passed and "SQUARED distance" in ok.message
    # ... and a function that does the other one is told so
    wrong = grade("05.2", _triplet(True), "plain")
    assert not wrong.passed and 'you told the check "plain"' in wrong.message and '"squared"' in wrong.message
    assert 'you told the check "squared"' in grade("05.2", _triplet(False), "squared").message
    assert "not 'cosine'" in grade("05.2", _triplet(False), "cosine").message

    def norm(a, b):
        return torch.linalg.norm(a - b, dim=1)

    assert "wrong sign" in grade("05.2", lambda a, p, n, m: torch.relu(norm(a, p) - norm(a, n) - m).mean(),
                                 "plain").message
    assert "hinge [.]_+ is missing" in grade("05.2", lambda a, p, n, m: (norm(a, p) - norm(a, n) + m).mean(),
                                             "plain").message
    assert "swapped" in grade("05.2", lambda a, p, n, m: torch.relu(norm(a, n) - norm(a, p) + m).mean(),
                              "plain").message
    assert "summed" in grade("05.2", lambda a, p, n, m: torch.relu(norm(a, p) - norm(a, n) + m).sum(),
                             "plain").message
    sq_swapped = lambda a, p, n, m: torch.relu(((a - n) ** 2).sum(1) - ((a - p) ** 2).sum(1) + m).mean()  # noqa: E731
    assert "swapped" in grade("05.2", sq_swapped, "squared").message


def test_05_3(exercise_namespace):
    from dmlcourse.exercises import constant_answers_that_pass

    g = torch.Generator().manual_seed(0)
    d_ap = 0.05 + 0.15 * torch.rand(2000, generator=g)          # bunched together: sums below 1
    d_an = d_ap + 0.1 * torch.randn(2000, generator=g) + 0.05
    learner = exercise_namespace("05.3", "learner", d_ap=d_ap, d_an=d_an)
    assert grade("05.3", learner["my_prediction"], learner["my_matching_margin"], d_ap, d_an).status \
        == "not attempted"
    sol = exercise_namespace("05.3", "solution", d_ap=d_ap, d_an=d_an)
    out = grade("05.3", sol["my_prediction"], sol["my_matching_margin"], d_ap, d_an)
    assert out.passed and "off by" in out.message and "smaller than m" in out.message, out.message
    # the reference keeps exactly as many active as the plain form
    m = 0.1
    ref = lecture05.reference_matching_margin(d_ap, d_an, m)
    k_plain = int((d_ap.double() - d_an.double() + m > 0).sum())
    k_squared = int((d_ap.double() ** 2 - d_an.double() ** 2 + ref > 0).sum())
    assert k_plain == k_squared and 0 < k_plain < 2000
    assert grade("05.3", 0.5, ref, d_ap, d_an).passed
    # the known wrong answers are named
    assert "same margin" in grade("05.3", 1.0, m, d_ap, d_an).message
    assert "squaring the margin" in grade("05.3", 1.0, m * m, d_ap, d_an).message
    for rule in ((d_ap + d_an).median().item(), (d_ap + d_an).mean().item()):
        assert "rule of thumb" in grade("05.3", 1.0, m * rule, d_ap, d_an).message
    gaps = (d_an.double() ** 2 - d_ap.double() ** 2).sort().values
    satisfied = ((gaps[2000 - k_plain - 1] + gaps[2000 - k_plain]) / 2).item()
    assert "SATISFIES" in grade("05.3", 1.0, satisfied, d_ap, d_an).message
    assert "not negative" in grade("05.3", 1.0, -0.1, d_ap, d_an).message
    assert "not negative" in grade("05.3", -1.0, ref, d_ap, d_an).message
    assert "number" in grade("05.3", {"plain": 0.5}, ref, d_ap, d_an).message
    # spread-out distances: the matching margin is larger than m, and the feedback says why
    far = grade("05.3", 1.0, lecture05.reference_matching_margin(d_ap + 0.6, d_an + 0.6, m), d_ap + 0.6,
                d_an + 0.6)
    assert far.passed and "larger than m" in far.message
    assert constant_answers_that_pass("05.3") == []


def test_no_constant_passes():
    from dmlcourse.exercises import constant_answers_that_pass

    for ex_id in ("05.1", "05.2", "05.3"):
        assert constant_answers_that_pass(ex_id) == [], ex_id
