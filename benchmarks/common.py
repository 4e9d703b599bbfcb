"""Shared pieces of the benchmarks: data for a benchmark run and the evaluation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmlcourse import data, metrics, models  # noqa: E402


def full_data_available() -> bool:
    d = data.data_dir()
    return all((d / n / f).exists() for n in data.DATASETS for s in data.SPLITS for f in data.FILES[s])


def load_pair(dataset: str, size: str, quick: bool):
    """(train images, train labels, test images, test labels); quick mode takes small subsets."""
    tr, te = data.load(dataset, "train", size, download=False), data.load(dataset, "test", size, download=False)
    if quick:
        k, kt = data.balanced_subset(tr.labels, 100), data.balanced_subset(te.labels, 30)
        return tr.images[k], tr.labels[k], te.images[kt], te.labels[kt]
    return tr.images, tr.labels, te.images, te.labels


def evaluate(model, x_train, y_train, x_test, y_test, dataset, device, distance="euclidean") -> dict:
    """1-NN accuracy of test queries against the train set, and MAP@R within the test set."""
    z_tr = models.embed(model, x_train, name=dataset, device=device)
    z_te = models.embed(model, x_test, name=dataset, device=device)
    return {"nn1_acc": metrics.knn_accuracy(z_te, y_test, z_tr, y_train, k=1, distance=distance),
            "map_at_r": metrics.map_at_r(z_te, y_test, distance=distance)}


def default_size(device) -> str:
    env = os.environ.get("DMLCOURSE_SIZE")
    if env:
        return env
    return "full" if (torch.device(device).type == "cuda" and full_data_available()) else "mini"
