r"""The results archive for the Monte Carlo grid figures: Fig. 3 (bias and variance) and Fig. 4 (gradients).

Nothing is trained in these figures; each ``(batch size K, MI)`` cell is a Monte Carlo average
whose repetitions come from their own generator, seeded by ``(seed, k_index, mi_index)``. A cell is
therefore the unit of the archive: ``results/<notebook>/<profile>/cells/k<K>-mi<MI>-<hash>.npz``
with its provenance, computed one by one (cheapest first) and kept as each finishes, so a long CPU
run that is interrupted loses at most the cell in progress. The figure is assembled from the
cells (a cell not computed yet is NaN, and the label says how many are in).

``--verify`` recomputes the cheapest archived cell on the CPU with today's code. The repetitions are
the same draws, so on the CPU the numbers agree to float32 rounding (sums taken in another order
with another thread count); the tolerance is relative, :data:`VERIFY_RTOL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import archive as A
from .archive import Archived
from .experiments import bias_variance as BV
from .experiments import gradients as GR
from .profiles import override, resolve_device

VERIFY_RTOL = 1e-4  # relative: float32 sums in another order; a different draw or estimator moves them by percents


@dataclass(frozen=True)
class GridFigure:
    """A grid figure's archive: its name, notebook folder and experiment module (``CONFIGS``, ``cell``,
    ``cells``, ``assemble``, ``torch_threads``)."""

    name: str
    notebook: str
    module: ModuleType
    stat: str  # the statistic verify compares (every cell has it)


FIGURES: Dict[str, GridFigure] = {
    "fig3": GridFigure("fig3", "fig3_bias_variance", BV, "mean"),
    "fig4": GridFigure("fig4", "fig4_gradient_accuracy", GR, "grad_mean"),
}


@dataclass(frozen=True)
class CellKey:
    """What one archived cell depends on: the figure's whole configuration and the cell's indices."""

    config: Any
    k_index: int
    mi_index: int


def figure(name: str) -> GridFigure:
    """The grid figure called ``name`` (``fig3``, ``fig4`` or a notebook name); ``ValueError`` otherwise."""
    for fig in FIGURES.values():
        if name in (fig.name, fig.notebook):
            return fig
    raise ValueError(f"no grid figure {name!r}; known: {', '.join(FIGURES)}")


def config(fig: GridFigure, profile: str, device: str = "cpu") -> Any:
    """The profile's configuration as archived: device aside (it is recorded in the provenance)."""
    if profile not in fig.module.CONFIGS:
        raise ValueError(f"{fig.name} has no profile {profile!r}; known: {', '.join(fig.module.CONFIGS)}")
    return override(fig.module.CONFIGS[profile], device=device)


