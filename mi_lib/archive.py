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

The pieces every archived figure shares are here too: the one-line provenance label
(:func:`provenance_label`), the figure's summary ``entry.json`` (:func:`write_entry`), the stale note
(:func:`stale_reasons`), the result of a ``--verify`` recomputation (:func:`verification`) and what
the book shows: the entry, checked first when the code changed since (:func:`checked`), drawn with
its provenance or replaced by a figure that says what is missing (:func:`archived_figure`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

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


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``), else what :mod:`platform` knows, else ``""``.

    Two CPUs can round the same float32 sums differently (other kernels, other blocking), and a long
    training run amplifies that, so the model is part of what an entry records."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor()


def device_name(device: torch.device) -> str:
    """A readable name of the device the numbers were computed on: ``AMD EPYC (x86_64 CPU, AVX2, 1 torch
    thread)``, with the instruction set torch's kernels use (it and the thread count change the rounding)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    how = f"{torch.backends.cpu.get_cpu_capability()}, {n} torch thread{'' if n == 1 else 's'}"
    model = cpu_model()
    return f"{model} ({platform.machine()} CPU, {how})" if model else f"{platform.machine()} CPU ({how})"


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


def matching_entry(path: Path, config: Any) -> Optional[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``load_entry(path)`` if a finished entry for exactly ``config`` is there, else ``None``."""
    try:
        entry = load_entry(path)
    except (FileNotFoundError, ValueError, OSError):
        return None
    return entry if entry[1].get("config_hash") == config_hash(config) else None


def has_entry(path: Path, config: Any) -> bool:
    """Whether a finished entry for exactly ``config`` is at ``path``."""
    return matching_entry(path, config) is not None


def as_float32(a: np.ndarray) -> np.ndarray:
    """Curves are archived in float32: far below the runs' own noise, half the bytes of float64."""
    return np.asarray(a, dtype=np.float32)


@dataclass(frozen=True)
class Piece:
    """One piece of a long run (a chunk, a cell) as the archive writes it: its file, the key its
    provenance is hashed from, extra provenance fields and how the progress line names it."""

    path: Path
    key: Any
    extra: Dict[str, Any]
    name: str


def archive_pieces(
    pieces: Sequence[Any],
    done: int,
    total: int,
    describe: Callable[[Any], Piece],
    compute: Callable[[Any], Dict[str, Any]],
    profile: str,
    device: torch.device,
    on_piece: Optional[Callable[[Path, int, int], None]] = None,
    progress: bool = True,
) -> List[Path]:
    """Compute each of ``pieces`` (``done`` of ``total`` are archived already) and write it as it finishes,
    with its provenance and wall seconds, so that an interrupted run keeps every finished piece.

    ``compute(piece)`` gives the results to store, ``describe(piece)`` where and under which key;
    ``on_piece(path, archived, total)`` runs after each (for example a git commit). Returns the new files.
    """
    written = []
    for n, piece in enumerate(pieces, 1):
        t0 = time.perf_counter()
        results = compute(piece)
        seconds = time.perf_counter() - t0
        d = describe(piece)
        d.path.parent.mkdir(parents=True, exist_ok=True)
        save_entry(d.path, results, provenance(profile, d.key, device, seconds, d.extra))
        written.append(d.path)
        if progress:
            print(
                f"[{time.strftime('%H:%M:%S')}] {d.name} in {seconds:.0f} s ({done + n}/{total} archived)", flush=True
            )
        if on_piece is not None:
            on_piece(d.path, done + n, total)
    return written


@dataclass
class Archived:
    """An archived figure's numbers with what the book says about them (``results`` is ``None`` when
    nothing is archived yet; ``label`` then says what is missing)."""

    results: Optional[Dict[str, Any]]
    label: str  # where, how and when it was computed
    stale: List[str]  # reasons the entry may no longer match the code or the config; empty: current


def provenance_label(head: str, provs: List[Dict[str, Any]]) -> str:
    """``<head>, computed on <device(s)> in <minutes> min, <date or date range>, commit <commit(s)>``:
    where, how long and when the entries whose provenance is ``provs`` were computed."""
    devices = sorted({p.get("device_name", "?") for p in provs})
    minutes = sum(float(p.get("seconds", 0.0)) for p in provs) / 60
    dates = sorted(p.get("date", "?")[:10] for p in provs) or ["?"]
    commits = sorted({p.get("git_commit", "?")[:7] for p in provs})
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    return f"{head}, computed on {' + '.join(devices)} in {minutes:.0f} min, {when}, commit {', '.join(commits)}"


