import math

import pytest
import torch

from dmlcourse import losses, models, siamese


def test_copies_and_shared_network_give_the_same_outputs_and_update():
    torch.manual_seed(0)
    net = models.MLP(4, hidden=(16,))
    shared = siamese.SharedSiamese(net)
    copies = siamese.SiameseCopies(net, k=2)
    x1, x2 = torch.randn(8, 784), torch.randn(8, 784)
    y = torch.tensor([0, 1] * 4)
    opt_a = torch.optim.SGD(shared.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(copies.branches[0].parameters(), lr=0.1)
    for _ in range(3):
        za = shared(x1, x2)
        zb = copies(x1, x2)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(za, zb))
        for z, opt in ((za, opt_a), (zb, opt_b)):
            opt.zero_grad()
            losses.contrastive_loss(*z, y, 1.0).backward()
        opt_a.step()
        copies.step(opt_b)
    for p_shared, p0, p1 in zip(
        shared.parameters(), copies.branches[0].parameters(), copies.branches[1].parameters()
    ):
        assert torch.allclose(p_shared, p0, atol=1e-6) and torch.equal(p0, p1)
    assert siamese.parameter_bytes(copies) == 2 * siamese.parameter_bytes(shared)


def test_naive_copies_without_summing_would_differ():
    """The gradient of a shared weight is the SUM over its uses: updating with one copy's gradient
    is wrong."""
    torch.manual_seed(1)
    net = torch.nn.Linear(3, 2)
    x1, x2 = torch.randn(5, 3), torch.randn(5, 3)
    shared = siamese.SharedSiamese(net)
    z1, z2 = shared(x1, x2)
    ((z1 - z2) ** 2).sum().backward()
    full = net.weight.grad.clone()
    net.zero_grad()
    z1 = net(x1)
    ((z1 - net(x2).detach()) ** 2).sum().backward()
    assert not torch.allclose(full, net.weight.grad)


def test_batch_losses_report_activity():
    z = torch.randn(12, 3, requires_grad=True)
    labels = torch.arange(12) % 3
    for name in ("contrastive", "triplet", "nca"):
        out = siamese.make_batch_loss(name)(z, labels)
        out["loss"].backward()
        assert torch.isfinite(out["loss"])
    huge = siamese.BatchTriplet(margin=100.0)(z, labels)
    assert huge["active_fraction"] == 1.0
    zero = siamese.BatchTriplet(margin=0.0)(torch.zeros(12, 3), labels)
    assert zero["active_fraction"] == 0.0
    with pytest.raises(ValueError, match="name='arcface'"):
        siamese.make_batch_loss("arcface")


def test_margin_explorer_updates_surface_and_active_count():
    d_ap, d_an = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.4, 0.6, 1.0])
    box = siamese.triplet_margin_explorer(d_ap, d_an, margin=0.0)
    assert "33.3%" in box.readout.value  # only d_an < d_ap is active at m = 0
    z0 = box.figure.data[0].z
    box.slider.value = 0.2
    assert "66.7%" in box.readout.value and not (box.figure.data[0].z == z0).all()
    assert box.figure.data[1].y[0] == pytest.approx(0.2)


def test_histogram_browser_switches_epochs():
    per_epoch = [(torch.rand(50), torch.rand(50) + 1), (torch.rand(50) * 0.1, torch.rand(50) + 2)]
    box = siamese.histogram_browser(per_epoch)
    assert box.slider.value == 1 and max(box.figure.data[0].x) <= 0.1
    box.slider.value = 0
    assert max(box.figure.data[0].x) > 0.1 and "before training" in box.figure.layout.title.text
    with pytest.raises(ValueError, match="per_epoch is empty"):
        siamese.histogram_browser([])


def test_pair_distances_split_by_label():
    z = torch.tensor([[0.0], [0.0], [3.0], [3.0]])
    sim, dis = siamese.pair_distances(z, torch.tensor([0, 0, 1, 1]))
    assert torch.all(sim == 0) and torch.all(dis == 3)


def test_explorers_fit_their_data():
    d_ap, d_an = torch.rand(200) * 0.3, torch.rand(200) * 0.4
    box = siamese.triplet_margin_explorer(d_ap, d_an, margin=0.2)
    assert max(box.figure.layout.xaxis.range) < 0.5  # the triplets fill the square
    # the slider ends where the boundary d(a,n) = d(a,p) + m leaves the square (not at 1.0, the
    # half of the unshrunk 0-2 axes)
    top = max(box.figure.layout.xaxis.range)
    # the first 0.2 x 2^k at or beyond the axes' end: 0.2 is an exact fraction of the range, so the
    # browser's first render cannot turn it into 0.19999999999999996
    assert top <= box.slider.max < 2 * top and box.slider.value == 0.2
    assert math.log2(box.slider.max / 0.2) == round(math.log2(box.slider.max / 0.2))
    box.slider.value = box.slider.max
    assert "100.0%" in box.readout.value  # at the end of the slider every triplet is active
    small = siamese.triplet_margin_explorer(d_ap * 0.1, d_an * 0.1, margin=0.2)
    assert small.slider.max == 0.2  # never below the margin asked for
    assert box.figure.data[1].line.color != "white"  # the legend's line shows on white
    per_epoch = [
        (torch.rand(50) * 0.2, torch.rand(50) * 0.2),
        (torch.rand(50) * 3, torch.rand(50) * 3),
    ]
    box = siamese.histogram_browser(per_epoch)
    box.slider.value = 0
    assert box.figure.layout.xaxis.range[1] < 0.25 and box.figure.data[0].xbins.size < 0.01
