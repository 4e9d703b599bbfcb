import statistics

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.neighbors import KNeighborsClassifier

from dmlcourse import metrics


def _pml(query, qlab, ref=None, rlab=None):
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
        device=torch.device("cpu"),
    )
    same = ref is None
    return calc.get_accuracy(
        query, qlab, query if same else ref, qlab if same else rlab, ref_includes_query=same
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("same", [True, False])
def test_metrics_agree_with_pytorch_metric_learning(seed, same):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(300, 8, generator=g)
    ql = torch.randint(0, 7, (300,), generator=g)
    ql[0] = 99  # a label that appears nowhere else: excluded by both
    if same:
        ref = rl = None
    else:
        ref, rl = torch.randn(400, 8, generator=g), torch.randint(0, 7, (400,), generator=g)
    expected = _pml(q, ql, ref, rl)
    assert metrics.precision_at_1(q, ql, ref, rl) == pytest.approx(
        expected["precision_at_1"], abs=1e-6
    )
    assert metrics.r_precision(q, ql, ref, rl) == pytest.approx(expected["r_precision"], abs=1e-6)
    assert metrics.map_at_r(q, ql, ref, rl) == pytest.approx(
        expected["mean_average_precision_at_r"], abs=1e-6
    )


def _brute_force(q, ql, k):
    """Straight from the definitions, one query at a time, in float64."""
    q = q.double()
    p1, rec, rp, ap = [], [], [], []
    for i in range(len(q)):
        d = torch.linalg.norm(q - q[i], dim=1)
        d[i] = float("inf")
        order = torch.argsort(d)[: len(q) - 1]
        rel = (ql[order] == ql[i]).double()
        r = int(rel.sum())
        if r == 0:
            continue
        p1.append(rel[0])
        rec.append(float(rel[:k].max()))
        rp.append(rel[:r].sum() / r)
        ap.append(sum(rel[: j + 1].sum() / (j + 1) * rel[j] for j in range(r)) / r)
    return [float(np.mean(v)) for v in (p1, rec, rp, ap)]


def test_metrics_against_a_brute_force_loop():
    g = torch.Generator().manual_seed(5)
    q, ql = torch.randn(120, 4, generator=g), torch.randint(0, 5, (120,), generator=g)
    p1, rec, rp, ap = _brute_force(q, ql, k=4)
    assert metrics.precision_at_1(q, ql) == pytest.approx(p1, abs=1e-6)
    assert metrics.recall_at_k(q, ql, k=4) == pytest.approx(rec, abs=1e-6)
    assert metrics.r_precision(q, ql) == pytest.approx(rp, abs=1e-6)
    assert metrics.map_at_r(q, ql) == pytest.approx(ap, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_accuracy_matches_scikit_learn(k):
    g = torch.Generator().manual_seed(k)
    ref, rl = torch.randn(500, 6, generator=g), torch.randint(0, 4, (500,), generator=g)
    q, ql = torch.randn(200, 6, generator=g), torch.randint(0, 4, (200,), generator=g)
    clf = KNeighborsClassifier(n_neighbors=k).fit(ref.numpy(), rl.numpy())
    expected = (clf.predict(q.numpy()) == ql.numpy()).mean()
    assert metrics.knn_accuracy(q, ql, ref, rl, k=k) == pytest.approx(expected, abs=1e-6)


def test_perfect_and_chunked():
    # well separated clusters: everything is 1; more queries than one chunk
    labels = torch.arange(1500) % 3
    emb = torch.nn.functional.one_hot(labels, 3).float() * 100 + torch.randn(1500, 3) * 0.01
    assert metrics.precision_at_1(emb, labels) == 1.0
    assert metrics.map_at_r(emb, labels) == pytest.approx(1.0)
    assert metrics.r_precision(emb, labels, distance="cosine") == pytest.approx(1.0)


def test_metric_bad_input():
    e = torch.randn(10, 3)
    with pytest.raises(ValueError, match="labels has 9 entries"):
        metrics.precision_at_1(e, torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="distance='manhattan'"):
        metrics.map_at_r(e, torch.zeros(10, dtype=torch.long), distance="manhattan")
    with pytest.raises(ValueError, match="reference and reference_labels"):
        metrics.precision_at_1(e, torch.zeros(10, dtype=torch.long), reference=e)
    with pytest.raises(ValueError, match="k must be >= 1"):
        metrics.knn_accuracy(e, torch.zeros(10, dtype=torch.long), k=0)


def test_mean_sd_matches_the_statistics_module():
    values = [0.91, 0.87, 0.95, 0.90]
    mean, sd = metrics.mean_sd(values)
    assert mean == pytest.approx(statistics.mean(values), abs=1e-12)
    assert sd == pytest.approx(statistics.stdev(values), abs=1e-12)  # n - 1, like statistics.stdev
    assert metrics.mean_sd(torch.tensor(values)) == pytest.approx((mean, sd))
    assert metrics.mean_sd([0.5]) == (0.5, 0.0)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0.90, 0.01), (0.80, 0.02), True),  # gap 0.10 > 0.03
        ((0.90, 0.05), (0.85, 0.02), False),  # gap 0.05 < 0.07: within noise
        ((0.80, 0.01), (0.90, 0.01), False),  # below, not above
        ((0.90, 0.0), (0.90, 0.0), False),  # equal is not above
    ],
)
def test_clearly_above_needs_a_gap_larger_than_both_spreads(a, b, expected):
    assert metrics.clearly_above(a, b) is expected


def test_mean_sd_and_clearly_above_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        metrics.mean_sd([])
    with pytest.raises(ValueError, match="finite"):
        metrics.mean_sd([0.5, float("nan")])
    with pytest.raises(TypeError, match="one number per seed"):
        metrics.mean_sd(["a", "b"])
    with pytest.raises(ValueError, match="got shape"):
        metrics.mean_sd([[0.1, 0.2]])
    with pytest.raises(TypeError, match=r"a must be a \(mean, sd\) pair"):
        metrics.clearly_above([0.9, 0.01, 3], (0.8, 0.01))
    with pytest.raises(TypeError, match=r"b must be a \(mean, sd\) pair"):
        metrics.clearly_above((0.9, 0.01), 0.8)
    with pytest.raises(ValueError, match="standard deviation must be >= 0"):
        metrics.clearly_above((0.9, -0.01), (0.8, 0.01))
