"""core.paths: the one location lookup and the one size policy."""

import pytest
import torch

from dmlcourse import data
from dmlcourse.core import paths


def test_locate_prefers_the_environment_then_the_clone_then_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_CACHE_DIR", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DMLCOURSE_CACHE_DIR")
    monkeypatch.delenv("DMLCOURSE_DATA_DIR", raising=False)
    root = paths.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()  # the tests run from a clone
    assert paths.cache_dir() == root / "data" / "cache" and paths.data_dir() == root / "data"
    monkeypatch.setattr(paths, "repo_root", lambda: None)  # as an installed package
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "dmlcourse" / "cache"
    assert paths.data_dir() == tmp_path / "xdg" / "dmlcourse" / "data"
    with pytest.raises(ValueError, match="what='models'"):
        paths.locate("models")


def test_mini_data_is_package_data():
    assert paths.mini_dir() == data.MINI_DIR
    assert data.MINI_DIR.parent.parent.name == "dmlcourse"
    assert all(
        (data.MINI_DIR / n / f).exists()
        for n in paths.DATASETS
        for s in paths.SPLITS
        for f in paths.FILES[s]
    )


def test_one_size_policy(tmp_path, monkeypatch):
    monkeypatch.delenv("DMLCOURSE_SIZE", raising=False)
    monkeypatch.setenv("DMLCOURSE_QUICK", "0")
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))  # no full data there
    assert paths.default_size("cpu") == "mini"
    assert paths.default_size(torch.device("meta")) == "full"  # a GPU: full, downloaded if needed
    assert paths.default_size(torch.device("meta"), download=False) == "mini"  # only if present
    monkeypatch.setenv("DMLCOURSE_QUICK", "1")
    assert paths.default_size(torch.device("meta")) == "mini"
    monkeypatch.setenv("DMLCOURSE_SIZE", "full")
    assert paths.default_size("cpu") == "full"
    monkeypatch.setenv("DMLCOURSE_SIZE", "huge")
    with pytest.raises(ValueError, match="DMLCOURSE_SIZE='huge'"):
        paths.default_size()
    assert data.default_size is paths.default_size  # the name notebooks use


def test_full_data_available(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    assert not paths.full_data_available()
    for s in paths.SPLITS:
        for f in paths.FILES[s]:
            (tmp_path / "mnist").mkdir(exist_ok=True)
            (tmp_path / "mnist" / f).write_bytes(b"")
    assert paths.full_data_available(["mnist"]) and not paths.full_data_available()
    with pytest.raises(ValueError, match="cifar"):
        paths.full_data_available(["cifar"])
