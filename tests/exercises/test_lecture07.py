"""Exercises of 07: stubs are 'not attempted', typical mistakes are named, solutions pass."""

import pytest
import torch


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
