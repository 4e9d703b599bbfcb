"""The Embedding Lab's latencies: Train click to a playable animation, cached replay, UMAP's share.

    python benchmarks/bench_lab.py            # mini data, 1,000 probe points, 5 epochs (CPU); GPU:
    full, 2,000, 10
    python benchmarks/bench_lab.py --quick    # 200 probe points, 2 epochs, a small training set

Measures, each in its own fresh cache folder (so the first run really trains):
* the first UMAP call of a process (numba compiles; the lab does it in a background thread when it
opens);
* Train click -> every epoch's layout ready (synchronous lab), split into training, UMAP layouts,
metrics;
* the same click again in a new lab: the run comes from the disk cache;
* the three ways to align the epochs' pictures (chained UMAP, independent UMAP + Procrustes, PCA):
  seconds per snapshot, and how far points move in the picture between epochs and when the
  embedding did not change at all (mean displacement / mean distance to the centre);
* UMAP on precomputed distances (``plots.project_2d``'s default) against UMAP's own distances;
* seeds (1 and 3): Train click -> the first seed's first epoch shown, -> the last seed done, and
  the cached replay of the same seeds in a new lab (``--seeds-only`` runs just these rows).
The machine's load (``os.getloadavg``) is printed: on a shared machine the times are inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe, machine_info

from dmlcourse import lab, plots, runtime
from dmlcourse.core.paths import default_size

ROOT = Path(__file__).resolve().parents[1]



def new_lab(spec: dict, loss: str, **kw):
    """A synchronous Lab on MNIST with the benchmark's settings (``spec``), for one ``loss``."""
    return lab.EmbeddingLab(
        losses=[loss],
        dataset="mnist",
        size=spec["size"],
        epochs=spec["epochs"],
        network=spec["network"],
        train_per_class=spec["train_per_class"],
        probe_per_class=spec["probe_per_class"],
        background=False,
        warm_up=False,
        **kw,
    )

