"""'Load the cached result if present, else compute it' (what notebooks call ``cache.cached``).

Taught in 00_start_here. The code lives in :mod:`dmlcourse.core.cache`, the package's one
cache; this module keeps the name the notebooks import.
"""

from .core.cache import cache_dir, cache_path, cached

__all__ = ["cache_dir", "cache_path", "cached"]
