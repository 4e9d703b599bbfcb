"""Aligned 2-D layouts: Procrustes against SciPy, chained UMAP, interpolation."""

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes

from dmlcourse import lab


def test_procrustes_align_matches_scipy():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(40, 2))
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 2.5 * (ref + 0.01 * rng.normal(size=ref.shape)) @ rot + np.array([3.0, -1.0])
    ours = lab.procrustes_align(moved, ref)
    a0, b0 = moved - moved.mean(0), ref - ref.mean(0)
    r, s = orthogonal_procrustes(a0, b0)
    theirs = (s / (a0**2).sum()) * a0 @ r + ref.mean(0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.abs(ours - ref).max() < 0.1


def test_chained_umap_keeps_unmoved_points_in_place():
    """The alignment the lab uses: an embedding that did not change gives (nearly) the same
    picture."""
    rng = np.random.default_rng(0)
    z = torch.tensor(
        np.concatenate([rng.normal(c * 4, 1, size=(30, 8)) for c in range(3)]), dtype=torch.float
    )
    first = lab.next_layout(z, None, seed=0)
    again = lab.next_layout(z, first, seed=0)
    fresh = lab.next_layout(
        z, first, seed=1, method="procrustes"
    )  # a new UMAP, rotated onto the first
    spread = np.linalg.norm(first - first.mean(0), axis=1).mean()
    moved_chain = np.linalg.norm(again - first, axis=1).mean() / spread
    moved_fresh = np.linalg.norm(fresh - first, axis=1).mean() / spread
    assert moved_chain < moved_fresh


def test_interpolate():
    layouts = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    np.testing.assert_array_equal(lab.interpolate(layouts, 1), layouts[1])
    np.testing.assert_allclose(
        lab.interpolate(layouts, 0.25), 0.75 * layouts[0] + 0.25 * layouts[1]
    )
    np.testing.assert_array_equal(lab.interpolate(layouts, 9), layouts[2])
    with np.testing.assert_raises(ValueError):
        lab.next_layout(torch.zeros(20, 4), None, method="tsne")
