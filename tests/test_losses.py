"""Losses of lecture 5 against independent references: float64 loops, gradcheck,
pytorch-metric-learning."""

import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses

from dmlcourse import losses


def _d(u, v, distance):
    """One distance, straight from its definition (float64)."""
    if distance == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v)))
    if distance == "squared_euclidean":
        return sum((a - b) ** 2 for a, b in zip(u, v))
    dot = sum(a * b for a, b in zip(u, v))
    nu, nv = math.sqrt(sum(a * a for a in u)), math.sqrt(sum(b * b for b in v))
    return 1 - dot / (nu * nv)


def _reduce(terms, reduction):
    if reduction == "sum":
        return sum(terms)
    if reduction == "mean":
        return sum(terms) / len(terms)
    nz = [t for t in terms if t > 0]
    return sum(nz) / len(nz) if nz else 0.0


DISTS = ["euclidean", "squared_euclidean", "cosine"]
REDS = ["mean", "sum", "mean_nonzero"]


@pytest.mark.parametrize("distance", DISTS)
@pytest.mark.parametrize("reduction", REDS)
@pytest.mark.parametrize("form", ["lecture", "hadsell"])
def test_contrastive_against_a_loop(distance, reduction, form):
    g = torch.Generator().manual_seed(1)
    z1, z2 = (
        torch.randn(25, 4, generator=g, dtype=torch.float64),
        torch.randn(25, 4, generator=g, dtype=torch.float64),
    )
    y = torch.randint(0, 2, (25,), generator=g)
    m = 1.5 if distance != "cosine" else 0.8
    terms = []
    for i in range(25):
        d = _d(z1[i].tolist(), z2[i].tolist(), distance)
        if form == "lecture":
            terms.append((1 - y[i].item()) * d + y[i].item() * max(0.0, m - d))
        else:
            terms.append(0.5 * (1 - y[i].item()) * d**2 + 0.5 * y[i].item() * max(0.0, m - d) ** 2)
    got = losses.contrastive_loss(z1, z2, y, m, distance=distance, reduction=reduction, form=form)
    assert got.item() == pytest.approx(_reduce(terms, reduction), rel=1e-9, abs=1e-12)
    per = losses.contrastive_loss(z1, z2, y, m, distance=distance, reduction="none", form=form)
    assert per.tolist() == pytest.approx(terms, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("distance", DISTS)
@pytest.mark.parametrize("reduction", REDS)
def test_triplet_against_a_loop(distance, reduction):
    g = torch.Generator().manual_seed(2)
    za, zp, zn = (torch.randn(30, 3, generator=g, dtype=torch.float64) for _ in range(3))
    m = 0.3
    terms = [
        max(
            0.0,
            _d(za[i].tolist(), zp[i].tolist(), distance)
            - _d(za[i].tolist(), zn[i].tolist(), distance)
            + m,
        )
        for i in range(30)
    ]
    got = losses.triplet_loss(za, zp, zn, m, distance=distance, reduction=reduction)
    assert got.item() == pytest.approx(_reduce(terms, reduction), rel=1e-9, abs=1e-12)


def _nca_loop(z, labels, variant, scale=1.0):
    n = len(z)
    d = [
        [_d(z[i].tolist(), z[j].tolist(), "squared_euclidean") for j in range(n)] for i in range(n)
    ]
    terms = []
    for i in range(n):
        if variant == "goldberger":
            den = sum(math.exp(-scale * d[i][k]) for k in range(n) if k != i)
            num = sum(
                math.exp(-scale * d[i][j]) for j in range(n) if j != i and labels[j] == labels[i]
            )
            if any(j != i and labels[j] == labels[i] for j in range(n)):
                terms.append(-math.log(num / den))
        else:
            negs = [k for k in range(n) if labels[k] != labels[i]]
            if not negs:
                continue
            den = sum(math.exp(-scale * d[i][k]) for k in negs)
            for j in range(n):
                if j != i and labels[j] == labels[i]:
                    terms.append(-math.log(math.exp(-scale * d[i][j]) / den))
    return terms


@pytest.mark.parametrize("variant", ["goldberger", "negatives_only"])
@pytest.mark.parametrize("seed", [0, 1])
def test_nca_against_a_loop(variant, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(14, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (14,), generator=g)
    labels[-1] = 9  # a point alone in its class
    terms = _nca_loop(z, labels.tolist(), variant, scale=0.7)
    per = losses.nca_loss(z, labels, variant=variant, scale=0.7, reduction="none")
    assert sorted(per.tolist()) == pytest.approx(sorted(terms), rel=1e-9)
    got = losses.nca_loss(z, labels, variant=variant, scale=0.7, reduction="mean")
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-9)


@pytest.mark.parametrize("distance", DISTS)
def test_gradients_pass_gradcheck(distance):
    g = torch.Generator().manual_seed(3)
    z1, z2 = (
        torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)
    )
    zn = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(
        lambda a, b: losses.contrastive_loss(a, b, y, 2.0, distance=distance), (z1, z2)
    )
    assert torch.autograd.gradcheck(
        lambda a, b, c: losses.triplet_loss(a, b, c, 1.0, distance=distance), (z1, z2, zn)
    )
    for variant in ("goldberger", "negatives_only"):
        assert torch.autograd.gradcheck(
            lambda a, v=variant: losses.nca_loss(a, labels, variant=v, distance=distance), (z1,)
        )


