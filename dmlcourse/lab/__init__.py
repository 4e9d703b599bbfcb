"""The Embedding Lab: change the loss, the miner and the margin, train, watch the embedding move.

Taught in 05_siamese_triplet (losses), 06_mining_sampling (miners) and 07_angular_margins (heads).

    config.py   LabConfig: what determines a run, checked in one place
    runner.py   run_lab / LabRunner: train a configuration (or load it from the cache)
    seeds.py    SeedGroup / run_seeds: one configuration over several seeds, mean ± sd, compare
    layouts.py  aligned 2-D layouts of the probe embeddings, one per epoch
    widget.py   EmbeddingLab, the ipywidgets box

``from dmlcourse import lab; lab.EmbeddingLab(...)`` is all a notebook needs.
"""

from .config import (
    ANGULAR,
    EMBEDDING_DIMS,
    HEAD_LOSSES,
    LAYOUTS,
    LOSSES,
    MARGINS,
    METRIC_LOSSES,
    MINERS,
    NETWORKS,
    LabConfig,
    distance_for,
    uses_margin,
    uses_miner,
)
from .layouts import (
    chain_layouts,
    interpolate,
    next_layout,
    procrustes_align,
    umap_layout,
    warm_up_umap,
)
from .runner import (
    DIVERGENCE,
    INACTIVE_STEPS,
    LabRun,
    LabRunner,
    lab_cache_dir,
    load_split,
    make_loss,
    make_model,
    probe_set,
    run_lab,
    run_path,
    warm_up_training,
)
from .seeds import (
    MAX_SEEDS,
    SeedGroup,
    compare_seeds,
    group_key,
    run_seeds,
    seed_list,
    seed_stats,
)
from .widget import EmbeddingLab

__all__ = [
    "ANGULAR",
    "EMBEDDING_DIMS",
    "HEAD_LOSSES",
    "LAYOUTS",
    "LOSSES",
    "MARGINS",
    "METRIC_LOSSES",
    "MINERS",
    "NETWORKS",
    "LabConfig",
    "distance_for",
    "uses_margin",
    "uses_miner",
    "chain_layouts",
    "interpolate",
    "next_layout",
    "procrustes_align",
    "umap_layout",
    "warm_up_umap",
    "DIVERGENCE",
    "INACTIVE_STEPS",
    "LabRun",
    "LabRunner",
    "lab_cache_dir",
    "load_split",
    "make_loss",
    "make_model",
    "probe_set",
    "run_lab",
    "run_path",
    "warm_up_training",
    "MAX_SEEDS",
    "SeedGroup",
    "compare_seeds",
    "group_key",
    "run_seeds",
    "seed_list",
    "seed_stats",
    "EmbeddingLab",
]
