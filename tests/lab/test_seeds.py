"""Seeds in the Lab, headless: one cache entry per seed, mean ± sd and the band, a diverging seed,
the comparison of kept runs, the display while seeds still train, stop and double clicks.

Tiny configurations (a few training steps, 50 probe points, PCA layouts) keep this file fast.
Means and standard deviations are checked against plain Python ``statistics``.
"""

import statistics
import threading

import numpy as np
import pytest
import torch

from dmlcourse import lab
from dmlcourse.lab import runner
from dmlcourse.lab import seeds as seedlib

TINY = dict(train_per_class=40, probe_per_class=5, layout="pca", warm_up=False)


def _lab(**kw):
    kw = {**TINY, "background": False, "epochs": 2, "losses": ["nca"], **kw}
    return lab.EmbeddingLab(**kw)


@pytest.fixture
def trainings(monkeypatch):
    """The seeds that really trained (LabRunner.run calls), in order."""
    calls = []
    real = runner.LabRunner.run

    def run(self):
        calls.append(self.config.seed)
        return real(self)

    monkeypatch.setattr(runner.LabRunner, "run", run)
    return calls


def test_each_seed_is_cached_on_its_own(trainings, _cache):
    box = _lab(seeds=2)
    assert list(box.shown_seed.options) == [0, 1]
    box.train_button.click()
    assert trainings == [0, 1] and box.group.finished() == [0, 1]
    assert len(list((_cache / "lab").glob("*.pt"))) == 2
    box.seeds.value = 3  # adding a seed trains only that one
    box.train_button.click()
    assert trainings == [0, 1, 2], box.status.value
    assert box.group.seeds == (0, 1, 2) and box.group.finished() == [0, 1, 2]
    assert all(box.group.runs[s].from_cache for s in (0, 1)) and not box.group.runs[2].from_cache
    # every seed's run is the group's configuration with its own seed
    keys = [dict(r.config) for r in box.group.runs.values()]
    assert [k.pop("seed") for k in keys] == [0, 1, 2] and keys[0] == keys[1] == keys[2]
    assert keys[0] == lab.group_key(box.config())
    box.seeds.value = 2  # fewer seeds: all cached, nothing trains
    box.train_button.click()
    assert trainings == [0, 1, 2] and "cache" in box.status.value
    # the seed animated is trained first and shown; the others only fill in the band
    box.seeds.value = 3
    box.shown_seed.value = 1
    assert box.run.config["seed"] == 1  # picking another seed of the group shows it at once
    box.shown_seed.value = 2  # not in the group shown (seeds 0, 1): Train loads it
    assert box.run.config["seed"] == 1 and "press <b>Train</b>" in box.status.value
    box.train_button.click()
    assert trainings == [0, 1, 2] and box.run.config["seed"] == 2
    box.seed.value = 5  # seeds 5, 6, 7: the animated seed is not among them, so 5 comes first
    box.train_button.click()
    assert trainings[3:] == [5, 6, 7] and box.run.config["seed"] == 5


def test_mean_sd_and_band_match_a_hand_computation():
    box = _lab(seeds=3)
    box.train_button.click()
    runs = [box.group.runs[s] for s in (0, 1, 2)]
    p1 = [r.metric("precision_at_1")[-1] for r in runs]
    mapr = [r.metric("map_at_r")[-1] for r in runs]
    box.keep()
    row = box.metrics_rows()[0]
    assert row["seeds"] == [0, 1, 2]
    assert row["P@1"] == pytest.approx(statistics.fmean(p1))
    assert row["P@1 sd"] == pytest.approx(statistics.stdev(p1))
    assert row["MAP@R"] == pytest.approx(statistics.fmean(mapr))
    assert row["MAP@R sd"] == pytest.approx(statistics.stdev(mapr))
    assert f"{statistics.fmean(p1):.3f} ± {statistics.stdev(p1):.3f} (n=3)" in box.table.value
    # curves: per epoch, the mean over the seeds and the min-max band
    d = box.curves.data
    for e in range(3):
        per_seed = [r.metric("precision_at_1")[e] for r in runs]
        assert d[2].y[e] == pytest.approx(statistics.fmean(per_seed))
        assert d[5].y[e] == pytest.approx(min(per_seed))
        assert d[6].y[e] == pytest.approx(max(per_seed))
        per_seed = [r.metric("map_at_r")[e] for r in runs]
        assert d[3].y[e] == pytest.approx(statistics.fmean(per_seed))
        assert (d[7].y[e], d[8].y[e]) == pytest.approx((min(per_seed), max(per_seed)))
    assert "mean of 3 seeds" in d[2].name and "mean ± sd over seeds 0, 1, 2" in box.status.value
    stats = lab.seed_stats(p1)
    assert stats["n"] == 3 and stats["min"] == min(p1) and stats["max"] == max(p1)


