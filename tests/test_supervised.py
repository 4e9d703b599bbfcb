"""Supervised losses against PyTorch's built-ins, closed forms and float64 loops; the training
set-ups."""

import math

import pytest
import torch
from torch.nn import functional as F

from dmlcourse import models, supervised, train


def _pred_target(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = (3 * torch.randn(n, generator=g, dtype=torch.float64)).requires_grad_()
    target = torch.randn(n, generator=g, dtype=torch.float64)
    return pred, target


def _grad(fn, x):
    (g,) = torch.autograd.grad(fn(x), x)
    return g


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_match_torch(reduction):
    pred, target = _pred_target()
    pairs = [
        (supervised.mse_loss, lambda p, t, r: F.mse_loss(p, t, reduction=r)),
        (supervised.mae_loss, lambda p, t, r: F.l1_loss(p, t, reduction=r)),
        (
            lambda p, t, r: supervised.huber_loss(p, t, 1.0, r),
            lambda p, t, r: F.huber_loss(p, t, reduction=r),
        ),
        (
            lambda p, t, r: supervised.huber_loss(p, t, 0.3, r),
            lambda p, t, r: F.huber_loss(p, t, reduction=r, delta=0.3),
        ),
    ]
    for ours, ref in pairs:
        a, b = ours(pred, target, reduction), ref(pred, target, reduction)
        assert torch.allclose(a, b, atol=1e-12)
        ga = _grad(lambda p, f=ours: f(p, target, reduction).sum(), pred)
        gb = _grad(lambda p, f=ref: f(p, target, reduction).sum(), pred)
        assert torch.allclose(ga, gb, atol=1e-12)


def test_huber_closed_form_and_not_smooth_l1():
    r = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.2, 1.0, 2.5], dtype=torch.float64)
    delta = 1.5
    expected = torch.tensor(
        [0.5 * x**2 if abs(x) <= delta else delta * (abs(x) - 0.5 * delta) for x in r.tolist()],
        dtype=torch.float64,
    )
    got = supervised.huber_loss(r, torch.zeros_like(r), delta, "none")
    assert torch.allclose(got, expected)
    # smooth_l1 with beta = delta is Huber / delta: a different scale
    assert torch.allclose(
        F.smooth_l1_loss(r, torch.zeros_like(r), beta=delta, reduction="none") * delta, got
    )
    # value and slope continuous at |r| = delta
    x = torch.tensor([delta - 1e-7, delta + 1e-7], dtype=torch.float64, requires_grad=True)
    v = supervised.huber_loss(x, torch.zeros_like(x), delta, "none")
    (g,) = torch.autograd.grad(v.sum(), x)
    assert abs(v[0] - v[1]) < 1e-6 and abs(g[0] - g[1]) < 1e-6


def test_mae_subgradient_at_zero():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(supervised.mae_loss(x, torch.zeros(3, dtype=torch.float64)), x)
    (g_ref,) = torch.autograd.grad(F.l1_loss(x, torch.zeros(3, dtype=torch.float64)), x)
    assert torch.equal(g, g_ref)