def cells_dir(fig: GridFigure, profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    """``results/<notebook>/<profile>/cells/``."""
    return Path(root) / fig.notebook / profile / "cells"


def cell_path(fig: GridFigure, cfg: Any, k_index: int, mi_index: int, root: Path, profile: str) -> Path:
    """The cell's file: readable (K and MI) and keyed by the configuration's hash."""
    key = A.config_hash(CellKey(override(cfg, device="cpu"), k_index, mi_index))
    k, mi = cfg.batch_sizes[k_index], cfg.mi_levels[mi_index]
    return cells_dir(fig, profile, root) / f"k{k}-mi{mi:g}-{key[:12]}.npz"


def archived_cells(
    fig: GridFigure, profile: str, root: Path = A.ARCHIVE_DIR
) -> Dict[Tuple[int, int], Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``{(k_index, mi_index): (stats, provenance)}`` of the finished cells of the profile's configuration."""
    cfg = config(fig, profile)
    out = {}
    for ik, im in fig.module.cells(cfg):
        path = cell_path(fig, cfg, ik, im, root, profile)
        entry = A.matching_entry(path, CellKey(override(cfg, device="cpu"), ik, im))
        if entry is not None:
            out[(ik, im)] = entry
    return out


def check_shard(shard: Tuple[int, int]) -> Tuple[int, int]:
    """``(i, n)`` unchanged if it names a share of n workers (``0 <= i < n``); ``ValueError`` otherwise."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"bad shard {i}/{n}: need 0 <= i < n")
    return i, n


def _missing(fig: GridFigure, profile: str, done: Dict, shard: Tuple[int, int]) -> List[Tuple[int, int]]:
    i, n = check_shard(shard)
    return [c for j, c in enumerate(fig.module.cells(config(fig, profile))) if j % n == i and c not in done]


def missing_cells(
    fig: GridFigure, profile: str, root: Path = A.ARCHIVE_DIR, shard: Tuple[int, int] = (0, 1)
) -> List[Tuple[int, int]]:
    """The cells still to compute, cheapest first.

    ``shard=(i, n)`` keeps every n-th cell of the whole grid from the i-th on, so that n workers
    started with ``i = 0 .. n-1`` split the grid between them without overlap, at any time (the
    split is by the cell's place in the grid, not in what is still missing).
    """
    check_shard(shard)
    return _missing(fig, profile, archived_cells(fig, profile, root), shard)


def compute_cells(
    fig: GridFigure,
    profile: str = "paper",
    device: str = "cpu",
    root: Path = A.ARCHIVE_DIR,
    limit: Optional[int] = None,
    on_cell: Optional[Callable[[Path, int, int], None]] = None,
    progress: bool = True,
    shard: Tuple[int, int] = (0, 1),
) -> List[Path]:
    """Compute and archive the missing cells (at most ``limit``), each written as it finishes.

    ``on_cell(path, done, total)`` runs after each (for example a git commit). ``shard``: this
    worker's share of the grid (:func:`missing_cells`). Returns the new files.
    """
    cfg = config(fig, profile, device)
    dev = resolve_device(cfg.device)
    done = archived_cells(fig, profile, root)
    missing = _missing(fig, profile, done, shard)
    total = len(fig.module.cells(cfg))

    def describe(c: Tuple[int, int]) -> A.Piece:
        ik, im = c
        k, mi = int(cfg.batch_sizes[ik]), float(cfg.mi_levels[im])
        return A.Piece(
            cell_path(fig, cfg, ik, im, root, profile),
            CellKey(override(cfg, device="cpu"), ik, im),
            {"figure": fig.name, "k": k, "mi": mi},
            f"{fig.name} {profile}: cell K={k} MI={mi:g}",
        )

    def compute(c: Tuple[int, int]) -> Dict[str, Any]:
        stats = fig.module.cell(cfg, *c, device=dev)
        return {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()}

    return A.archive_pieces(
        missing[:limit],
        len(done),
        total,
        describe,
        compute,
        profile,
        dev,
        on_cell,
        progress,
    )


def provenance_label(fig: GridFigure, profile: str, cfg: Any, provs: List[Dict[str, Any]], total: int) -> str:
    """One line: profile, repetitions, cells archived, device(s), minutes, date(s), commit(s)."""
    cells = f"all {total} cells" if len(provs) == total else f"{len(provs)} of {total} cells (the rest still computing)"
    return A.provenance_label(f"{profile} profile, {cfg.n_reps:,} minibatches a cell, {cells}", provs)


def load(fig: GridFigure, profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Archived:
    """The archived figure's results (cells not computed yet are NaN); ``FileNotFoundError`` if none is."""
    cfg = config(fig, profile)
    done = archived_cells(fig, profile, root)
    if not done:
        raise FileNotFoundError(f"no archived cell of {fig.name} ({profile}) in {cells_dir(fig, profile, root)}")
    results = fig.module.assemble(cfg, {key: stats for key, (stats, _) in done.items()})
    provs = [prov for _, prov in done.values()]
    label = provenance_label(fig, profile, cfg, provs, len(fig.module.cells(cfg)))
    return Archived(results, label, A.stale_reasons(provs, fig.name, "recomputes a cell"))


def verify(fig: GridFigure, profile: str = "paper", root: Path = A.ARCHIVE_DIR, rtol: float = VERIFY_RTOL) -> Dict:
    """Recompute the cheapest archived cell on the CPU with today's code and compare every statistic."""
    cfg = config(fig, profile)
    done = archived_cells(fig, profile, root)
    if not done:
        raise FileNotFoundError(f"no archived cell of {fig.name} ({profile}) in {cells_dir(fig, profile, root)}")
    order = fig.module.cells(cfg)  # the cheapest; at MI = 0 every estimate is exactly 0, a weak check
    ik, im = min(done, key=lambda c: (cfg.mi_levels[c[1]] == 0, order.index(c)))
    archived, prov = done[(ik, im)]
    with fig.module.torch_threads(None):
        again = fig.module.cell(cfg, ik, im, device=torch.device("cpu"))
    worst = 0.0
    for key, old in archived.items():
        new = np.asarray(again[key], dtype=np.float64)
        old = np.asarray(old, dtype=np.float64)
        if new.shape != old.shape or not np.array_equal(np.isfinite(new), np.isfinite(old)):
            worst = np.inf
            break
        ok = np.isfinite(old)
        scale = np.maximum(np.abs(old[ok]), 1e-12)
        worst = max(worst, float(np.max(np.abs(new[ok] - old[ok]) / scale, initial=0.0)))
    k, mi = int(cfg.batch_sizes[ik]), float(cfg.mi_levels[im])
    return A.verification(
        f"cell K={k}, MI={mi:g}",
        worst,
        rtol,
        "relative",
        file=cell_path(fig, cfg, ik, im, root, profile).name,
        k=k,
        mi=mi,
        archived_with=prov.get("git_commit"),
    )


def publish(fig: GridFigure, profile: str = "paper", device: str = "auto", root: Path = A.ARCHIVE_DIR) -> Path:
    """Compute the missing cells (each archived as it finishes), then write ``entry.json``: the whole
    figure's provenance and the archive's size."""
    compute_cells(fig, profile, device, root)
    cfg = config(fig, profile)
    provs = [prov for _, prov in archived_cells(fig, profile, root).values()]
    folder = cells_dir(fig, profile, root)
    return A.write_entry(
        folder.parent / "entry.json",
        notebook=fig.notebook,
        profile=profile,
        config=cfg,
        provs=provs,
        parts="cells",
        files=folder,
        label=provenance_label(fig, profile, cfg, provs, len(fig.module.cells(cfg))),
    )


def paper_figure(
    fig: GridFigure,
    plot: Callable[[Dict[str, Any]], Any],
    summarise: Callable[[Dict[str, Any]], Dict],
    profile: str = "paper",
    root: Path = A.ARCHIVE_DIR,
    verify_first: bool = True,
) -> Tuple[Any, Dict]:
    """The archived figure drawn by ``plot`` (the reader's figure function), titled with its provenance.

    With nothing archived it is a figure that says so; when the code changed since the cells were
    computed, the cheapest cell is recomputed first (``verify_first``) and the title says whether it
    still agrees or, in red, that the figure is stale. Returns ``(figure, numbers)``.
    """
    got = A.checked(
        lambda: load(fig, profile, root),
        lambda: (
            f"The {profile}-profile {fig.name} is not archived yet: "
            f"`python scripts/archive_grid.py {fig.name} --profile {profile}` computes it."
        ),
        (lambda: verify(fig, profile, root)) if verify_first else None,
    )
    return A.archived_figure(got, plot, summarise)


def status_line(fig: GridFigure, profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> str:
    """``<fig>: n of N cells archived`` (for the command line)."""
    cfg = config(fig, profile)
    return f"{fig.name} ({profile}): {len(archived_cells(fig, profile, root))} of {len(fig.module.cells(cfg))} cells"
