"""LabConfig: the one place a Lab run's settings are checked."""

import pytest

from dmlcourse import lab


def test_bad_settings_name_the_parameter():
    with pytest.raises(ValueError, match="loss='hinge'"):
        lab.LabConfig(loss="hinge").normalized()
    with pytest.raises(ValueError, match="margin"):
        lab.LabConfig(loss="sphereface", margin=7).normalized()
    with pytest.raises(ValueError, match="size='huge'"):
        lab.LabConfig(size="huge").normalized()
    with pytest.raises(ValueError, match="layout='tsne'"):
        lab.LabConfig(layout="tsne").normalized()
    with pytest.raises(ValueError, match="train_per_class must be >= 2"):
        lab.LabConfig(train_per_class=1).normalized()
    with pytest.raises(ValueError, match="miner=None"):
        lab.LabConfig(loss="triplet", miner=None).normalized()


def test_settings_that_do_not_apply_are_blanked():
    c = lab.LabConfig(loss="nca", miner="batch_hard", margin=0.3).normalized()
    assert c.miner is None and c.margin is None
    c = lab.LabConfig(loss="triplet", miner="easy_positive", margin=0.3).normalized()
    assert c.miner == "easy_positive" and c.margin is None
    assert lab.LabConfig(loss="cosface").normalized().margin == lab.MARGINS["cosface"][3]
    assert lab.LabConfig(loss="sphereface", margin=2.4).normalized().margin == 2.0
