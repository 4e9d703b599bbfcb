"""What determines a Lab run: :class:`LabConfig`, the one place its settings are checked.

Taught in 05_siamese_triplet, 06_mining_sampling and 07_angular_margins (with the Lab).
The widget builds a ``LabConfig`` from its arguments when it is created, so a setting
that cannot train is refused at once, not when Train is pressed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import heads, miners
from ..core.paths import DATASETS, SIZES
from ..core.validate import check_choice, check_float, check_int

METRIC_LOSSES = ("contrastive", "triplet", "nca")
HEAD_LOSSES = tuple(heads.HEADS)  # softmax, normface, sphereface, cosface, arcface
LOSSES = METRIC_LOSSES + HEAD_LOSSES
MINERS = miners.MINER_NAMES  # the stateless miners and Bayesian-updating sampling
NETWORKS = ("mlp", "cnn")
EMBEDDING_DIMS = (2, 8, 16, 32, 64, 128)
# how the epochs' pictures are aligned (layouts.next_layout)
LAYOUTS = ("chain", "procrustes", "pca")

# margin slider per loss: (min, max, step, default); SphereFace's is the integer m of cos(m theta)
MARGINS = {
    "contrastive": (0.0, 2.0, 0.05, 1.0),
    "triplet": (0.0, 1.0, 0.01, 0.2),
    "sphereface": (1.0, 4.0, 1.0, 4.0),
    "cosface": (0.0, 0.6, 0.05, 0.35),
    "arcface": (0.0, 1.0, 0.05, 0.5),
}
ANGULAR = ("normface", "sphereface", "cosface", "arcface")  # compared with the cosine


def uses_miner(loss: str) -> bool:
    """Only the triplet loss picks its triplets with a miner."""
    return loss == "triplet"


def uses_margin(loss: str, miner: str | None = None) -> bool:
    """Losses with a margin. With the easy-positive miner the Lab trains eq. 19, the softmax
    form (``MinedTripletLoss(loss="easy_positive_softmax")``), which has none."""
    return loss in MARGINS and not (loss == "triplet" and miner == "easy_positive")


def distance_for(loss: str) -> str:
    """The distance the retrieval metrics use: cosine for the angular heads, Euclidean otherwise."""
    return "cosine" if loss in ANGULAR else "euclidean"


@dataclass(frozen=True)
class LabConfig:
    """Everything that determines a lab run (and so its cache key).

    Settings that do not apply to the loss are stored as None (``normalized()``),
    so that, say, NCA runs with different margin slider positions share one cache file.
    """

    dataset: str = "mnist"
    size: str = "mini"
    loss: str = "triplet"
    miner: str | None = "batch_semi_hard"
    margin: float | None = None  # None: the loss's usual margin (MARGINS)
    embedding_dim: int = 32
    epochs: int = 5
    lr: float = 2e-3
    seed: int = 0
    network: str = "mlp"
    batch_size: int = 128
    samples_per_class: int = 16
    train_per_class: int | None = None  # None: every training image of ``size``
    probe_per_class: int = 100
    # how epochs' pictures are aligned: "chain", "procrustes" or "pca" (see next_layout)
    layout: str = "chain"

    def normalized(self) -> "LabConfig":
        """Check every field and blank the ones that do not apply to the loss."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("size", self.size, SIZES)
        check_choice("loss", self.loss, LOSSES)
        check_choice("network", self.network, NETWORKS)
        check_int("embedding_dim", self.embedding_dim, min_value=1)
        check_int("epochs", self.epochs, min_value=1)
        check_float("lr", self.lr, min_value=0.0, strict_min=True)
        check_int("seed", self.seed, min_value=0)
        check_int("batch_size", self.batch_size, min_value=4)
        check_int("samples_per_class", self.samples_per_class, min_value=2)
        check_int("probe_per_class", self.probe_per_class, min_value=2)
        check_choice("layout", self.layout, LAYOUTS)
        if self.train_per_class is not None:
            check_int("train_per_class", self.train_per_class, min_value=2)
        miner = self.miner if uses_miner(self.loss) else None
        if miner is not None:
            check_choice("miner", miner, MINERS)
        elif uses_miner(self.loss):
            raise ValueError(
                f"miner=None is not allowed with loss='triplet'; choose one of {sorted(MINERS)}."
            )
        margin = None
        if uses_margin(self.loss, miner):
            lo, hi, _, default = MARGINS[self.loss]
            margin = (
                default
                if self.margin is None
                else check_float("margin", self.margin, min_value=0.0)
            )
            if self.loss == "sphereface":
                margin = float(
                    check_int("margin", int(round(margin)), min_value=1, max_value=int(hi))
                )
        return replace(self, miner=miner, margin=margin, lr=float(self.lr))

    def label(self) -> str:
        c = self.normalized()
        parts = (
            [c.loss]
            + ([c.miner] if c.miner else [])
            + ([f"m={c.margin:g}"] if c.margin is not None else [])
        )
        return " · ".join(
            parts + [f"d={c.embedding_dim}", f"lr={c.lr:g}", f"{c.epochs} ep", f"seed {c.seed}"]
        )
