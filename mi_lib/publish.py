"""Fig. 2's results archive: publishing paper-scale results, checking them, and labelling them for the book.

``python -m mi_lib reproduce --publish fig2 --profile paper`` computes what is missing of the figure's
archive entry (chunk by chunk, each kept as it finishes) and writes the entry's summary;
``--verify fig2`` recomputes a cheap slice (the first steps of one archived chunk) with today's
code on the CPU and compares. The chapter draws the archived figure with the same figure
function as the reader's own run, titled by :func:`provenance_label`. The other archived figures
have their own modules (:mod:`mi_lib.publish_grid`: Figs. 3 and 4; :mod:`mi_lib.publish_noniid`:
Fig. 4c; :mod:`mi_lib.publish_dsprites`: Fig. 5), built from the same pieces in :mod:`mi_lib.archive`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import archive as A
from .archive import Archived  # noqa: F401  (re-exported: publish.Archived)
from .experiments import gaussian as G
from .profiles import override
from .train import train_sweep

FIG2 = "fig2_gaussian_estimates"
VERIFY_TOLERANCE = 1e-3  # nats: float32 sums taken in another order (thread count, BLAS) after a few hundred steps


def fig2_dir(profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    """``results/fig2_gaussian_estimates/<profile>/``."""
    return Path(root) / FIG2 / profile


def _chunk_provenance(profile: str, root: Path, cfg: G.Fig2Config) -> List[Dict[str, Any]]:
    """The provenance of the archived chunks that belong to ``cfg`` (files of other configurations left out)."""
    wanted = {A.config_hash(G._GroupKey(tuple(c), cfg.precision)) for c in G.chunks(cfg)}
    metas = sorted((fig2_dir(profile, root) / "chunks").glob("*.json"))
    return [prov for prov in (json.loads(p.read_text()) for p in metas) if prov.get("config_hash") in wanted]


def provenance_label(profile: str, provs: List[Dict[str, Any]], steps: int) -> str:
    """One line: profile, steps, device(s), minutes, date(s), commit(s)."""
    return A.provenance_label(f"{profile} profile, {steps:,} steps a run", provs)


def complete_critics(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Tuple[str, ...]:
    """The critics whose runs are all archived (a figure can be shown for them while the rest computes)."""
    cfg = override(G.CONFIGS[profile], device="cpu")
    missing = G.missing_chunks(cfg, fig2_dir(profile, root) / "chunks")
    return tuple(c for c in cfg.critics if not any(m[0].critic == c for m in missing))


def load_fig2(profile: str = "paper", root: Path = A.ARCHIVE_DIR, partial: bool = False) -> Archived:
    """The archived Fig. 2 of ``profile`` (never trains); :class:`mi_lib.experiments.gaussian.MissingChunks`
    when chunks are missing. ``partial``: the critics that are complete (the label says so)."""
    cfg = override(G.CONFIGS[profile], device="cpu")
    note = ""
    if partial:
        done = complete_critics(profile, root)
        if done and done != cfg.critics:
            cfg = override(cfg, critics=done)
            note = f"; {', '.join(done)} critic only, the others are still computing"
    results = G.run(cfg, archive_dir=fig2_dir(profile, root) / "chunks", archived_only=True, progress=False)
    provs = _chunk_provenance(profile, root, cfg)
    label = provenance_label(profile, provs, results["estimates"].shape[1]) + note
    return Archived(results, label, A.stale_reasons(provs, "fig2"))


def archive_status(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Tuple[int, int, List[str]]:
    """``(archived chunks, all chunks, stale chunk files)``: files of another configuration are stale."""
    cfg = override(G.CONFIGS[profile], device="cpu")
    chunk_dir = fig2_dir(profile, root) / "chunks"
    total = len(G.chunks(cfg))
    missing = len(G.missing_chunks(cfg, chunk_dir))
    wanted = {G.chunk_path(cfg, c, chunk_dir).name for c in G.chunks(cfg)}
    other = sorted(p.name for p in chunk_dir.glob("*.npz") if p.name not in wanted) if chunk_dir.exists() else []
    return total - missing, total, other


def publish_fig2(
    profile: str = "paper", device: str = "auto", root: Path = A.ARCHIVE_DIR, progress: bool = True
) -> Path:
    """Compute the chunks still missing (each archived as it finishes), then write ``entry.json``: the
    provenance of the whole figure and the archive's size."""
    cfg = override(G.CONFIGS[profile], device=device)
    out = fig2_dir(profile, root)
    G.run(cfg, archive_dir=out / "chunks", profile=profile, progress=progress)
    provs = _chunk_provenance(profile, root, cfg)
    label = provenance_label(profile, provs, cfg.run.steps_per_level * len(cfg.run.mi_levels))
    return A.write_entry(
        out / "entry.json",
        notebook=FIG2,
        profile=profile,
        config=cfg,
        provs=provs,
        parts="chunks",
        files=out / "chunks",
        label=label,
    )