def first_umap_seconds() -> float:
    """The first UMAP call in a fresh Python process (numba's compile time included)."""
    code = (
        "import time; t = time.perf_counter(); from dmlcourse import lab; "
        "lab.warm_up_umap(background=False); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def relative_motion(a: np.ndarray, b: np.ndarray) -> float:
    """Mean displacement of the points between two layouts, in units of b's mean distance to its
    centre."""
    return float(
        np.linalg.norm(a - b, axis=1).mean() / np.linalg.norm(b - b.mean(0), axis=1).mean()
    )


def agreement_2d(xy: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-NN class accuracy in the picture (does the 2-D layout keep the classes
    apart?)."""
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def compare_alignments(snapshots, labels, loss: str) -> list:
    rows = []
    for method in ("chain", "procrustes", "pca"):
        t0 = time.perf_counter()
        layouts = lab.chain_layouts(snapshots, loss=loss, method=method)
        dt = time.perf_counter() - t0
        # the same embedding laid out again, starting from its own layout: should not move
        t1 = time.perf_counter()
        again = lab.next_layout(snapshots[-1], layouts[-1], loss=loss, method=method)
        dt_one = time.perf_counter() - t1
        steps = [relative_motion(layouts[i + 1], layouts[i]) for i in range(1, len(layouts) - 1)]
        rows.append(
            {
                "method": method,
                "seconds_all": dt,
                "seconds_per_snapshot": dt / len(layouts),
                "seconds_next": dt_one,
                "motion_unchanged": relative_motion(again, layouts[-1]),
                "motion_per_epoch": float(np.mean(steps)) if steps else float("nan"),
                "nn1_2d_final": agreement_2d(layouts[-1], labels),
            }
        )
    return rows


def seed_rows(spec: dict, counts=(1, 3)) -> list:
    """Click -> first epoch of the first seed, click -> last seed done, cached replay; per count of
    seeds, each in a fresh cache folder (so every seed really trains)."""
    rows = []
    print(
        f"{'seeds':<7}{'click->first epoch s':>22}{'(CPU s)':>9}{'click->last seed s':>20}"
        f"{'(CPU s)':>9}{'replay s':>10}{'P@1 mean':>10}{'sd':>7}"
    )
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["DMLCOURSE_CACHE_DIR"] = tmp
            boxes = []
            for _ in range(2):
                box = new_lab(spec, "triplet", seeds=n)
                t0 = time.perf_counter()
                box.train_button.click()
                box.timings["click_s"] = time.perf_counter() - t0
                boxes.append(box)
            first, again = boxes
            assert first.group.finished() == list(range(n)), first.status.value
            assert all(r.from_cache for r in again.group.runs.values())
            st = first.group.stats("precision_at_1")
            row = {
                "seeds": n,
                "click_to_first_epoch_s": first.timings["first_epoch"],
                "click_to_first_epoch_cpu_s": first.timings.get("first_epoch_cpu"),
                "click_to_last_seed_s": first.timings["done"],
                "click_to_last_seed_cpu_s": first.timings["done_cpu"],
                "replay_s": again.timings["click_s"],
                "precision_at_1_mean": st["mean"],
                "precision_at_1_sd": st["sd"],
            }
            rows.append(row)
            print(
                f"{n:<7}{row['click_to_first_epoch_s']:>22.2f}"
                f"{row['click_to_first_epoch_cpu_s']:>9.2f}{row['click_to_last_seed_s']:>20.2f}"
                f"{row['click_to_last_seed_cpu_s']:>9.2f}"
                f"{row['replay_s']:>10.3f}{st['mean']:>10.3f}{st['sd']:>7.3f}"
            )
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds-only", action="store_true", help="only the seeds rows")
    ap.add_argument("--json")
    args = ap.parse_args()
    device = runtime.get_device(verbose=False)
    gpu = device.type == "cuda"
    if args.quick:
        spec = dict(size="mini", epochs=2, probe_per_class=20, train_per_class=100, network="mlp")
    elif gpu:
        spec = dict(
            size=default_size(device, download=False),
            epochs=10,
            probe_per_class=200,
            train_per_class=None,
            network="cnn",
        )
    else:
        spec = dict(size="mini", epochs=5, probe_per_class=100, train_per_class=None, network="mlp")
    load = os.getloadavg()
    print(f"Embedding Lab latencies on {device} -- {describe()}")
    print(
        f"load average (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{spec['size']} data, {10 * spec['probe_per_class']} probe points, {spec['epochs']} "
        "epochs, "
        f"network {spec['network']}"
    )
    result = {"machine": machine_info(), "device": str(device), "load_average": load, "spec": spec}

    if (
        not args.quick and not args.seeds_only
    ):  # a second compile in a subprocess: too slow for CI's quick run
        result["first_umap_fresh_process_s"] = first_umap = first_umap_seconds()
        print(f"first UMAP call in a fresh process (numba compile): {first_umap:.1f} s")
    t0 = time.perf_counter()
    lab.warm_up_umap(background=False)
    result["warm_up_s"] = time.perf_counter() - t0
    print(f"warm-up (first UMAP call) in this process: {result['warm_up_s']:.1f} s")
    t0 = time.perf_counter()
    lab.warm_up_training(background=False)  # what the lab does in the background when it opens
    result["warm_up_training_s"] = time.perf_counter() - t0
    print(
        f"warm-up (torch's first optimizer) in this process: {result['warm_up_training_s']:.1f} s"
    )
    print(
        "\nseeds (the first seed is animated epoch by epoch, the others fill in the band; CPU s: "
        "the process's CPU time, which a busy machine does not inflate):"
    )
    result["seed_rows"] = seed_rows(spec)
    if args.seeds_only:
        load = os.getloadavg()
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        result["load_average_end"] = load
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, default=float))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DMLCOURSE_CACHE_DIR"] = tmp
        losses = (
            [("triplet", "batch_semi_hard"), ("triplet", "batch_hard")]
            if not args.quick
            else [("triplet", "batch_semi_hard")]
        )
        print(
            f"{'configuration':<28}{'click->ready s':>15}{'train s':>9}{'UMAP s':>8}"
            f"{'metrics s':>10}"
            f"{'replay s':>9}{'P@1':>7}{'MAP@R':>7}"
        )
        for loss, miner in losses:

            box = new_lab(spec, loss)  # the same Lab twice: trained, then replayed
            box.miner.value = miner
            t0 = time.perf_counter()
            box.train_button.click()
            click = time.perf_counter() - t0
            run = box.run
            assert run is not None and not run.interrupted, box.status.value
            again = new_lab(spec, loss)
            again.miner.value = miner
            t0 = time.perf_counter()
            again.train_button.click()
            replay = time.perf_counter() - t0
            assert again.run.from_cache
            s = run.seconds
            row = {
                "configuration": f"{loss} {miner}",
                "click_to_ready_s": click,
                "train_s": s["train"],
                "umap_s": s["layout"],
                "metrics_s": s["metrics"],
                "replay_s": replay,
                "umap_share": s["layout"] / click,
                "precision_at_1": run.metric("precision_at_1")[-1],
                "map_at_r": run.metric("map_at_r")[-1],
            }
            rows.append(row)
            print(
                f"{row['configuration']:<28}{click:>15.2f}{s['train']:>9.2f}{s['layout']:>8.2f}"
                f"{s['metrics']:>10.2f}{replay:>9.3f}{row['precision_at_1']:>7.3f}{row['map_at_r']:>7.3f}"
            )
    result["rows"] = rows

    print(f"\naligning the epochs' pictures (the snapshots of {rows[-1]['configuration']}):")
    align = compare_alignments(list(run.snapshots), run.probe_labels.numpy(), "triplet")
    print(
        f"{'method':<12}{'s total':>9}{'s/snapshot':>12}{'moved, same embedding':>23}"
        f"{'moved per epoch':>17}"
        f"{'2-D 1-NN, last':>16}"
    )
    for r in align:
        print(
            f"{r['method']:<12}{r['seconds_all']:>9.2f}{r['seconds_per_snapshot']:>12.2f}"
            f"{r['motion_unchanged']:>23.3f}{r['motion_per_epoch']:>17.3f}{r['nn1_2d_final']:>16.3f}"
        )
    print(
        "(moved = mean displacement / mean distance to the centre; an independent UMAP with the "
        "same seed "
        "reproduces an unchanged embedding exactly, so its 'same embedding' motion is 0 by "
        "construction)"
    )
    result["alignment"] = align

    z = run.snapshots[-1].numpy()
    t0 = time.perf_counter()
    plots.project_2d(z, n_epochs=200)
    t_pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    plots.project_2d(z, n_epochs=200, exact_distances=False)
    t_own = time.perf_counter() - t0
    print(
        f"\nUMAP of {len(z)} points, 200 epochs: precomputed distances {t_pre:.2f} s, "
        f"UMAP's own distances (exact_distances=False) {t_own:.2f} s"
    )
    result["umap_precomputed_s"], result["umap_project_2d_s"] = t_pre, t_own
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    result["load_average_end"] = load
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
