"""The Embedding Lab widget, headless: controls, training, cache, figures, robustness.

Tiny configurations (a few training steps, 50 probe points, PCA layouts) keep this file fast.
Metrics are cross-checked against scikit-learn.
"""

import threading

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from dmlcourse import lab
from dmlcourse.lab import runner

TINY = dict(train_per_class=40, probe_per_class=5, layout="pca", warm_up=False)


def _lab(**kw):
    kw = {**TINY, "background": False, "epochs": 2, **kw}
    return lab.EmbeddingLab(**kw)


def _trace_points(fig):
    """(index, x, y) of every point drawn in the scatter."""
    idx = np.concatenate([np.asarray(t.customdata, dtype=int) for t in fig.data])
    xy = np.concatenate([np.c_[np.asarray(t.x, float), np.asarray(t.y, float)] for t in fig.data])
    return idx, xy


def test_train_shows_frames_metrics_and_writes_the_cache(_cache):
    box = _lab(losses=["triplet", "nca"])
    box.miner.value = "batch_hard"
    box.margin.value = 0.3
    box.train_button.click()
    run = box.run
    assert run is not None and not run.interrupted, box.status.value
    cfg = box.config()
    assert run.config["miner"] == "batch_hard" and run.config["margin"] == pytest.approx(0.3)
    # frames: the layout before training and after each epoch; the slider spans them
    assert run.layouts.shape == (3, 50, 2) and run.snapshots.shape == (3, 50, 32)
    assert box.epoch.max == 2 and box.epoch.value == 2
    idx, xy = _trace_points(box.figure)
    assert sorted(idx.tolist()) == list(range(50))
    np.testing.assert_allclose(xy, run.layouts[2][idx], rtol=1e-5, atol=1e-5)
    # halfway between two epochs every point sits halfway between its two positions
    box.epoch.value = 1.5
    idx, xy = _trace_points(box.figure)
    np.testing.assert_allclose(
        xy, 0.5 * (run.layouts[1] + run.layouts[2])[idx], rtol=1e-5, atol=1e-5
    )
    box.play.value = 5  # the play button drives the slider (10 frames per epoch)
    assert box.epoch.value == pytest.approx(0.5)
    # metrics: Precision@1 of the probe set = leave-one-out 1-NN accuracy (scikit-learn)
    z, y = run.snapshots[-1].numpy(), run.probe_labels.numpy()
    knn = KNeighborsClassifier(n_neighbors=2).fit(z, y)
    neighbour = knn.kneighbors(z, return_distance=False)[:, 1]
    assert run.metric("precision_at_1")[-1] == pytest.approx((y[neighbour] == y).mean(), abs=1e-6)
    assert len(run.epoch_metrics) == 2 and len(run.active_fraction()) == 2
    steps = [m["steps"] for m in run.epoch_metrics]
    af = run.step_info["active_fraction"]
    assert run.active_fraction()[0] == pytest.approx(np.mean(af[: steps[0]]))
    assert list(box.curves.data[0].y) == pytest.approx(run.step_loss)
    assert list(box.curves.data[2].y) == pytest.approx(run.metric("precision_at_1"))
    # the cache file holds this configuration and nothing else was written
    files = list((_cache / "lab").glob("*.pt"))
    assert files == [lab.run_path(cfg)]
    assert str(lab.lab_cache_dir()) in box.where.value
    # hovering a point shows its image
    box.show_probe(3)
    assert "data:image/png;base64" in box.preview.value


def test_second_identical_run_comes_from_the_cache(monkeypatch):
    box = _lab(losses=["contrastive"])
    box.train_button.click()
    first = box.run
    assert not first.from_cache

    def boom(*a, **k):
        raise AssertionError("trained again although the run is cached")

    monkeypatch.setattr(runner, "train_loop", boom)
    other = _lab(losses=["contrastive"])  # a new lab, same configuration
    other.train_button.click()
    assert other.run.from_cache and "cache" in other.status.value
    np.testing.assert_array_equal(other.run.layouts, first.layouts)
    assert other.run.step_loss == first.step_loss
    other.seed.value = 1  # another seed is another run: it must train (and here hits the guard)
    other.train_button.click()
    assert "failed" in other.status.value and "trained again" in other.status.value
    assert not other.training and not other.train_button.disabled  # still usable


