"""The lecture-03 exercise checkers accept correct answers and name the typical mistakes."""

import pytest
import torch

from dmlcourse.exercises import lecture03


def _angles(a, b):
    qa, _ = torch.linalg.qr(a)
    qb, _ = torch.linalg.qr(b)
    return torch.rad2deg(torch.arccos(torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)))


def test_principal_angles_checker():
    lecture03.check_principal_angles(_angles)
    lecture03.check_principal_angles(lambda a, b: _angles(a, b).flip(0))   # any order is fine
    with pytest.raises(AssertionError, match="RADIANS"):
        lecture03.check_principal_angles(lambda a, b: torch.deg2rad(_angles(a, b)))
    with pytest.raises(AssertionError, match="ORTHONORMAL"):
        lecture03.check_principal_angles(
            lambda a, b: torch.rad2deg(torch.arccos(torch.linalg.svdvals(a.T @ b).clamp(-1, 1))))
    with pytest.raises(AssertionError, match="cosines"):
        lecture03.check_principal_angles(lambda a, b: torch.cos(torch.deg2rad(_angles(a, b))))


def test_collapsed_encoder_checker():
    def good(ws):
        m = ws[0]
        for w in ws[1:]:
            m = w @ m
        return m

    lecture03.check_collapsed_encoder(good)

    def wrong_order(ws):
        m = ws[0]
        for w in ws[1:]:
            m = m @ w
        return m

    with pytest.raises(AssertionError, match="wrong order"):
        lecture03.check_collapsed_encoder(wrong_order)
    with pytest.raises(AssertionError, match="transpose"):
        lecture03.check_collapsed_encoder(lambda ws: good(ws).T)
