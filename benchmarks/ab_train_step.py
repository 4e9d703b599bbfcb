"""The training step of two checkouts of dmlcourse, one step of each in turn, in one process.

    python benchmarks/ab_train_step.py --old /path/to/other/checkout [--steps 800]

On a shared machine wall times drift by 10-20 % within minutes, which hides a change of a few
per cent; alternating single steps of the two versions (the body of ``train.fit_epoch`` and
``TrainingMonitor.after_step``, as ``train.train`` runs them, with the Lab's MLP and CNN, the
triplet loss and the semi-hard miner, batch 128, one thread) makes the drift cancel. Make the
other checkout with ``git worktree add /tmp/old <commit>``.
"""

import argparse
import importlib
import importlib.util
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
ap = argparse.ArgumentParser()
ap.add_argument("--old", required=True, help="a checkout of dmlcourse to compare with this one")
ap.add_argument("--steps", type=int, default=800, help="MLP steps of each (the CNN: a tenth)")
args = ap.parse_args()
HERE = str(Path(__file__).resolve().parents[1])


def load(name, path):
    spec = importlib.util.spec_from_file_location(
        name, path + "/dmlcourse/__init__.py", submodule_search_locations=[path + "/dmlcourse"]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)


load("dmlcourse", HERE)
load("dmlcourse_old", str(Path(args.old).resolve()))
V = {
    tag: {
        m: importlib.import_module(f"{root}.{m}")
        for m in ("data", "miners", "models", "runtime", "train")
    }
    for tag, root in (("old", "dmlcourse_old"), ("new", "dmlcourse"))
}
split = V["new"]["data"].load("mnist", "train", "mini")


def setup(tag, network):
    m = V[tag]
    m["runtime"].seed_everything(0)
    model = (
        m["models"].SmallCNN(32, normalize=True)
        if network == "cnn"
        else m["models"].MLP(32, hidden=(256,), normalize=True)
    )
    loss = m["miners"].MinedTripletLoss("batch_semi_hard", 0.2)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    loader = m["data"].DeviceLoader(
        split.images,
        split.labels,
        batch_size=128,
        device="cpu",
        name="mnist",
        sampler=m["train"].class_balanced_sampler(split.labels, 128, 16, seed=0),
        seed=0,
    )
    h = m["train"].History()
    mon = m["train"].TrainingMonitor(h, 10**6, progress=False)
    fn = mon.watch(loss) if hasattr(mon, "watch") else loss
    state = {"it": iter(loader)}

    def step():  # the body of train.fit_epoch, then the monitor, as train.train runs them
        try:
            x, y = next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            x, y = next(state["it"])
        out = fn(model(x), y)
        l = out["loss"] if isinstance(out, dict) else out
        opt.zero_grad(set_to_none=True)
        l.backward()
        opt.step()
        h.log_step(
            l.item(),
            {k: float(v) for k, v in out.items() if k != "loss"} if isinstance(out, dict) else {},
        )
        assert not mon.after_step(h)

    return step


for network, n in (("mlp", args.steps), ("cnn", max(10, args.steps // 10))):
    steps = {tag: setup(tag, network) for tag in ("old", "new")}
    for s in steps.values():
        for _ in range(5):
            s()
    tot = {"old": 0.0, "new": 0.0}
    for i in range(n):
        for tag in ("old", "new") if i % 2 == 0 else ("new", "old"):
            t0 = time.perf_counter()
            steps[tag]()
            tot[tag] += time.perf_counter() - t0
    print(
        f"{network}: old {tot['old'] / n * 1e3:.3f} ms/step, "
        f"new {tot['new'] / n * 1e3:.3f} ms/step, "
        f"new/old {tot['new'] / tot['old']:.4f} ({n} alternating steps each)"
    )