def test_a_diverging_seed_is_named_and_left_out(monkeypatch, _cache):
    class NaNLoss(torch.nn.Module):
        def forward(self, z, labels):
            return z.sum() * float("nan")

    real = runner.make_loss

    def make_loss(config, num_classes=10):
        return NaNLoss() if config.seed == 3 else real(config, num_classes)

    monkeypatch.setattr(runner, "make_loss", make_loss)
    box = _lab(seed=2, seeds=2)
    box.train_button.click()
    note = "seed 3 diverged (NaN loss at epoch 1); left out of the mean"
    assert note in box.notes.value and box.group.finished() == [2]
    assert box.group.runs[3].failed and not box.run.failed  # the seed animated (2) is fine
    box.keep()
    row = box.metrics_rows()[0]
    good = box.group.runs[2].metric("precision_at_1")[-1]
    assert row["P@1"] == pytest.approx(good) and row["seeds"] == [2] and note in row["note"]
    assert note in box.table.value
    assert len(list((_cache / "lab").glob("*.pt"))) == 1  # the diverged seed is not cached
    # the band covers the finished seed only
    assert list(box.curves.data[5].y) == pytest.approx(box.group.runs[2].metric("precision_at_1"))
    # an explosion (no NaN) is named too
    exploded = box.group.runs[3]
    exploded.message = "the loss exploded from 2.3 to 1e9 at step 4: training diverged."
    assert seedlib.failure_note(3, exploded).startswith("seed 3 diverged (the loss exploded")
    assert box.progress.bar_style == "warning"  # amber: one seed left out, one makes the mean


def test_when_every_seed_diverges_the_bar_is_red(monkeypatch, _cache):
    class NaNLoss(torch.nn.Module):
        def forward(self, z, labels):
            return z.sum() * float("nan")

    monkeypatch.setattr(runner, "make_loss", lambda config, num_classes=10: NaNLoss())
    box = _lab(seed=2, seeds=2)
    box.train_button.click()
    assert box.group.finished() == []
    assert "no seed finished, so there is no mean" in box.status.value
    assert "2 of 2 seeds left out of the mean" in box.status.value
    assert box.progress.bar_style == "danger"


