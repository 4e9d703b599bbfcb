"""Exercises of 01_metric_spaces: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import torch

from dmlcourse import metric_spaces, tuples
from dmlcourse.exercises import grade, lecture01


def test_references_match_the_package():
    # the exercise references (SciPy, a triple loop, properties) are independent of the package: they must agree
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(20, 6, generator=g, dtype=torch.float64), torch.randn(20, 6, generator=g, dtype=torch.float64)
    assert torch.allclose(lecture01.reference_manhattan(u, v), metric_spaces.manhattan(u, v), atol=1e-12)
    x = torch.randn(7, 2, generator=g, dtype=torch.float64)
    for D, fn in ((torch.cdist(x, x), metric_spaces.euclidean), (torch.cdist(x, x) ** 2, metric_spaces.squared_euclidean)):
        ours = lecture01.reference_violations(D)
        report = metric_spaces.check_axioms(fn, x, max_examples=7**3)
        flagged = set(map(tuple, torch.nonzero(ours).tolist()))
        assert report.holds["triangle"] == (not flagged)
        assert flagged == set(report.examples.get("triangle", []))
    # the package's builder meets the check's properties (called directly: grade refuses a call of the package)
    assert "triplets checked" in lecture01.check_triplets(lambda labels, n: tuples.make_triplets(labels, n, seed=0))
    q, r = (torch.randint(0, 3, (30, 10), generator=g) / 2.0), (torch.randint(0, 3, (200, 10), generator=g) / 2.0)
    d = (q[:, None, :] - r[None, :, :]).abs().amax(-1)   # Chebyshev by its definition
    kth = d.sort(1).values[:, 4:5]
    assert abs(lecture01.reference_tied(q, r, 5) - (d <= kth).sum(1).double().mean().item()) < 1e-9


def test_01_1(exercise_namespace):
    assert grade("01.1", exercise_namespace("01.1", "learner")["my_manhattan"]).status == "not attempted"
    assert grade("01.1", exercise_namespace("01.1", "solution")["my_manhattan"]).passed
    mistakes = {
        "not symmetric": lambda u, v: (u - v).sum(1),
        "square root of the sum": lambda u, v: (u - v).abs().sum(1).sqrt(),
        "Euclidean distance": lambda u, v: ((u - v) ** 2).sum(1).sqrt(),
        "one distance per row": lambda u, v: (u - v).abs().sum(0),
        "a mean, not a sum": lambda u, v: (u - v).abs().mean(1),
        "squared the distance": lambda u, v: (u - v).abs().sum(1) ** 2,
    }
    for message, wrong in mistakes.items():
        out = grade("01.1", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)


def test_01_2(exercise_namespace):
    assert grade("01.2", exercise_namespace("01.2", "learner")["my_violations"]).status == "not attempted"
    assert grade("01.2", exercise_namespace("01.2", "solution")["my_violations"]).passed
    assert "flag equality" in grade("01.2", lambda D: D[:, None, :] >= D[:, :, None] + D[None, :, :]).message
    assert "one boolean per triple" in grade("01.2", lambda D: D > 0).message
    # the wrong roles: d(a, b) against d(a, c) + d(c, b)
    wrong = grade("01.2", lambda D: D[:, :, None] > D[:, None, :] + D[None, :, :].transpose(1, 2) + 1e-3)
    assert "triple (a, b, c)" in wrong.message or "which entries of D" in wrong.message


def _good_triplets(labels, n):
    # right triplets written here, not the package's (grade refuses an answer that calls tuples.make_triplets)
    g = torch.Generator().manual_seed(0)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    ok = torch.nonzero(pos.any(1)).flatten()
    a = ok[torch.randint(len(ok), (n,), generator=g)]
    return (a, torch.multinomial(pos[a].float(), 1, generator=g).flatten(),
            torch.multinomial((~same[a]).float(), 1, generator=g).flatten())


def test_01_3(exercise_namespace):
    assert grade("01.3", exercise_namespace("01.3", "learner")["my_triplets"]).status == "not attempted"
    assert grade("01.3", exercise_namespace("01.3", "solution")["my_triplets"]).passed

    def self_positive(labels, n):
        a, _, neg = _good_triplets(labels, n)
        return a, a, neg

    def same_class_negative(labels, n):
        a, p, _ = _good_triplets(labels, n)
        return a, p, p

    def singleton_anchor(labels, n):   # anchors drawn among all samples: a singleton class has no positive
        a = torch.arange(n) % len(labels)
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(len(labels), dtype=torch.bool)
        p = torch.where(pos[a].any(1), pos[a].float().argmax(1), a)
        return a, p, (~same[a]).float().argmax(1)

    def one_triplet(labels, n):
        a, p, neg = _good_triplets(labels, 1)
        return a.repeat(n), p.repeat(n), neg.repeat(n)

    def labels_not_indices(labels, n):
        a, p, neg = _good_triplets(labels, n)
        return labels[a] + 100, labels[p] + 100, labels[neg] + 100

    def random_anchor_among_all(seed):   # the same mistake with random anchors: it must not pass by luck
        g = torch.Generator().manual_seed(seed)

        def wrong(labels, n):
            a = torch.randint(len(labels), (n,), generator=g)
            same = labels[:, None] == labels[None, :]
            pos = same & ~torch.eye(len(labels), dtype=torch.bool)
            p = torch.where(pos[a].any(1), torch.multinomial(pos[a].float() + 1e-12, 1, generator=g).flatten(), a)
            return a, p, torch.multinomial((~same[a]).float(), 1, generator=g).flatten()
        return wrong

    for seed in range(50):
        out = grade("01.3", random_anchor_among_all(seed))
        assert out.status == "wrong" and ("single sample" in out.message or "anchor itself" in out.message), out

    expected = {self_positive: "anchor itself", same_class_negative: "negatives have the anchor's class",
                singleton_anchor: "single sample", one_triplet: "nearly all the same",
                labels_not_indices: "INDICES", lambda labels, n: _good_triplets(labels, 10): "50 triplets"}
    for wrong, message in expected.items():
        out = grade("01.3", wrong)
        assert out.status == "wrong" and message in out.message, (message, out.message)


def test_01_4(exercise_namespace):
    g = torch.Generator().manual_seed(0)
    images_tr = (torch.randint(0, 3, (300, 28, 28), generator=g) * 127).to(torch.uint8)
    images_te = (torch.randint(0, 3, (250, 28, 28), generator=g) * 127).to(torch.uint8)
    labels_tr, labels_te = torch.arange(300) % 10, torch.arange(250) % 10
    knn = {("mnist", "pixels, chebyshev"): 0.6, ("mnist", "pixels, euclidean"): 0.9}
    from dmlcourse import data

    nb = dict(splits={"mnist": (images_tr, labels_tr, images_te, labels_te)}, data=data, K=5, knn=knn)
    learner = exercise_namespace("01.4", "learner", **nb)
    args = (knn, learner["Q"], learner["P"], 5, learner["yQ"], learner["yP"])
    assert grade("01.4", learner["my_prediction"], learner["my_tied"], *args).status == "not attempted"
    sol = exercise_namespace("01.4", "solution", **nb)
    out = grade("01.4", sol["my_prediction"], sol["my_tied"], *args)
    assert out.passed and "tie-breaking" in out.message and "median" in out.message
    Q, P = sol["Q"], sol["P"]
    assert torch.equal(sol["yQ"], labels_te[sol["spread_out"]]) and torch.equal(sol["yP"], labels_tr)
    d = torch.cdist(Q, P, p=float("inf"))
    kth = d.topk(5, dim=1, largest=False).values[:, -1:]
    assert "strictly closer" in grade("01.4", 50, (d < kth).sum(1).float().mean().item(), *args).message
    assert "total" in grade("01.4", 50, (d <= kth).sum().item(), *args).message
    e = torch.cdist(Q.double(), P.double(), compute_mode="donot_use_mm_for_euclid_dist")
    ekth = e.topk(5, dim=1, largest=False).values[:, -1:]
    assert "Euclidean" in grade("01.4", 50, (e <= ekth).sum(1).double().mean().item(), *args).message
    assert "not negative" in grade("01.4", -3, sol["my_tied"], *args).message


def test_01_4_tie_summary_against_a_loop():
    # the shares the success message prints, recomputed with plain loops on a problem small enough to read
    g = torch.Generator().manual_seed(1)
    q, r = torch.randint(0, 3, (12, 6), generator=g).double(), torch.randint(0, 3, (80, 6), generator=g).double()
    yq, yr = torch.randint(0, 4, (12,), generator=g), torch.randint(0, 4, (80,), generator=g)
    t = lecture01._tie_summary(q, r, 5, yq, yr)
    sizes, shares, shares_eu = [], [], []
    for i in range(len(q)):
        d = [max(abs(a - b) for a, b in zip(q[i].tolist(), r[j].tolist())) for j in range(len(r))]
        kth = sorted(d)[4]
        near = [j for j in range(len(r)) if d[j] <= kth]
        sizes.append(len(near))
        shares.append(sum(int(yr[j] == yq[i]) for j in near) / len(near))
        e = [sum((a - b) ** 2 for a, b in zip(q[i].tolist(), r[j].tolist())) for j in range(len(r))]
        nearest = sorted(range(len(r)), key=lambda j: (e[j], j))[:5]
        shares_eu.append(sum(int(yr[j] == yq[i]) for j in nearest) / 5)
    s = sorted(sizes)   # 12 queries: the median is the mean of the two middle sizes
    assert abs(t["median"] - (s[5] + s[6]) / 2) < 1e-12
    assert abs(t["share"] - sum(shares) / len(shares)) < 1e-12
    assert abs(t["share_euclidean"] - sum(shares_eu) / len(shares_eu)) < 1e-12
    assert t["chance"] == 0.25
