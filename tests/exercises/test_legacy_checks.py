"""The exercise checkers accept a correct answer and name the typical mistakes."""

import pytest
import torch

from dmlcourse.exercises import lecture05


def test_triplet_checker():
    good = lambda a, p, n, m: torch.relu(torch.linalg.norm(a - p, dim=1) - torch.linalg.norm(a - n, dim=1) + m).mean()
    lecture05.check_triplet_loss(good)
    bad_sign = lambda a, p, n, m: torch.relu(torch.linalg.norm(a - p, dim=1) - torch.linalg.norm(a - n, dim=1) - m).mean()
    with pytest.raises(AssertionError, match="wrong sign"):
        lecture05.check_triplet_loss(bad_sign)
    no_hinge = lambda a, p, n, m: (torch.linalg.norm(a - p, dim=1) - torch.linalg.norm(a - n, dim=1) + m).mean()
    with pytest.raises(AssertionError, match="hinge"):
        lecture05.check_triplet_loss(no_hinge)
    squared = lambda a, p, n, m: torch.relu(((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + m).mean()
    with pytest.raises(AssertionError, match="squared distance"):
        lecture05.check_triplet_loss(squared)


def test_contrastive_checker():
    def good(z1, z2, y, m):
        d = ((z1 - z2) ** 2).sum(1)
        return ((1 - y) * d + y * torch.relu(m - d)).mean()

    lecture05.check_contrastive_loss(good)
    with pytest.raises(AssertionError, match="swapped"):
        lecture05.check_contrastive_loss(lambda z1, z2, y, m: good(z1, z2, 1 - y, m))


def test_batch_hard_checker():
    from dmlcourse import miners
    from dmlcourse.exercises import lecture06

    lecture06.check_batch_hard(lambda z, y: miners.batch_hard(z, y))

    def closest_positive(z, y):
        d = torch.cdist(z, z)
        same = y[:, None] == y[None, :]
        pos = same & ~torch.eye(len(y), dtype=torch.bool)
        ok = pos.any(1) & (~same).any(1)
        a = torch.nonzero(ok).flatten()
        return a, d.masked_fill(~pos, float("inf")).argmin(1)[a], d.masked_fill(same, float("inf")).argmin(1)[a]

    with pytest.raises(AssertionError, match="FARTHEST positive"):
        lecture06.check_batch_hard(closest_positive)


def test_cosface_checker():
    from dmlcourse.exercises import lecture07

    def good(x, W, y, s, m):
        cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(W, dim=1).T
        cos[torch.arange(len(y)), y] -= m
        return s * cos

    lecture07.check_cosface_logits(good)
    with pytest.raises(AssertionError, match="scale s is missing"):
        lecture07.check_cosface_logits(lambda x, W, y, s, m: good(x, W, y, s, m) / s)
    with pytest.raises(AssertionError, match="every class"):
        lecture07.check_cosface_logits(lambda x, W, y, s, m: good(x, W, y, s, 0.0) - s * m)