def test_contrastive_matches_pytorch_metric_learning_on_all_pairs():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(32, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (32,), generator=g)
    margin = 3.0
    ref = pml_losses.ContrastiveLoss(
        pos_margin=0,
        neg_margin=margin,
        distance=pml_distances.LpDistance(normalize_embeddings=False),
    )(z, labels)
    i, j = torch.triu_indices(32, 32, 1)
    i, j = (
        torch.cat([i, j]),
        torch.cat([j, i]),
    )  # pytorch-metric-learning uses both orders of every pair
    y = (labels[i] != labels[j]).long()
    per = losses.contrastive_loss(z[i], z[j], y, margin, distance="euclidean", reduction="none")
    # its reduction: the mean over non-zero terms, separately for similar and dissimilar pairs, then
    # summed
    ours = losses.reduce_terms(per[y == 0], "mean_nonzero") + losses.reduce_terms(
        per[y == 1], "mean_nonzero"
    )
    assert ours.item() == pytest.approx(ref.item(), rel=1e-7)


def test_squared_triplet_on_unit_vectors_is_a_cosine_margin():
    # 05_siamese_triplet: on unit vectors d^2 = 2 - 2 cos, so [d_ap^2 - d_an^2 + m]_+ is
    # 2 [cos(a,n) - cos(a,p) + m/2]_+, and it equals the plain-distance hinge with the margin
    # m / (d_ap + d_an); checked term by term with a float64 loop.
    g = torch.Generator().manual_seed(5)
    za, zp, zn = (
        torch.nn.functional.normalize(torch.randn(40, 4, generator=g, dtype=torch.float64), dim=1)
        for _ in range(3)
    )
    m = 0.3
    got = losses.triplet_loss(za, zp, zn, m, distance="squared_euclidean", reduction="none")
    plain = losses.triplet_loss(za, zp, zn, m, distance="euclidean", reduction="none")
    for i in range(40):
        a, p, n = za[i].tolist(), zp[i].tolist(), zn[i].tolist()
        cos_ap = sum(x * y for x, y in zip(a, p))
        cos_an = sum(x * y for x, y in zip(a, n))
        assert got[i].item() == pytest.approx(2 * max(0.0, cos_an - cos_ap + m / 2), abs=1e-12)
        d_ap, d_an = _d(a, p, "euclidean"), _d(a, n, "euclidean")
        assert (got[i].item() > 0) == (d_ap - d_an + m / (d_ap + d_an) > 0)
    assert (got > 0).any() and (got == 0).any() and not torch.equal(got > 0, plain > 0)


def test_triplet_matches_pytorch_metric_learning_on_given_triplets():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(40, 6, generator=g, dtype=torch.float64) * 0.5
    a, p, n = (torch.randint(0, 40, (100,), generator=g) for _ in range(3))
    labels = torch.arange(40)  # the labels are not used when indices_tuple is given
    ref = pml_losses.TripletMarginLoss(
        margin=0.4, distance=pml_distances.LpDistance(normalize_embeddings=False)
    )(z, labels, indices_tuple=(a, p, n))
    ours = losses.triplet_loss_from_indices(z, a, p, n, margin=0.4, reduction="mean_nonzero")
    assert ours.item() == pytest.approx(ref.item(), rel=1e-7)


def test_edge_cases_are_defined_and_backpropagate():
    z = torch.zeros(4, 3, requires_grad=True)
    # identical embeddings: distance 0, finite values and gradients for every distance
    for distance in DISTS:
        for loss in (
            losses.contrastive_loss(
                z, z.detach() * 1, torch.tensor([0, 1, 0, 1]), 1.0, distance=distance
            ),
            losses.triplet_loss(z, z * 1, z * 1, 0.5, distance=distance),
            losses.nca_loss(z, torch.tensor([0, 0, 1, 1]), distance=distance),
        ):
            z.grad = None
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    # a single class: no dissimilar pairs / no negatives -> a zero that still back-propagates
    w = torch.randn(5, 3, requires_grad=True)
    same = torch.zeros(5, dtype=torch.long)
    out = losses.nca_loss(w, same, variant="negatives_only")
    out.backward()
    assert out.item() == 0.0 and w.grad is not None and torch.all(w.grad == 0)
    # one element: nothing to compare
    one = torch.randn(1, 3, requires_grad=True)
    out = losses.nca_loss(one, torch.tensor([0]))
    out.backward()
    assert out.item() == 0.0
    empty = losses.triplet_loss_from_indices(w, *(torch.zeros(0, dtype=torch.long),) * 3)
    empty.backward()
    assert empty.item() == 0.0


@pytest.mark.parametrize(
    "call, msg",
    [
        (
            lambda z: losses.triplet_loss(z, z, z[:3], 0.1),
            r"za has shape \(4, 2\) but zn has \(3, 2\)",
        ),
        (lambda z: losses.triplet_loss(z, z, z, -0.5), "margin must be >= 0.0, got -0.5"),
        (lambda z: losses.triplet_loss(z, z, z, float("nan")), "margin must be a number, got NaN"),
        (lambda z: losses.triplet_loss(z, z, z, 0.1, distance="manhattan"), "distance='manhattan'"),
        (lambda z: losses.triplet_loss(z, z, z, 0.1, reduction="median"), "reduction='median'"),
        (
            lambda z: losses.contrastive_loss(z, z, torch.tensor([0, 2, 1, 0]), 1.0),
            "dissimilar must hold only 0",
        ),
        (
            lambda z: losses.contrastive_loss(z, z, torch.tensor([0, 1]), 1.0),
            "dissimilar has 2 entries",
        ),
        (lambda z: losses.nca_loss(z, torch.tensor([0, 1, 1])), "labels has 3 entries"),
        (
            lambda z: losses.nca_loss(z, torch.tensor([0, 1, 1, 0]), variant="sklearn"),
            "variant='sklearn'",
        ),
    ],
)
def test_bad_input_is_explained(call, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        call(torch.randn(4, 2))
