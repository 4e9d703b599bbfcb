"""dmlcourse: the helper package of an interactive course on deep metric learning.

Modules mirror the curriculum (import what a notebook needs):

    runtime    device, seeding, quick mode               (00_start_here)
    data       MNIST / Fashion-MNIST, samplers, loaders  (00_start_here)
    models     small CNN and MLP embedding networks      (00_start_here)
    train      the training loop and its History         (00_start_here)
    cache      load the cached result, else compute it   (00_start_here)
    metrics    Precision@1, Recall@k, R-Precision, MAP@R, kNN accuracy
    plots      UMAP/PCA projections, plotly scatters, image grids
    distances  Euclidean, squared Euclidean and cosine distances
    losses     contrastive, triplet and NCA losses       (05_siamese_triplet)
"""

__version__ = "0.1.0"
