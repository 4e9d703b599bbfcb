import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlcourse import data


def test_load_mini_train_offline():
    images, labels, classes = data.load("mnist", "train", "mini")
    assert images.dtype == torch.uint8 and images.shape[1:] == (28, 28)
    assert labels.dtype == torch.int64 and len(labels) == len(images)
    counts = torch.bincount(labels, minlength=10)
    assert torch.all(counts == counts[0]) and counts[0] >= 500  # class-balanced
    assert classes == tuple(str(i) for i in range(10))


def test_mini_is_a_subset_of_the_official_test_split(full_data_dir):
    mini = data.load("fashion-mnist", "test", "mini")
    full = data.load("fashion-mnist", "test", "full")
    assert mini.classes[0] == "T-shirt/top"
    # every mini image appears in the full split with the same label
    full_keys = {
        bytes(img.numpy().tobytes()): int(lab) for img, lab in zip(full.images, full.labels)
    }
    for img, lab in zip(mini.images[::97], mini.labels[::97]):
        assert full_keys[bytes(img.numpy().tobytes())] == int(lab)


def test_load_full_test_offline(full_data_dir):
    images, labels, _ = data.load("fashion-mnist", "test", "full")
    assert images.shape == (10_000, 28, 28)
    assert torch.all(torch.bincount(labels) == 1000)
    images, labels, _ = data.load("mnist", "train", "full")
    assert images.shape == (60_000, 28, 28)
    assert torch.bincount(labels)[0].item() == 5923  # published count of zeros
    assert abs(images.float().mean().item() / 255 - 0.1307) < 1e-3


def test_returned_tensors_are_independent_copies():
    a = data.load("mnist", "test", "mini")
    a.images[0, 0, 0] = 123
    b = data.load("mnist", "test", "mini")
    assert b.images[0, 0, 0] != 123 or a.images.data_ptr() != b.images.data_ptr()


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(name="cifar10"), "name='cifar10'"),
        (dict(name="mnist", split="val"), "split='val'"),
        (dict(name="mnist", size="huge"), "size='huge'"),
    ],
)
def test_bad_arguments_name_the_parameter(kw, msg):
    with pytest.raises(ValueError, match=msg):
        data.load(**kw)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_split(folder: Path, n=20, corrupt=None):
    folder.mkdir(parents=True, exist_ok=True)
    imgs = np.random.default_rng(0).integers(0, 255, (n, 28, 28))
    labs = np.arange(n) % 10
    raw_i, raw_l = _idx_bytes(imgs), _idx_bytes(labs)
    if corrupt == "truncated":
        raw_i = raw_i[:-100]
    if corrupt == "magic":
        raw_i = b"\x00\x00\x09\x03" + raw_i[4:]
    if corrupt == "label_range":
        raw_l = raw_l[:-1] + b"\x0c"
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw_i))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw_l))


@pytest.mark.parametrize(
    "corrupt, msg",
    [
        ("truncated", "truncated or corrupt"),
        ("magic", "bad IDX magic"),
        ("label_range", "out of range"),
    ],
)
def test_corrupt_files_give_a_clear_error(tmp_path, monkeypatch, corrupt, msg):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    _write_split(tmp_path / "mnist", corrupt=corrupt)
    with pytest.raises(data.DataError, match=msg) as err:
        data.load("mnist", "test", "full", download=False)
    assert "t10k-" in str(err.value)


