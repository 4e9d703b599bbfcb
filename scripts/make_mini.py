"""Build the bundled mini datasets in dmlcourse/datasets/mini/ from the full official files.

    python scripts/make_mini.py [--source DIR]

DIR holds mnist/ and fashion-mnist/ with the four official .gz files each
(default: $DMLCOURSE_DATA_DIR, else ../shared/datasets). The subset is
class-balanced and reproducible: for every class, the first TRAIN_PER_CLASS
(test: TEST_PER_CLASS) images of a fixed seeded permutation, kept in their
original order. Output files are IDX, gzip-compressed with mtime 0, so the
same input always gives byte-identical output.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
from pathlib import Path

import numpy as np

from dmlcourse.data import DATASETS, FILES, MINI_DIR, read_idx

ROOT = Path(__file__).resolve().parent.parent

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SEED = 20231


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    default = os.environ.get("DMLCOURSE_DATA_DIR") or str(ROOT.parent / "shared" / "datasets")
    ap.add_argument("--source", default=default)
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    for name in DATASETS:
        out = MINI_DIR / name
        out.mkdir(parents=True, exist_ok=True)
        for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
            img_f, lab_f = FILES[split]
            images = read_idx(Path(args.source) / name / img_f)
            labels = read_idx(Path(args.source) / name / lab_f)
            keep = []
            for c in range(10):
                idx = np.flatnonzero(labels == c)
                keep.append(np.sort(rng.permutation(idx)[:per_class]))
            keep = np.sort(np.concatenate(keep))
            write_idx(out / img_f, images[keep])
            write_idx(out / lab_f, labels[keep])
            print(f"{name} {split}: {len(keep)} images -> {out}")


if __name__ == "__main__":
    main()
