"""MNIST and Fashion-MNIST, offline first.

Taught in 00_start_here.

* ``load(name, split, size)`` returns uint8 images (N, 28, 28), int64 labels and
  the class names.  ``size="mini"`` reads the class-balanced subset shipped inside
  the package, ``dmlcourse/datasets/mini/`` (no network ever); ``size="full"`` reads the four
  official IDX files from the data folder and downloads missing ones from the official
  mirrors, verified against the official MD5 and written atomically.
* ``ClassBalancedBatchSampler`` draws P classes x K samples per batch (what the
  miners of lecture 6 need).
* ``DeviceLoader`` puts a small dataset on the GPU once and batches there.
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .core.io import atomic_write
from .core.paths import DATASETS, FILES, SIZES, SPLITS, data_dir, default_size, mini_dir
from .core.validate import check_choice, check_images_labels, check_int, check_tensor

__all__ = [
    "DATASETS",
    "SPLITS",
    "SIZES",
    "FILES",
    "CLASS_NAMES",
    "PIXEL_STATS",
    "MINI_DIR",
    "Split",
    "DataError",
    "data_dir",
    "default_size",
    "load",
    "to_float",
    "balanced_subset",
    "parse_idx",
    "read_idx",
    "md5sum",
    "download_file",
    "ClassBalancedBatchSampler",
    "DeviceLoader",
]

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

# Mean and standard deviation of the training pixels (in [0, 1]).
PIXEL_STATS = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}

EXPECTED_COUNT = {"train": 60_000, "test": 10_000}

# Official MD5 of the official .gz files (as published with the datasets).
OFFICIAL_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/"],
    "fashion-mnist": [
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

MINI_DIR = mini_dir()  # the bundled mini data (package data, found with importlib.resources)


class Split(NamedTuple):
    """What ``load`` returns; unpack it as ``images, labels, classes = load(...)``."""

    images: torch.Tensor  # uint8, (N, 28, 28)
    labels: torch.Tensor  # int64, (N,)
    classes: tuple  # class names, index = label


class DataError(RuntimeError):
    """A data file is missing, corrupt or could not be downloaded."""


def load(name: str, split: str = "train", size: str = "mini", *, download: bool = True) -> Split:
    """Load one split of MNIST or Fashion-MNIST.

    Parameters
    ----------
    name : "mnist" or "fashion-mnist"
    split : "train" or "test"
    size : "mini" (bundled class-balanced subset: 1,000 train / 200 test images
        per class, works offline) or "full" (60,000 / 10,000, read from
        :func:`data_dir`, downloaded if missing and ``download`` is true).

    Returns
    -------
    Split(images, labels, classes): uint8 tensor (N, 28, 28), int64 tensor (N,)
    and the tuple of class names.
    """
    check_choice("name", name, DATASETS)
    check_choice("split", split, SPLITS)
    check_choice("size", size, SIZES)
    if size == "mini":
        folder = MINI_DIR / name
        expected = None
    else:
        folder = data_dir() / name
        expected = EXPECTED_COUNT[split]
        if download:
            _ensure_files(name, split, folder)
    image_file, label_file = (folder / f for f in FILES[split])
    for f in (image_file, label_file):
        if not f.exists():
            raise DataError(_missing_message(name, split, size, folder))
    images, labels = _read_pair(str(image_file), str(label_file), expected)
    return Split(
        torch.from_numpy(images.copy()),
        torch.from_numpy(labels.astype(np.int64)),
        CLASS_NAMES[name],
    )


def to_float(images: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), scaled to [0, 1] and standardised
    with the dataset's training mean and std (none if ``name`` is None)."""
    check_tensor("images", images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (N, 28, 28) or (N, 1, 28, 28), got {tuple(images.shape)}."
        )
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if name is not None:
        check_choice("name", name, DATASETS)
        mean, std = PIXEL_STATS[name]
        x = (x - mean) / std
    return x