def verify_fig2(
    profile: str = "paper", steps: int = 300, root: Path = A.ARCHIVE_DIR, tolerance: float = VERIFY_TOLERANCE
) -> Dict[str, Any]:
    """Recompute the first ``steps`` steps of the cheapest archived chunk on the CPU and compare.

    Bit-identical is expected on a CPU that rounds as the archive's did; on another the runs part by
    rounding after the first updates, and only step 0 is compared (:func:`mi_lib.archive.trajectory_verification`).
    """
    cfg = override(G.CONFIGS[profile], device="cpu")
    chunk_dir = fig2_dir(profile, root) / "chunks"
    missing = G.missing_chunks(cfg, chunk_dir)
    present = [c for c in G.chunks(cfg) if c not in missing]
    if not present:
        raise FileNotFoundError(f"no archived chunk of Fig. 2 ({profile}) in {chunk_dir}")
    chunk = min(present, key=lambda c: (c[0].critic != "separable", len(c)))
    archived, prov = A.load_entry(G.chunk_path(cfg, chunk, chunk_dir))
    n = min(steps, archived["estimates"].shape[1])
    again = train_sweep(chunk, device="cpu", progress=False, steps=n).estimates
    here = A.device_name(torch.device("cpu"))
    return A.trajectory_verification(
        f"the first {n} steps of {len(chunk)} runs",
        again,
        archived["estimates"][:, :n],
        tolerance,
        "nats",
        file=G.chunk_path(cfg, chunk, chunk_dir).name,
        archived_on=prov.get("device_name", "?"),
        recomputed_on=here,
        runs=len(chunk),
        steps=n,
        archived_with=prov.get("git_commit"),
    )


def placeholder_text(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Optional[str]:
    """What the chapter says instead of the archived figure when it is incomplete, or ``None``."""
    done, total, other = archive_status(profile, root)
    if done == total:
        return None
    note = f" ({len(other)} chunk files of another configuration are stale)" if other else ""
    return (
        f"The {profile}-profile Fig. 2 is not archived yet: {done} of {total} chunks{note}. "
        f"`python scripts/archive_fig2.py --profile {profile}` computes the rest."
    )


def fig2_paper_figure(
    plot: Any, summarise: Any, profile: str = "paper", root: Path = A.ARCHIVE_DIR, verify_steps: int = 100
) -> Tuple[Any, Dict]:
    """The archived ``profile`` Fig. 2 drawn by ``plot`` (the reader's figure function), titled with its
    provenance and any stale note; a figure that says what is missing when nothing is archived yet.
    When the code has changed since the numbers were computed, the first ``verify_steps`` steps of one
    chunk are recomputed (:func:`verify_fig2`; 0: not) and the title says whether they still agree.
    Returns ``(figure, numbers)`` with ``numbers = summarise(results)`` plus ``label`` and ``stale``."""
    got = A.checked(
        lambda: load_fig2(profile, root, partial=True),
        lambda: placeholder_text(profile, root) or "",
        (lambda: verify_fig2(profile, steps=verify_steps, root=root)) if verify_steps else None,
        not_archived=G.MissingChunks,
    )
    return A.archived_figure(got, plot, summarise)
