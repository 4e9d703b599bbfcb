"""Several seeds of one Lab configuration: train them one by one, average them, compare groups.

Taught in 05_siamese_triplet, 06_mining_sampling and 07_angular_margins (with the Lab).

A *group* is a configuration without its seed (:func:`group_key`); each seed of a group is one
ordinary Lab run, cached on its own (the seed is part of that run's cache key), so adding a seed
trains only the new one. :class:`SeedGroup` holds the runs of a group as they arrive and gives
the mean, the standard deviation and the min–max band of the probe metrics over the seeds that
finished; a seed that failed (NaN loss, nothing active) or stopped early is named in
:meth:`SeedGroup.notes` and left out of the mean. :func:`compare_seeds` decides whether the
difference between two groups exceeds their spread over seeds (a paired t interval when both have
the same seeds, a Welch two-sample interval otherwise).
"""

from __future__ import annotations

import math
import re
import statistics
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
from scipy import stats

from ..core.validate import check_choice, check_float, check_int
from . import runner
from .config import LabConfig
from .runner import LabRun

MAX_SEEDS = 5
METRICS = ("precision_at_1", "map_at_r")
METRIC_NAMES = {"precision_at_1": "P@1", "map_at_r": "MAP@R"}


def seed_list(seed: int, n_seeds: int) -> list:
    """The seeds of a group: ``seed, seed + 1, …, seed + n_seeds - 1``."""
    seed = check_int("seed", seed, min_value=0)
    n_seeds = check_int("n_seeds", n_seeds, min_value=1, max_value=MAX_SEEDS)
    return [seed + i for i in range(n_seeds)]


def group_key(config: LabConfig) -> dict:
    """What identifies a group: the normalised configuration without its seed."""
    if not isinstance(config, LabConfig):
        raise TypeError(f"config must be a LabConfig, got {type(config).__name__}.")
    key = asdict(config.normalized())
    key.pop("seed")
    return key


def seed_stats(values) -> dict:
    """mean, sd (sample, n - 1; NaN for one value), min, max and n of a list of numbers."""
    values = [check_float("values[i]", v) for v in values]
    n = len(values)
    if n == 0:
        nan = float("nan")
        return {"mean": nan, "sd": nan, "min": nan, "max": nan, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if n >= 2 else float("nan"),
        "min": min(values),
        "max": max(values),
        "n": n,
    }


def _t_quantile(level: float, df: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, df))


def compare_seeds(a: dict, b: dict, *, level: float = 0.95) -> dict:
    """Does the difference ``mean(b) - mean(a)`` exceed the spread over seeds?

    ``a``, ``b``: {seed: final metric} of two groups (finished seeds only). When both have the same
    seeds (at least 2), the differences seed by seed are compared (paired t interval, n - 1 degrees
    of freedom); otherwise a Welch two-sample t interval. The difference *exceeds the spread* when
    the ``level`` interval excludes 0. Returns diff, low, high, method, exceeds (None: cannot tell,
    fewer than 2 seeds in a group) and text (what the Lab's table shows).
    """
    for name, d in (("a", a), ("b", b)):
        if not isinstance(d, dict):
            raise TypeError(f"{name} must be a dict {{seed: value}}, got {type(d).__name__}.")
    level = check_float("level", level, min_value=0.0, max_value=1.0, strict_min=True)
    if level >= 1.0:
        raise ValueError(f"level must be < 1, got {level}.")
    va = [check_float("a[seed]", v) for v in a.values()]
    vb = [check_float("b[seed]", v) for v in b.values()]
    nan = float("nan")
    out = {"diff": nan, "low": nan, "high": nan, "method": "", "exceeds": None}
    if not va or not vb:
        out["text"] = "cannot tell: a run has no finished seed"
        return out
    diff = statistics.fmean(vb) - statistics.fmean(va)
    out["diff"] = diff
    pct = f"{100 * level:g}%"
    if set(a) == set(b) and len(a) >= 2:
        d = [b[s] - a[s] for s in sorted(a)]
        n = len(d)
        se, df = statistics.stdev(d) / math.sqrt(n), n - 1
        out["method"] = f"paired over seeds {', '.join(str(s) for s in sorted(a))}"
    elif len(va) >= 2 and len(vb) >= 2:
        qa, qb = statistics.variance(va) / len(va), statistics.variance(vb) / len(vb)
        se = math.sqrt(qa + qb)
        denom = qa**2 / (len(va) - 1) + qb**2 / (len(vb) - 1)
        df = (qa + qb) ** 2 / denom if denom > 0 else float(len(va) + len(vb) - 2)
        out["method"] = f"Welch two-sample, {len(va)} vs {len(vb)} seeds"
    else:
        out["method"] = f"{len(va)} vs {len(vb)} seeds"
        out["text"] = f"{diff:+.3f}; cannot tell: needs at least 2 seeds in each run"
        return out
    half = _t_quantile(level, df) * se
    out["low"], out["high"] = diff - half, diff + half
    out["exceeds"] = bool(out["low"] > 0 or out["high"] < 0) if se > 0 else diff != 0
    verdict = "exceeds the spread" if out["exceeds"] else "within the spread"
    out["text"] = (
        f"{diff:+.3f} [{pct} CI {out['low']:+.3f}, {out['high']:+.3f}; {out['method']}]: {verdict}"
    )
    return out


