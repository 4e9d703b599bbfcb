import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Every Lab test caches its runs in a fresh folder."""
    monkeypatch.setenv("DMLCOURSE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
