"""Settings read from the environment: quick mode, the data size, and where files live.

Taught in 00_start_here.

Every location comes from ONE lookup, :func:`locate`, in this order:

=========  ======================  ====================  ==============================
what       environment variable    in a clone            installed (no clone)
=========  ======================  ====================  ==============================
"data"     ``DMLCOURSE_DATA_DIR``  ``<repo>/data``       ``<user cache>/data``
"cache"    ``DMLCOURSE_CACHE_DIR`` ``<repo>/data/cache`` ``<user cache>/cache``
=========  ======================  ====================  ==============================

``<user cache>`` is ``$XDG_CACHE_HOME/dmlcourse`` (default ``~/.cache/dmlcourse``). A clone
is recognised by the ``pyproject.toml`` and ``notebooks/`` beside the package. The bundled
mini data ships inside the package (``dmlcourse/datasets/mini/``) and is found with
``importlib.resources``, so an installed package needs no clone at all.

The data size has ONE policy, :func:`default_size`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from .validate import check_choice

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
SIZES = ("mini", "full")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# what -> (environment variable, folder in a clone, folder in the user cache)
LOCATIONS = {
    "data": ("DMLCOURSE_DATA_DIR", Path("data"), Path("data")),
    "cache": ("DMLCOURSE_CACHE_DIR", Path("data") / "cache", Path("cache")),
}


def is_quick() -> bool:
    """True when ``DMLCOURSE_QUICK`` is set to 1/true/yes/on (CI sets it)."""
    return os.environ.get("DMLCOURSE_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


def repo_root() -> Path | None:
    """The clone this package runs from, or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root
    return None


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dmlcourse``, default ``~/.cache/dmlcourse``."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base).expanduser() / "dmlcourse"
    try:
        return Path.home() / ".cache" / "dmlcourse"
    except RuntimeError:  # no home directory (some containers)
        raise RuntimeError(
            "dmlcourse cannot find a home directory for its files; set DMLCOURSE_DATA_DIR and "
            "DMLCOURSE_CACHE_DIR (or XDG_CACHE_HOME) to writable folders."
        ) from None


def locate(what: str) -> Path:
    """The folder for ``what`` ("data" or "cache"): the environment variable if set, else
    the folder in the clone, else the user cache folder (see the module's table)."""
    check_choice("what", what, tuple(LOCATIONS))
    env, in_clone, in_user = LOCATIONS[what]
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    root = repo_root()
    return root / in_clone if root is not None else user_cache_dir() / in_user


def data_dir() -> Path:
    """The folder with the full datasets: one sub-folder per dataset with its four .gz files."""
    return locate("data")


def cache_dir() -> Path:
    """The folder of cached results (safe to delete)."""
    return locate("cache")


def mini_dir() -> Path:
    """The bundled mini datasets, shipped inside the package as package data."""
    folder = resources.files("dmlcourse") / "datasets" / "mini"
    if not isinstance(folder, Path) or not folder.is_dir():
        raise FileNotFoundError(
            f"The bundled mini data is missing ({folder}); reinstall dmlcourse, or rebuild it "
            "with `python scripts/make_mini.py` in a clone."
        )
    return folder


def full_data_available(datasets=DATASETS) -> bool:
    """True when every official file of ``datasets`` is in :func:`data_dir` (no download)."""
    folder = data_dir()
    names = [check_choice("datasets[i]", n, DATASETS) for n in datasets]
    return all((folder / n / f).exists() for n in names for s in SPLITS for f in FILES[s])


def default_size(device=None, *, download: bool = True) -> str:
    """The data size to use unless told otherwise — the package's one size policy.

    ``$DMLCOURSE_SIZE`` if set; else "mini" in quick mode or on a CPU (a 2-core laptop
    trains the mini set in seconds); else "full" on a GPU. With ``download=False`` a GPU
    gets "full" only when the files are already there (the Lab and the benchmarks).
    """
    env = os.environ.get("DMLCOURSE_SIZE")
    if env:
        return check_choice("DMLCOURSE_SIZE", env, SIZES)
    if is_quick():
        return "mini"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cpu":
        return "mini"
    return "full" if download or full_data_available() else "mini"
