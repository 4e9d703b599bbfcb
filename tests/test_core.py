"""Models, distances, the training loop, the cache and the environment files."""

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from dmlcourse import cache, data, distances, losses, models, runtime, train

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ distances
@pytest.mark.parametrize("name, scipy_name", [("euclidean", "euclidean"), ("squared_euclidean", "sqeuclidean"),
                                              ("cosine", "cosine")])
def test_pairwise_distance_matches_scipy(name, scipy_name):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 5, generator=g, dtype=torch.float64), torch.randn(20, 5, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(distances.pairwise_distance(x, y, name).numpy(), cdist(x, y, scipy_name), atol=1e-9)
    np.testing.assert_allclose(distances.paired_distance(x[:20], y, name).numpy(),
                               np.diag(cdist(x[:20], y, scipy_name)), atol=1e-9)
    self_d = distances.pairwise_distance(x, distance=name)
    assert torch.all(torch.diagonal(self_d) == 0)


def test_euclidean_gradient_is_finite_at_zero_distance():
    x = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    distances.pairwise_distance(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    z = torch.zeros(2, 3, requires_grad=True)
    distances.paired_distance(z, z.detach().clone()).sum().backward()
    assert torch.isfinite(z.grad).all()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: distances.pairwise_distance(t, distance="euclidean"), (x,))


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("cls", [models.SmallCNN, models.MLP])
def test_models_shapes_and_normalisation(cls):
    x = torch.randn(5, 1, 28, 28)
    assert cls(embedding_dim=7)(x).shape == (5, 7)
    z = cls(embedding_dim=3, normalize=True)(x)
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match="embedding_dim must be >= 1, got 0"):
        cls(embedding_dim=0)


def test_embed_is_batch_independent_and_on_cpu():
    m = models.SmallCNN(8)
    imgs = data.load("mnist", "test", "mini").images[:50]
    a = models.embed(m, imgs, batch_size=7, name="mnist")
    b = models.embed(m, imgs, batch_size=50, name="mnist")
    assert a.device.type == "cpu" and torch.allclose(a, b, atol=1e-5)
    assert m.training  # embed restores the mode


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def mini():
    tr = data.load("mnist", "train", "mini")
    te = data.load("mnist", "test", "mini")
    idx = data.balanced_subset(tr.labels, 60)
    return tr.images[idx], tr.labels[idx], te.images[:300], te.labels[:300]


def test_training_learns_and_records_history(mini):
    x, y, xt, yt = mini
    runtime.seed_everything(0)
    model = models.SmallCNN(16)
    h = train.train(model, losses.nca_loss, x, y, epochs=3, batch_size=60, samples_per_class=6, name="mnist",
                    eval_data=(xt, yt), probe=xt[:40], probe_labels=yt[:40], progress=False, device="cpu")
    assert h.epochs_done == 3 and len(h.step_loss) == 3 * 10 and len(h.snapshots) == 4
    assert h.snapshots[0].shape == (40, 16) and not h.interrupted
    first, last = np.mean(h.step_loss[:5]), np.mean(h.step_loss[-5:])
    assert last < first
    assert h.epoch_metrics[-1]["precision_at_1"] > 0.5  # far above chance (0.1)


def test_training_is_reproducible(mini):
    x, y, _, _ = mini
    runs = []
    for _ in range(2):
        runtime.seed_everything(3)
        model = models.MLP(8)
        runs.append(train.train(model, losses.nca_loss, x, y, epochs=1, batch_size=50, seed=3,
                                progress=False, device="cpu").step_loss)
    assert runs[0] == runs[1]


def test_interrupt_keeps_partial_history(mini):
    x, y, _, _ = mini
    calls = {"n": 0}

    def loss_fn(z, labels):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return losses.nca_loss(z, labels)

    h = train.train(models.MLP(8), loss_fn, x, y, epochs=3, batch_size=60, progress=False, device="cpu")
    assert h.interrupted and len(h.step_loss) == 6 and "interrupted" in h.message


def test_stop_request_and_nan(mini):
    x, y, _, _ = mini
    h = train.train(models.MLP(8), losses.nca_loss, x, y, epochs=3, batch_size=60, progress=False, device="cpu",
                    should_stop=lambda: True)
    assert h.interrupted and len(h.step_loss) == 1 and h.epochs_done == 1
    with pytest.warns(RuntimeWarning, match="became nan"):
        h = train.train(models.MLP(8), lambda z, t: z.sum() * float("nan"), x, y, epochs=2, progress=False,
                        device="cpu")
    assert h.interrupted and "nan" in h.message


def test_loss_module_parameters_are_trained(mini):
    x, y, _, _ = mini

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, z, labels):
            return {"loss": torch.nn.functional.cross_entropy(self.fc(z), labels), "active_fraction": 1.0}

    head = Head()
    before = head.fc.weight.detach().clone()
    h = train.train(models.MLP(8), head, x, y, epochs=1, batch_size=60, progress=False, device="cpu")
    assert not torch.equal(before, head.fc.weight.detach())
    assert h.step_info["active_fraction"] == [1.0] * len(h.step_loss)


@pytest.mark.parametrize("kw, msg", [
    (dict(batch_size=6, samples_per_class=4), r"batch_size=6 is smaller than P x K = 2 x 4"),
    (dict(epochs=-1), "epochs must be >= 0"),
    (dict(lr=float("nan")), "lr must be a number"),
    (dict(probe=torch.zeros(0, 28, 28)), "probe is empty"),
])
def test_train_bad_input(mini, kw, msg):
    x, y, _, _ = mini
    with pytest.raises(ValueError, match=msg):
        train.train(models.MLP(8), losses.nca_loss, x, y, progress=False, **kw)


def test_history_save_load_roundtrip(tmp_path):
    h = train.History(step_loss=[1.0, 0.5], epoch_metrics=[{"epoch": 1, "loss": 0.7}], snapshots=[torch.ones(2, 2)])
    h.save(tmp_path / "h.pt")
    g = train.History.load(tmp_path / "h.pt")
    assert g.step_loss == h.step_loss and torch.equal(g.snapshots[0], h.snapshots[0])


# ------------------------------------------------------------------ cache
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


# ------------------------------------------------------------------ runtime and environment
def test_quick_mode_and_device(monkeypatch):
    monkeypatch.setenv("DMLCOURSE_QUICK", "1")
    assert runtime.is_quick() and runtime.quick(10, 1) == 1 and data.default_size() == "mini"
    monkeypatch.setenv("DMLCOURSE_QUICK", "0")
    assert not runtime.is_quick() and runtime.quick(10, 1) == 10
    assert runtime.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer='tpu'"):
        runtime.get_device("tpu")


def _requirements(specs):
    out = {}
    for spec in specs:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)", spec)
        name = m.group(1).lower().replace("_", "-")
        out[{"pytorch": "torch"}.get(name, name)] = m.group(2).replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirements(project["dependencies"] + project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text()
    section = text.split("dependencies:", 1)[1]
    deps = [ln.strip()[2:] for ln in section.splitlines() if re.match(r"\s+- [A-Za-z]", ln) and "-e ." not in ln]
    conda = _requirements(deps)
    conda.pop("python"), conda.pop("pip")
    assert conda == wanted
