"""Every miner against a brute-force loop that follows the lecture's definition literally."""

import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import miners as pml_miners

from dmlcourse import losses, miners


def _dist(z, distance):
    n = len(z)
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            u, v = z[i].tolist(), z[j].tolist()
            if distance == "euclidean":
                out[i][j] = math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v)))
            else:  # squared_euclidean
                out[i][j] = sum((a - b) ** 2 for a, b in zip(u, v))
    return out


def _batch(seed, n, classes, dim=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randint(
        0, classes, (n,), generator=g
    )


CASES = [
    (s, n, c, dist)
    for s in (0, 1, 2)
    for n, c in ((12, 3), (20, 5), (9, 9))
    for dist in ("euclidean", "squared_euclidean")
]


def _triplet_set(a, p, n):
    return sorted(zip(a.tolist(), p.tolist(), n.tolist()))


@pytest.mark.parametrize("seed, n, classes, distance", CASES)
def test_batch_all(seed, n, classes, distance):
    z, y = _batch(seed, n, classes)
    expected = [
        (i, j, k)
        for i in range(n)
        for j in range(n)
        for k in range(n)
        if j != i and y[j] == y[i] and y[k] != y[i]
    ]
    assert _triplet_set(*miners.batch_all(z, y, distance=distance)) == sorted(expected)


@pytest.mark.parametrize("seed, n, classes, distance", CASES)
def test_batch_hard(seed, n, classes, distance):
    z, y = _batch(seed, n, classes)
    d = _dist(z, distance)
    a, p, neg = miners.batch_hard(z, y, distance=distance)
    expected = {}
    for i in range(n):
        ps = [j for j in range(n) if j != i and y[j] == y[i]]
        ns = [k for k in range(n) if y[k] != y[i]]
        if ps and ns:
            expected[i] = (max(d[i][j] for j in ps), min(d[i][k] for k in ns))
    assert sorted(a.tolist()) == sorted(expected)
    for i, j, k in zip(
        a.tolist(), p.tolist(), neg.tolist()
    ):  # compare distances: ties are possible
        assert y[j] == y[i] and j != i and y[k] != y[i]
        assert d[i][j] == pytest.approx(expected[i][0]) and d[i][k] == pytest.approx(expected[i][1])


@pytest.mark.parametrize("margin", [None, 0.5])
@pytest.mark.parametrize("seed, n, classes, distance", CASES)
def test_batch_semi_hard(seed, n, classes, distance, margin):
    z, y = _batch(seed, n, classes)
    d = _dist(z, distance)
    expected = {}
    for i in range(n):
        for j in range(n):
            if j == i or y[j] != y[i]:
                continue
            cands = [
                d[i][k]
                for k in range(n)
                if y[k] != y[i]
                and d[i][k] > d[i][j]
                and (margin is None or d[i][k] < d[i][j] + margin)
            ]
            if cands:  # the stated policy: pairs without a semi-hard negative are skipped
                expected[i, j] = min(cands)
    a, p, neg = miners.batch_semi_hard(z, y, margin, distance=distance)
    assert sorted(zip(a.tolist(), p.tolist())) == sorted(expected)
    for i, j, k in zip(a.tolist(), p.tolist(), neg.tolist()):
        assert y[k] != y[i] and d[i][k] == pytest.approx(expected[i, j])


@pytest.mark.parametrize("seed, n, classes, distance", CASES)
def test_easy_positive(seed, n, classes, distance):
    z, y = _batch(seed, n, classes)
    d = _dist(z, distance)
    a, p, neg = miners.easy_positive(z, y, distance=distance)
    expected = sorted(
        (i, k)
        for i in range(n)
        for k in range(n)
        if y[k] != y[i] and any(j != i and y[j] == y[i] for j in range(n))
    )
    assert sorted(zip(a.tolist(), neg.tolist())) == expected
    for i, j in zip(a.tolist(), p.tolist()):
        closest = min(d[i][jj] for jj in range(n) if jj != i and y[jj] == y[i])
        assert j != i and y[j] == y[i] and d[i][j] == pytest.approx(closest)


@pytest.mark.parametrize("seed, n, classes, distance", CASES[:6])
def test_negative_types(seed, n, classes, distance):
    z, y = _batch(seed, n, classes)
    d = _dist(z, distance)
    m = 0.4
    res = miners.negative_types(z, y, m, distance=distance)
    counts = {"hard": 0, "semi_hard": 0, "easy": 0}
    for i, j, k, kind in zip(res.a.tolist(), res.p.tolist(), res.n.tolist(), res.kind.tolist()):
        if d[i][k] < d[i][j]:
            want = 0
        elif d[i][k] < d[i][j] + m:
            want = 1
        else:
            want = 2
        assert kind == want
        counts[("hard", "semi_hard", "easy")[want]] += 1
    total = sum(counts.values())
    assert res.fractions() == pytest.approx({k: v / total for k, v in counts.items()})


def test_random_and_distance_weighted_are_valid_and_seeded():
    z, y = _batch(0, 40, 4, dim=8)
    for miner in (miners.random_triplets, miners.distance_weighted):
        a, p, n = miner(z, y, generator=torch.Generator().manual_seed(1))
        assert torch.all(y[a] == y[p]) and torch.all(a != p) and torch.all(y[a] != y[n])
        again = miner(z, y, generator=torch.Generator().manual_seed(1))
        assert all(torch.equal(u, v) for u, v in zip((a, p, n), again))


def test_distance_weighted_follows_inverse_density():
    """Empirical frequencies of the sampled negatives match weights 1/q(d), clipped and cut off."""
    g = torch.Generator().manual_seed(0)
    dim = 6
    z = torch.nn.functional.normalize(torch.randn(30, dim, generator=g, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 0] + [1] * 28)  # anchor 0 has one positive and 28 negatives
    d = torch.cdist(z, z)[0, 2:]
    cutoff, nz = 0.5, 1.4
    q = (dim - 2) * torch.log(d.clamp_min(cutoff)) + (dim - 3) / 2 * torch.log(
        1 - d.clamp_min(cutoff) ** 2 / 4
    )
    w = torch.exp(-q) * (d < nz)
    w = w / w.sum()
    counts = torch.zeros(28, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    draws = 0
    for _ in range(300):
        a, p, n = miners.distance_weighted(z, y, cutoff, nz, generator=gen)
        sel = n[a == 0] - 2
        counts += torch.bincount(sel, minlength=28).double()
        draws += len(sel)
    freq = counts / draws
    assert torch.all(freq[w == 0] == 0)
    assert (freq - w).abs().max() < 0.05


def test_agrees_with_pytorch_metric_learning_batch_hard():
    z, y = _batch(3, 64, 8, dim=5)
    ours = miners.batch_hard(z, y)
    ref = pml_miners.BatchHardMiner(distance=pml_distances.LpDistance(normalize_embeddings=False))(
        z, y
    )
    assert sorted(ours[0].tolist()) == sorted(ref[0].tolist())
    # same distances (indices could differ only on ties)
    d = torch.cdist(z, z)
    order_o, order_r = torch.argsort(ours[0]), torch.argsort(ref[0])
    assert torch.allclose(d[ours[0], ours[1]][order_o], d[ref[0], ref[1]][order_r])
    assert torch.allclose(d[ours[0], ours[2]][order_o], d[ref[0], ref[2]][order_r])


def test_nothing_to_mine_gives_empty_tensors_and_a_zero_loss_that_backpropagates():
    z = torch.randn(6, 3, requires_grad=True)
    one_class = torch.zeros(6, dtype=torch.long)
    all_alone = torch.arange(6)
    for labels in (one_class, all_alone):
        for name, miner in miners.MINERS.items():
            a, p, n = miner(z, labels)
            assert len(a) == len(p) == len(n) == 0 and a.dtype == torch.long, name
            loss = losses.triplet_loss_from_indices(z, a, p, n, margin=0.2)
            loss.backward()
            assert loss.item() == 0.0 and z.grad is not None


def test_anchors_without_positive_are_skipped():
    z, _ = _batch(0, 5, 2)
    labels = torch.tensor([0, 0, 1, 2, 2])  # sample 2 is alone in class 1
    for name, miner in miners.MINERS.items():
        a, _, _ = miner(z, labels)
        assert 2 not in a.tolist(), name


def test_easy_positive_loss_against_a_loop():
    z, y = _batch(4, 16, 4, dim=5)
    zn = torch.nn.functional.normalize(z, dim=1)
    terms = []
    for i in range(16):
        ps = [j for j in range(16) if j != i and y[j] == y[i]]
        ns = [k for k in range(16) if y[k] != y[i]]
        if not ps or not ns:
            continue
        sp = max(3.0 * float(zn[i] @ zn[j]) for j in ps)
        den = math.exp(sp) + sum(math.exp(3.0 * float(zn[i] @ zn[k])) for k in ns)
        terms.append(-math.log(math.exp(sp) / den))
    got = losses.easy_positive_loss(z, y, scale=3.0)
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-9)
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: losses.easy_positive_loss(t, y, scale=3.0), (zz,))


