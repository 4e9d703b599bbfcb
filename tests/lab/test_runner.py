"""Lab runs without widgets: the cache, the probe set, the stop rules."""

import pytest
import torch

from dmlcourse import lab


def test_unreadable_cache_file_is_ignored(_cache):
    cfg = lab.LabConfig(loss="nca", epochs=1, train_per_class=20, probe_per_class=3, layout="pca")
    path = lab.run_path(cfg)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        run = lab.run_lab(cfg)
    assert not run.from_cache and lab.run_lab(cfg).from_cache


def test_probe_set_is_fixed_and_class_balanced():
    i1, _, y1 = lab.probe_set("fashion-mnist", "mini", 100)
    i2, _, _ = lab.probe_set("fashion-mnist", "mini", 100)
    assert torch.equal(i1, i2) and torch.bincount(y1).tolist() == [100] * 10


def test_runs_are_stored_in_the_package_cache(_cache):
    cfg = lab.LabConfig(loss="nca", epochs=1, train_per_class=20, probe_per_class=3, layout="pca")
    first = lab.run_lab(cfg)
    assert not first.from_cache and lab.run_path(cfg).exists()
    assert lab.run_path(cfg).parent == lab.lab_cache_dir() == _cache / "lab"
    again = lab.run_lab(cfg)
    assert again.from_cache and again.step_loss == first.step_loss
    fresh = lab.run_lab(cfg, use_cache=False)  # trains again, with the same result
    assert not fresh.from_cache and fresh.step_loss == first.step_loss


def test_run_lab_needs_a_config():
    with pytest.raises(TypeError, match="config"):
        lab.run_lab({"loss": "nca"})


def test_every_miner_of_the_lab_makes_a_loss_that_trains():
    import torch

    from dmlcourse.lab import config as lab_config
    from dmlcourse.lab import runner as lab_runner

    z = torch.nn.functional.normalize(torch.randn(24, 8), dim=1).requires_grad_(True)
    y = torch.arange(6).repeat_interleave(4)
    for miner in lab_config.MINERS:
        loss_fn = lab_runner.make_loss(lab_config.LabConfig(loss="triplet", miner=miner))
        out = loss_fn(z, y)
        out["loss"].backward()
        assert torch.isfinite(out["loss"]), miner
    assert "bayesian_updating" in lab_config.MINERS
    ep = lab_runner.make_loss(lab_config.LabConfig(loss="triplet", miner="easy_positive"))
    assert ep.loss == "easy_positive_softmax"  # the Lab trains eq. 19 for this miner
