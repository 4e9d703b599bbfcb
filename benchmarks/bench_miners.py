"""Miners + triplet loss alone, forward and backward, at batch 128, 512 and 2048 (embedding size
128).

Note: pytorch-metric-learning's TripletMarginMiner(type_of_triplets="semihard") returns *every*
semi-hard triplet, ours the closest semi-hard negative per pair (the lecture's eq. 17): similar but
not identical work.

Side by side in one run, as ratios: our vectorised miners against
pytorch-metric-learning's (where an equivalent exists) and against a naive Python
loop over anchors (the code a first attempt usually looks like).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from machine import describe, machine_info

from dmlcourse import losses, miners, runtime

ROOT = Path(__file__).resolve().parents[1]


def timeit(fn, repeat):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def naive_batch_hard(z, labels):
    d = torch.cdist(z, z)
    out = []
    for i in range(len(z)):  # the loop we avoid
        pos = [j for j in range(len(z)) if j != i and labels[j] == labels[i]]
        neg = [k for k in range(len(z)) if labels[k] != labels[i]]
        if pos and neg:
            out.append((i, max(pos, key=lambda j: d[i, j]), min(neg, key=lambda k: d[i, k])))
    return out


def make_cases(z, labels):
    """Miner + triplet loss, forward and backward (each entry a closure over this batch)."""

    def mined(miner, **kw):
        def step():
            z.grad = None
            losses.triplet_loss_from_indices(
                z, *miner(z, labels, **kw), margin=0.2, reduction="mean_nonzero"
            ).backward()

        return step

    def batch_all_loss():
        z.grad = None
        losses.batch_all_triplet_loss(z, labels, 0.2, reduction="mean_nonzero").backward()

    # what the course trains with miner="easy_positive": the EPS loss of eq. 19
    def easy_positive_loss():
        z.grad = None
        losses.easy_positive_loss(z, labels).backward()

    def nca():
        z.grad = None
        losses.nca_loss(z, labels).backward()

    return {
        "batch_hard": mined(miners.batch_hard),
        "batch_semi_hard": mined(miners.batch_semi_hard, margin=0.2),
        "batch_all": batch_all_loss,
        "easy_positive (EPS loss)": easy_positive_loss,
        "distance_weighted": mined(
            miners.distance_weighted, generator=torch.Generator().manual_seed(0)
        ),
        "NCA loss": nca,
    }


def make_pml_cases(z, labels):
    """pytorch-metric-learning's equivalents: its miner + TripletMarginLoss, forward and
    backward."""
    try:
        from pytorch_metric_learning import distances as pd
        from pytorch_metric_learning import losses as pl
        from pytorch_metric_learning import miners as pm
    except ImportError:
        return {}
    lp = pd.LpDistance(normalize_embeddings=False)
    loss = pl.TripletMarginLoss(margin=0.2, distance=lp)

    def mined(miner):
        def step():
            z.grad = None
            loss(z, labels, miner(z, labels) if miner is not None else None).backward()

        return step

    return {
        "batch_hard": mined(pm.BatchHardMiner(distance=lp)),
        "batch_semi_hard": mined(
            pm.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=lp)
        ),
        "batch_all": mined(None),  # its loss without a miner uses every triplet
        "distance_weighted": mined(pm.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    device = runtime.get_device(verbose=False)
    sizes = [128] if args.quick else [128, 512, 2048]
    repeat = 2 if args.quick else 5
    rows = []
    print(f"miners and losses on {device} -- {describe()}")
    print(
        "each row: mine the batch, triplet loss (mean over non-zero terms), backward; batch_all: "
        "the loss over\n"
        "every triplet without listing them (ours) vs TripletMarginLoss without a miner (PML; OOM: "
        "it would list\n"
        "all b^3 candidate triplets, not run); easy_positive and NCA: their own losses (eq. 19, "
        "eq. 14), forward\n"
        "and backward, as the course trains them"
    )
    print(
        f"{'what':<30}{'batch':>6}{'ours ms':>10}{'pml ms':>9}{'pml/ours':>9}{'loop ms':>9}"
        f"{'loop/ours':>10}"
    )
    for b in sizes:
        g = torch.Generator().manual_seed(0)
        z = (
            torch.nn.functional.normalize(torch.randn(b, 128, generator=g), dim=1)
            .to(device)
            .requires_grad_(True)
        )
        labels = (torch.arange(b) % max(2, b // 8)).to(
            device
        )  # 8 samples per class, as a P x K batch
        cases, pml = make_cases(z, labels), make_pml_cases(z, labels)
        for name, fn in cases.items():
            ours = timeit(fn, repeat)
            key = name
            # PML's loss without a miner lists all b^3 candidate triplets: about 100 GB at b = 2048
            too_big = key == "batch_all" and b > 1024
            ref = timeit(pml[key], repeat) if key in pml and not too_big else None
            loop = (
                timeit(lambda z=z, y=labels: naive_batch_hard(z.detach().cpu(), y.cpu()), 1)
                if (key == "batch_hard" and b <= 512)
                else None
            )
            row = {
                "what": name,
                "batch": b,
                "ours_ms": 1e3 * ours,
                "pml_ms": ref and 1e3 * ref,
                "loop_ms": loop and 1e3 * loop,
            }
            rows.append(row)
            print(
                f"{name:<30}{b:>6}{1e3 * ours:>10.2f}"
                + (
                    f"{1e3 * ref:>9.2f}{ref / ours:>9.1f}"
                    if ref
                    else f"{'OOM':>9}{'-':>9}"
                    if key in pml
                    else f"{'-':>9}{'-':>9}"
                )
                + (f"{1e3 * loop:>9.1f}{loop / ours:>10.0f}" if loop else f"{'-':>9}{'-':>10}")
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_info(), "device": str(device), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
