"""Linear-algebra helpers shared by several lectures: the one PCA.

Taught in 02_mahalanobis (used again in 00_start_here's pictures and 03_autoencoders).
"""

from __future__ import annotations

import torch

from .validate import check_int, check_tensor


def pca(x: torch.Tensor, n_components: int):
    """Principal components of x (N, D): returns ``(mean, components)`` with components (k, D),
    orthonormal rows, largest variance first; project with ``(x - mean) @ components.T``.

    Each component's sign is fixed: its entry of largest absolute value is positive
    (scikit-learn's convention for ``PCA``). The SVD alone leaves the sign to the LAPACK path,
    which changed with the number of CPU threads: a model trained on PCA coordinates and
    cached would then meet some coordinates negated when loaded in another process."""
    check_tensor("x", x, ndim=2, floating=True)
    n_components = check_int("n_components", n_components, min_value=1, max_value=min(x.shape))
    mean = x.mean(0)
    _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
    vt = vt[:n_components]
    largest = vt.gather(1, vt.abs().argmax(1, keepdim=True))
    return mean, vt * torch.where(largest < 0, -1.0, 1.0).to(vt.dtype)
