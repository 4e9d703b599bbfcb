"""An exercise asks for the code, not a call of the package's version of it: grade() says so."""

from __future__ import annotations

import pytest

from dmlcourse import mahalanobis as mh
from dmlcourse import metrics
from dmlcourse.exercises import get, grade
from dmlcourse.metrics import r_precision  # bound before the check runs: still seen

DELEGATES = {
    "00.1": (lambda embeddings, labels: metrics.precision_at_1(embeddings, labels), "precision_at_1"),
    "00.2": (lambda embeddings, labels: r_precision(embeddings, labels), "r_precision"),
    "02.1": (lambda x, y, W: mh.mahalanobis_distance(x, y, W), "mahalanobis_distance"),
    "02.2": (lambda L, x, labels: mh.nca_linear_loss(L, x, labels), "nca_"),
    "02.3": (lambda x: mh.whitening(x, shrinkage=0.0), "whitening"),
}


@pytest.mark.parametrize("id", sorted(DELEGATES))
def test_a_function_that_calls_the_package_answer_is_refused(id):
    fn, name = DELEGATES[id]
    out = grade(id, fn)
    assert out.status == "wrong", out
    assert "calls `dmlcourse." in out.message and name in out.message, out.message


def test_the_same_computation_written_out_passes():
    import torch

    def my_whitening(x):
        evals, evecs = torch.linalg.eigh(torch.cov(x.T))
        return evecs @ torch.diag(evals.rsqrt()) @ evecs.T

    assert grade("02.3", my_whitening).passed


def test_the_profiler_is_restored():
    import sys

    before = sys.getprofile()
    grade("02.3", DELEGATES["02.3"][0])
    assert sys.getprofile() is before
    assert get("02.3").implemented_by  # the guard has something to watch
