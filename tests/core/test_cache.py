"""core.cache: compute once, survive corruption, never store a stopped run."""

import pytest
import torch

from dmlcourse import cache, train
from dmlcourse.core import cache as core_cache


def test_cache_computes_once_and_survives_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3)}

    a = cache.cached("demo", {"lr": 1}, compute)
    b = cache.cached("demo", {"lr": 1}, compute)
    assert len(calls) == 1 and torch.equal(a["w"], b["w"])
    cache.cached("demo", {"lr": 2}, compute)
    assert len(calls) == 2
    path = cache.cache_path("demo", {"lr": 1})
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        c = cache.cached("demo", {"lr": 1}, compute)
    assert len(calls) == 3 and torch.equal(c["w"], a["w"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    interrupted = train.History(interrupted=True)
    with pytest.warns(UserWarning, match="not cached"):
        cache.cached("partial", {}, lambda: {"history": interrupted})
    assert not cache.cache_path("partial", {}).exists()


def test_check_rejects_a_foreign_file_and_names_may_have_one_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_CACHE_DIR", str(tmp_path))
    path = core_cache.cache_path("lab/run", {"a": 1})
    assert path.parent == tmp_path / "lab" and path.name.startswith("run-")
    core_cache.cached("lab/run", {"a": 1}, lambda: {"a": 2})

    def check(stored):
        raise ValueError("another configuration")

    with pytest.warns(UserWarning, match="unreadable"):
        assert core_cache.cached("lab/run", {"a": 1}, lambda: {"a": 1}, check=check) == {"a": 1}
    for bad in ("", "a/b/c", "../x", "a b"):
        with pytest.raises(ValueError, match="name="):
            core_cache.cache_path(bad, {})
    assert cache.cached is core_cache.cached  # the name notebooks use


def test_fingerprint_is_equal_only_for_equal_bits():
    import numpy as np

    from dmlcourse.core.cache import fingerprint

    x = torch.arange(12, dtype=torch.float32).view(3, 4)
    base = fingerprint([("x", x)])
    assert fingerprint([("x", x.clone())]) == base
    assert fingerprint([("x", x.numpy())]) == base  # a NumPy array of the same bits
    assert fingerprint([("x", x.t().contiguous().t())]) == base  # layout is not content
    one_ulp = x.clone()
    one_ulp[0, 0] = torch.nextafter(one_ulp[0, 0], torch.tensor(1.0))
    for other in (
        [("x", one_ulp)],
        [("x", x.double())],  # same values, another dtype
        [("x", x.view(4, 3))],  # same bytes, another shape
        [("y", x)],  # another name
        [("x", x), ("init", np.zeros(2))],  # more data
    ):
        assert fingerprint(other) != base, other