@pytest.mark.parametrize("miner", ["batch_semi_hard", "batch_hard"])
def test_a_seed_whose_embeddings_turn_nan_is_named_and_left_out(monkeypatch, _cache, miner):
    """Divergence in the embeddings (not a NaN loss): the miner refuses them, the seed is named
    and left out of the mean, and the other seed's numbers stand alone."""

    class NaNAfter(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net, self.calls = net, 0

        def forward(self, x):
            self.calls += self.training
            z = self.net(x)
            return z * float("nan") if self.training and self.calls >= 2 else z

    real = runner.make_model

    def make_model(config):
        model = real(config)
        return NaNAfter(model) if config.seed == 3 else model

    monkeypatch.setattr(runner, "make_model", make_model)
    box = _lab(seed=2, seeds=2, losses=["triplet"])
    box.miner.value = miner
    box.train_button.click()
    note = "seed 3 diverged (NaN embeddings at epoch 1); left out of the mean"
    assert note in box.notes.value and box.group.finished() == [2]
    failed = box.group.runs[3]
    assert failed.failed and "the embeddings became NaN or infinite at step 2" in failed.message
    # said on the status line too, in amber, with a full progress bar in the warning colour
    assert "(seed 2 alone: one seed has no sd)" in box.status.value
    assert "1 of 2 seeds left out of the mean" in box.status.value
    assert box.progress.bar_style == "warning" and box.progress.value == box.progress.max
    reported = box.status.value
    box.shown_seed.value = 3  # animating the diverged seed says why it is left out
    assert "seed 3</b>, left out of the mean: The embeddings became NaN" in box.status.value
    assert "step 2" in box.status.value
    box.shown_seed.value = 2  # and back: the report of the training comes back
    assert box.status.value == reported
    box.keep()
    row = box.metrics_rows()[0]
    assert row["seeds"] == [2] and note in row["note"]
    assert row["P@1"] == pytest.approx(box.group.runs[2].metric("precision_at_1")[-1])


def test_comparison_verdict_on_constructed_numbers():
    a = {0: 0.80, 1: 0.81, 2: 0.82}
    better = {0: 0.90, 1: 0.915, 2: 0.92}  # +0.10, +0.105, +0.10: far beyond the spread
    same = {0: 0.79, 1: 0.83, 2: 0.815}  # -0.01, +0.02, -0.005
    t2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom
    c = lab.compare_seeds(a, better)
    d = [better[s] - a[s] for s in a]
    half = t2 * statistics.stdev(d) / 3**0.5
    assert c["diff"] == pytest.approx(statistics.fmean(d))
    assert (c["low"], c["high"]) == pytest.approx((statistics.fmean(d) - half, c["diff"] + half))
    assert c["exceeds"] is True and "paired over seeds 0, 1, 2" in c["text"]
    assert "exceeds the spread" in c["text"]
    c = lab.compare_seeds(a, same)
    assert c["exceeds"] is False and "within the spread" in c["text"] and c["low"] < 0 < c["high"]
    # other seeds: Welch's two-sample interval
    other = {5: 0.90, 6: 0.915, 7: 0.92}
    c = lab.compare_seeds(a, other)
    va, vb = statistics.variance(a.values()) / 3, statistics.variance(other.values()) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    from scipy import stats

    half = stats.t.ppf(0.975, df) * (va + vb) ** 0.5
    assert c["method"] == "Welch two-sample, 3 vs 3 seeds" and c["exceeds"] is True
    assert c["high"] - c["diff"] == pytest.approx(half)
    noisy = {5: 0.70, 6: 0.95, 7: 0.85}  # a higher mean, but a wide spread
    c = lab.compare_seeds(a, noisy)
    assert c["diff"] > 0 and c["exceeds"] is False and "within the spread" in c["text"]
    # one seed: no spread to compare with
    c = lab.compare_seeds({0: 0.8}, {0: 0.9})
    assert c["exceeds"] is None and "cannot tell" in c["text"]
    with pytest.raises(ValueError, match="level"):
        lab.compare_seeds(a, same, level=1.5)
    with pytest.raises(TypeError, match="a must be a dict"):
        lab.compare_seeds([0.8], same)


def test_kept_runs_are_compared_in_the_table():
    box = _lab(seeds=2)
    box.train_button.click()
    box.keep()
    box.lr.value = 1e-2
    box.train_button.click()
    box.keep()
    comps = box.comparisons()
    assert len(comps) == 1 and comps[0]["runs"] == "run 2 − run 1"
    c = comps[0]["P@1"]
    expected = lab.compare_seeds(
        box.kept_groups[0].final("precision_at_1"), box.kept_groups[1].final("precision_at_1")
    )
    assert c["text"] == expected["text"] and "paired over seeds 0, 1" in c["text"]
    assert ("exceeds the spread" in c["text"]) == c["exceeds"]
    assert (
        "Welch two-sample otherwise" in box.table.value
        and "paired over seeds 0, 1" in box.table.value
    )


def _gate_call(monkeypatch, blocked: int):
    """Make the ``blocked``-th call of run_lab (1-based) wait for the test."""
    started, release, calls = threading.Event(), threading.Event(), []
    real = runner.run_lab

    def gated(config, **k):
        calls.append(config.seed)
        if len(calls) == blocked:
            started.set()
            assert release.wait(60)
        return real(config, **k)

    monkeypatch.setattr(runner, "run_lab", gated)
    return started, release, calls


def test_band_covers_the_seeds_finished_so_far(monkeypatch):
    started, release, calls = _gate_call(monkeypatch, 3)
    box = _lab(seeds=3, background=True)
    box.train_button.click()
    try:
        assert started.wait(60)
        assert box.group.finished() == [0, 1]
        assert "2 of 3 seeds finished; the band covers" in box.status.value
        runs = [box.group.runs[s] for s in (0, 1)]
        d = box.curves.data
        for e in range(3):
            per_seed = [r.metric("precision_at_1")[e] for r in runs]
            assert d[2].y[e] == pytest.approx(statistics.fmean(per_seed))
            assert (d[5].y[e], d[6].y[e]) == pytest.approx((min(per_seed), max(per_seed)))
        assert "mean of 2 seeds" in d[2].name
        assert box.run.config["seed"] == 0 and box.run.epochs_done == 2  # seed 0 animated
        # changing the seeds or pressing Train again does not touch the running group
        box.seeds.value = 5
        box.lr.value = 1e-2
        box.train_button.click()
        assert "Already training" in box.status.value and box.runs_started == 1
    finally:
        release.set()
    assert box.wait(60)
    assert calls == [0, 1, 2] and box.group.seeds == (0, 1, 2) and box.group.finished() == [0, 1, 2]
    assert {r.config["lr"] for r in box.group.runs.values()} == {2e-3}
    assert "mean of 3 seeds" in box.curves.data[2].name


def test_stop_in_the_middle_of_a_multi_seed_run(monkeypatch, _cache):
    started, release, calls = _gate_call(monkeypatch, 2)
    box = _lab(seeds=3, background=True, epochs=3)
    box.train_button.click()
    try:
        assert started.wait(60)
        box.stop_button.click()  # seed 1 stops after its first step, seed 2 is never trained
    finally:
        release.set()
    assert box.wait(60)
    assert calls == [0, 1]
    g = box.group
    assert g.finished() == [0] and g.runs[1].interrupted and g.skipped == (2,)
    assert "seed 1 stopped on request in epoch 1; left out of the mean" in box.notes.value
    assert "seed 2 not trained (stopped)" in box.notes.value
    files = list((_cache / "lab").glob("*.pt"))
    # only the finished seed is cached, never a partial one
    assert files == [lab.run_path(lab.LabConfig(**g.runs[0].config))]
    # a run of another configuration is refused by the group
    other = box.group.runs[0]
    with pytest.raises(ValueError, match="does not belong"):
        seedlib.SeedGroup(lab.LabConfig(loss="nca", lr=0.5), (0,)).add(0, other)


def test_static_figure_animates_the_run_shown(monkeypatch):
    box = _lab(seeds=1, epochs=3)
    assert box.static_figure() is None and "no run was trained" in box.static_html()
    box.train_button.click()
    box.keep()
    fig = box.static_figure()
    run = box.run
    assert len(fig.frames) == run.epochs_done + 1 == 4
    xr, yr = fig.layout.xaxis.range, fig.layout.yaxis.range
    assert fig.layout.xaxis.autorange is False
    for frame in fig.frames:
        x = np.concatenate([np.asarray(t.x, float) for t in frame.data])
        y = np.concatenate([np.asarray(t.y, float) for t in frame.data])
        assert len(x) == 50
        assert xr[0] <= x.min() and x.max() <= xr[1] and yr[0] <= y.min() and y.max() <= yr[1]
    buttons = fig.layout.updatemenus[0].buttons
    assert any(b.method == "animate" and "play" in b.label for b in buttons)
    assert len(fig.layout.sliders[0].steps) == 4
    # the points are coloured by class, one trace per class
    assert len(fig.data) == 10 and len({t.marker.color for t in fig.data}) == 10
    # site mode: the Lab's own stand-in (animation + kept runs + table); live otherwise
    live = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in live
    monkeypatch.setenv("DMLCOURSE_SITE", "1")
    bundle = box._repr_mimebundle_()
    page = bundle["text/html"]
    assert "Plotly.newPlot" in page and "Static stand-in of the Embedding Lab" in page
    assert page.count("Plotly.newPlot") == 3  # the run, its curves, the kept run
    assert "<table>" in page
