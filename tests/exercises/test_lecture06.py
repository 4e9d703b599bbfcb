"""Exercises of 06: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import pytest
import torch


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
