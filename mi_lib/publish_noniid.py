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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import archive as A
from .archive import Archived
from .experiments.tschannen import fig4c_noniid as NI

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
        entry = A.matching_entry(path, key)
        if entry is not None:
            out[key] = entry
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
    missing = missing_chunks(profile, root)
    total = len(chunks(cfg))

    def describe(key: ChunkKey) -> A.Piece:
        return A.Piece(
            chunk_path(key, profile, root),
            key,
            {"figure": "fig4c", "bound": key.bound, "mode": key.mode, "runs": list(key.runs)},
            f"fig4c {profile}: {key.bound} {key.mode} runs {key.runs[0]}-{key.runs[-1]}",
        )

    def compute(key: ChunkKey) -> Dict[str, Any]:
        return summarise_chunk(cfg, train_chunk(key, progress=progress))

    return A.archive_pieces(
        missing[:limit],
        total - len(missing),
        total,
        describe,
        compute,
        profile,
        torch.device("cpu"),
        on_chunk,
        progress,
    )


def provenance_label(profile: str, cfg: NI.NonIIDConfig, provs: List[Dict[str, Any]], runs: int) -> str:
    """One line: profile, steps, runs archived, device(s), minutes, date(s), commit(s)."""
    of = f"all {cfg.n_runs} runs" if runs == cfg.n_runs else f"{runs} of {cfg.n_runs} runs (the rest still computing)"
    return A.provenance_label(f"{profile} profile, {cfg.steps:,} steps, {of} a configuration", provs)


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
    label = provenance_label(profile, cfg, provs, sum(len(g) for g in complete))
    return Archived(res, label, A.stale_reasons(provs, "fig4c"))


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
        here = A.device_name(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    return A.trajectory_verification(
        f"the first {head.shape[1]} steps of {len(key.runs)} runs",
        A.as_float32(again),
        head,
        tolerance,
        "nats",
        file=chunk_path(key, profile, root).name,
        archived_on=prov.get("device_name", "?"),
        recomputed_on=here,
        runs=len(key.runs),
        steps=head.shape[1],
        archived_with=prov.get("git_commit"),
    )


def publish(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Path:
    """Train the missing chunks (each archived as it finishes), then write ``entry.json``."""
    compute_chunks(profile, root)
    cfg = config(profile)
    provs = [p for _, p in archived_chunks(profile, root).values()]
    folder = chunks_dir(profile, root)
    return A.write_entry(
        folder.parent / "entry.json",
        notebook=NOTEBOOK,
        profile=profile,
        config=cfg,
        provs=provs,
        parts="chunks",
        files=folder,
        label=load(profile, root).label,
    )


def paper_figure(profile: str = "paper", root: Path = A.ARCHIVE_DIR, verify_first: bool = True) -> Tuple[Any, Dict]:
    """The archived Fig. 4c drawn by the reader's figure function, titled with its provenance (a
    figure that says so when nothing is archived; a red STALE line when today's code disagrees)."""
    from .figures import tschannen as F

    got = A.checked(
        lambda: load(profile, root),
        lambda: (
            f"The {profile}-profile Fig. 4c is not archived yet: "
            f"`python scripts/archive_noniid.py --profile {profile}` computes it."
        ),
        (lambda: verify(profile, root)) if verify_first else None,
    )
    return A.archived_figure(got, F.fig_noniid, summarise)


def summarise(results: Dict[str, Any]) -> Dict[str, Any]:
    """The figure's numbers: each (bound, batch mode)'s last-quarter mean and standard error, and the true MI."""
    numbers: Dict[str, Any] = {
        f"{b}_{m}_last_quarter": last_quarter_stats(results["last_quarter"][b][m])
        for b in results["last_quarter"]
        for m, _ in MODES
    }
    numbers["true_mi"] = results["true_mi"]
    return numbers


def status_line(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> str:
    return f"fig4c ({profile}): {len(archived_chunks(profile, root))} of {len(chunks(config(profile)))} chunks"