def test_wrong_count_and_truncated_gzip(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    _write_split(tmp_path / "mnist", n=20)
    with pytest.raises(data.DataError, match="expected 10000"):
        data.load("mnist", "test", "full", download=False)
    f = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(data.DataError, match="t10k-images"):
        data.load("mnist", "test", "full", download=False)


# ---------------------------------------------------------------- downloads from a local server


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}

    def do_GET(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        body = self.files.get(self.path.split("/")[1], {}).get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/drop/"):
            self.wfile.write(body[: len(body) // 2])  # then the connection closes
            self.wfile.flush()
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _official_like(n=10_000):
    imgs = np.random.default_rng(1).integers(0, 255, (n, 28, 28))
    labs = np.arange(n) % 10
    return {
        "t10k-images-idx3-ubyte.gz": gzip.compress(_idx_bytes(imgs), mtime=0),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(_idx_bytes(labs), mtime=0),
    }


def _setup_mirror(monkeypatch, server, files, route):
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    _Handler.files = {
        "good": files,
        "drop": files,
        "bad": {k: v[:-1] + b"x" for k, v in files.items()},
    }
    port = server.server_address[1]
    monkeypatch.setitem(data.MIRRORS, "mnist", [f"http://127.0.0.1:{port}/{r}/" for r in route])
    monkeypatch.setitem(data.OFFICIAL_MD5, "mnist", {**data.OFFICIAL_MD5["mnist"], **md5})


def test_download_verifies_and_writes_atomically(tmp_path, monkeypatch, server):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    files = _official_like()
    _setup_mirror(monkeypatch, server, files, ["good"])
    images, labels, _ = data.load("mnist", "test", "full")
    assert images.shape == (10_000, 28, 28)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        files
    )  # no temp files left


def test_bad_checksum_then_good_mirror(tmp_path, monkeypatch, server):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    _setup_mirror(monkeypatch, server, _official_like(), ["bad", "good"])
    assert len(data.load("mnist", "test", "full").labels) == 10_000


@pytest.mark.parametrize(
    "route, msg", [(["bad"], "does not match the official"), (["drop"], "drop")]
)
def test_failed_download_leaves_nothing_and_explains(tmp_path, monkeypatch, server, route, msg):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    _setup_mirror(monkeypatch, server, _official_like(), route)
    with pytest.raises(data.DataError) as err:
        data.load("mnist", "test", "full")
    text = str(err.value)
    assert msg in text and "size='mini' works offline" in text and str(tmp_path / "mnist") in text
    assert not any((tmp_path / "mnist").iterdir())  # no partial file that looks complete


def test_offline_error_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLCOURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(data.MIRRORS, "mnist", ["http://127.0.0.1:9/"])  # nothing listens on port 9
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.gz.*t10k-labels"):
        data.load("mnist", "test", "full")


# ---------------------------------------------------------------- sampler and loader


@pytest.mark.parametrize("P, K", [(4, 8), (10, 5), (3, 7)])
def test_class_balanced_sampler_covers_every_sample(P, K):
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (997,), generator=gen)
    sampler = data.ClassBalancedBatchSampler(labels, P, K, seed=3)
    seen = torch.zeros(len(labels), dtype=torch.long)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for b in batches:
        assert len(b) == P * K
        classes, counts = torch.unique(labels[b], return_counts=True)
        assert len(classes) == P and torch.all(counts == K)
        seen += torch.bincount(b, minlength=len(labels))
    assert torch.all(seen >= 1)  # every training sample at least once per epoch
    # deterministic per (seed, epoch), different across epochs
    again = data.ClassBalancedBatchSampler(labels, P, K, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(batches, list(again)))
    assert not all(torch.equal(x, y) for x, y in zip(batches, list(sampler)))


def test_sampler_bad_input():
    labels = torch.arange(20) % 4
    with pytest.raises(ValueError, match="classes_per_batch=5"):
        data.ClassBalancedBatchSampler(labels, 5, 2)
    with pytest.raises(ValueError, match="samples_per_class must be >= 1"):
        data.ClassBalancedBatchSampler(labels, 2, 0)


def test_device_loader_batches_all_data_once():
    images = torch.randint(0, 255, (103, 28, 28), dtype=torch.uint8)
    labels = torch.arange(103) % 10
    loader = data.DeviceLoader(images, labels, batch_size=10, name="mnist", seed=1)
    xs, ys = zip(*loader)
    assert len(xs) == len(loader) == 11 and xs[0].shape == (10, 1, 28, 28)
    assert torch.equal(torch.sort(torch.cat(ys)).values, torch.sort(labels).values)
    assert (
        abs(torch.cat(xs).mean().item() - ((images.float() / 255 - 0.1307) / 0.3081).mean().item())
        < 1e-5
    )
    with pytest.raises(ValueError, match="images is empty"):
        data.DeviceLoader(images[:0], labels[:0])