def _gated(monkeypatch):
    """Make run_lab wait for the test: (started, release) events."""
    started, release = threading.Event(), threading.Event()
    real = runner.run_lab

    def gated(*a, **k):
        started.set()
        assert release.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(runner, "run_lab", gated)
    return started, release


def test_double_click_starts_one_training(monkeypatch, _cache):
    started, release = _gated(monkeypatch)
    box = _lab(losses=["triplet"], background=True)
    box.train_button.click()
    assert started.wait(30)
    box.train_button.click()  # the second click of a double-click
    box.train()
    assert box.runs_started == 1 and "Already training" in box.status.value
    release.set()
    assert box.wait(60)
    assert box.run is not None and not box.run.interrupted
    assert len(list((_cache / "lab").glob("*.pt"))) == 1


def test_changing_controls_while_training_does_not_mix_runs(monkeypatch):
    started, release = _gated(monkeypatch)
    box = _lab(losses=["triplet", "contrastive"], background=True)
    box.margin.value = 0.25
    box.train_button.click()
    assert started.wait(30)
    box.loss.value = "contrastive"
    box.margin.value = 1.5
    box.epochs.value = 3
    assert "next run" in box.status.value
    release.set()
    assert box.wait(60)
    run = box.run
    assert run.config["loss"] == "triplet" and run.config["margin"] == pytest.approx(0.25)
    assert run.epochs_done == 2 and run.config["epochs"] == 2
    assert box.config().loss == "contrastive"  # the controls keep the new choice for the next run


def test_stop_keeps_what_was_trained(monkeypatch, _cache):
    started, release = _gated(monkeypatch)
    box = _lab(losses=["nca"], background=True, epochs=3)
    box.train_button.click()
    assert started.wait(30)
    box.stop_button.click()  # before the first step: training ends after one step
    release.set()
    assert box.wait(60)
    run = box.run
    assert run.interrupted and not run.failed and len(run.step_loss) == 1
    assert run.epochs_done == 1 and "stopped on request" in box.status.value
    assert not list((_cache / "lab").glob("*.pt"))  # an incomplete run is never cached


def test_absurd_learning_rate_ends_with_a_message():
    box = _lab(losses=["nca"])
    box.lr.value = 100.0
    box.train_button.click()
    assert box.run.failed and "diverged" in box.status.value and "Traceback" not in box.status.value
    assert box.progress.bar_style == "danger"
    box.lr.value = 2e-3  # the widget stays usable
    box.train_button.click()
    assert not box.run.failed and box.run.epochs_done == 2


def test_nan_loss_ends_with_a_message(monkeypatch):
    class NaNLoss(torch.nn.Module):
        def forward(self, z, labels):
            return z.sum() * float("nan")

    monkeypatch.setattr(runner, "make_loss", lambda config, num_classes=10: NaNLoss())
    box = _lab(losses=["nca"])
    box.train_button.click()
    assert box.run.failed and "NaN" in box.status.value
    assert box.run.epochs_done == 0 and not box.training


def test_no_active_triplet_ends_with_a_message():
    box = _lab(losses=["triplet"])
    box.miner.value = "batch_semi_hard"
    box.margin.value = 0.0  # semi-hard needs d_ap < d_an < d_ap + margin: nothing to mine
    box.train_button.click()
    assert box.run.failed and "no triplet or pair was active" in box.status.value
    assert box.run.step_info["active_fraction"] == [0.0] * len(box.run.step_loss)


