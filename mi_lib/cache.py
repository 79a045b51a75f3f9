"""Results cache: experiment results keyed by a hash of the whole configuration and the code.

``cached(fn, config, cache_dir)`` returns ``fn(config)``'s results, computing them only
when no entry for ``(config, code version)`` exists. The code version is a hash of every
``.py`` file of the installed ``mi_lib``, so any code change recomputes. Writes are
atomic (a temporary file in the same folder, then ``os.replace``): an interrupted run
keeps every entry already finished and never leaves a half-written file that is later
read as valid. Results are flat-or-nested dicts of numpy arrays, numbers and strings.

Each entry carries its key and a hash of its configuration, inside the ``.npz`` and in the
``.json`` sidecar, and both are checked on every read: an entry that cannot be read or that
belongs to another configuration is logged (logger ``mi_lib.cache``) and recomputed, and the
old file stays until the new one is written. Results that cannot be saved (a read-only cache
folder, a full disk) are returned from memory with a warning instead of being lost.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE_DIR = Path(os.environ.get("MI_LIB_CACHE", Path.cwd() / "results_cache"))

log = logging.getLogger(__name__)

# the entry's own description, stored beside the results in the .npz
_META = "__cache__"


# Plotting code never changes a cached number (figures are drawn from the cached results), so
# editing it does not make every experiment run again.
_NOT_HASHED = ("figures",)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 (first 16 hex digits) of the text of mi_lib's modules, the plotting package aside."""
    return hash_source_tree(Path(__file__).resolve().parent)


def hash_source_tree(root: Path) -> str:
    """sha256 (first 16 hex digits) of the paths and text of the ``.py`` files under ``root``, minus ``_NOT_HASHED``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in _NOT_HASHED:
            continue
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass (or dict) as a JSON-able dict, with its class name."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        d = dataclasses.asdict(config)
        d["__class__"] = type(config).__qualname__
        return d
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"config must be a dataclass or a dict, got {type(config).__name__}")


def config_key(config: Any, version: str | None = None) -> str:
    """Hash of the configuration and the code version (24 hex digits)."""
    payload = json.dumps(
        {"config": config_to_dict(config), "code": version or code_version()}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def config_hash(config: Any) -> str:
    """sha256 of the configuration alone, stored in each entry so that a file copied under another key is caught."""
    payload = json.dumps(config_to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in d.items():
        if "/" in str(k):
            raise ValueError(f"result keys may not contain '/': {k!r}")
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = np.asarray(v)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        parts = key.split("/")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v.item() if v.ndim == 0 else v
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    The temporary file is created with mode 0o666 so that the umask applies, as for a plain ``open``
    (``tempfile.mkstemp`` would leave every file 0600, unreadable to a web server serving the book).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _encode(results: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    arrays: dict[str, Any] = _flatten(results)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _decode(source: Any) -> dict[str, Any]:
    with np.load(source, allow_pickle=False) as z:
        return _unflatten({k: z[k] for k in z.files})


def save_results(path: Path, results: dict[str, Any]) -> None:
    """Save a results dict as ``.npz``, atomically."""
    atomic_write_bytes(Path(path), _encode(results))


def load_results(path: Path) -> dict[str, Any]:
    """Load what :func:`save_results` wrote."""
    return _decode(path)


def save_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (numpy values converted)."""

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return str(o)

    atomic_write_bytes(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=default).encode())


def _read_entry(path: Path, key: str, chash: str, description: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's results if it is readable and was written for ``key`` and this config; else ``None``, logged."""
    if not path.exists():
        return None
    then = "recomputing it; the old file stays until the new results are written"
    try:
        results = _decode(path)
    except Exception as e:  # noqa: BLE001 (truncated, empty, random bytes, another numpy's format)
        log.warning("cache entry %s is unreadable (%s: %s); %s", path, type(e).__name__, e, then)
        return None
    meta = results.pop(_META, None)
    if not isinstance(meta, dict) or (meta.get("key"), meta.get("config_hash")) != (key, chash):
        stored = meta.get("key") if isinstance(meta, dict) else "none"
        log.warning(
            "cache entry %s was not written for this configuration (stored key %s, expected %s); %s",
            path,
            stored,
            key,
            then,
        )
        return None
    sidecar = path.with_suffix(".json")
    try:
        described = json.loads(sidecar.read_text())
        ok = (described.get("key"), described.get("config_hash")) == (key, chash)
    except (OSError, ValueError, AttributeError) as e:
        described, ok = None, False
        if sidecar.exists():
            log.warning("cache sidecar %s is unreadable (%s); rewriting it from the checked entry", sidecar, e)
    if described is not None and not ok:
        log.warning("cache sidecar %s describes another configuration; rewriting it from the checked entry", sidecar)
    if not ok:
        try:
            save_json(sidecar, description)
        except OSError as e:  # a read-only cache still serves its entries
            log.debug("could not rewrite %s: %s", sidecar, e)
    return results


def cached(
    fn: Callable[[Any], dict[str, Any]],
    config: Any,
    cache_dir: Path | None = None,
    force: bool = False,
    name: str | None = None,
) -> dict[str, Any]:
    """Return ``fn(config)``, from ``cache_dir`` when this config and code were run before.

    ``force=True`` recomputes and overwrites. The entry is ``<name>-<key>.npz`` beside a
    ``.json`` copy of the configuration, both written atomically after ``fn`` returns, so the
    old entry survives until the new one replaces it. A save that fails is logged and the
    results are returned from memory (as they would have been read back).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    name = name or getattr(fn, "__name__", "results")
    key = config_key(config)
    chash = config_hash(config)
    path = cache_dir / f"{name}-{key}.npz"
    description = {"key": key, "config_hash": chash, "code_version": code_version(), "config": config_to_dict(config)}
    if not force:
        hit = _read_entry(path, key, chash, description)
        if hit is not None:
            return hit
    elif path.exists():
        log.info("force: recomputing %s; the old entry stays until the new results are written", path)
    results = fn(config)
    if _META in results:
        raise ValueError(f"result key {_META!r} is reserved for the cache")
    data = _encode({**results, _META: {"key": key, "config_hash": chash}})
    fresh = _decode(io.BytesIO(data))
    fresh.pop(_META)
    try:
        atomic_write_bytes(path, data)
        save_json(path.with_suffix(".json"), description)
    except OSError as e:
        log.warning(
            "could not save cache entry %s (%s); the results are kept in memory for this run only "
            "and will be recomputed next time",
            path,
            e,
        )
    return fresh
