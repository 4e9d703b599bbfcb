"""Quality of the embeddings for a fixed training-time budget.

1-NN accuracy of test queries against the training set and MAP@R on the test set, for the
course's default network (SmallCNN, 64-d) with each loss, miner and angular head at its
recommended settings, every configuration trained for the same wall-clock budget
(default 60 s), over several seeds (``--seeds``, default 3; 2 with ``--quick``): the table
gives mean ± sd over the seeds, and a difference smaller than the sd is noise. On a GPU with
the full data this is the course's quality goal (MNIST >= 0.995, Fashion-MNIST >= 0.94 1-NN
accuracy within 60 s); on a CPU the mini set is used. The floors (raw-pixel Euclidean 1-NN on
the full data) are printed beside.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import evaluate, load_pair
from machine import describe, machine_info

from dmlcourse import heads, losses, miners, models, runtime, train
from dmlcourse.core.paths import default_size

FLOORS = {"mnist": 0.9691, "fashion-mnist": 0.8567}


def configs():
    """name -> (normalize the embedding, loss factory, samples per class, distance for
    evaluation)."""
    return {
        "NCA (default)": (False, lambda: losses.nca_loss, 16, "euclidean"),
        "triplet + semi-hard": (
            True,
            lambda: miners.MinedTripletLoss("batch_semi_hard", 0.2),
            16,
            "euclidean",
        ),
        "triplet + distance-weighted": (
            True,
            lambda: miners.MinedTripletLoss("distance_weighted", 0.2),
            16,
            "euclidean",
        ),
        "triplet + batch-hard": (
            True,
            lambda: miners.MinedTripletLoss("batch_hard", 0.2),
            16,
            "euclidean",
        ),
        "triplet + easy-positive (eq. 18)": (
            True,
            lambda: miners.MinedTripletLoss("easy_positive", 0.2),
            16,
            "euclidean",
        ),
        "easy-positive softmax (eq. 19)": (
            True,
            lambda: miners.MinedTripletLoss("easy_positive", loss="easy_positive_softmax"),
            16,
            "euclidean",
        ),
        "triplet + Bayesian updating": (
            True,
            lambda: miners.MinedTripletLoss("bayesian_updating", 0.2),
            16,
            "euclidean",
        ),
        "softmax head": (False, lambda: heads.HeadLoss(heads.SoftmaxHead(64, 10)), None, "cosine"),
        "CosFace (s=30, m=0.35)": (
            False,
            lambda: heads.HeadLoss(heads.CosFaceHead(64, 10)),
            None,
            "cosine",
        ),
        "ArcFace (s=30, m=0.5)": (
            False,
            lambda: heads.HeadLoss(heads.ArcFaceHead(64, 10)),
            None,
            "cosine",
        ),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per configuration")
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    ap.add_argument("--seeds", type=int, default=None, help="seeds per configuration (3; quick 2)")
    ap.add_argument(
        "--configs",
        nargs="+",
        help='configurations to run, by name (e.g. "NCA (default)"); default: all (quick: two)',
    )
    args = ap.parse_args()
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
    if seeds < 1:
        ap.error(f"--seeds must be >= 1, got {seeds}")
    device = runtime.get_device(verbose=False)
    size = default_size(device, download=False)
    budget = 2.0 if args.quick else args.budget
    chosen = configs()
    if args.configs:
        unknown = [c for c in args.configs if c not in chosen]
        if unknown:
            ap.error(f"--configs: unknown {unknown}; known: {list(chosen)}")
        chosen = {k: chosen[k] for k in args.configs}
    elif args.quick:
        chosen = {k: chosen[k] for k in ("NCA (default)", "ArcFace (s=30, m=0.5)")}
    if args.quick:
        args.datasets = args.datasets[:1]
    print(
        f"quality after {budget:.0f} s of training on {device}, {size} data, {seeds} seed(s), "
        f"mean ± sd -- {describe()}"
    )
    rows = []
    for dataset in args.datasets:
        x, y, xt, yt = load_pair(dataset, size, args.quick)
        raw = evaluate(torch.nn.Flatten(), x, y, xt, yt, None, "cpu")
        print(
            f"\n{dataset}: {len(x)} train / {len(xt)} test images; raw pixels 1-NN "
            f"{raw['nn1_acc']:.4f} "
            f"(floor on the full data {FLOORS[dataset]})"
        )
        print(f"{'configuration':<34}{'1-NN acc':>17}{'MAP@R':>15}{'epochs':>8}{'steps':>7}")
        for name, (normalize, make_loss, k, dist) in chosen.items():
            per_seed = []
            for seed in range(seeds):
                runtime.seed_everything(seed)
                model = models.SmallCNN(64, normalize=normalize)
                t0 = time.perf_counter()
                h = train.train(
                    model,
                    make_loss(),
                    x,
                    y,
                    epochs=10_000,
                    batch_size=128,
                    samples_per_class=k,
                    lr=2e-3,
                    name=dataset,
                    device=device,
                    seed=seed,
                    progress=False,
                    should_stop=lambda t0=t0: time.perf_counter() - t0 > budget,
                )
                r = evaluate(model, x, y, xt, yt, dataset, device, dist)
                steps = len(h.step_loss)
                per_seed.append({"seed": seed, "steps": steps, **r})
                rows.append(
                    {
                        "dataset": dataset,
                        "configuration": name,
                        "size": size,
                        "budget_s": budget,
                        **per_seed[-1],
                    }
                )

            def ms(key, per_seed=per_seed):
                v = [r[key] for r in per_seed]
                return statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0

            (acc, acc_sd), (mr, mr_sd) = ms("nn1_acc"), ms("map_at_r")
            steps = statistics.mean(r["steps"] for r in per_seed)
            print(
                f"{name:<34}{acc:>9.4f} ± {acc_sd:.4f}{mr:>8.3f} ± {mr_sd:.3f}"
                f"{steps * 128 / len(x):>8.1f}{steps:>7.0f}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_info(), "device": str(device), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
