"""dmlcourse: the helper package of an interactive course on deep metric learning.

Three layers: ``core/`` at the bottom (argument checks, atomic I/O, the cache, data
locations and the one size policy, distances, reductions, the one PCA); one module per
lecture above it (none imports a later lecture's module); the Lab and the exercises on top.
tests/test_architecture.py checks this. Modules mirror the curriculum (import what a
notebook needs):

    runtime    device, seeding, quick mode               (00_start_here)
    data       MNIST / Fashion-MNIST, samplers, loaders  (00_start_here)
    models     small CNN and MLP embedding networks      (00_start_here)
    train      the training loop and its History         (00_start_here)
    cache      load the cached result, else compute it   (00_start_here)
    metrics    Precision@1, Recall@k, R-Precision, MAP@R, kNN accuracy; over seeds (04)
    plots      UMAP/PCA projections, plotly scatters, image grids
    metric_spaces  metric axioms checked numerically      (01_metric_spaces)
    open_set   closed- vs open-set recognition            (01_metric_spaces)
    mahalanobis  learned Mahalanobis distance, NCA, LDA   (02_mahalanobis)
    autoencoders  AEs, denoising, linear AE = PCA         (03_autoencoders)
    supervised  MSE/MAE/Huber/KL/hinge/cross-entropy      (04_supervised_losses)
    tuples     pairs, triplets, quadruplets, augmentation (05_siamese_triplet)
    losses     contrastive, triplet and NCA losses       (05_siamese_triplet)
    siamese    shared weights, batch losses, widgets     (05_siamese_triplet)
    miners     triplet mining and sampling               (06_mining_sampling)
    heads      SphereFace, CosFace, ArcFace heads        (07_angular_margins)
    verification  ROC, EER, TAR at FAR                   (07_angular_margins)
    uncertainty  PFE, mutual likelihood score, DUL       (08_uncertainty_pfe)
    lab        the Embedding Lab: config, runner, layouts, widget  (05, 06, 07)
    exercises  each notebook's exercises: check, hint, show_solution
    site       the static website's stand-ins for widgets (make site)
    core       validate, io, cache, paths, distances, reduction, linalg  (used by all)
"""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("DMLCOURSE_SITE") == "1":  # building the static site: see dmlcourse/site.py
    from . import site as _site

    _site.enable()
