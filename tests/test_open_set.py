import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dmlcourse import open_set


def test_split_by_classes_keeps_seen_and_holds_out_the_rest():
    labels = torch.arange(50) % 5
    images = torch.arange(50)[:, None].float()
    xs, ys, xu, yu = open_set.split_by_classes(images, labels, [0, 2])
    assert set(ys.tolist()) == {0, 2} and set(yu.tolist()) == {1, 3, 4}
    assert torch.equal(xs[:, 0].long() % 5, ys) and len(xs) + len(xu) == 50
    with pytest.raises(ValueError, match="subset"):
        open_set.split_by_classes(images, labels, [7])
    with pytest.raises(ValueError, match="nothing would be held out"):
        open_set.split_by_classes(images, labels, range(5))


def test_nearest_neighbours_against_a_loop():
    g = torch.Generator().manual_seed(0)
    q, r = (
        torch.randn(7, 3, generator=g, dtype=torch.float64),
        torch.randn(20, 3, generator=g, dtype=torch.float64),
    )
    nn = open_set.nearest_neighbours(q, r, 4)
    for i in range(7):
        d = [float(torch.sqrt(((q[i] - r[j]) ** 2).sum())) for j in range(20)]
        assert nn[i].tolist() == sorted(range(20), key=lambda j: d[j])[:4]
    own = open_set.nearest_neighbours(r, r, 1, exclude_self=True)
    assert not torch.any(own[:, 0] == torch.arange(20))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_matches_scikit_learn(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 4, (200,), generator=g)
    b = torch.where(torch.rand(200, generator=g) < 0.6, a, torch.randint(0, 6, (200,), generator=g))
    assert open_set.nmi(a, b) == pytest.approx(
        normalized_mutual_info_score(a.numpy(), b.numpy()), abs=1e-10
    )
    assert open_set.nmi(a, (a + 3) % 4) == pytest.approx(1.0)  # renaming clusters changes nothing


def test_kmeans_nmi_finds_separated_blobs():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    x = (
        torch.randn(300, 2, generator=g) * 0.1
        + torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])[labels]
    )
    score, clusters = open_set.kmeans_nmi(x, labels)
    assert score == pytest.approx(1.0) and len(torch.unique(clusters)) == 3
    noise, _ = open_set.kmeans_nmi(torch.randn(300, 2, generator=g), labels)
    assert noise < 0.1


def test_class_spread_against_a_loop():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(30, 2, generator=g, dtype=torch.float64)
    y = torch.arange(30) % 3
    out = open_set.class_spread(z, y)
    cents = {c: z[y == c].mean(0).numpy() for c in range(3)}
    intra = np.mean([np.linalg.norm(z[i].numpy() - cents[int(y[i])]) for i in range(30)])
    inter = np.mean(
        [np.linalg.norm(cents[a] - cents[b]) for a in range(3) for b in range(3) if a != b]
    )
    assert out["intra"] == pytest.approx(intra) and out["inter"] == pytest.approx(inter)
    assert out["ratio"] == pytest.approx(intra / inter)


def test_retrieval_grid_marks_correct_and_wrong_neighbours():
    import matplotlib

    matplotlib.use("Agg")
    imgs = torch.zeros(4, 28, 28, dtype=torch.uint8)
    fig = open_set.retrieval_grid(
        imgs[:1], imgs, torch.tensor([[1, 2]]), torch.tensor([0]), torch.tensor([0, 0, 1, 1])
    )
    titles = [ax.title for ax in fig.axes]
    assert titles[1].get_color() == "#2ca02c" and titles[2].get_color() == "#d62728"