@pytest.mark.parametrize("negatives", ["hardest", "semi_hard"])
def test_easy_positive_loss_with_one_negative_against_a_loop(negatives):
    # the pairing of the easy-positive paper's public code (EasyPositiveHardNegative, Loss.py):
    # the most similar positive, and ONE negative: the most similar one, or (semi-hard) the most
    # similar one that is less similar than that positive; a two-way softmax over the pair
    z, y = _batch(5, 24, 4, dim=5)
    z = z.double()
    zn = torch.nn.functional.normalize(z, dim=1)
    s = 10.0
    terms = []
    for i in range(len(y)):
        ps = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        ns = [k for k in range(len(y)) if y[k] != y[i]]
        if not ps or not ns:
            continue
        sp = max(float(zn[i] @ zn[j]) for j in ps)
        if negatives == "semi_hard":
            ns = [k for k in ns if float(zn[i] @ zn[k]) < sp]
            if not ns:
                continue
        sn = max(float(zn[i] @ zn[k]) for k in ns)
        terms.append(-math.log(math.exp(s * sp) / (math.exp(s * sp) + math.exp(s * sn))))
    got = losses.easy_positive_loss(z, y, scale=s, negatives=negatives, reduction="sum")
    assert got.item() == pytest.approx(sum(terms), rel=1e-9)
    assert len(terms) > 5
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: losses.easy_positive_loss(t, y, scale=3.0, negatives=negatives), (zz,)
    )
    ep = miners.MinedTripletLoss(
        "easy_positive",
        None,
        loss="easy_positive_softmax",
        ep_scale=s,
        ep_negatives=negatives,
        reduction="sum",
    )
    assert ep(z, y)["loss"].item() == pytest.approx(sum(terms), rel=1e-9)
    with pytest.raises(ValueError, match="negatives='some'"):
        losses.easy_positive_loss(z, y, negatives="some")


