"""The checkers of 08_uncertainty_pfe accept a correct answer and name the typical mistakes."""

import math

import pytest
import torch

from dmlcourse.exercises import lecture08


def good_mls(mu1, var1, mu2, var2):
    v = var1 + var2
    return -0.5 * ((mu1 - mu2) ** 2 / v + torch.log(v)).sum(1) - 0.5 * mu1.shape[1] * math.log(2 * math.pi)


def test_mls_checker():
    lecture08.check_mls(good_mls)
    with pytest.raises(AssertionError, match="sign error"):
        lecture08.check_mls(lambda *a: -good_mls(*a))
    with pytest.raises(AssertionError, match="log term is missing"):
        lecture08.check_mls(lambda m1, v1, m2, v2: good_mls(m1, v1, m2, v2) + 0.5 * torch.log(v1 + v2).sum(1))
    with pytest.raises(AssertionError, match="constant"):
        lecture08.check_mls(lambda m1, v1, m2, v2: good_mls(m1, v1, m2, v2) + 0.5 * m1.shape[1] * math.log(2 * math.pi))
    with pytest.raises(AssertionError, match="official PFE"):
        lecture08.check_mls(lambda m1, v1, m2, v2: -((m1 - m2) ** 2 / (v1 + v2) + torch.log(v1 + v2)).sum(1))
    with pytest.raises(AssertionError, match="SUM"):
        lecture08.check_mls(lambda m1, v1, m2, v2: -0.5 * ((m1 - m2) ** 2 / v1 + (m1 - m2) ** 2 / v2
                                                          + torch.log(v1 + v2)).sum(1)
                            - 0.5 * m1.shape[1] * math.log(2 * math.pi))
    with pytest.raises(AssertionError, match="shape"):
        lecture08.check_mls(lambda *a: good_mls(*a)[:, None])


def test_fusion_checker():
    def good(mu, var):
        p = 1 / var
        return (p * mu).sum(0) / p.sum(0), 1 / p.sum(0)

    lecture08.check_fusion(good)
    with pytest.raises(AssertionError, match="plain average"):
        lecture08.check_fusion(lambda mu, var: (mu.mean(0), good(mu, var)[1]))
    with pytest.raises(AssertionError, match="weight by the variance"):
        lecture08.check_fusion(lambda mu, var: ((var * mu).sum(0) / var.sum(0), good(mu, var)[1]))
    with pytest.raises(AssertionError, match="average variance"):
        lecture08.check_fusion(lambda mu, var: (good(mu, var)[0], var.mean(0)))


def test_kl_checker():
    good = lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - lv - 1).sum(1)
    lecture08.check_kl(good)
    with pytest.raises(AssertionError, match="1/2 is missing"):
        lecture08.check_kl(lambda mu, lv: 2 * good(mu, lv))
    with pytest.raises(AssertionError, match="-1 inside"):
        lecture08.check_kl(lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - lv).sum(1))
    with pytest.raises(AssertionError, match="swapped"):
        lecture08.check_kl(lambda mu, lv: 0.5 * (mu ** 2 + lv - lv.exp() - 1).sum(1))
