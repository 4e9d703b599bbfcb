"""train: fit_epoch, the training loop, its History and its hooks."""

import numpy as np
import pytest
import torch

from dmlcourse import data, losses, models, runtime, train


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
    h = train.train(
        model,
        losses.nca_loss,
        x,
        y,
        epochs=3,
        batch_size=60,
        samples_per_class=6,
        name="mnist",
        eval_data=(xt, yt),
        probe=xt[:40],
        probe_labels=yt[:40],
        progress=False,
        device="cpu",
    )
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
        runs.append(
            train.train(
                model,
                losses.nca_loss,
                x,
                y,
                epochs=1,
                batch_size=50,
                seed=3,
                progress=False,
                device="cpu",
            ).step_loss
        )
    assert runs[0] == runs[1]


def test_interrupt_keeps_partial_history(mini):
    x, y, _, _ = mini
    calls = {"n": 0}

    def loss_fn(z, labels):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return losses.nca_loss(z, labels)

    h = train.train(
        models.MLP(8), loss_fn, x, y, epochs=3, batch_size=60, progress=False, device="cpu"
    )
    assert h.interrupted and len(h.step_loss) == 6 and "interrupted" in h.message


def test_stop_request_and_nan(mini):
    x, y, _, _ = mini
    h = train.train(
        models.MLP(8),
        losses.nca_loss,
        x,
        y,
        epochs=3,
        batch_size=60,
        progress=False,
        device="cpu",
        should_stop=lambda: True,
    )
    assert h.interrupted and len(h.step_loss) == 1 and h.epochs_done == 1
    with pytest.warns(RuntimeWarning, match="became NaN"):
        h = train.train(
            models.MLP(8),
            lambda z, t: z.sum() * float("nan"),
            x,
            y,
            epochs=2,
            progress=False,
            device="cpu",
        )
    assert h.interrupted and h.diverged == "loss" and "the loss became NaN at step 1" in h.message


def test_loss_module_parameters_are_trained(mini):
    x, y, _, _ = mini

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, z, labels):
            return {
                "loss": torch.nn.functional.cross_entropy(self.fc(z), labels),
                "active_fraction": 1.0,
            }

    head = Head()
    before = head.fc.weight.detach().clone()
    h = train.train(
        models.MLP(8), head, x, y, epochs=1, batch_size=60, progress=False, device="cpu"
    )
    assert not torch.equal(before, head.fc.weight.detach())
    assert h.step_info["active_fraction"] == [1.0] * len(h.step_loss)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(batch_size=6, samples_per_class=4), r"batch_size=6 is smaller than P x K = 2 x 4"),
        (dict(epochs=-1), "epochs must be >= 0"),
        (dict(lr=float("nan")), "lr must be a number"),
        (dict(probe=torch.zeros(0, 28, 28)), "probe is empty"),
    ],
)
def test_train_bad_input(mini, kw, msg):
    x, y, _, _ = mini
    with pytest.raises(ValueError, match=msg):
        train.train(models.MLP(8), losses.nca_loss, x, y, progress=False, **kw)


def test_history_save_load_roundtrip(tmp_path):
    h = train.History(
        step_loss=[1.0, 0.5],
        epoch_metrics=[{"epoch": 1, "loss": 0.7}],
        snapshots=[torch.ones(2, 2)],
    )
    h.save(tmp_path / "h.pt")
    g = train.History.load(tmp_path / "h.pt")
    assert g.step_loss == h.step_loss and torch.equal(g.snapshots[0], h.snapshots[0])


