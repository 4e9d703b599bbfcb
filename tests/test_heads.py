"""Heads of lecture 7 against float64 formulas, pytorch-metric-learning, and at the edges."""

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from dmlcourse import heads


def _setup(seed=0, n=20, d=5, c=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(
        0, c, (n,), generator=g
    )


def _direct_logits(name, head, x, y, **kw):
    """Straight from the formulas, one entry at a time."""
    W = head.weight.detach()
    out = torch.zeros(len(x), head.num_classes, dtype=torch.float64)
    for i in range(len(x)):
        for j in range(head.num_classes):
            cos = float(x[i] @ W[j]) / (float(x[i].norm()) * float(W[j].norm()))
            theta = math.acos(max(-1.0, min(1.0, cos)))
            target = j == int(y[i])
            if name == "normface":
                v = kw["s"] * cos
            elif name == "cosface":
                v = kw["s"] * (cos - kw["m"] if target else cos)
            elif name == "arcface":
                if target:
                    v = kw["s"] * (
                        math.cos(theta + kw["m"])
                        if theta + kw["m"] <= math.pi
                        else cos - kw["m"] * math.sin(kw["m"])
                    )
                else:
                    v = kw["s"] * cos
            else:  # sphereface without annealing
                m = kw["m"]
                if target:
                    k = min(math.floor(theta * m / math.pi), m - 1)
                    v = float(x[i].norm()) * ((-1) ** k * math.cos(m * theta) - 2 * k)
                else:
                    v = float(x[i].norm()) * cos
            out[i, j] = v
    return out


@pytest.mark.parametrize(
    "name, kw",
    [
        ("normface", dict(s=16.0)),
        ("cosface", dict(s=30.0, m=0.35)),
        ("arcface", dict(s=30.0, m=0.5)),
        ("arcface", dict(s=10.0, m=2.5)),
        ("sphereface", dict(m=4)),
        ("sphereface", dict(m=3)),
    ],
)
def test_logits_match_the_formulas(name, kw):
    x, y = _setup()
    args = {
        "normface": dict(scale=kw.get("s")),
        "cosface": dict(scale=kw.get("s"), margin=kw.get("m")),
        "arcface": dict(scale=kw.get("s"), margin=kw.get("m")),
        "sphereface": dict(margin=kw.get("m"), lambda_base=0.0, lambda_min=0.0),
    }[name]
    head = heads.make_head(name, 5, 7, **args).double()
    got = head(x, y)
    assert torch.allclose(got, _direct_logits(name, head, x, y, **kw), atol=1e-5)
    if name != "normface":  # only the target class carries the margin
        plain = head(x)
        off = torch.ones_like(got, dtype=torch.bool)
        off[torch.arange(len(y)), y] = False
        assert torch.allclose(got[off], plain[off]) and not torch.allclose(got[~off], plain[~off])


def test_sphereface_psi_is_monotone_and_annealing_mixes():
    theta = torch.linspace(0, math.pi, 1001, dtype=torch.float64)
    for m in (1, 2, 3, 4):
        psi = heads.sphereface_psi(theta, m)
        assert torch.all(psi[1:] <= psi[:-1] + 1e-12)
        assert psi[0] == pytest.approx(1.0) and psi[-1] == pytest.approx(-2 * m + 1)
    head = heads.SphereFaceHead(5, 7, margin=4).double()
    x, y = _setup()
    assert head.lambda_ == 1000.0
    head.train()
    mixed = head(x, y)
    c = heads.F.normalize(x, dim=1) @ heads.F.normalize(head.weight, dim=1).T
    ct = c[torch.arange(len(y)), y]
    psi = heads.sphereface_psi(torch.acos(ct), 4)
    expect = x.norm(dim=1) * (1000 * ct + psi) / 1001
    assert torch.allclose(mixed[torch.arange(len(y)), y], expect)
    assert head.lambda_ < 1000 and int(head.steps) == 1
    with pytest.raises(ValueError, match="integer >= 1"):
        heads.SphereFaceHead(5, 7, margin=1.5)


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_matches_pytorch_metric_learning(name):
    torch.manual_seed(0)
    x, y = _setup(n=32, d=8, c=10)
    x = x.float()
    if name == "cosface":
        ref = pml_losses.CosFaceLoss(num_classes=10, embedding_size=8, margin=0.35, scale=64)
        head = heads.CosFaceHead(8, 10, scale=64, margin=0.35)
    else:
        ref = pml_losses.ArcFaceLoss(
            num_classes=10, embedding_size=8, margin=math.degrees(0.5), scale=64
        )
        head = heads.ArcFaceHead(8, 10, scale=64, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(ref.W.T)  # its W is (embedding_size, num_classes)
    ours = torch.nn.functional.cross_entropy(head(x, y), y)
    assert ours.item() == pytest.approx(ref(x, y).item(), rel=1e-5)


def test_sphereface_matches_pytorch_metric_learning_without_annealing():
    torch.manual_seed(0)
    x, y = _setup(n=32, d=8, c=10)
    x = x.float()
    ref = pml_losses.SphereFaceLoss(num_classes=10, embedding_size=8, margin=4)
    head = heads.SphereFaceHead(8, 10, margin=4, lambda_base=0.0, lambda_min=0.0)
    with torch.no_grad():
        head.weight.copy_(ref.W.T)
    ours = torch.nn.functional.cross_entropy(head(x, y), y)
    assert ours.item() == pytest.approx(ref(x, y).item(), rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_arcface_gradients_finite_at_the_edges(dtype):
    head = heads.ArcFaceHead(4, 3, scale=64, margin=0.5)
    w = heads.F.normalize(head.weight.detach().float(), dim=1)
    # features exactly on a class weight (theta = 0, cos = 1) and exactly opposite (theta = pi, cos
    # = -1)
    x = torch.stack([w[0], -w[1], w[2] * 3]).to(dtype).requires_grad_(True)
    labels = torch.tensor([0, 1, 2])
    logits = head.to(dtype)(x, labels)
    loss = torch.nn.functional.cross_entropy(logits.float(), labels)
    loss.backward()
    assert torch.isfinite(logits.float()).all() and torch.isfinite(loss)
    assert torch.isfinite(x.grad.float()).all() and torch.isfinite(head.weight.grad.float()).all()


def test_arcface_fallback_keeps_the_target_logit_decreasing():
    c = torch.cos(torch.linspace(0, math.pi, 2001, dtype=torch.float64))
    t = heads.arc_margin_target(c, 1.0)
    assert torch.all(t[1:] <= t[:-1] + 1e-9)  # monotone in theta, also past pi - m
    naive = torch.cos(torch.acos(c) + 1.0)
    assert not torch.all(naive[1:] <= naive[:-1] + 1e-9)


def test_gradcheck_heads():
    x, y = _setup(n=6, d=3, c=4)
    for name, kw in (
        ("cosface", {}),
        ("arcface", {}),
        ("normface", {}),
        ("sphereface", dict(lambda_base=0.0, lambda_min=0.0)),
    ):
        head = heads.make_head(name, 3, 4, **kw).double()
        xx = x.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t, h=head: h(t, y), (xx,), atol=1e-5)


@pytest.mark.parametrize(
    "make, msg",
    [
        (lambda: heads.CosFaceHead(4, 3, margin=-0.1), "margin must be >= 0.0"),
        (lambda: heads.ArcFaceHead(4, 3, scale=0), "scale must be > 0.0"),
        (lambda: heads.SphereFaceHead(4, 3, margin=2.5), "integer >= 1"),
        (lambda: heads.make_head("magface", 4, 3), "name='magface'"),
    ],
)
def test_bad_construction(make, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        make()


def test_bad_labels():
    head = heads.ArcFaceHead(4, 3)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="x has 5 features"):
        head(torch.randn(2, 5), torch.tensor([0, 1]))


def test_boundaries_follow_the_lecture_equations():
    t1 = torch.linspace(0.05, 1.0, 50, dtype=torch.float64)
    b = heads.decision_boundaries(t1, sphere_m=3, cos_m=0.3, arc_m=0.4)
    assert torch.allclose(torch.cos(3 * t1), torch.cos(b["SphereFace"]))
    assert torch.allclose(torch.cos(t1) - 0.3, torch.cos(b["CosFace"]))
    assert torch.allclose(torch.cos(t1 + 0.4), torch.cos(b["ArcFace"]))
    assert torch.all(b["ArcFace"] > b["softmax"]) and torch.all(b["CosFace"] > b["softmax"])


def test_widgets_update_their_figures():
    box = heads.scale_explorer(4.0)
    y0 = list(box.figure.data[-1].y)
    box.slider.value = 64.0
    assert (
        box.figure.data[-1].y[0] > y0[0]
    )  # a larger scale makes the true class more certain at θ = 0
    box = heads.margin_explorer(arc_m=0.5)
    arc_before = list(box.figure.data[3].y)
    box.arc.value = 1.0
    assert box.figure.data[3].y[0] < arc_before[0] and "1" in box.figure.data[3].name
    assert torch.tensor(box.figure.data[10].y[10]).item() == pytest.approx(
        math.degrees(math.pi * 10 / 360 + 1.0), rel=1e-4
    )


def test_explorers_survive_the_browsers_slider_round_trip():
    # a slider value off noUiSlider's grid comes back from the browser changed (16 -> 15.85, 0.5 ->
    # 0.5000000000000001) and overwrites what the cell set; tests/browser checks the real thing
    from tests.browser.nouislider import snapped

    assert snapped(heads.scale_explorer(16.0)) == {}
    assert snapped(heads.margin_explorer()) == {}


def test_margin_explorer_sets_x_and_y_of_every_trace():
    # the browser drops a trace's x when one batch_update sets only y on it and only x on another
    box = heads.margin_explorer()
    box.cos.value = 0.5
    for tr in box.figure.data:
        assert len(tr.x) == len(tr.y) == 361
    softmax = box.figure.data[4]
    assert list(softmax.x) == pytest.approx(list(softmax.y))  # softmax: the diagonal θ1 = θ2
    assert all(w.style.description_width == "initial" for w in (box.sphere, box.cos, box.arc))
