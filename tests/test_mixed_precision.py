"""Half precision: distances widened to float32, miners that agree with float64,
autocast training steps.

The reference is float64 computed on the same (already rounded) half-precision inputs, plus the
exact value of the textbook example.
"""

from __future__ import annotations

import math

import pytest
import torch

from dmlcourse import heads, losses, miners, models
from dmlcourse.core.distances import paired_distance, pairwise_distance

HALVES = [torch.float16, torch.bfloat16]


def _unit(deg):
    r = math.radians(deg)
    return torch.tensor([math.cos(r), math.sin(r)])


@pytest.mark.parametrize("dtype", HALVES)
def test_one_degree_apart(dtype):
    x = torch.stack([_unit(0.0), _unit(1.0)]).to(dtype)
    d = pairwise_distance(x)
    exact = 2 * math.sin(math.radians(0.5))  # chord of 1 degree: 0.017453
    assert d.dtype == torch.float32
    assert abs(d[0, 1].item() - exact) < 1e-3
    ref = torch.cdist(x.double(), x.double())
    assert torch.allclose(d.double(), ref, atol=1e-6)
    assert abs(paired_distance(x[:1], x[1:]).item() - exact) < 1e-3


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_near_far_identical_forward_and_backward(dtype, distance):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 16, generator=g)
    x = torch.cat(
        [base, base[:2] + 1e-2 * torch.randn(2, 16, generator=g), base[:1], 30 * base[3:4]]
    ).to(dtype)
    x16 = x.clone().requires_grad_(True)
    x64 = x.double().clone().requires_grad_(True)
    d16, d64 = pairwise_distance(x16, distance=distance), pairwise_distance(x64, distance=distance)
    scale = d64.abs().max().item()
    assert (d16.double() - d64).abs().max().item() <= 1e-5 * max(scale, 1.0)
    assert d16[0, 8].item() == pytest.approx(d64[0, 8].item(), abs=1e-6)  # identical rows
    w = torch.randn(d64.shape, generator=g, dtype=torch.float64)
    (d16 * w.float()).sum().backward()
    (d64 * w).sum().backward()
    assert torch.isfinite(x16.grad).all()
    g16, g64 = x16.grad.double(), x64.grad
    # half-precision gradients are stored in half: compare at the storage's resolution
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    assert (g16 - g64).abs().max().item() <= tol * g64.abs().max().item()


def test_distances_are_accurate_under_autocast():
    x = torch.stack([_unit(0.0), _unit(1.0)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = pairwise_distance(x)
    assert abs(d[0, 1].item() - 2 * math.sin(math.radians(0.5))) < 1e-4


def _triplet_sets(fn, z, y):
    a, p, n = fn(z, y)
    return sorted(zip(a.tolist(), p.tolist(), n.tolist()))


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("miner", ["batch_hard", "batch_semi_hard", "easy_positive", "batch_all"])
def test_miners_agree_with_float64(dtype, miner):
    fn = (
        miners.MINERS[miner]
        if miner != "batch_semi_hard"
        else (lambda z, y: miners.batch_semi_hard(z, y, 0.2))
    )
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(8).repeat_interleave(4)
        z = torch.nn.functional.normalize(torch.randn(32, 8, generator=g), dim=1).to(dtype)
        d = torch.cdist(z.double(), z.double())
        gaps = (d.flatten()[:, None] - d.flatten()[None, :]).abs()
        gaps = gaps[gaps > 0]
        if gaps.min() < 1e-6:  # an exact or near tie: the tie convention decides, skip this draw
            continue
        assert _triplet_sets(fn, z, y) == _triplet_sets(fn, z.double(), y)


def test_semi_hard_near_the_boundary_in_float16():
    # the example: a negative 0.049 inside the semi-hard band must stay semi-hard in float16
    a, p = _unit(0.0), _unit(20.0)
    d_ap = (a - p).norm().item()
    target = d_ap + 0.2 - 0.049
    lo, hi = 20.0, 90.0  # the angle whose chord is target
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 2 * math.sin(math.radians(mid / 2)) < target else (lo, mid)
    n = _unit(-lo)
    z = torch.stack([a, p, n]).half()
    y = torch.tensor([0, 0, 1])
    kinds = miners.negative_types(z, y, margin=0.2)
    assert kinds.kind[0].item() == miners.negative_types(z.double(), y, margin=0.2).kind[0].item()


LOSS_FNS = {
    "contrastive": lambda z, y: losses.contrastive_loss(
        z[::2], z[1::2], (y[::2] != y[1::2]).float(), 1.0
    ),
    "nca": lambda z, y: losses.nca_loss(z, y),
    "easy_positive": lambda z, y: losses.easy_positive_loss(z, y),
    "batch_all": lambda z, y: losses.batch_all_triplet_loss(z, y, 0.2),
    **{f"triplet+{m}": miners.MinedTripletLoss(m, 0.2) for m in miners.MINERS},
}


def _step(loss_fn, device):
    """One Adam step under bfloat16 autocast on ``device``: the loss and every gradient finite."""
    torch.manual_seed(0)
    model = models.MLP(embedding_dim=16).to(device)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn = loss_fn.to(device)
    params = list(model.parameters()) + (
        list(loss_fn.parameters()) if isinstance(loss_fn, torch.nn.Module) else []
    )
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(32, 1, 28, 28, device=device)
    y = torch.arange(8, device=device).repeat_interleave(4)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        z = model(x)
        out = loss_fn(z, y)
    loss = out["loss"] if isinstance(out, dict) else out
    opt.zero_grad()
    loss.backward()
    assert loss.device.type == device.type
    assert torch.isfinite(loss).item()
    assert all(torch.isfinite(p.grad).all() for p in params if p.grad is not None)
    opt.step()
    return loss


@pytest.mark.parametrize("name", list(LOSS_FNS))
def test_autocast_bfloat16_training_step_with_every_loss_and_miner(name, test_device):
    _step(LOSS_FNS[name], test_device)


@pytest.mark.parametrize("head", list(heads.HEADS))
def test_autocast_bfloat16_training_step_with_every_head(head, test_device):
    _step(heads.HeadLoss(heads.make_head(head, 16, 8)), test_device)
