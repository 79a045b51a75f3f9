r"""The results archive for Tschannen et al.'s Fig. 4c (non-i.i.d. negatives), chunk by chunk.

The paper profile trains a concat critic for 20,000 steps with each bound (I_NCE, I_NWJ) on i.i.d.
and on shared-Z batches, 20 runs each: 80 critics, several CPU-hours on one thread. A *chunk* is one
(bound, batch mode, group of :data:`RUNS_PER_CHUNK` runs), trained together
(:func:`~mi_lib.experiments.tschannen.fig4c_noniid.train_stacked` with ``runs=``). Every run's
trajectory depends only on its own seed, so the chunks' runs are the runs of the whole figure.
Chunks go run group by run group (all four configurations of runs 0-4 first), so a partial archive
already holds every configuration. Each finished chunk is written to
``results/tschannen_noniid/<profile>/chunks/`` with its provenance, so an interrupted run loses at
most the chunk in progress.

What a chunk keeps (compact; ``entry.json`` gives the archive's size):

* ``smoothed``: the Gaussian-filtered training-batch estimates (the figure's curves) every
  :data:`STRIDE` steps, float32. The filter has a std of 100 steps, so nothing a plot can show
  is lost;
* ``last_quarter``: each run's mean raw estimate over the last quarter of training, float64 (what
  the claims read);
* ``head``: the raw estimates of the first :data:`VERIFY_STEPS` steps, float32, which
  :func:`verify` recomputes with today's code (training does not depend on the total number of
  steps: Adam at a constant learning rate).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import archive as A
from .cache import code_version, save_json
from .experiments.tschannen import fig4c_noniid as NI
from .publish import Archived

NOTEBOOK = "tschannen_noniid"
RUNS_PER_CHUNK = 5
STRIDE = 20  # steps between archived points of the smoothed curves
VERIFY_STEPS = 300
VERIFY_TOLERANCE = 1e-4  # nats: the same runs on the CPU; float32 sums in another order at most
MODES = (("iid", False), ("shared_z", True))


@dataclass(frozen=True)
class ChunkKey:
    """What one archived chunk depends on: the whole configuration, the bound, the batch mode, the runs."""

    config: Any
    bound: str
    mode: str
    runs: Tuple[int, ...]


def config(profile: str) -> NI.NonIIDConfig:
    """The profile's configuration as archived."""
    if profile not in NI.CONFIGS:
        raise ValueError(f"Fig. 4c has no profile {profile!r}; known: {', '.join(NI.CONFIGS)}")
    return NI.CONFIGS[profile]


def chunks(cfg: NI.NonIIDConfig) -> List[ChunkKey]:
    """Every chunk of the figure, run group by run group (each group covers all four configurations)."""
    out = []
    for r0 in range(0, cfg.n_runs, RUNS_PER_CHUNK):
        runs = tuple(range(r0, min(r0 + RUNS_PER_CHUNK, cfg.n_runs)))
        out += [ChunkKey(cfg, b, mode, runs) for b in cfg.bounds for mode, _ in MODES]
    return out


