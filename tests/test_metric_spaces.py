import pytest
import torch

from dmlcourse import metric_spaces as ms


def _points(seed=0, n=25, d=3):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_euclidean_is_a_metric():
    rep = ms.check_axioms(ms.euclidean, _points())
    assert rep.is_metric and rep.failing() == []


def test_squared_euclidean_breaks_the_triangle_inequality():
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    rep = ms.check_axioms(ms.squared_euclidean, x)
    assert rep.failing() == ["triangle"]
    assert (0, 1, 2) in rep.examples["triangle"] and rep.worst["triangle"] == pytest.approx(
        2.0
    )  # 4 > 1 + 1


def test_cosine_distance_fails_triangle_and_positivity():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    rep = ms.check_axioms(ms.cosine_distance, x)
    assert (
        not rep.holds["triangle"] and not rep.holds["positivity"]
    )  # (1,0) and (2,0): distinct, distance 0
    a, b, c = rep.examples["triangle"][0]
    d = lambda i, j: float(ms.cosine_distance(x[i], x[j]))
    assert d(a, c) > d(a, b) + d(b, c)


def test_singular_mahalanobis_is_a_pseudometric():
    W = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # ignores the 2nd coordinate
    x = _points(d=2, n=10)
    x = torch.cat(
        [x, x + torch.tensor([0.0, 1.0], dtype=torch.float64)]
    )  # same first coordinate, distinct points
    rep = ms.check_axioms(ms.mahalanobis(W), x)
    assert rep.failing() == ["positivity"]
    i, j = rep.examples["positivity"][0]
    assert abs(i - j) == 10


def test_asymmetric_function_is_caught():
    rep = ms.check_axioms(lambda u, v: torch.relu(u - v).sum(-1), _points(n=6))
    assert not rep.holds["symmetry"] and "symmetry" in str(rep)
    with pytest.raises(ValueError, match="at least 3 points"):
        ms.check_axioms(ms.euclidean, _points(n=2))


def test_triangle_explorer_readout():
    box = ms.triangle_explorer(((0, 0), (1, 0), (2, 0)), distance="euclidean")
    assert "holds" in box.figure.layout.title.text
    box.distance.value = "squared euclidean"
    assert "VIOLATED" in box.figure.layout.title.text and "4.000" in box.readout.value
    box.sliders["y2"].value = 2.0
    assert box.figure.data[0].y[1] == 2.0


@pytest.mark.parametrize(
    "name,metric",
    [
        ("euclidean", "euclidean"),
        ("manhattan", "manhattan"),
        ("chebyshev", "chebyshev"),
        ("cosine (1 - cos)", "cosine"),
    ],
)
def test_knn_accuracy_matches_scikit_learn(name, metric):
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(4)
    ref, q = (
        torch.randn(120, 5, generator=g, dtype=torch.float64),
        torch.randn(60, 5, generator=g, dtype=torch.float64),
    )
    yr, yq = (
        (ref[:, 0] > 0).long() + (ref[:, 1] > 0).long(),
        (q[:, 0] > 0).long() + (q[:, 1] > 0).long(),
    )
    for k in (1, 5):
        ours = ms.knn_accuracy(q, yq, ref, yr, distance=name, k=k)
        algo = "brute"
        ref_acc = (
            KNeighborsClassifier(k, metric=metric, algorithm=algo)
            .fit(ref.numpy(), yr.numpy())
            .score(q.numpy(), yq.numpy())
        )
        assert ours == pytest.approx(ref_acc)


def test_pairwise_matches_the_row_wise_functions():
    x, y = _points(n=6), _points(seed=1, n=4)
    for name, fn in ms.DISTANCE_FUNCTIONS.items():
        D = ms.pairwise(x, y, name)
        loop = torch.stack([fn(x[i].expand_as(y), y) for i in range(6)])
        assert torch.allclose(D, loop, atol=1e-10), name
    with pytest.raises(ValueError, match="distance"):
        ms.pairwise(x, y, "hamming")


def test_manhattan_and_chebyshev_are_metrics():
    for fn in (ms.manhattan, ms.chebyshev):
        assert ms.check_axioms(fn, _points(n=15)).is_metric


def test_triangle_explorer_survives_the_browser():
    from tests.browser.nouislider import snapped

    box = ms.triangle_explorer(((0.0, 0.0), (1.0, 0.2), (2.0, 0.0)), distance="squared euclidean")
    assert snapped(box) == {}  # y2 = 0.2 stayed 0.2, not 0.20000000000000018
    assert "VIOLATED" in box.figure.layout.title.text
