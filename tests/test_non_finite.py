"""A diverged network never looks like a converged one (issue 30).

The probe: every public function and class of the modules that take embeddings, distances,
scores or logits is called with NaN, +inf and -inf in one row of each of its tensor inputs. It
must either raise :class:`NonFiniteError` (a clear message naming the rows) or return a
non-finite value: no finite answer may come back from a non-finite input.

The functions are enumerated from the modules, so a new public function fails
``test_every_public_function_is_probed`` until it is given a call below (or an exemption with
its reason): nobody has to remember to add it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math

import pytest
import torch
from torch import nn

from dmlcourse import heads, losses, metrics, miners, siamese, supervised, uncertainty
from dmlcourse import verification as ver
from dmlcourse.core import distances, reduction
from dmlcourse.core.validate import NonFiniteError, all_finite, check_finite, non_finite_rows

MODULES = (
    "dmlcourse.core.distances",
    "dmlcourse.core.reduction",
    "dmlcourse.losses",
    "dmlcourse.miners",
    "dmlcourse.heads",
    "dmlcourse.metrics",
    "dmlcourse.verification",
    "dmlcourse.uncertainty",
    "dmlcourse.supervised",
    "dmlcourse.siamese",
)

N, D, C = 12, 4, 3
BAD = (float("nan"), float("inf"), float("-inf"))


def _data():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N, D, generator=g)
    return {
        "z": z,
        "z2": torch.randn(N, D, generator=g),
        "z3": torch.randn(N, D, generator=g),
        "var": torch.rand(N, D, generator=g) + 0.1,
        "var2": torch.rand(N, D, generator=g) + 0.1,
        "log_var": 0.1 * torch.randn(N, D, generator=g),
        "d": torch.rand(N, generator=g) * 1.5 + 0.2,
        "d2": torch.rand(N, generator=g) * 1.5 + 0.2,
        "theta": torch.rand(N, generator=g) * 2.5 + 0.2,
        "cos": torch.rand(N, generator=g) * 1.8 - 0.9,
        "scores": torch.randn(N, generator=g),
        "logits": torch.randn(N, C, generator=g),
        "probs": torch.softmax(torch.randn(N, C, generator=g), 1),
        "terms": torch.rand(N, generator=g) - 0.3,
        "seeds_a": torch.tensor([0.8, 0.82, 0.81]),
        "seeds_b": torch.tensor([0.7, 0.71, 0.69]),
    }


LABELS = torch.arange(N) % C
SAME = torch.arange(N) % 2 == 0  # genuine / impostor pairs for the verification scores
DISSIMILAR = (torch.arange(N) % 2).to(torch.float64)
A, P, NEG = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 4, 5, 6]), torch.tensor([1, 2, 3, 4])
I, J = torch.arange(N), torch.roll(torch.arange(N), 1)


def _seeded(make):
    torch.manual_seed(0)
    return make()


def _head(cls, **kw):
    return _seeded(lambda: cls(D, C, **kw))


class _Features(nn.Module):  # a stand-in backbone: images (N, D) -> features (N, D)
    def forward(self, x):
        return x


# name -> (the inputs to poison, one at a time, by key of _data(); the call)
PROBES = {
    # core.distances
    "safe_sqrt": (["d"], lambda t: distances.safe_sqrt(t["d"])),
    "widen": (["z"], lambda t: distances.widen(t["z"])),
    "no_inf": (["d"], lambda t: distances.no_inf(t["d"])),
    "pairwise_distance": (
        ["z", "z2"],
        lambda t: [
            distances.pairwise_distance(t["z"], t["z2"], distance=k) for k in distances.DISTANCES
        ],
    ),
    "paired_distance": (
        ["z", "z2"],
        lambda t: [
            distances.paired_distance(t["z"], t["z2"], distance=k) for k in distances.DISTANCES
        ],
    ),
    # core.reduction
    "reduce_terms": (
        ["terms"],
        lambda t: [reduction.reduce_terms(t["terms"], r) for r in reduction.REDUCTIONS],
    ),
    # losses
    "triplet_loss": (
        ["z", "z2", "z3"],
        lambda t: [
            losses.triplet_loss(t["z"], t["z2"], t["z3"], 0.2, k, r)
            for k in distances.DISTANCES
            for r in ("mean", "sum", "mean_nonzero")
        ],
    ),
    "triplet_loss_from_indices": (
        ["z"],
        lambda t: [
            losses.triplet_loss_from_indices(t["z"], A, P, NEG, 0.2, reduction=r)
            for r in ("mean", "sum", "mean_nonzero")
        ],
    ),
    "batch_all_triplet_loss": (
        ["z"],
        lambda t: [
            losses.batch_all_triplet_loss(t["z"], LABELS, 0.2, reduction=r)
            for r in ("mean", "sum", "mean_nonzero")
        ],
    ),
    "batch_all_triplet_sums": (
        ["z"],
        lambda t: losses.batch_all_triplet_sums(t["z"], LABELS, 0.2)[0],
    ),
    "reduce_triplet_sums": (
        ["terms"],
        lambda t: [
            losses.reduce_triplet_sums(t["terms"].sum(), torch.tensor(3), torch.tensor(5), r)
            for r in ("mean", "sum", "mean_nonzero")
        ],
    ),
    "contrastive_loss": (
        ["z", "z2"],
        lambda t: [
            losses.contrastive_loss(t["z"], t["z2"], DISSIMILAR, 1.0, k, form=f)
            for k in distances.DISTANCES
            for f in ("lecture", "hadsell")
        ],
    ),
    "easy_positive_loss": (
        ["z"],
        lambda t: [
            losses.easy_positive_loss(t["z"], LABELS, negatives=k) for k in losses.EP_NEGATIVES
        ],
    ),
    "nca_loss": (
        ["z"],
        lambda t: [
            losses.nca_loss(t["z"], LABELS, variant=v) for v in ("goldberger", "negatives_only")
        ],
    ),
    # miners: they return indices, so they must raise
    "batch_all": (["z"], lambda t: miners.batch_all(t["z"], LABELS)),
    "batch_hard": (["z"], lambda t: miners.batch_hard(t["z"], LABELS)),
    "batch_semi_hard": (["z"], lambda t: miners.batch_semi_hard(t["z"], LABELS, 0.2)),
    "easy_positive": (["z"], lambda t: miners.easy_positive(t["z"], LABELS)),
    "random_triplets": (["z"], lambda t: miners.random_triplets(t["z"], LABELS)),
    "distance_weighted": (["z"], lambda t: miners.distance_weighted(t["z"], LABELS)),
    "distance_weights": (["z"], lambda t: miners.distance_weights(t["z"], LABELS)),
    "distance_log_density": (["d"], lambda t: miners.distance_log_density(t["d"], 8)),
    "negative_types": (["z"], lambda t: miners.negative_types(t["z"], LABELS, 0.2)),
    "BayesianUpdating": (["z"], lambda t: miners.BayesianUpdating(seed=0)(t["z"], LABELS)),
    "MinedTripletLoss": (
        ["z"],
        lambda t: (
            [miners.MinedTripletLoss(m, 0.2, seed=0)(t["z"], LABELS) for m in miners.MINER_NAMES]
            + [
                miners.MinedTripletLoss("easy_positive", None, loss="easy_positive_softmax")(
                    t["z"], LABELS
                )
            ]
        ),
    ),
    # heads
    "SoftmaxHead": (["z"], lambda t: _head(heads.SoftmaxHead)(t["z"], LABELS)),
    "NormFaceHead": (["z"], lambda t: _head(heads.NormFaceHead)(t["z"], LABELS)),
    "SphereFaceHead": (["z"], lambda t: _head(heads.SphereFaceHead)(t["z"], LABELS)),
    "CosFaceHead": (["z"], lambda t: _head(heads.CosFaceHead)(t["z"], LABELS)),
    "ArcFaceHead": (["z"], lambda t: _head(heads.ArcFaceHead)(t["z"], LABELS)),
    "HeadLoss": (
        ["z"],
        lambda t: [
            heads.HeadLoss(_head(heads.HEADS[k]))(t["z"], LABELS)
            for k in ("softmax", "normface", "cosface", "arcface")
        ],
    ),
    "arc_margin_target": (["cos"], lambda t: heads.arc_margin_target(t["cos"], 0.5)),
    "sphereface_psi": (["theta"], lambda t: heads.sphereface_psi(t["theta"], 4)),
    "target_logit_curves": (["theta"], lambda t: heads.target_logit_curves(t["theta"])),
    "decision_boundaries": (["theta"], lambda t: heads.decision_boundaries(t["theta"])),
    "true_class_probability": (
        ["theta"],
        lambda t: heads.true_class_probability(t["theta"], 16.0),
    ),
    # metrics: evaluation, not a training step, so they raise
    "evaluate": (["z", "z2"], lambda t: metrics.evaluate(t["z"], LABELS, t["z2"], LABELS)),
    "knn_accuracy": (["z", "z2"], lambda t: metrics.knn_accuracy(t["z"], LABELS, t["z2"], LABELS)),
    "map_at_r": (["z", "z2"], lambda t: metrics.map_at_r(t["z"], LABELS, t["z2"], LABELS)),
    "precision_at_1": (
        ["z", "z2"],
        lambda t: metrics.precision_at_1(t["z"], LABELS, t["z2"], LABELS),
    ),
    "r_precision": (["z", "z2"], lambda t: metrics.r_precision(t["z"], LABELS, t["z2"], LABELS)),
    "recall_at_k": (
        ["z", "z2"],
        lambda t: metrics.recall_at_k(t["z"], LABELS, t["z2"], LABELS, k=2),
    ),
    "mean_sd": (["seeds_a"], lambda t: metrics.mean_sd(t["seeds_a"].tolist())),
    "clearly_above": (
        ["seeds_a", "seeds_b"],
        lambda t: metrics.clearly_above(
            tuple(t["seeds_a"][:2].tolist()), tuple(t["seeds_b"][:2].tolist())
        ),
    ),
    # verification
    "pair_scores": (
        ["z"],
        lambda t: [ver.pair_scores(t["z"], I, J, k) for k in ("cosine", "neg_euclidean")],
    ),
    "roc_curve": (["scores"], lambda t: ver.roc_curve(t["scores"], SAME)),
    "equal_error_rate": (["scores"], lambda t: ver.equal_error_rate(t["scores"], SAME)),
    "tar_at_far": (["scores"], lambda t: ver.tar_at_far(t["scores"], SAME, 0.2)),
    # uncertainty
    **{
        name: (
            ["z", "var", "z2", "var2"],
            lambda t, name=name: getattr(uncertainty, name)(t["z"], t["var"], t["z2"], t["var2"]),
        )
        for name in ("mls_terms", "mutual_likelihood_score", "pairwise_mls", "pfe_official_score")
    },
    "pfe_loss": (["z", "log_var"], lambda t: uncertainty.pfe_loss(t["z"], t["log_var"], LABELS)),
    "PFELoss": (["z", "log_var"], lambda t: uncertainty.PFELoss()((t["z"], t["log_var"]), LABELS)),
    "fuse": (["z", "var"], lambda t: uncertainty.fuse(t["z"], t["var"])),
    "harmonic_variance": (["var"], lambda t: uncertainty.harmonic_variance(t["var"])),
    "UncertaintyHead": (
        ["z"],
        lambda t: _seeded(lambda: uncertainty.UncertaintyHead(D, D))(t["z"]),
    ),
    "PFE": (
        ["z"],
        lambda t: _seeded(
            lambda: uncertainty.PFE(nn.Linear(D, D), uncertainty.UncertaintyHead(D, D))
        )(t["z"]),
    ),
    "DULNet": (
        ["z"],
        lambda t: _seeded(lambda: uncertainty.DULNet(_Features(), D, D))(t["z"]),
    ),
    "DULLoss": (
        ["z", "log_var"],
        lambda t: _seeded(lambda: uncertainty.DULLoss(_head(heads.ArcFaceHead)))(
            (t["z"], t["log_var"]), LABELS
        ),
    ),
    "gaussian_kl": (["z", "log_var"], lambda t: uncertainty.gaussian_kl(t["z"], t["log_var"])),
    "reparameterize": (
        ["z", "log_var"],
        lambda t: uncertainty.reparameterize(t["z"], t["log_var"]),
    ),
    # supervised
    "cross_entropy": (["logits"], lambda t: supervised.cross_entropy(t["logits"], LABELS)),
    "hinge_loss": (["scores"], lambda t: supervised.hinge_loss(t["scores"], 2 * (LABELS % 2) - 1)),
    "huber_loss": (["z", "z2"], lambda t: supervised.huber_loss(t["z"], t["z2"])),
    "mse_loss": (["z", "z2"], lambda t: supervised.mse_loss(t["z"], t["z2"])),
    "mae_loss": (["z", "z2"], lambda t: supervised.mae_loss(t["z"], t["z2"])),
    "kl_divergence": (
        ["logits", "probs"],
        lambda t: supervised.kl_divergence(t["logits"], t["probs"]),
    ),
    "log_softmax": (["logits"], lambda t: supervised.log_softmax(t["logits"])),
    "loss_curves": (["d"], lambda t: supervised.loss_curves(t["d"])),
    "norm_and_angle_stats": (
        ["z"],
        lambda t: supervised.norm_and_angle_stats(t["z"][:, :2].contiguous(), LABELS),
    ),
    "SupervisedLoss": (
        ["z"],
        lambda t: [
            _seeded(lambda k=k: supervised.SupervisedLoss(k, D, 2 if k == "hinge" else C))(
                t["z"], LABELS % 2 if k == "hinge" else LABELS
            )
            for k in supervised.LOSSES
        ],
    ),
    "Classifier": (
        ["z"],
        lambda t: _seeded(lambda: supervised.Classifier(_Features(), heads.SoftmaxHead(D, C)))(
            t["z"]
        ),
    ),
    # siamese
    "BatchContrastive": (
        ["z"],
        lambda t: [
            siamese.BatchContrastive(form=f)(t["z"], LABELS) for f in ("lecture", "hadsell")
        ],
    ),
    "BatchNCA": (
        ["z"],
        lambda t: [
            siamese.BatchNCA(variant=v)(t["z"], LABELS) for v in ("goldberger", "negatives_only")
        ],
    ),
    "BatchTriplet": (["z"], lambda t: siamese.BatchTriplet()(t["z"], LABELS)),
    "SharedSiamese": (
        ["z", "z2"],
        lambda t: siamese.SharedSiamese(_seeded(lambda: nn.Linear(D, D)))(t["z"], t["z2"]),
    ),
    "SiameseCopies": (
        ["z", "z2"],
        lambda t: siamese.SiameseCopies(_seeded(lambda: nn.Linear(D, D)))(t["z"], t["z2"]),
    ),
    "pair_distances": (["z"], lambda t: siamese.pair_distances(t["z"], LABELS)),
    "loss_surface": (["d", "d2"], lambda t: siamese.loss_surface(t["d"], t["d2"], 0.2)),
}

# public names that take no embeddings, distances, scores or logits, with the reason
EXEMPT = {
    "NegativeTypes": "a container of negative_types' result (probed there)",
    "ROC": "a container of roc_curve's result (probed there)",
    "make_head": "a factory of the heads probed above",
    "make_batch_loss": "a factory of the Batch* losses probed above",
    "mining_explorer": "a widget: draws the batch it is given (its miners are probed)",
    "margin_explorer": "a widget of sliders (floats, no embeddings)",
    "scale_explorer": "a widget of sliders (floats, no embeddings)",
    "mls_explorer": "a widget of sliders (floats, no embeddings)",
    "triplet_margin_explorer": "a widget: draws the loss_surface probed above",
    "histogram_browser": "a widget: draws the pair_distances probed above",
    "plot_losses": "a figure of loss_curves (probed above) on a fixed grid",
    "gradient_bytes": "counts a module's gradient memory (no data)",
    "parameter_bytes": "counts a module's parameter memory (no data)",
    "degrade": "takes images, not embeddings (pixels are clamped to [0, 1])",
    "degrade_mixed": "takes images, not embeddings",
    "smooth_labels": "takes integer labels only",
    "two_class_subset": "takes integer labels only",
    "verification_pairs": "takes integer labels only",
    "make_pairs": "takes integer labels only",
}


# The few (function, input, value) where a finite answer is the formula's exact limit, not a lost
# NaN. Each must still give a finite answer (so a stale entry fails). During training the
# loop's own check of the embeddings and weights catches them (tests/test_train.py).
LIMITS = {
    ("reparameterize", "log_var", float("-inf")): "variance exp(-inf) = 0: the sample is mu",
    ("pfe_loss", "log_var", float("-inf")): "a variance of 0 (a point) beside a finite one",
    ("hinge_loss", "scores", float("-inf")): "[m - y s]_+ = 0 when y s = +inf (y = -1 here)",
    ("loss_surface", "d", float("-inf")): "the hinge [d_ap - d_an + m]_+ is 0 at d_ap = -inf",
    ("loss_surface", "d2", float("inf")): "the hinge [d_ap - d_an + m]_+ is 0 at d_an = +inf",
}


def public_names() -> dict:
    """Every public function or class of MODULES (re-exports included), by name."""
    found, seen = {}, set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            home = getattr(obj, "__module__", "") or ""
            if home.startswith("dmlcourse") and not home.startswith("dmlcourse.core.validate"):
                if id(obj) in seen or (inspect.isclass(obj) and issubclass(obj, Exception)):
                    continue  # an alias (uncertainty.dul_kl is autoencoders.gaussian_kl)
                seen.add(id(obj))
                found[obj.__name__] = f"{home}.{obj.__name__}"
    return found


def test_every_public_function_is_probed():
    names = public_names()
    missing = sorted(set(names) - set(PROBES) - set(EXEMPT))
    assert not missing, (
        f"public functions with no NaN probe: {missing}. Give each a call in PROBES "
        "(or, if it takes no embeddings, distances or scores, a reason in EXEMPT)."
    )
    stale = sorted((set(PROBES) | set(EXEMPT)) - set(names))
    assert not stale, f"probes or exemptions of names that are gone: {stale}"


def _leaves(out):
    """Every number an output holds (tensors, floats, bools) as float tensors."""
    if isinstance(out, torch.Tensor):
        yield out.detach()
    elif isinstance(out, bool):
        yield torch.tensor(float(out))
    elif isinstance(out, (int, float)):
        yield torch.tensor(float(out))
    elif isinstance(out, dict):
        for v in out.values():
            yield from _leaves(v)
    elif isinstance(out, (tuple, list)):
        for v in out:
            yield from _leaves(v)
    elif dataclasses.is_dataclass(out):
        for f in dataclasses.fields(out):
            yield from _leaves(getattr(out, f.name))


def _outputs(out):
    """The separate answers of a call (a list of calls gives one answer each)."""
    return out if isinstance(out, list) else [out]


CASES = [(name, key, bad) for name, (keys, _) in PROBES.items() for key in keys for bad in BAD]


@pytest.mark.parametrize("name,key,bad", CASES, ids=[f"{n}-{k}-{b}" for n, k, b in CASES])
def test_non_finite_input_never_gives_a_finite_answer(name, key, bad):
    keys, call = PROBES[name]
    t = _data()
    t[key][0] = bad
    try:
        out = call(t)
    except NonFiniteError as e:
        assert " holds " in str(e) and " row" in str(e), str(e)
        return
    if (name, key, bad) in LIMITS:
        assert all(torch.isfinite(leaf).all() for leaf in _leaves(out)), "a stale LIMITS entry"
        return
    for k, answer in enumerate(_outputs(out)):
        leaves = list(_leaves(answer))
        assert leaves, f"{name} returned nothing to check"
        assert any(
            leaf.is_floating_point() and not torch.isfinite(leaf).all() for leaf in leaves
        ), f"{name} with {bad} in row 0 of {key} returned a finite answer (call {k}): {answer}"


def test_a_nan_distance_stays_nan_and_the_finite_rows_keep_their_values():
    x = torch.tensor([[float("nan"), 0.0], [1.0, 0.0], [0.0, 2.0]])
    d = distances.pairwise_distance(x)
    assert torch.isnan(d[0]).all() and torch.isnan(d[:, 0]).all()
    assert torch.allclose(d[1:, 1:], torch.tensor([[0.0, math.sqrt(5)], [math.sqrt(5), 0.0]]))
    assert torch.isnan(distances.paired_distance(x[:1], torch.zeros(1, 2)))


def test_safe_sqrt_keeps_a_zero_gradient_at_zero():
    d2 = torch.tensor([0.0, 1e-14, 4.0], dtype=torch.float64, requires_grad=True)
    out = distances.safe_sqrt(d2)
    out.sum().backward()
    assert out.tolist()[0] == 0.0 and out.tolist()[2] == 2.0
    assert d2.grad.tolist()[:2] == [0.0, 0.0] and d2.grad[2].item() == pytest.approx(0.25)
    # and coincident embeddings give a finite (zero) gradient through pairwise_distance
    z = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    distances.pairwise_distance(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_check_finite_names_the_rows_and_what_they_hold():
    z = torch.zeros(20, 3)
    z[0, 1] = z[17, 0] = float("nan")
    z[3, 2] = float("inf")
    with pytest.raises(NonFiniteError, match=r"z holds NaN in 2 rows \[0, 17\], \+inf in 1 row"):
        check_finite("z", z)
    assert non_finite_rows(torch.zeros(3)) == ""
    assert check_finite("z", torch.zeros(2, 2)) is not None


def test_finite_values_beyond_the_sum_s_range_are_not_called_non_finite():
    huge = torch.full((4, 3), 3e38)  # each entry finite, their sum beyond float32
    assert all_finite(huge) and check_finite("var", huge) is huge
    huge[2, 1] = float("nan")
    assert not all_finite(huge)
    with pytest.raises(NonFiniteError, match=r"NaN in 1 row \[2\]"):
        check_finite("var", huge)