def chunks_dir(profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    return Path(root) / NOTEBOOK / profile / "chunks"


def chunk_path(key: ChunkKey, profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    """Readable (bound, mode, runs) and keyed by the hash of the whole chunk key."""
    tag = f"{key.bound}-{key.mode}-runs{key.runs[0]}-{key.runs[-1]}"
    return chunks_dir(profile, root) / f"{tag}-{A.config_hash(key)[:12]}.npz"


def archived_chunks(profile: str, root: Path = A.ARCHIVE_DIR) -> Dict[ChunkKey, Tuple[Dict, Dict]]:
    """``{key: (results, provenance)}`` of the finished chunks of the profile's configuration."""
    out = {}
    for key in chunks(config(profile)):
        path = chunk_path(key, profile, root)
        if A.has_entry(path, key):
            out[key] = A.load_entry(path)
    return out


def missing_chunks(profile: str, root: Path = A.ARCHIVE_DIR) -> List[ChunkKey]:
    done = archived_chunks(profile, root)
    return [k for k in chunks(config(profile)) if k not in done]


def train_chunk(key: ChunkKey, steps: Optional[int] = None, progress: bool = False) -> np.ndarray:
    """The chunk's raw training-batch estimates ``[runs, steps]`` (``steps`` overrides the config's)."""
    cfg = key.config if steps is None else dataclasses.replace(key.config, steps=steps)
    return NI.train_stacked(cfg, key.bound, dict(MODES)[key.mode], runs=key.runs, progress=progress)


def summarise_chunk(cfg: NI.NonIIDConfig, trace: np.ndarray) -> Dict[str, np.ndarray]:
    """What a chunk archives from its raw ``[runs, steps]`` trace (see the module's docstring)."""
    smoothed = NI.smooth(trace, cfg.smooth_sigma)[:, ::STRIDE]
    quarter = trace[:, -max(1, trace.shape[1] // 4) :].mean(1)
    return {
        "smoothed": A.as_float32(smoothed),
        "last_quarter": np.asarray(quarter, dtype=np.float64),
        "head": A.as_float32(trace[:, :VERIFY_STEPS]),
    }


def compute_chunks(
    profile: str = "paper",
    root: Path = A.ARCHIVE_DIR,
    limit: Optional[int] = None,
    on_chunk: Optional[Callable[[Path, int, int], None]] = None,
    progress: bool = True,
) -> List[Path]:
    """Train and archive the missing chunks (at most ``limit``), each written as it finishes; on the CPU."""
    cfg = config(profile)
    todo = missing_chunks(profile, root)[:limit]
    total = len(chunks(cfg))
    start = total - len(missing_chunks(profile, root))
    written = []
    for n, key in enumerate(todo, 1):
        t0 = time.perf_counter()
        trace = train_chunk(key, progress=progress)
        seconds = time.perf_counter() - t0
        path = chunk_path(key, profile, root)
        extra = {"figure": "fig4c", "bound": key.bound, "mode": key.mode, "runs": list(key.runs)}
        prov = A.provenance(profile, key, torch.device("cpu"), seconds, extra)
        path.parent.mkdir(parents=True, exist_ok=True)
        A.save_entry(path, summarise_chunk(cfg, trace), prov)
        written.append(path)
        if progress:
            print(
                f"[{time.strftime('%H:%M:%S')}] fig4c {profile}: {key.bound} {key.mode} runs "
                f"{key.runs[0]}-{key.runs[-1]} in {seconds:.0f} s ({start + n}/{total} archived)",
                flush=True,
            )
        if on_chunk is not None:
            on_chunk(path, start + n, total)
    return written


def provenance_label(profile: str, cfg: NI.NonIIDConfig, provs: List[Dict[str, Any]], runs: int) -> str:
    devices = sorted({p.get("device_name", "?") for p in provs})
    minutes = sum(float(p.get("seconds", 0.0)) for p in provs) / 60
    dates = sorted(p.get("date", "?")[:10] for p in provs)
    commits = sorted({p.get("git_commit", "?")[:7] for p in provs})
    when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    of = f"all {cfg.n_runs} runs" if runs == cfg.n_runs else f"{runs} of {cfg.n_runs} runs (the rest still computing)"
    return (
        f"{profile} profile, {cfg.steps:,} steps, {of} a configuration, computed on {' + '.join(devices)} "
        f"in {minutes:.0f} min, {when}, commit {', '.join(commits)}"
    )


def load(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Archived:
    """The archived figure: for each (bound, mode) the runs of the run groups archived for *all four*
    configurations (so every curve has the same runs). ``FileNotFoundError`` if no group is complete."""
    cfg = config(profile)
    done = archived_chunks(profile, root)
    groups = sorted({k.runs for k in chunks(cfg)})
    complete = [g for g in groups if all(ChunkKey(cfg, b, m, g) in done for b in cfg.bounds for m, _ in MODES)]
    if not complete:
        raise FileNotFoundError(f"no complete run group of Fig. 4c ({profile}) in {chunks_dir(profile, root)}")
    res: Dict[str, Any] = {
        "smoothed": {},
        "last_quarter": {},
        "true_mi": NI.true_mi(),
        "conditional_mi": NI.conditional_mi(),
        "log_k": float(np.log(cfg.batch_size)),
        "smoothed_steps": np.arange(0, cfg.steps, STRIDE),
    }
    provs = []
    for b in cfg.bounds:
        res["smoothed"][b], res["last_quarter"][b] = {}, {}
        for m, _ in MODES:
            parts = [done[ChunkKey(cfg, b, m, g)] for g in complete]
            res["smoothed"][b][m] = np.concatenate([np.asarray(p[0]["smoothed"], dtype=np.float64) for p in parts])
            res["last_quarter"][b][m] = np.concatenate([np.asarray(p[0]["last_quarter"]) for p in parts])
            provs += [p[1] for p in parts]
    stale = []
    if any(p.get("code_version") != code_version() for p in provs):
        stale.append(
            "the code has changed since it was computed (`python -m mi_lib reproduce --verify fig4c` "
            "recomputes a slice and compares)"
        )
    return Archived(res, provenance_label(profile, cfg, provs, sum(len(g) for g in complete)), stale)


def last_quarter_stats(per_run: np.ndarray) -> Tuple[float, float]:
    """Mean over runs of each run's last-quarter mean, and its standard error."""
    x = np.asarray(per_run, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def verify(profile: str = "paper", root: Path = A.ARCHIVE_DIR, tolerance: float = VERIFY_TOLERANCE) -> Dict:
    """Retrain the first archived chunk's runs for :data:`VERIFY_STEPS` steps with today's code (CPU, one
    thread, as archived) and compare with the archived first steps."""
    done = archived_chunks(profile, root)
    if not done:
        raise FileNotFoundError(f"no archived chunk of Fig. 4c ({profile}) in {chunks_dir(profile, root)}")
    key = next(k for k in chunks(config(profile)) if k in done)
    archived, prov = done[key]
    head = np.asarray(archived["head"], dtype=np.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = train_chunk(key, steps=head.shape[1])
    finally:
        torch.set_num_threads(threads)
    diff = float(np.max(np.abs(A.as_float32(again).astype(np.float64) - head)))
    return {
        "chunk": chunk_path(key, profile, root).name,
        "runs": len(key.runs),
        "steps": head.shape[1],
        "max_abs_diff": diff,
        "identical": diff == 0.0,
        "tolerance": tolerance,
        "passed": diff <= tolerance,
        "archived_with": prov.get("git_commit"),
    }


def publish(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Path:
    """Train the missing chunks (each archived as it finishes), then write ``entry.json``."""
    compute_chunks(profile, root)
    cfg = config(profile)
    provs = [p for _, p in archived_chunks(profile, root).values()]
    folder = chunks_dir(profile, root)
    entry = {
        "notebook": NOTEBOOK,
        "profile": profile,
        "config": A.config_to_dict(cfg),
        "config_hash": A.config_hash(cfg),
        "chunks": len(provs),
        "seconds": sum(float(p["seconds"]) for p in provs),
        "devices": sorted({p["device_name"] for p in provs}),
        "git_commits": sorted({p["git_commit"] for p in provs}),
        "torch": sorted({p["torch"] for p in provs}),
        "dates": sorted(p["date"] for p in provs),
        "bytes": sum(p.stat().st_size for p in folder.iterdir()),
        "label": load(profile, root).label,
    }
    path = folder.parent / "entry.json"
    save_json(path, entry)
    return path


def paper_figure(profile: str = "paper", root: Path = A.ARCHIVE_DIR, verify_first: bool = True) -> Tuple[Any, Dict]:
    """The archived Fig. 4c drawn by the reader's figure function, titled with its provenance (a
    figure that says so when nothing is archived; a red STALE line when today's code disagrees)."""
    import matplotlib.pyplot as plt

    from .figures import provenance_title
    from .figures import tschannen as F

    try:
        got = load(profile, root)
    except FileNotFoundError:
        out, ax = plt.subplots(figsize=(8, 1.4))
        ax.axis("off")
        text = (
            f"The {profile}-profile Fig. 4c is not archived yet: "
            f"`python scripts/archive_noniid.py --profile {profile}` computes it."
        )
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
        return out, {"label": text, "stale": ["not archived"]}
    if got.stale and verify_first:
        check = verify(profile, root)
        if check["passed"]:
            got.stale = []
            how = "identical" if check["identical"] else f"within {check['tolerance']:g} nats"
            got.label += f"; verified with today's code: {check['steps']} steps of {check['runs']} runs {how}"
        else:
            got.stale = [f"today's code gives other numbers (max difference {check['max_abs_diff']:.2g} nats)"]
    out = F.fig_noniid(got.results)
    provenance_title(out, got.label, got.stale)
    numbers: Dict[str, Any] = {
        f"{b}_{m}_last_quarter": last_quarter_stats(got.results["last_quarter"][b][m])
        for b in got.results["last_quarter"]
        for m, _ in MODES
    }
    numbers.update(true_mi=got.results["true_mi"], label=got.label, stale=got.stale)
    return out, numbers


def status_line(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> str:
    return f"fig4c ({profile}): {len(archived_chunks(profile, root))} of {len(chunks(config(profile)))} chunks"
