"""Results cache: experiment results keyed by a hash of the whole configuration and the code.

``cached(fn, config, cache_dir)`` returns ``fn(config)``'s results, computing them only
when no entry for ``(config, code version)`` exists. The code version is a hash of every
``.py`` file of the installed ``mi_lib``, so any code change recomputes. Writes are
atomic (a temporary file in the same folder, then ``os.replace``): an interrupted run
keeps every entry already finished and never leaves a half-written file that is later
read as valid. Results are flat-or-nested dicts of numpy arrays, numbers and strings.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

DEFAULT_CACHE_DIR = Path(os.environ.get("MI_LIB_CACHE", Path.cwd() / "results_cache"))


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


def config_to_dict(config: Any) -> Dict[str, Any]:
    """A dataclass (or dict) as a JSON-able dict, with its class name."""
    if dataclasses.is_dataclass(config):
        d = dataclasses.asdict(config)
        d["__class__"] = type(config).__qualname__
        return d
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"config must be a dataclass or a dict, got {type(config).__name__}")


def config_key(config: Any, version: Optional[str] = None) -> str:
    """Hash of the configuration and the code version (24 hex digits)."""
    payload = json.dumps({"config": config_to_dict(config), "code": version or code_version()},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, np.ndarray]:
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


def _unflatten(flat: Dict[str, np.ndarray]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, v in flat.items():
        parts = key.split("/")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v.item() if v.ndim == 0 else v
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def save_results(path: Path, results: Dict[str, Any]) -> None:
    """Save a results dict as ``.npz``, atomically."""
    import io
    buf = io.BytesIO()
    np.savez_compressed(buf, **_flatten(results))
    atomic_write_bytes(Path(path), buf.getvalue())


def load_results(path: Path) -> Dict[str, Any]:
    """Load what :func:`save_results` wrote."""
    with np.load(path, allow_pickle=False) as z:
        return _unflatten({k: z[k] for k in z.files})


def save_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (numpy values converted)."""
    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        return str(o)
    atomic_write_bytes(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=default).encode())


def cached(fn: Callable[[Any], Dict[str, Any]], config: Any, cache_dir: Optional[Path] = None,
           force: bool = False, name: Optional[str] = None) -> Dict[str, Any]:
    """Return ``fn(config)``, from ``cache_dir`` when this config and code were run before.

    ``force=True`` recomputes and overwrites. The entry is ``<name>-<key>.npz`` beside a
    ``.json`` copy of the configuration, both written atomically after ``fn`` returns.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    name = name or getattr(fn, "__name__", "results")
    key = config_key(config)
    path = cache_dir / f"{name}-{key}.npz"
    if path.exists() and not force:
        try:
            return load_results(path)
        except Exception:  # unreadable entry (e.g. written by another numpy): recompute
            pass
    results = fn(config)
    save_results(path, results)
    save_json(path.with_suffix(".json"), {"config": config_to_dict(config), "code_version": code_version()})
    return load_results(path)