def stale_reasons(provs: List[Dict[str, Any]], name: str, recompute: str = "recomputes a slice") -> List[str]:
    """``[reason]`` when any entry was computed by other code than today's (``[]`` otherwise); the reason
    names the ``reproduce --verify <name>`` step that checks whether the numbers still hold."""
    if all(p.get("code_version") == code_version() for p in provs):
        return []
    return [
        f"the code has changed since it was computed (`python -m mi_lib reproduce --verify {name}` "
        f"{recompute} and compares)"
    ]


def write_entry(
    path: Path,
    *,
    notebook: str,
    profile: str,
    config: Any,
    provs: List[Dict[str, Any]],
    parts: str,
    files: Path,
    label: str,
) -> Path:
    """Write a figure's ``entry.json``: the whole figure's provenance, gathered from its parts' (``parts``
    names them: ``chunks``, ``cells``), and the size of the folder ``files`` that holds them."""
    entry = {
        "notebook": notebook,
        "profile": profile,
        "config": config_to_dict(config),
        "config_hash": config_hash(config),
        parts: len(provs),
        "seconds": sum(float(p["seconds"]) for p in provs),
        "devices": sorted({p["device_name"] for p in provs}),
        "git_commits": sorted({p["git_commit"] for p in provs}),
        "torch": sorted({p["torch"] for p in provs}),
        "dates": sorted(p["date"] for p in provs),
        "bytes": sum(f.stat().st_size for f in Path(files).iterdir()),
        "label": label,
    }
    save_json(Path(path), entry)
    return Path(path)


def verification(
    what: str, max_diff: float, tolerance: float, unit: str = "", file: str = "", **extra: Any
) -> Dict[str, Any]:
    """What a ``--verify`` recomputation found: ``what`` it recomputed (for example "the first 300 steps
    of 5 runs"), from which archived ``file``, the largest difference from the archive (in ``unit``:
    ``nats``, ``relative``, or none) and whether it is within ``tolerance``."""
    return {
        "what": what,
        "file": file,
        "max_diff": float(max_diff),
        "unit": unit,
        "tolerance": float(tolerance),
        "identical": max_diff == 0.0,
        "passed": bool(max_diff <= tolerance),
        "threads": torch.get_num_threads(),
        **extra,
    }


# Step 0 of a training run (before any update: data, initialisation, model, objective) is one float32
# pass, which any CPU gives within rounding: 1e-6 relative seen between two CPUs and between ATen's
# AVX2 and plain kernels. The later steps are not comparable across CPUs: Adam's first update moves
# a weight by about the learning rate whatever the size of its gradient, so a gradient near zero whose
# sign rounds the other way moves the weight the other way, and training carries that on (Fig. 5: 1e-7
# at step 0, 1.5e-3 at step 1, 0.5 at step 50; Fig. 2's cubic task: 50 nats by step 300).
STEP0_RTOL = 1e-5


def _curve_diff(again: np.ndarray, old: np.ndarray, relative: bool = False) -> float:
    """Largest ``|again - old|`` (divided by ``max(1, |old|)`` when ``relative``) where both are finite;
    ``inf`` unless the non-finite values (a diverged run's NaN and inf) are the same in both."""
    bad_a, bad_o = ~np.isfinite(again), ~np.isfinite(old)
    if not (np.array_equal(bad_a, bad_o) and np.array_equal(again[bad_a], old[bad_o], equal_nan=True)):
        return math.inf
    diff = np.abs(again[~bad_a] - old[~bad_o])
    if relative:
        diff = diff / np.maximum(1.0, np.abs(old[~bad_o]))
    return float(np.max(diff, initial=0.0))