def balanced_subset(labels: torch.Tensor, per_class: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of ``per_class`` randomly chosen samples of every class (sorted by class, seeded)."""
    check_tensor("labels", labels, ndim=1)
    per_class = check_int("per_class", per_class, min_value=1)
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    out = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"per_class={per_class} but class {c} has only {len(idx)} samples.")
        out.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values)
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------
# IDX files: validated by content, never a bare reshape traceback
# ----------------------------------------------------------------------------------------------


def parse_idx(raw: bytes, filename: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (already decompressed), checking magic, dims and length."""
    if len(raw) < 4:
        raise DataError(f"{filename}: only {len(raw)} bytes, too short to be an IDX file.")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(
            f"{filename}: bad IDX magic number {raw[:4].hex()} (expected 00 00 08 01 for labels "
            "or 00 00 08 03 for images). Is this the right file, and not an HTML error page?"
        )
    ndim = raw[3]
    if ndim not in (1, 3):
        raise DataError(
            f"{filename}: IDX file with {ndim} dimensions; expected 1 (labels) or 3 (images)."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{filename}: truncated header ({len(raw)} bytes).")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{filename}: images are {dims[1]}x{dims[2]}, expected 28x28.")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(
            f"{filename}: {len(raw)} bytes after decompression, expected {expected} for dimensions "
            f"{dims}; "
            "the file is truncated or corrupt. Delete it and load again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path) -> np.ndarray:
    """Read a (possibly gzip-compressed) IDX file with validation."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: cannot be read as a gzip file ({exc}); the file is truncated or corrupt. "
            "Delete it and load again."
        ) from None
    return parse_idx(raw, str(path))


@lru_cache(maxsize=8)
def _read_pair(image_file: str, label_file: str, expected: int | None):
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3:
        raise DataError(f"{image_file}: expected an image file (3 dimensions), got {images.ndim}.")
    if labels.ndim != 1:
        raise DataError(f"{label_file}: expected a label file (1 dimension), got {labels.ndim}.")
    if len(images) != len(labels):
        raise DataError(
            f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels."
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{label_file}: label {int(labels.max())} out of range 0..9.")
    if expected is not None and len(labels) != expected:
        raise DataError(
            f"{label_file}: {len(labels)} samples, expected {expected} for the official split."
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


# ----------------------------------------------------------------------------------------------
# Download: official mirrors, MD5 check, atomic write
# ----------------------------------------------------------------------------------------------


def _missing_message(name, split, size, folder) -> str:
    files = ", ".join(FILES[split])
    if size == "mini":
        return (
            f"The bundled mini data is missing from {folder} ({files}). Reinstall dmlcourse, "
            "or rebuild it with `python scripts/make_mini.py` from the full files in a clone."
        )
    return (
        f"The full {name} {split} files are missing and could not be downloaded. Put {files} "
        f"(the official .gz files) into {folder}/ or point DMLCOURSE_DATA_DIR to a folder that "
        "holds "
        f"a '{name}/' sub-folder with them. size='mini' works offline."
    )


def md5sum(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str, dest, md5: str | None = None, *, timeout: float = 30.0, progress: bool = True
) -> Path:
    """Download ``url`` to ``dest`` atomically: a temporary file in the same folder,
    checked against ``md5``, then renamed. A failed or interrupted download leaves
    nothing at ``dest``."""
    dest = Path(dest)
    h = hashlib.md5()
    with (
        atomic_write(dest, suffix=".part") as out,
        urllib.request.urlopen(url, timeout=timeout) as resp,
    ):
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        got = 0
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=dest.name,
            disable=not progress,
            leave=False,
        ) as bar:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if total is not None and got != total:
            raise DataError(f"{url}: connection closed after {got} of {total} bytes.")
        if md5 is not None and h.hexdigest() != md5:
            raise DataError(f"{url}: MD5 {h.hexdigest()} does not match the official {md5}.")
    return dest


def _ensure_files(name: str, split: str, folder: Path) -> None:
    for fname in FILES[split]:
        dest = folder / fname
        if dest.exists():
            continue
        errors = []
        for mirror in MIRRORS[name]:
            try:
                download_file(mirror + fname, dest, OFFICIAL_MD5[name][fname])
                break
            except (urllib.error.URLError, OSError, DataError, ValueError) as exc:
                errors.append(f"{mirror}{fname}: {exc}")
            except Exception as exc:  # http.client.IncompleteRead and friends
                errors.append(f"{mirror}{fname}: {type(exc).__name__}: {exc}")
        else:
            raise DataError(
                _missing_message(name, split, "full", folder) + "\nTried:\n  " + "\n  ".join(errors)
            )


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------


class ClassBalancedBatchSampler:
    """Batches of P classes x K samples (``classes_per_batch`` x ``samples_per_class``).

    Every epoch covers every sample at least once: each class is shuffled and cut
    into groups of K (the last group of a class is topped up with other samples of
    that class), and batches are filled with groups of P distinct classes, the
    classes with the most groups left first. A few samples are therefore seen
    twice in an epoch; none is skipped. Seeded and deterministic: epoch e of seed s
    is always the same. Yields LongTensors of indices. Taught in 06_mining_sampling.
    """

    def __init__(
        self,
        labels: torch.Tensor,
        classes_per_batch: int = 8,
        samples_per_class: int = 4,
        *,
        seed: int = 0,
    ):
        check_tensor("labels", labels, ndim=1)
        self.labels = labels.detach().cpu().long()
        self.classes = torch.unique(self.labels)
        n_classes = len(self.classes)
        self.P = check_int("classes_per_batch", classes_per_batch, min_value=1)
        self.K = check_int("samples_per_class", samples_per_class, min_value=1)
        if self.P > n_classes:
            raise ValueError(
                f"classes_per_batch={self.P} but the labels have only {n_classes} classes."
            )
        self.seed = check_int("seed", seed, min_value=0)
        self.epoch = 0
        self._by_class = [torch.nonzero(self.labels == c).flatten() for c in self.classes]
        groups = [-(-len(ix) // self.K) for ix in self._by_class]
        # each batch takes at most one group per class: at least max(groups) batches
        self._len = max(-(-sum(groups) // self.P), max(groups))

    @property
    def batch_size(self) -> int:
        return self.P * self.K

    def __len__(self) -> int:
        return self._len

    def set_epoch(self, epoch: int) -> None:
        self.epoch = check_int("epoch", epoch, min_value=0)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        groups = []
        for ix in self._by_class:
            ix = ix[torch.randperm(len(ix), generator=g)]
            n_groups = -(-len(ix) // self.K)
            short = n_groups * self.K - len(ix)
            if short:
                extra = ix[torch.randint(len(ix), (short,), generator=g)] if len(ix) else ix
                ix = torch.cat([ix, extra])
            groups.append(list(ix.view(n_groups, self.K)) if n_groups else [])
        n_classes = len(groups)
        for _ in range(self._len):
            remaining = torch.tensor([len(gr) for gr in groups], dtype=torch.float)
            # classes with the most groups left first, ties broken at random
            order = torch.argsort(
                remaining + torch.rand(n_classes, generator=g) * 0.5, descending=True
            )
            batch = []
            for c in order[: self.P].tolist():
                if groups[c]:
                    batch.append(groups[c].pop())
                else:  # fewer than P classes left: refill with a random group of that class
                    ix = self._by_class[c]
                    batch.append(ix[torch.randint(len(ix), (self.K,), generator=g)])
            yield torch.cat(batch)


class DeviceLoader:
    """Batches a dataset that lives on the device (GPU or CPU) the whole time.

    ``images`` are converted once with :func:`to_float` (if uint8) and moved to
    ``device`` once; each batch is an index into the resident tensor, so there is
    no host-to-device copy per step. ``sampler`` may be a
    :class:`ClassBalancedBatchSampler`; otherwise batches are random permutations
    (``shuffle=True``) or in order. Taught in 00_start_here.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int = 128,
        device=None,
        sampler: ClassBalancedBatchSampler | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        name: str | None = None,
        seed: int = 0,
    ):
        check_images_labels(images, labels)
        self.batch_size = check_int("batch_size", batch_size, min_value=1)
        device = torch.device(device) if device is not None else images.device
        x = to_float(images, name) if images.dtype == torch.uint8 else images.float()
        self.images = x.to(device)
        self.labels = labels.to(device).long()
        self.sampler = sampler
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))

    def __len__(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            for idx in self.sampler:
                idx = idx.to(self.images.device)
                yield self.images[idx], self.labels[idx]
            return
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.images.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            yield self.images[idx], self.labels[idx]
