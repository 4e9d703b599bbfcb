"""The lecture-04 exercise checkers accept correct answers and name the typical mistakes."""

import pytest
import torch
from torch.nn import functional as F

from dmlcourse.exercises import lecture04


def test_huber_checker():
    def good(p, t, d):
        r = (p - t).abs()
        return torch.where(r <= d, 0.5 * r**2, d * (r - 0.5 * d)).mean()

    lecture04.check_huber_loss(good)
    lecture04.check_huber_loss(lambda p, t, d: F.huber_loss(p, t, delta=d))
    with pytest.raises(AssertionError, match="smooth_l1"):
        lecture04.check_huber_loss(lambda p, t, d: F.smooth_l1_loss(p, t, beta=d))
    with pytest.raises(AssertionError, match="0.5"):
        lecture04.check_huber_loss(lambda p, t, d: torch.where((p - t).abs() <= d, (p - t) ** 2,
                                                               d * ((p - t).abs() - 0.5 * d)).mean())
    with pytest.raises(AssertionError, match="summed"):
        lecture04.check_huber_loss(lambda p, t, d: F.huber_loss(p, t, delta=d, reduction="sum"))


def test_cross_entropy_checker():
    lecture04.check_cross_entropy(lambda z, y: -torch.log_softmax(z, 1)[torch.arange(len(y)), y].mean())

    def naive(z, y):
        p = torch.exp(z) / torch.exp(z).sum(1, keepdim=True)
        return -torch.log(p[torch.arange(len(y)), y]).mean()

    with pytest.raises(AssertionError, match="overflow"):
        lecture04.check_cross_entropy(naive)
    with pytest.raises(AssertionError, match="sign"):
        lecture04.check_cross_entropy(lambda z, y: torch.log_softmax(z, 1)[torch.arange(len(y)), y].mean())
    with pytest.raises(AssertionError, match="dim=1"):
        lecture04.check_cross_entropy(lambda z, y: -torch.log_softmax(z, 0)[torch.arange(len(y)), y].mean())


def test_hinge_checker():
    lecture04.check_hinge_loss(lambda s, y, m: torch.relu(m - y * s).mean())
    with pytest.raises(AssertionError, match="hinge"):
        lecture04.check_hinge_loss(lambda s, y, m: (m - y * s).mean())
    with pytest.raises(AssertionError, match="label is missing"):
        lecture04.check_hinge_loss(lambda s, y, m: torch.relu(m - s).mean())
    with pytest.raises(AssertionError, match="squared"):
        lecture04.check_hinge_loss(lambda s, y, m: (torch.relu(m - y * s) ** 2).mean())