def test_bad_input():
    z = torch.randn(4, 2)
    with pytest.raises(ValueError, match="labels has 3 entries"):
        miners.batch_hard(z, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="margin must be >= 0.0"):
        miners.batch_semi_hard(z, torch.tensor([0, 1, 1, 0]), margin=-1)
    with pytest.raises(ValueError, match="distance='cosine_sim'"):
        miners.batch_all(z, torch.tensor([0, 1, 1, 0]), distance="cosine_sim")
    with pytest.raises(ValueError, match="cutoff must be > 0.0"):
        miners.distance_weighted(z, torch.tensor([0, 1, 1, 0]), cutoff=0)


def test_mined_triplet_loss_logs_activity():
    z = torch.randn(16, 4, requires_grad=True)
    labels = torch.arange(16) % 4
    for name in miners.MINERS:
        out = miners.MinedTripletLoss(name, margin=0.3)(z, labels)
        out["loss"].backward()
        assert torch.isfinite(out["loss"])
        assert 0.0 <= out["active_fraction"] <= 1.0 and out["triplets"] > 0
    # eq. 19 is a softmax over all negatives, not a hinge: nothing is "inactive", nothing logged
    out = miners.MinedTripletLoss("easy_positive", loss="easy_positive_softmax")(z, labels)
    assert set(out) == {"loss"}
    with pytest.raises(ValueError, match="miner='hardest'"):
        miners.MinedTripletLoss("hardest")


def test_easy_positive_hinge_is_eq_18_against_a_loop():
    """The default loss="triplet" with the easy-positive miner is eq. 18: per anchor, the hinge
    with its closest positive and each negative (mean over those triplets)."""
    z, y = _batch(5, 15, 3, dim=4)
    d = _dist(z, "euclidean")
    m = 0.5
    terms = []
    for i in range(15):
        ps = [j for j in range(15) if j != i and y[j] == y[i]]
        if not ps:
            continue
        d_ap = min(d[i][j] for j in ps)
        terms += [max(d_ap - d[i][k] + m, 0.0) for k in range(15) if y[k] != y[i]]
    got = miners.MinedTripletLoss("easy_positive", m)(z, y)
    assert got["loss"].item() == pytest.approx(sum(terms) / len(terms), rel=1e-9)
    assert got["triplets"] == len(terms)
    assert got["active_fraction"] == pytest.approx(sum(t > 0 for t in terms) / len(terms))


