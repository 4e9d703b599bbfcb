import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve as sk_roc

from dmlcourse import verification


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_matches_scikit_learn(seed):
    g = torch.Generator().manual_seed(seed)
    same = torch.rand(500, generator=g) < 0.4
    scores = torch.randn(500, generator=g) + same.float()
    scores[:50] = torch.round(scores[:50])  # some ties
    far, tar, thr = verification.roc_curve(scores, same)
    fpr, tpr, t = sk_roc(same.numpy(), scores.numpy().astype(np.float64), drop_intermediate=False)
    np.testing.assert_allclose(far.numpy(), fpr, atol=1e-12)
    np.testing.assert_allclose(tar.numpy(), tpr, atol=1e-12)
    np.testing.assert_allclose(thr.numpy()[1:], t[1:], atol=1e-6)


def test_eer_and_tar_at_far_by_brute_force():
    g = torch.Generator().manual_seed(3)
    same = torch.rand(2000, generator=g) < 0.5
    scores = torch.randn(2000, generator=g) + 2 * same.float()
    # brute force over all thresholds
    best = min(
        ((scores[~same] >= t).float().mean().item(), 1 - (scores[same] >= t).float().mean().item())
        for t in scores.tolist()
        for _ in [0]
    )
    eer = verification.equal_error_rate(scores, same)
    ts = torch.sort(scores).values
    gaps = [
        abs((scores[~same] >= t).float().mean().item() - (scores[same] < t).float().mean().item())
        for t in ts
    ]
    t_star = ts[int(np.argmin(gaps))]
    far_star = (scores[~same] >= t_star).float().mean().item()
    assert abs(eer - far_star) < 0.01 and 0.1 < eer < 0.2 and best is not None
    for target in (1e-2, 1e-1):
        cands = [
            (scores[same] >= t).float().mean().item()
            for t in ts
            if (scores[~same] >= t).float().mean().item() <= target
        ]
        assert verification.tar_at_far(scores, same, target) == pytest.approx(max(cands))


def test_perfect_and_bad_input():
    same = torch.tensor([True, True, False, False])
    assert verification.equal_error_rate(torch.tensor([3.0, 2.0, 1.0, 0.0]), same) == 0.0
    assert verification.tar_at_far(torch.tensor([3.0, 2.0, 1.0, 0.0]), same, 0.0) == 1.0
    with pytest.raises(ValueError, match="both genuine"):
        verification.roc_curve(torch.zeros(3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="scores has 3 entries"):
        verification.roc_curve(torch.zeros(3), same)
