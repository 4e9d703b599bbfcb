"""The checkers of 01_metric_spaces accept a correct answer and name the typical mistakes."""

import pytest

from dmlcourse.exercises import lecture01


def test_distance_checker_accepts_correct_answers():
    lecture01.check_distance(lambda u, v: (u - v).abs().sum(1), "manhattan")
    lecture01.check_distance(lambda u, v: ((u - v) ** 2).sum(1).sqrt(), "euclidean")
    lecture01.check_distance(lambda u, v: 1 - (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)), "cosine")


@pytest.mark.parametrize("wrong,kind,message", [
    (lambda u, v: (u - v).sum(1), "manhattan", "not symmetric"),
    (lambda u, v: ((u - v) ** 2).sum(1), "euclidean", "off by a square root"),
    (lambda u, v: (u - v).abs().sum(1).sqrt(), "manhattan", "square root too many"),
    (lambda u, v: (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)), "cosine", "SIMILARITY"),
    (lambda u, v: ((u - v) ** 2).sum(1).sqrt(), "manhattan", "Euclidean distance, not the Manhattan"),
    (lambda u, v: (u - v).abs().sum(0), "manhattan", "one distance per row"),
    (lambda u, v: (u - v).abs().mean(1), "manhattan", "a mean, not a sum"),
])
def test_distance_checker_names_mistakes(wrong, kind, message):
    with pytest.raises(AssertionError, match=message):
        lecture01.check_distance(wrong, kind)


def test_triangle_checker():
    lecture01.check_triangle_violations(lambda D: D[:, None, :] > D[:, :, None] + D[None, :, :] + 1e-9)
    with pytest.raises(AssertionError, match="flag equality"):
        lecture01.check_triangle_violations(lambda D: D[:, None, :] >= D[:, :, None] + D[None, :, :])
    with pytest.raises(AssertionError, match="one boolean per triple"):
        lecture01.check_triangle_violations(lambda D: D > 0)
    # a wrong index order: compares d(a, b) with d(a, c) + d(c, b)
    with pytest.raises(AssertionError, match=r"triple \(a, b, c\)"):
        lecture01.check_triangle_violations(lambda D: D[:, :, None] > D[:, None, :] + D[None, :, :].transpose(1, 2)
                                            + 1e-9 + (D[:, None, :] * 0 + 1e-3))


def test_make_triplets_checker():
    from dmlcourse import tuples

    lecture01.check_make_triplets(lambda labels, n: tuples.make_triplets(labels, n, seed=0))

    def self_positive(labels, n):
        a, _, neg = tuples.make_triplets(labels, n, seed=0)
        return a, a, neg

    with pytest.raises(AssertionError, match="anchor itself"):
        lecture01.check_make_triplets(self_positive)

    def same_class_negative(labels, n):
        a, p, _ = tuples.make_triplets(labels, n, seed=0)
        return a, p, p

    with pytest.raises(AssertionError, match="negatives have the anchor's class"):
        lecture01.check_make_triplets(same_class_negative)
    with pytest.raises(AssertionError, match="50 triplets"):
        lecture01.check_make_triplets(lambda labels, n: tuples.make_triplets(labels, 10, seed=0))
