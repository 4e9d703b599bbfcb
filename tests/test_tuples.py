import pytest
import torch

from dmlcourse import tuples


def test_pairs_have_the_right_similarity_and_fraction():
    labels = torch.randint(0, 5, (200,))
    i, j, y = tuples.make_pairs(labels, 1000, positive_fraction=0.3, seed=1)
    assert len(i) == len(j) == len(y) == 1000
    assert torch.equal(y, (labels[i] != labels[j]).long())  # y = 1 exactly for dissimilar pairs
    assert (y == 0).sum().item() == 300 and torch.all(i[y == 0] != j[y == 0])
    again = tuples.make_pairs(labels, 1000, positive_fraction=0.3, seed=1)
    assert all(torch.equal(a, b) for a, b in zip((i, j, y), again))


def test_triplets_are_valid_and_cover_all_negative_classes():
    labels = torch.arange(60) % 6
    a, p, n = tuples.make_triplets(labels, 3000, seed=2)
    assert (
        torch.all(labels[a] == labels[p])
        and torch.all(a != p)
        and torch.all(labels[a] != labels[n])
    )
    # negatives are drawn uniformly: every other class appears for anchors of class 0
    assert set(labels[n[labels[a] == 0]].tolist()) == {1, 2, 3, 4, 5}
    q = tuples.make_quadruplets(labels, 500, seed=3)
    assert torch.all((labels[q[3]] != labels[q[0]]) & (labels[q[3]] != labels[q[2]]))


def test_anchors_without_partners_are_skipped_or_explained():
    labels = torch.tensor([0, 0, 1, 2])  # only class 0 has a positive
    a, p, n = tuples.make_triplets(labels, 50)
    assert set(a.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="no anchor has both"):
        tuples.make_triplets(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="no dissimilar pair"):
        tuples.make_pairs(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="positive_fraction must be <= 1.0"):
        tuples.make_pairs(torch.arange(4), positive_fraction=2)


def test_augment_is_a_seeded_small_transformation():
    x = torch.zeros(3, 28, 28, dtype=torch.uint8)
    x[:, 10:18, 12:16] = 255
    same = tuples.augment(x, max_shift=0, max_rotation=0, noise=0)
    assert same.shape == (3, 1, 28, 28) and torch.allclose(same[:, 0], x.float() / 255, atol=1e-5)
    shifted = tuples.augment(x, max_shift=3, max_rotation=0, noise=0, seed=0)
    # a pure shift by whole pixels keeps the mass of the stroke (inside the frame)
    assert torch.allclose(shifted.sum((1, 2, 3)), same.sum((1, 2, 3)), rtol=1e-4)
    v1, v2 = tuples.augmentation_pairs(x, seed=4)
    assert not torch.equal(v1, v2)
    w1, _ = tuples.augmentation_pairs(x, seed=4)
    assert torch.equal(v1, w1) and v1.min() >= 0 and v1.max() <= 1
    with pytest.raises(ValueError, match="max_rotation must be <= 180.0"):
        tuples.augment(x, max_rotation=400)
