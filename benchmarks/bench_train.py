"""Training throughput of the course's default CNN: images per second and seconds per epoch.

Compares, side by side in one run (ratios, since absolute times drift on shared machines):
the default float32 step, channels-last, bfloat16 autocast (CUDA) and larger batches.

``--loop`` times a step of the package's own loop, ``train.train`` (fit_epoch with the
TrainingMonitor's checks: a non-finite loss, embeddings or weights), for the Lab's two networks
with the triplet loss and the semi-hard miner, on one thread as the Lab trains. The per-step
time is the difference of two runs of different lengths divided by the extra steps, so the
set-up (loader, seeding) cancels. Run it against two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from machine import describe, machine_info

from dmlcourse import data, losses, models, runtime

ROOT = Path(__file__).resolve().parents[1]


def time_steps(
    device, images, labels, *, batch_size, steps, channels_last=False, amp=False, warmup=3
):
    runtime.seed_everything(0)
    model = models.SmallCNN(64).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = data.DeviceLoader(
        images,
        labels,
        batch_size=batch_size,
        device=device,
        name="mnist",
        drop_last=True,
        sampler=data.ClassBalancedBatchSampler(labels, 8, batch_size // 8, seed=0),
    )
    it = iter(loader)

    def step():
        nonlocal it
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            z = model(x)
        loss = losses.nca_loss(z.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    ips = steps * batch_size / dt
    return {"images_per_s": ips, "s_per_epoch_full_mnist": 60_000 / ips}


def loop_step_ms(network: str, steps: tuple, repeats: int) -> float:
    """The per-step time (ms) of ``train.train`` on CPU: the fastest of ``repeats`` (a shared
    machine only ever adds time, so the minimum is the least noisy estimate)."""
    from dmlcourse import miners, train

    split = data.load("mnist", "train", "mini")
    times = []
    for r in range(repeats + 1):  # the first repeat warms torch up and is not counted
        per_run = []
        for n in steps:
            runtime.seed_everything(0)
            if network == "cnn":
                model = models.SmallCNN(32, normalize=True)
            else:
                model = models.MLP(32, hidden=(256,), normalize=True)
            loss = miners.MinedTripletLoss("batch_semi_hard", 0.2)
            t0 = time.perf_counter()
            train.train(
                model,
                loss,
                split.images,
                split.labels,
                epochs=1,
                batch_size=128,
                samples_per_class=16,
                name="mnist",
                progress=False,
                device="cpu",
                max_steps=n,
            )
            per_run.append(time.perf_counter() - t0)
        if r:
            times.append((per_run[1] - per_run[0]) / (steps[1] - steps[0]) * 1e3)
    return min(times)


def main_loop(args) -> None:
    torch.set_num_threads(1)
    rows = []
    for network, steps in (("mlp", (10, 70)), ("cnn", (3, 13))):
        ms = loop_step_ms(network, steps, 1 if args.quick else (9 if network == "mlp" else 5))
        rows.append({"network": network, "ms_per_step": ms})
        print(f"train.train step, {network}, triplet + semi-hard, batch 128, 1 thread: {ms:.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--loop", action="store_true", help="time train.train's step (see above)")
    ap.add_argument("--json")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    if args.loop:
        return main_loop(args)
    device = runtime.get_device(args.device, verbose=False)
    split = data.load("mnist", "train", "mini")
    steps = 3 if args.quick else (200 if device.type == "cuda" else 20)
    configs = [
        ("float32, batch 128", dict(batch_size=128)),
        ("channels-last, batch 128", dict(batch_size=128, channels_last=True)),
        ("float32, batch 512", dict(batch_size=512)),
    ]
    if device.type == "cuda":
        configs += [
            ("bf16 autocast, batch 512", dict(batch_size=512, amp=True)),
            (
                "bf16 + channels-last, batch 1024",
                dict(batch_size=1024, amp=True, channels_last=True),
            ),
        ]
    if args.quick:
        configs = configs[:2]
    rows = []
    print(f"SmallCNN(64) + NCA training step on {device} -- {describe()}")
    print(f"{'configuration':<34}{'images/s':>10}{'s/epoch (60k)':>15}{'ratio':>8}")
    base = None
    for label, cfg in configs:
        r = time_steps(device, split.images, split.labels, steps=steps, **cfg)
        base = base or r["images_per_s"]
        r["ratio_to_first"] = r["images_per_s"] / base
        rows.append({"configuration": label, **r})
        print(
            f"{label:<34}{r['images_per_s']:>10.0f}{r['s_per_epoch_full_mnist']:>15.2f}{r['ratio_to_first']:>8.2f}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_info(), "device": str(device), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