def test_disabled_controls_follow_the_loss():
    box = _lab()
    expected = {
        "contrastive": (True, False),
        "triplet": (False, False),
        "nca": (True, True),
        "softmax": (True, True),
        "normface": (True, True),
        "sphereface": (True, False),
        "cosface": (True, False),
        "arcface": (True, False),
    }
    for loss, (miner_off, margin_off) in expected.items():
        box.loss.value = loss
        assert (box.miner.disabled, box.margin.disabled) == (miner_off, margin_off), loss
        if loss in lab.MARGINS:
            lo, hi, _, default = lab.MARGINS[loss]
            assert (box.margin.min, box.margin.max, box.margin.value) == (lo, hi, default)
    box.loss.value = "triplet"
    box.miner.value = "easy_positive"  # a softmax over positives: no margin
    assert box.margin.disabled and not box.miner.disabled
    assert box.config().margin is None
    box.loss.value = "nca"
    assert box.config().miner is None and box.config().margin is None


def test_keep_runs_side_by_side_with_a_table():
    box = _lab(losses=["triplet"])
    for miner in ("batch_hard", "batch_semi_hard"):
        box.miner.value = miner
        box.train_button.click()
        box.keep_button.click()
    assert len(box.kept) == 2 and len(box.kept_box.children) == 2
    rows = box.metrics_rows()
    assert [r["miner"] for r in rows] == ["batch_hard", "batch_semi_hard"]
    assert rows[0]["P@1"] == pytest.approx(box.kept[0].metric("precision_at_1")[-1])
    assert "batch_semi_hard" in box.table.value
    # both kept pictures show the same probe set, at the slider's epoch
    box.epoch.value = 1.0
    for fig, run in zip(box.kept_box.children, box.kept):
        idx, xy = _trace_points(fig)
        np.testing.assert_allclose(xy, run.layouts[1][idx], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(run.probe_index, box.kept[0].probe_index)
    # hovering a kept run's point shows that run's image (its own dataset), through plotly's
    # callback
    from plotly.callbacks import Points

    box.dataset.value = "fashion-mnist"
    box.train_button.click()
    assert box.run.config["dataset"] == "fashion-mnist"
    trace = box.kept_box.children[0].data[4]
    trace._dispatch_on_hover(Points(point_inds=[0], xs=[0], ys=[0]), None)
    assert "<b>4</b>" in box.preview.value  # MNIST digit 4, not Fashion-MNIST's "Coat"
    box.figure.data[4]._dispatch_on_hover(Points(point_inds=[0], xs=[0], ys=[0]), None)
    assert "Coat" in box.preview.value
    box.clear_kept()
    assert not box.kept and box.table.value == ""


def test_widget_refuses_a_bad_setting_when_it_is_created():
    """The widget checks its settings through LabConfig at construction, not when Train is
    pressed."""
    with pytest.raises(ValueError, match="losses"):
        lab.EmbeddingLab(losses=["bogus"], warm_up=False)
    with pytest.raises(ValueError, match="embedding_dim=5"):
        lab.EmbeddingLab(embedding_dim=5, warm_up=False)
    with pytest.raises(ValueError, match="dataset='cifar'"):
        lab.EmbeddingLab(dataset="cifar", warm_up=False)
    with pytest.raises(ValueError, match="probe_per_class"):
        lab.EmbeddingLab(probe_per_class=0, warm_up=False)
    with pytest.raises(ValueError, match="train_per_class"):
        lab.EmbeddingLab(train_per_class=-3, warm_up=False)
    # 1 passed the widget's own check before, and failed only at Train: LabConfig needs >= 2
    for name in ("train_per_class", "probe_per_class"):
        with pytest.raises(ValueError, match=f"{name} must be >= 2"):
            lab.EmbeddingLab(**{name: 1}, warm_up=False)
    with pytest.raises(ValueError, match="layout='umap'"):
        lab.EmbeddingLab(layout="umap", warm_up=False)
