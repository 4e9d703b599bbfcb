"""Shared pieces of the benchmarks: data for a benchmark run and the evaluation."""

from __future__ import annotations

from dmlcourse import data, metrics, models


def load_pair(dataset: str, size: str, quick: bool):
    """(train images, train labels, test images, test labels); quick mode takes small subsets."""
    tr, te = (
        data.load(dataset, "train", size, download=False),
        data.load(dataset, "test", size, download=False),
    )
    if quick:
        k, kt = data.balanced_subset(tr.labels, 100), data.balanced_subset(te.labels, 30)
        return tr.images[k], tr.labels[k], te.images[kt], te.labels[kt]
    return tr.images, tr.labels, te.images, te.labels


def evaluate(
    model, x_train, y_train, x_test, y_test, dataset, device, distance="euclidean"
) -> dict:
    """1-NN accuracy of test queries against the train set, and MAP@R within the test set."""
    z_tr = models.embed(model, x_train, name=dataset, device=device)
    z_te = models.embed(model, x_test, name=dataset, device=device)
    return {
        "nn1_acc": metrics.knn_accuracy(z_te, y_test, z_tr, y_train, k=1, distance=distance),
        "map_at_r": metrics.map_at_r(z_te, y_test, distance=distance),
    }