def failure_note(seed: int, run: LabRun) -> str:
    """Why a seed is left out of the mean, in words ('' when it finished)."""
    check_int("seed", seed, min_value=0)
    if not isinstance(run, LabRun):
        raise TypeError(f"run must be a LabRun, got {type(run).__name__}.")
    if not run.interrupted:
        return ""
    msg = run.message
    # the epoch that was training when it stopped: a stop rule of the Lab records that partial
    # epoch (a snapshot after its last step); a NaN loss ends training before it is recorded
    nan = re.match(r"the (loss|embeddings|weights) became", msg)
    epoch = run.epochs_done + 1 if nan else max(run.epochs_done, 1)
    if not run.failed:
        return f"seed {seed} stopped on request in epoch {epoch}; left out of the mean"
    if nan:
        why = f"diverged (NaN {nan.group(1)} at epoch {epoch})"
    elif "exploded" in msg or "diverged" in msg:
        why = f"diverged (the loss exploded at epoch {epoch})"
    elif "active" in msg:
        why = f"failed (no active triplet or pair at epoch {epoch})"
    else:
        why = f"failed at epoch {epoch}"
    return f"seed {seed} {why}; left out of the mean"


@dataclass
class SeedGroup:
    """The runs of one configuration over several seeds (filled in as the seeds finish)."""

    config: LabConfig  # the configuration of the first seed trained (the one shown)
    seeds: tuple
    runs: dict = field(default_factory=dict)  # seed -> LabRun (finished, failed or stopped)
    skipped: tuple = ()  # seeds not trained because the run was stopped

    def __post_init__(self):
        self.config = self.config.normalized()
        self.seeds = tuple(self.seeds)
        self._lock = threading.Lock()

    @property
    def key(self) -> dict:
        return group_key(self.config)

    def add(self, seed: int, run: LabRun) -> None:
        """Record ``seed``'s run; refuses a run of another configuration (never mix groups)."""
        check_choice("seed", seed, self.seeds)
        if not isinstance(run, LabRun):
            raise TypeError(f"run must be a LabRun, got {type(run).__name__}.")
        other = dict(run.config)
        if other.pop("seed") != seed or other != self.key:
            raise ValueError(
                f"run of {LabConfig(**run.config).label()} does not belong to the group of "
                f"{self.config.label()} (seed {seed})."
            )
        with self._lock:
            self.runs[seed] = run

    def finished(self) -> list:
        """Seeds whose run finished every epoch (these make the mean), in order."""
        runs = dict(self.runs)
        return [s for s in self.seeds if s in runs and not runs[s].interrupted]

    def final(self, metric: str) -> dict:
        """{seed: metric after the last epoch} over the finished seeds."""
        check_choice("metric", metric, METRICS)
        runs = dict(self.runs)
        return {s: float(runs[s].metric(metric)[-1]) for s in self.finished()}

    def stats(self, metric: str) -> dict:
        """mean, sd, min, max, n of the final metric over the finished seeds."""
        return seed_stats(list(self.final(metric).values()))

    def band(self, metric: str):
        """Per snapshot over the finished seeds: (epochs, mean, low, high, sd) arrays, or None."""
        check_choice("metric", metric, METRICS)
        runs = dict(self.runs)
        curves = [runs[s].metric(metric) for s in self.finished()]
        if not curves:
            return None
        n = min(len(c) for c in curves)
        m = np.asarray([c[:n] for c in curves], dtype=float)
        sd = m.std(0, ddof=1) if len(m) >= 2 else np.full(n, np.nan)
        return np.arange(n), m.mean(0), m.min(0), m.max(0), sd

    def notes(self) -> list:
        """One sentence per seed left out of the mean (failed, stopped, not trained)."""
        runs = dict(self.runs)
        out = [failure_note(s, runs[s]) for s in self.seeds if s in runs]
        out = [n for n in out if n]
        if self.skipped:
            out.append(
                f"seed{'s' if len(self.skipped) > 1 else ''} "
                f"{', '.join(str(s) for s in self.skipped)} not trained (stopped)"
            )
        return out

    def done(self) -> bool:
        return all(s in self.runs or s in self.skipped for s in self.seeds)


def run_seeds(
    config: LabConfig,
    seeds,
    *,
    device=None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[int, LabRun], None] | None = None,
    on_seed: Callable[[int, LabRun, SeedGroup], None] | None = None,
    group: SeedGroup | None = None,
) -> SeedGroup:
    """Train (or load from the cache) ``config`` once per seed, in the order given.

    Each seed is :func:`runner.run_lab` of ``config`` with that seed, cached on its own.
    on_step(seed, step, total), on_epoch(seed, partial run) and on_seed(seed, run, group) report
    progress. A stop request ends the current seed (not cached) and skips the others.
    """
    if not isinstance(config, LabConfig):
        raise TypeError(f"config must be a LabConfig, got {type(config).__name__}.")
    seeds = list(seeds)
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} must be 1 to {MAX_SEEDS} different seeds.")
    for s in seeds:
        check_int("seeds[i]", s, min_value=0)
    c = config.normalized()
    group = group or SeedGroup(replace(c, seed=seeds[0]), seeds)
    for i, s in enumerate(seeds):
        if should_stop is not None and should_stop():
            group.skipped = tuple(seeds[i:])
            break
        run = runner.run_lab(
            replace(c, seed=s),
            device=device,
            should_stop=should_stop,
            on_step=None if on_step is None else (lambda a, b, s=s: on_step(s, a, b)),
            on_epoch=None if on_epoch is None else (lambda r, s=s: on_epoch(s, r)),
        )
        group.add(s, run)
        if on_seed is not None:
            on_seed(s, run, group)
        if run.interrupted and not run.failed:  # a stop request: the other seeds are skipped
            group.skipped = tuple(seeds[i + 1 :])
            break
    return group