def test_easy_positive_softmax_is_eq_19_and_must_be_asked_for():
    z, y = _batch(6, 16, 4, dim=5)
    ep = miners.MinedTripletLoss("easy_positive", None, loss="easy_positive_softmax", ep_scale=3.0)
    assert ep(z, y)["loss"].item() == pytest.approx(
        losses.easy_positive_loss(z, y, scale=3.0).item(), rel=1e-12
    )
    hinge = miners.MinedTripletLoss("easy_positive", 0.2)
    assert hinge.loss == "triplet"  # the default: nothing switches with the miner's name
    assert hinge(z, y)["loss"].item() != pytest.approx(ep(z, y)["loss"].item())
    with pytest.raises(ValueError, match="miner must be 'easy_positive'"):
        miners.MinedTripletLoss("batch_hard", loss="easy_positive_softmax")
    with pytest.raises(ValueError, match="margin=None"):
        miners.MinedTripletLoss("easy_positive", None)
    with pytest.raises(ValueError, match="loss='softmax'"):
        miners.MinedTripletLoss("easy_positive", loss="softmax")
    with pytest.raises(ValueError, match="ep_scale"):
        miners.MinedTripletLoss("easy_positive", loss="easy_positive_softmax", ep_scale=0)


def test_distance_log_density_matches_random_unit_vectors():
    """q(d) of two uniform points on the unit sphere in R^p against a Monte-Carlo sample:
    the CDF of the normalised density and the empirical CDF agree (Kolmogorov distance)."""
    g = torch.Generator().manual_seed(0)
    for p in (3, 8, 32):
        x = torch.nn.functional.normalize(torch.randn(20000, p, generator=g, dtype=torch.float64))
        y = torch.nn.functional.normalize(torch.randn(20000, p, generator=g, dtype=torch.float64))
        sample = (x - y).norm(dim=1).sort().values
        grid = torch.linspace(1e-4, 2 - 1e-4, 20001, dtype=torch.float64)
        dens = torch.exp(miners.distance_log_density(grid, p))
        cdf = torch.cumsum(dens, 0)
        cdf = cdf / cdf[-1]
        model = torch.from_numpy(
            __import__("numpy").interp(sample.numpy(), grid.numpy(), cdf.numpy())
        )
        empirical = torch.arange(1, len(sample) + 1, dtype=torch.float64) / len(sample)
        assert (model - empirical).abs().max() < 0.015, p
        if p == 32:  # concentrated near sqrt(2), spread about 1/sqrt(2p)
            assert abs(sample.mean().item() - math.sqrt(2)) < 0.02
            assert abs(sample.std().item() - 1 / math.sqrt(2 * p)) < 0.02


def test_mining_explorer_follows_anchor_and_miner():
    z, y = _batch(0, 24, 4, dim=3)
    box = miners.mining_explorer(z.float(), y)
    assert "1 triplets" in box.readout.value  # batch-hard: one triplet per anchor
    hard_neg = box.figure.data[4].x
    box.miner.value = "batch_all"
    assert len(box.figure.data[4].x) == int((y != y[0]).sum())  # every negative is used
    box.anchor.value = 5
    assert "anchor 5" in box.figure.layout.title.text and len(hard_neg) == 1


@pytest.mark.parametrize("kind, code", [("hard", 0), ("semihard", 1), ("easy", 2)])
def test_negative_types_match_pytorch_metric_learning(kind, code):
    z, y = _batch(7, 48, 6, dim=4)
    ref = pml_miners.TripletMarginMiner(
        margin=0.3,
        type_of_triplets=kind,
        distance=pml_distances.LpDistance(normalize_embeddings=False),
    )(z, y)
    res = miners.negative_types(z, y, 0.3)
    keep = res.kind == code
    assert _triplet_set(res.a[keep], res.p[keep], res.n[keep]) == _triplet_set(*ref)
    all_ref = pml_miners.TripletMarginMiner(
        margin=1e9,
        type_of_triplets="all",
        distance=pml_distances.LpDistance(normalize_embeddings=False),
    )(z, y)
    assert _triplet_set(*miners.batch_all(z, y)) == _triplet_set(*all_ref)