def test_cross_entropy_matches_torch_and_loop():
    g = torch.Generator().manual_seed(1)
    logits = (5 * torch.randn(40, 7, generator=g, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, 7, (40,), generator=g)
    for red in ("mean", "sum", "none"):
        assert torch.allclose(
            supervised.cross_entropy(logits, labels, red),
            F.cross_entropy(logits, labels, reduction=red),
        )
    ga = _grad(lambda z: supervised.cross_entropy(z, labels), logits)
    gb = _grad(lambda z: F.cross_entropy(z, labels), logits)
    assert torch.allclose(ga, gb, atol=1e-12)
    # float64 loop straight from eq. 9 with one-hot targets
    total = 0.0
    for i in range(40):
        z = logits[i].tolist()
        p = [math.exp(v) / sum(math.exp(w) for w in z) for v in z]
        total += -sum((1.0 if l == labels[i] else 0.0) * math.log(p[l]) for l in range(7))
    assert abs(total / 40 - supervised.cross_entropy(logits, labels).item()) < 1e-9
    # huge logits do not overflow
    big = torch.tensor([[1000.0, 0.0], [0.0, 1000.0]])
    assert torch.isfinite(supervised.cross_entropy(big, torch.tensor([1, 1]))).all()


def test_kl_divergence_matches_torch_and_equals_ce_for_one_hot():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(30, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (30,), generator=g)
    target = supervised.smooth_labels(labels, 5, 0.2).double()
    ours = supervised.kl_divergence(logits, target)
    ref = F.kl_div(F.log_softmax(logits, 1), target, reduction="batchmean")
    assert torch.allclose(ours, ref)
    assert torch.allclose(
        _grad(lambda z: supervised.kl_divergence(z, target), logits),
        _grad(lambda z: F.kl_div(F.log_softmax(z, 1), target, reduction="batchmean"), logits),
    )
    one_hot = F.one_hot(labels, 5).double()
    assert torch.allclose(
        supervised.kl_divergence(logits, one_hot), F.cross_entropy(logits, labels)
    )
    # scipy's relative entropy as an independent reference
    from scipy.special import rel_entr

    q = torch.softmax(logits.detach(), 1).numpy()
    assert abs(rel_entr(target.numpy(), q).sum(1).mean() - ours.item()) < 1e-10


def test_hinge_loss_matches_formula_sklearn_and_multi_margin():
    g = torch.Generator().manual_seed(3)
    scores = (2 * torch.randn(60, generator=g, dtype=torch.float64)).requires_grad_()
    y = 2 * torch.randint(0, 2, (60,), generator=g) - 1
    for m in (0.5, 1.0, 2.0):
        ours = supervised.hinge_loss(scores, y, m, "none")
        loop = torch.tensor(
            [max(m - yi * si, 0.0) for yi, si in zip(y.tolist(), scores.tolist())],
            dtype=torch.float64,
        )
        assert torch.allclose(ours, loop)
        # PyTorch's multi-class margin loss with logits (-f/2, f/2) is the same, divided by the 2
        # classes
        two = torch.stack([-scores / 2, scores / 2], 1)
        ref = 2 * F.multi_margin_loss(two, (y + 1) // 2, margin=m)
        assert torch.allclose(supervised.hinge_loss(scores, y, m), ref)
        assert torch.allclose(
            _grad(lambda s, m=m: supervised.hinge_loss(s, y, m), scores),
            _grad(
                lambda s, m=m: (
                    2 * F.multi_margin_loss(torch.stack([-s / 2, s / 2], 1), (y + 1) // 2, margin=m)
                ),
                scores,
            ),
        )
    from sklearn.metrics import hinge_loss as sk_hinge

    assert (
        abs(
            sk_hinge(y.numpy(), scores.detach().numpy())
            - supervised.hinge_loss(scores, y, 1.0).item()
        )
        < 1e-12
    )


def test_bad_inputs_give_clear_errors():
    p = torch.randn(5)
    with pytest.raises(ValueError, match="must match"):
        supervised.mse_loss(p, torch.randn(5, 1))
    with pytest.raises(ValueError, match="reduction"):
        supervised.mae_loss(p, p, "average")
    with pytest.raises(ValueError, match="delta"):
        supervised.huber_loss(p, p, 0.0)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        supervised.hinge_loss(p, torch.tensor([0, 1, 1, 0, 1]))
    with pytest.raises(ValueError, match="margin"):
        supervised.hinge_loss(p, torch.ones(5), -1.0)
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        supervised.cross_entropy(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        supervised.cross_entropy(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="probability"):
        supervised.kl_divergence(torch.randn(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="num_classes must be 2"):
        supervised.SupervisedLoss("hinge", 8, 10)
    with pytest.raises(ValueError, match="loss="):
        supervised.SupervisedLoss("focal", 8, 10)


def test_loss_curves_shapes_and_values():
    r = torch.linspace(-3, 3, 61, dtype=torch.float64)
    c = supervised.loss_curves(r, delta=1.0, margin=1.0)
    assert all(v.shape == r.shape for v in c.values())
    assert torch.allclose(c["MSE"], r**2)
    assert torch.allclose(
        c["cross-entropy = KL(one-hot || q)"], F.softplus(-r)
    )  # two-class CE = log(1 + e^{-margin})
    assert torch.allclose(c["hinge (m=1)"], torch.relu(1 - r))


def test_supervised_loss_heads_train_and_embed():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 784, generator=g)
    y = torch.arange(200) % 4
    x[:, :4] += 3 * torch.nn.functional.one_hot(y, 4)  # a learnable signal
    for loss in ("cross_entropy", "kl", "mse", "mae", "huber"):
        torch.manual_seed(0)
        backbone = models.MLP(8, hidden=(32,))
        head = supervised.SupervisedLoss(loss, 8, 4)
        assert head.head.out_features == (4 if loss in ("cross_entropy", "kl") else 1)
        h = train.train(
            backbone, head, x, y, epochs=3, batch_size=50, lr=5e-3, device="cpu", progress=False
        )
        assert h.step_loss[-1] < h.step_loss[0], loss
        net = supervised.Classifier(backbone, head.head)
        assert net.embed(x[:3]).shape == (3, 8)
        assert torch.allclose(net(x[:3]), head.head(backbone(x[:3])))
    idx, y2 = supervised.two_class_subset(y, (1, 3))
    assert set(y2.tolist()) == {0, 1} and torch.all((y[idx] == 1) | (y[idx] == 3))
    hinge = supervised.SupervisedLoss("hinge", 8, 2, margin=1.0)
    out = hinge(torch.randn(len(idx), 8), y2)
    assert out["loss"].ndim == 0 and 0 <= out["accuracy"] <= 1


def test_norm_and_angle_stats_against_loop():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    angles = labels * 2.0 + 0.1 * torch.randn(300, generator=g)
    radius = 1 + 5 * torch.rand(300, generator=g)
    z = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1)
    s = supervised.norm_and_angle_stats(z, labels)
    cv = sum((radius[labels == c].std() / radius[labels == c].mean()).item() for c in range(3)) / 3
    assert abs(s["radius_cv"] - cv) < 1e-5
    assert 3 < s["angle_std_deg"] < 9  # about 0.1 rad = 5.7 degrees