def trajectory_verification(
    what: str,
    again: Any,
    archived: Any,
    tolerance: float,
    unit: str = "",
    file: str = "",
    *,
    archived_on: str,
    recomputed_on: str,
    step0_rtol: float = STEP0_RTOL,
    **extra: Any,
) -> Dict[str, Any]:
    """:func:`verification` of recomputed training curves (steps on the last axis) against the archive's.

    Every step within ``tolerance``: the run is what the archive holds. On the device the archive was
    computed on (``archived_on``, its provenance's ``device_name``, equal to ``recomputed_on``) that is
    the whole check. On another CPU the runs part by rounding after the first update (see
    :data:`STEP0_RTOL`), so there step 0 within ``step0_rtol`` (relative, of at least 1) passes as a
    *partial* check (``"partial": True``, and ``what`` says so): the data, the initialisation and the
    objective are today's; the updates are not checked. A step 0 that differs fails either way.
    """
    again = np.asarray(again, dtype=np.float64)
    old = np.asarray(archived, dtype=np.float64)
    if again.shape != old.shape:
        raise ValueError(f"recomputed curves have shape {again.shape}, the archive's {old.shape}")
    diff = _curve_diff(again, old)
    extra.update(archived_on=archived_on, recomputed_on=recomputed_on)
    if diff > tolerance and archived_on != recomputed_on:
        d0 = _curve_diff(again[..., 0], old[..., 0], relative=True)
        if d0 <= step0_rtol:
            later = (
                "have NaN or inf at other places"
                if diff == math.inf
                else f"differ by up to {_in_unit(diff, unit, '.2g')}"
            )
            return verification(
                f"step 0 of {what} (the later steps {later}, as they do between CPUs that round "
                f"differently: this is {recomputed_on}, the archive's was {archived_on}; so only the data, the "
                "initialisation and the objective are checked)",
                d0,
                step0_rtol,
                "relative",
                file=file,
                partial=True,
                trajectory_diff=diff,
                **extra,
            )
    return verification(what, diff, tolerance, unit, file=file, partial=False, **extra)


def _in_unit(x: float, unit: str, fmt: str) -> str:
    return f"{x:{fmt}}" + (f" {unit}" if unit else "")


def verification_line(name: str, profile: str, check: Dict[str, Any]) -> str:
    """One line for the command line: what was recomputed, the difference, PASSED or FAILED."""
    how = "identical" if check["identical"] else f"tolerance {_in_unit(check['tolerance'], check['unit'], 'g')}"
    source = f" ({check['file']})" if check.get("file") else ""
    return (
        f"{name} ({profile}): {check['what']}{source} recomputed; max |diff| "
        f"{_in_unit(check['max_diff'], check['unit'], '.2e')} ({how}): {'PASSED' if check['passed'] else 'FAILED'}"
    )


def checked(
    load: Callable[[], Archived],
    missing: Callable[[], str],
    verify: Optional[Callable[[], Dict[str, Any]]] = None,
    not_archived: Union[Type[BaseException], Tuple[Type[BaseException], ...]] = FileNotFoundError,
) -> Archived:
    """The archived figure as the book shows it.

    ``load()`` gives the entry (raising ``not_archived`` when there is none: then the result has no
    results, ``missing()`` as its label and the stale reason "not archived"). When the entry is stale
    because the code changed, ``verify()`` (:func:`verification`'s dict; ``None``: do not) recomputes
    its slice with today's code: agreeing, the label says so and the entry is current; disagreeing, the
    stale reason says by how much.
    """
    try:
        got = load()
    except not_archived:
        return Archived(None, missing(), ["not archived"])
    if got.stale and verify is not None:
        check = verify()
        if check["passed"]:
            how = "identical" if check["identical"] else f"within {_in_unit(check['tolerance'], check['unit'], 'g')}"
            got.stale = []
            got.label += f"; verified with today's code: {check['what']} {how}"
        else:
            got.stale = [
                f"today's code gives other numbers ({check['what']} differ by up to "
                f"{_in_unit(check['max_diff'], check['unit'], '.2g')})"
            ]
    return got


def archived_figure(
    got: Archived, draw: Callable[[Dict[str, Any]], Any], summarise: Callable[[Dict[str, Any]], Dict]
) -> Tuple[Any, Dict[str, Any]]:
    """``(figure, numbers)`` of a :func:`checked` entry: drawn by ``draw`` (the reader's figure function)
    and titled with its provenance (and a red line per stale reason), ``numbers`` being ``summarise``'s
    plus ``label`` and ``stale``; with nothing archived, a figure whose text says what is missing."""
    import matplotlib.pyplot as plt

    from .figures import provenance_title

    if got.results is None:
        fig, ax = plt.subplots(figsize=(8, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, got.label.replace(": ", ":\n", 1), ha="center", va="center", wrap=True, fontsize=10)
        return fig, {"label": got.label, "stale": got.stale}
    fig = draw(got.results)
    provenance_title(fig, got.label, got.stale)
    numbers = dict(summarise(got.results))
    numbers.update(label=got.label, stale=got.stale)
    return fig, numbers