def test_distance_weights_match_pytorch_metric_learning(monkeypatch):
    from pytorch_metric_learning.miners import distance_weighted_miner as dwm

    z, y = _batch(8, 40, 5, dim=8)
    z = torch.nn.functional.normalize(z.float(), dim=1)
    captured = {}

    def capture(labels, ref_labels=None, weights=None):
        captured["w"] = weights
        e = torch.zeros(0, dtype=torch.long)
        return e, e, e

    monkeypatch.setattr(dwm.lmu, "get_random_triplet_indices", capture)
    pml_miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)(z, y)
    ours = miners.distance_weights(z, y, 0.5, 1.4)
    rows = torch.isfinite(captured["w"]).all(1) & (captured["w"].sum(1) > 0)
    assert rows.sum() > 30
    assert torch.allclose(ours[rows], captured["w"][rows], atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "mean_nonzero"])
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean"])
def test_batch_all_loss_without_listing_triplets(reduction, distance):
    z, y = _batch(9, 30, 4, dim=5)
    zz = z.clone().requires_grad_(True)
    expect = losses.triplet_loss_from_indices(
        z,
        *miners.batch_all(z, y, distance=distance),
        margin=0.4,
        distance=distance,
        reduction=reduction,
    )
    got = losses.batch_all_triplet_loss(zz, y, 0.4, distance=distance, reduction=reduction)
    assert got.item() == pytest.approx(expect.item(), rel=1e-9)
    assert torch.autograd.gradcheck(
        lambda t: losses.batch_all_triplet_loss(t, y, 0.4, distance=distance, reduction=reduction),
        (zz,),
    )


@pytest.mark.parametrize(
    "seed, n, classes, margin",
    [(0, 16, 2, 0.0), (1, 40, 5, 0.2), (2, 64, 8, 1.0), (3, 33, 1, 0.5), (4, 50, 50, 0.3)],
)
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_batch_all_loss_value_and_gradient_match_listed_triplets(
    seed, n, classes, margin, distance
):
    """Counting active triplets by sorting gives the same loss and gradient as listing every
    triplet."""
    z, y = _batch(seed, n, classes, dim=6)
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    expect = losses.triplet_loss_from_indices(
        za,
        *miners.batch_all(z, y, distance=distance),
        margin=margin,
        distance=distance,
        reduction="mean_nonzero",
    )
    got = losses.batch_all_triplet_loss(zb, y, margin, distance=distance, reduction="mean_nonzero")
    assert got.item() == pytest.approx(expect.item(), rel=1e-9, abs=1e-12)
    expect.backward()
    got.backward()
    assert torch.allclose(za.grad, zb.grad, rtol=1e-9, atol=1e-12)


def test_mining_explorer_circles_are_drawn():
    # open symbols are stroked with marker.color: a transparent one made the mined circles invisible
    z, y = _batch(0, 24, 4, dim=3)
    box = miners.mining_explorer(z.float(), y)
    for tr in box.figure.data[3:]:
        assert tr.marker.symbol == "circle-open" and tr.marker.color not in (None, "rgba(0,0,0,0)")
        assert tr.marker.line.width > 0


@pytest.mark.parametrize("reduction", ["mean", "sum", "mean_nonzero"])
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize(
    "seed, n, classes, margin", [(0, 40, 5, 0.2), (1, 33, 1, 0.5), (2, 24, 4, 0.0)]
)
def test_mined_loss_batch_all_matches_the_listed_triplets(
    reduction, distance, seed, n, classes, margin
):
    """MinedTripletLoss('batch_all') sums over every valid triplet without listing them; the
    same miner given as a callable lists them (a, p, n) and applies the hinge one by one. Loss,
    gradient and the logged counts agree."""
    z, y = _batch(seed, n, classes, dim=6)
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    listed = miners.MinedTripletLoss(
        lambda e, lab: miners.batch_all(e, lab, distance=distance),
        margin,
        distance=distance,
        reduction=reduction,
    )(za, y)
    fast = miners.MinedTripletLoss("batch_all", margin, distance=distance, reduction=reduction)(
        zb, y
    )
    assert fast["loss"].item() == pytest.approx(listed["loss"].item(), rel=1e-9, abs=1e-12)
    assert fast["triplets"] == listed["triplets"]
    # (the listed path averages in float32)
    assert fast["active_fraction"] == pytest.approx(listed["active_fraction"], abs=1e-6)
    listed["loss"].backward()
    fast["loss"].backward()
    assert torch.allclose(za.grad, zb.grad, rtol=1e-9, atol=1e-12)
