r"""The results archive: paper-scale numbers committed with the repository, with their provenance.

``results/<notebook>/<profile>/`` holds what a figure is drawn from, computed once on the hardware
it needs (a GPU, or a CPU in the background), so that the book shows the paper-scale figure
without recomputing it. Unlike :mod:`mi_lib.cache`, whose keys include the code version (any edit
recomputes), an archive entry is keyed by its configuration alone and *records* the code version
it was computed with; whether today's code still gives the same numbers is what a cheap
recomputation of one slice checks, not a hash.

An entry is a compressed ``.npz`` of the results (``mi_lib.cache``'s nested-dict layout) beside a
``.json`` of its provenance: profile, full configuration, its hash, code version (git commit and
a hash of ``mi_lib``'s sources), device name, torch version, wall seconds and date. Long runs are
archived as chunks (``<name>/chunks/``), each its own entry, so that an interrupted run keeps
every chunk it finished.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .cache import code_version, config_to_dict, load_results, save_json, save_results

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE_DIR = ROOT / "results"


def config_hash(config: Any) -> str:
    """sha256 (first 16 hex digits) of the configuration alone, code version aside."""
    payload = json.dumps(config_to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def git_commit(root: Path = ROOT) -> str:
    """The checkout's commit (with ``+dirty`` when tracked files under ``mi_lib`` differ from it), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "mi_lib"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def device_name(device: torch.device) -> str:
    """A readable name of the device the numbers were computed on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"{platform.processor() or platform.machine()} CPU ({n} torch thread{'' if n == 1 else 's'})"


def provenance(
    profile: str, config: Any, device: torch.device, seconds: float, extra: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """What an archive entry records about how it was computed."""
    out = {
        "profile": profile,
        "config": config_to_dict(config),
        "config_hash": config_hash(config),
        "git_commit": git_commit(),
        "code_version": code_version(),
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seconds": float(seconds),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    out.update(extra or {})
    return out


def entry_path(notebook: str, profile: str, name: str, root: Path = ARCHIVE_DIR) -> Path:
    """``results/<notebook>/<profile>/<name>.npz``."""
    if not notebook or not profile or not name or any("/" in s or ".." in s for s in (notebook, profile)):
        raise ValueError(f"bad archive entry name: {notebook!r}/{profile!r}/{name!r}")
    return Path(root) / notebook / profile / f"{name}.npz"


def save_entry(path: Path, results: Dict[str, Any], prov: Dict[str, Any]) -> None:
    """Write an entry (results ``.npz`` first, then its ``.json``: an entry without a ``.json`` is unfinished)."""
    save_results(Path(path), results)
    save_json(Path(path).with_suffix(".json"), prov)


def load_entry(path: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(results, provenance)`` of a finished entry; ``FileNotFoundError`` if it is missing or unfinished."""
    path = Path(path)
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        raise FileNotFoundError(f"no archive entry at {path}")
    return load_results(path), json.loads(meta.read_text())


def has_entry(path: Path, config: Any) -> bool:
    """Whether a finished entry for exactly ``config`` is at ``path``."""
    try:
        _, prov = load_entry(path)
    except (FileNotFoundError, ValueError, OSError):
        return False
    return prov.get("config_hash") == config_hash(config)


def as_float32(a: np.ndarray) -> np.ndarray:
    """Curves are archived in float32: far below the runs' own noise, half the bytes of float64."""
    return np.asarray(a, dtype=np.float32)
