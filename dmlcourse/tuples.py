"""Pairs and triplets from labels, and positives from augmentation.

Taught in 01_metric_spaces (weak supervision) and 05_siamese_triplet.

A Siamese network never sees single images: it sees tuples. With labels we can
build them (``make_pairs``, ``make_triplets``, ``make_quadruplets``); without
labels we can still make a positive by augmenting the anchor (``augment``,
``augmentation_pairs``). Everything is seeded and vectorised.
"""

from __future__ import annotations

import math

import torch

from .core.validate import check_float, check_int, check_tensor


def _generator(seed):
    return torch.Generator().manual_seed(check_int("seed", seed, min_value=0))


def _check_labels(labels):
    check_tensor("labels", labels, ndim=1)
    if labels.is_floating_point():
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}.")
    if len(labels) < 2:
        raise ValueError(f"labels must hold at least 2 samples to make tuples, got {len(labels)}.")
    return labels.cpu()


def _random_member(mask: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """For each row of a boolean (N, M) mask, a uniformly random column where it is True, or -1."""
    scores = torch.rand(mask.shape, generator=g).masked_fill(~mask, -1.0)
    idx = scores.argmax(1)
    return torch.where(mask.any(1), idx, torch.full_like(idx, -1))


def make_pairs(
    labels: torch.Tensor,
    n_pairs: int | None = None,
    *,
    positive_fraction: float = 0.5,
    seed: int = 0,
):
    """Random pairs (i, j) with ``dissimilar = 1`` where the labels differ (the Guelph slides' y).

    Returns (i, j, dissimilar), LongTensors of length ``n_pairs`` (default: len(labels)).
    A fraction ``positive_fraction`` of the pairs is similar (same class, i != j), the
    rest dissimilar. Anchors are drawn among the samples that have a partner of the
    needed kind.
    """
    labels = _check_labels(labels)
    n_pairs = check_int("n_pairs", n_pairs if n_pairs is not None else len(labels), min_value=1)
    positive_fraction = check_float(
        "positive_fraction", positive_fraction, min_value=0.0, max_value=1.0
    )
    g = _generator(seed)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    n_pos = int(round(n_pairs * positive_fraction))
    out_i, out_j, out_y = [], [], []
    for count, mask, y in ((n_pos, same & ~eye, 0), (n_pairs - n_pos, ~same, 1)):
        if count == 0:
            continue
        ok = torch.nonzero(mask.any(1)).flatten()
        if len(ok) == 0:
            kind = "similar" if y == 0 else "dissimilar"
            raise ValueError(
                f"no {kind} pair exists in these labels; change positive_fraction "
                f"(got {positive_fraction})."
            )
        i = ok[torch.randint(len(ok), (count,), generator=g)]
        out_i.append(i)
        out_j.append(_random_member(mask[i], g))
        out_y.append(torch.full((count,), y, dtype=torch.long))
    i, j, y = torch.cat(out_i), torch.cat(out_j), torch.cat(out_y)
    order = torch.randperm(len(i), generator=g)
    return i[order], j[order], y[order]


def make_triplets(labels: torch.Tensor, n_triplets: int | None = None, *, seed: int = 0):
    """Random triplets (anchor, positive of the same class, negative of another class).

    Returns LongTensors (a, p, n) of length ``n_triplets`` (default: len(labels)).
    Only anchors that have both a positive and a negative are used.
    """
    labels = _check_labels(labels)
    n_triplets = check_int(
        "n_triplets", n_triplets if n_triplets is not None else len(labels), min_value=1
    )
    g = _generator(seed)
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    ok = torch.nonzero(pos.any(1) & (~same).any(1)).flatten()
    if len(ok) == 0:
        raise ValueError(
            "no anchor has both a positive and a negative: the labels need a class with two "
            "samples and at least two classes."
        )
    a = ok[torch.randint(len(ok), (n_triplets,), generator=g)]
    return a, _random_member(pos[a], g), _random_member(~same[a], g)


def make_quadruplets(labels: torch.Tensor, n: int | None = None, *, seed: int = 0):
    """(anchor, positive, negative, second negative from a third class): the quadruplet setting."""
    labels = _check_labels(labels)
    n = check_int("n", n if n is not None else len(labels), min_value=1)
    if len(torch.unique(labels)) < 3:
        raise ValueError("quadruplets need at least three classes.")
    a, p, neg = make_triplets(labels, n, seed=seed)
    g = _generator(seed + 1)
    third = (labels[None, :] != labels[a][:, None]) & (labels[None, :] != labels[neg][:, None])
    return a, p, neg, _random_member(third, g)


def augment(
    images: torch.Tensor,
    *,
    max_shift: int = 3,
    max_rotation: float = 15.0,
    noise: float = 0.05,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random view of each image: a shift of up to ``max_shift`` pixels, a rotation of up to
    ``max_rotation`` degrees and Gaussian noise of std ``noise``.

    uint8 (N, 28, 28) input gives float (N, 1, 28, 28) in [0, 1]; float (N, C, H, W) input
    keeps its scale. Pure torch (an affine sampling grid), on any device; no torchvision.
    """
    check_tensor("images", images)
    max_shift = check_int("max_shift", max_shift, min_value=0)
    max_rotation = check_float("max_rotation", max_rotation, min_value=0.0, max_value=180.0)
    noise = check_float("noise", noise, min_value=0.0)
    g = generator if generator is not None else (_generator(seed) if seed is not None else None)
    x = images.unsqueeze(1) if images.ndim == 3 else images
    if x.ndim != 4:
        raise ValueError(
            f"images must have shape (N, 28, 28) or (N, C, H, W), got {tuple(images.shape)}."
        )
    if len(x) == 0:
        raise ValueError("images is empty; nothing to augment.")
    x = x.float() / 255.0 if images.dtype == torch.uint8 else x.float()
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_rotation)
    shift = (
        torch.randint(-max_shift, max_shift + 1, (n, 2), generator=g).float()
        * 2
        / torch.tensor([w, h])
    )
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = torch.nn.functional.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    # pixels moved in from outside get the background value
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    out = torch.nn.functional.grid_sample(x - background, grid, align_corners=False) + background
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=g).to(out.device)
    return out.clamp(0, 1) if images.dtype == torch.uint8 else out


def augmentation_pairs(images: torch.Tensor, *, seed: int = 0, **kwargs):
    """Two independent augmented views of every image, positives of each other.
    No labels needed: the self-supervised setting."""
    g = _generator(seed)
    return augment(images, generator=g, **kwargs), augment(images, generator=g, **kwargs)
