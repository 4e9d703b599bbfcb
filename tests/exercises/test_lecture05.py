"""Exercises of 05: stubs are 'not attempted', typical mistakes are named, solutions pass."""

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
