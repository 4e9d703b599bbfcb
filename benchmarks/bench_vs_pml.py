"""The same training run with our pieces and with pytorch-metric-learning's.

Ours: SmallCNN + dmlcourse.miners.MinedTripletLoss("batch_semi_hard", 0.2, reduction="mean_nonzero")
      + dmlcourse.data.ClassBalancedBatchSampler, data resident on the device (DeviceLoader).
PML:  the same SmallCNN + TripletMarginLoss(margin=0.2) + TripletMarginMiner(0.2, "semihard")
      + MPerClassSampler(m=16) through a torch DataLoader (the usual PML recipe).
Both: Euclidean distance on L2-normalised embeddings, Adam 2e-3, batch 128, same epochs.
Reported: wall-time ratio (ours / PML; goal <= 1) and quality difference (ours - PML; goal >= 0).
Note the miners differ slightly: PML's semi-hard miner keeps every semi-hard triplet, ours
the closest semi-hard negative per anchor-positive pair (the lecture's eq. 17).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import evaluate, load_pair
from machine import describe, machine_info

from dmlcourse import data, miners, models, runtime, train
from dmlcourse.core.paths import default_size


def ours(x, y, dataset, epochs, device):
    runtime.seed_everything(0)
    model = models.SmallCNN(64, normalize=True)
    t0 = time.perf_counter()
    train.train(
        model,
        miners.MinedTripletLoss("batch_semi_hard", 0.2, reduction="mean_nonzero"),
        x,
        y,
        epochs=epochs,
        batch_size=128,
        samples_per_class=16,
        lr=2e-3,
        name=dataset,
        device=device,
        progress=False,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model, time.perf_counter() - t0


def theirs(x, y, dataset, epochs, device):
    from pytorch_metric_learning import distances, losses, samplers
    from pytorch_metric_learning import miners as pminers

    runtime.seed_everything(0)
    model = models.SmallCNN(64, normalize=True).to(device)
    dist = distances.LpDistance(normalize_embeddings=True)
    loss_fn = losses.TripletMarginLoss(margin=0.2, distance=dist)
    miner = pminers.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=dist)
    xs = data.to_float(x, dataset)
    sampler = samplers.MPerClassSampler(y, m=16, batch_size=128, length_before_new_iter=len(y))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xs, y), batch_size=128, sampler=sampler
    )
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            z = model(xb)
            loss = loss_fn(z, yb, miner(z, yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    model.eval()
    return model, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    args = ap.parse_args()
    device = runtime.get_device(verbose=False)
    size = default_size(device, download=False)
    epochs = 1 if args.quick else args.epochs
    datasets = args.datasets[:1] if args.quick else args.datasets
    print(
        f"ours vs pytorch-metric-learning, {epochs} epoch(s) of {size} data on {device} -- "
        f"{describe()}"
    )
    print(
        f"{'dataset':<15}{'ours s':>8}{'PML s':>8}{'ratio':>7}{'1-NN ours':>11}{'PML':>7}"
        f"{'diff':>8}"
        f"{'MAP@R ours':>12}{'PML':>7}{'diff':>8}"
    )
    rows = []
    for dataset in datasets:
        x, y, xt, yt = load_pair(dataset, size, args.quick)
        m1, t1 = ours(x, y, dataset, epochs, device)
        m2, t2 = theirs(x, y, dataset, epochs, device)
        q1 = evaluate(m1, x, y, xt, yt, dataset, device)
        q2 = evaluate(m2, x, y, xt, yt, dataset, device)
        rows.append({"dataset": dataset, "ours_s": t1, "pml_s": t2, "ours": q1, "pml": q2})
        print(
            f"{dataset:<15}{t1:>8.1f}{t2:>8.1f}{t1 / t2:>7.2f}{q1['nn1_acc']:>11.4f}"
            f"{q2['nn1_acc']:>7.4f}"
            f"{q1['nn1_acc'] - q2['nn1_acc']:>+8.4f}{q1['map_at_r']:>12.3f}{q2['map_at_r']:>7.3f}"
            f"{q1['map_at_r'] - q2['map_at_r']:>+8.3f}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_info(), "device": str(device), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