def test_fit_epoch_is_the_loop_of_train(mini):
    """train() is fit_epoch repeated: the same steps give the same losses."""
    x, y, _, _ = mini
    runtime.seed_everything(0)
    h = train.train(
        models.MLP(8),
        losses.nca_loss,
        x,
        y,
        epochs=1,
        batch_size=60,
        seed=0,
        progress=False,
        device="cpu",
    )
    runtime.seed_everything(0)
    model = models.MLP(8)
    runtime.seed_everything(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = data.DeviceLoader(x, y, batch_size=60, device="cpu", seed=0)
    mine = train.History()
    mean = train.fit_epoch(model, losses.nca_loss, loader, optimizer, history=mine)
    assert mine.step_loss == h.step_loss and mean == pytest.approx(h.epoch_metrics[0]["loss"])
    stopped = train.History()
    train.fit_epoch(
        model, losses.nca_loss, loader, optimizer, history=stopped, on_step=lambda hist: True
    )
    assert len(stopped.step_loss) == 1


def test_max_steps_ends_training_without_an_interrupt(mini):
    x, y, _, _ = mini
    h = train.train(
        models.MLP(8),
        losses.nca_loss,
        x,
        y,
        epochs=3,
        batch_size=60,
        progress=False,
        device="cpu",
        max_steps=12,
    )
    assert len(h.step_loss) == 12 and h.epochs_done == 2 and not h.interrupted


def test_training_on_the_test_device_follows_the_cpu(mini, test_device):
    """The GPU path is the CPU path's code: with one seed, training on $DMLCOURSE_TEST_DEVICE
    takes the same first step as on the CPU and ends as good (benchmarks/device_check.sh runs
    this with "cuda"; on the CPU it compares two CPU runs)."""
    x, y, xt, yt = mini
    runs = []
    for device in (torch.device("cpu"), test_device):
        runtime.seed_everything(0)
        model = models.SmallCNN(16)
        history = train.train(
            model,
            losses.nca_loss,
            x,
            y,
            epochs=2,
            batch_size=60,
            samples_per_class=6,
            name="mnist",
            eval_data=(xt, yt),
            seed=0,
            progress=False,
            device=device,
        )
        assert next(model.parameters()).device.type == device.type  # trained where asked
        runs.append(history)
    cpu, dev = runs
    # the first step sees the same weights and batch: TF32 convolutions on a GPU round to about
    # 1e-3, so its loss agrees to 1 %; later steps may drift (Adam's first update is a sign per
    # weight, and a near-zero gradient's sign can differ)
    assert dev.step_loss[0] == pytest.approx(cpu.step_loss[0], rel=1e-2)
    p1_cpu, p1_dev = (r.epoch_metrics[-1]["precision_at_1"] for r in runs)
    assert abs(p1_dev - p1_cpu) < 0.05, (p1_cpu, p1_dev)


class _Diverges(torch.nn.Module):
    """An MLP whose embeddings turn NaN (or +inf) from step ``at`` on: a network that diverged
    in its forward pass (float16 overflow, say) while its weights are still finite."""

    def __init__(self, at: int, value: float = float("nan")):
        super().__init__()
        self.net, self.at, self.value, self.calls = models.MLP(8), at, value, 0

    def forward(self, x):
        z = self.net(x)
        self.calls += 1
        if self.training and self.calls >= self.at:
            z = z + self.value  # keeps the graph, so the loss could back-propagate
        return z


def _train(model, loss_fn, x, y, **kw):
    kw = dict(epochs=2, batch_size=60, samples_per_class=6, progress=False, device="cpu") | kw
    with pytest.warns(RuntimeWarning) as caught:
        h = train.train(model, loss_fn, x, y, **kw)
    assert h.message in [str(w.message) for w in caught]
    return h


@pytest.mark.parametrize("miner", ["batch_hard", "batch_semi_hard", "distance_weighted"])
def test_nan_embeddings_stop_training_and_are_named(mini, miner):
    """A miner refuses NaN embeddings; the loop names them, the step and the usual fixes."""
    from dmlcourse import miners

    x, y, _, _ = mini
    runtime.seed_everything(0)
    h = _train(_Diverges(at=4), miners.MinedTripletLoss(miner, 0.2), x, y)
    assert h.interrupted and h.diverged == "embeddings"
    assert h.message.startswith("the embeddings became NaN or infinite at step 4 (epoch 1)")
    assert "z holds NaN in 60 rows" in h.message and "smaller learning rate" in h.message
    assert len(h.step_loss) == 3 and h.epochs_done == 0  # the three good steps are kept


def test_embeddings_a_finite_loss_hides_are_caught(mini):
    """+inf embeddings whose hinge is exactly 0: the loss alone would look converged."""
    x, y, _, _ = mini
    runtime.seed_everything(0)
    h = _train(_Diverges(at=2, value=float("inf")), lambda z, t: torch.relu(-z).mean(), x, y)
    assert h.diverged == "embeddings" and "step 2 (epoch 1)" in h.message
    assert "(the loss was 0)" in h.message and len(h.step_loss) == 1  # step 2 made no update


def test_weights_made_nan_by_an_update_are_caught_at_that_step(mini):
    """A finite loss whose gradient is NaN (sqrt at 0): the update poisons the weights."""
    x, y, _, _ = mini
    runtime.seed_everything(0)
    h = _train(models.MLP(8), lambda z, t: torch.sqrt(z - z).sum() + z.mean(), x, y)
    assert h.diverged == "weights" and "in the update of step 1 (epoch 1)" in h.message
    assert "whose loss was finite" in h.message and "gradient overflowed" in h.message
    # the same update as the very last one: caught at the end of the epoch
    h = _train(
        models.MLP(8), lambda z, t: torch.sqrt(z - z).sum() + z.mean(), x[:60], y[:60], epochs=1
    )
    assert h.diverged == "weights" and "update of step 1 (epoch 1)" in h.message
    assert h.epochs_done == 0


def test_a_diverged_step_makes_no_update_so_the_weights_stay_finite(mini):
    """The check runs before backward(): the model keeps its last finite weights."""
    x, y, _, _ = mini
    runtime.seed_everything(0)
    model = _Diverges(at=3)
    h = _train(model, losses.nca_loss, x, y)
    assert h.diverged == "embeddings" and "keep their last finite values" in h.message
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()  # without the injected NaN, the trained network embeds finitely
    assert torch.isfinite(model(x[:5].float() / 255)).all()


@pytest.mark.parametrize("name", ["triplet", "contrastive", "nca"])
def test_losses_on_nan_embeddings_stop_with_their_name(mini, name):
    """No loss turns NaN embeddings into a finite number the loop would accept (the triplet
    loss used to sit at the margin)."""
    from dmlcourse import siamese

    x, y, _, _ = mini
    runtime.seed_everything(0)
    h = _train(_Diverges(at=3), siamese.make_batch_loss(name), x, y)
    assert h.diverged == "embeddings" and "step 3 (epoch 1)" in h.message
    assert "the loss was NaN" in h.message  # the loss itself is NaN too
    assert len(h.step_loss) == 2 and np.isfinite(h.step_loss).all()
