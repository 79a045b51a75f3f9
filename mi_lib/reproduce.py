"""Run the figure notebooks with papermill: ``python -m mi_lib reproduce [names] --profile ...``.

Every ``notebooks/*.ipynb`` is a figure; its name is the file stem (``fig2_gaussian_estimates``)
or any unique prefix of it (``fig2``). Each runs in its own kernel (named ``python3``) with
``profile``, ``device``, ``force``, an absolute ``out_dir`` (``book/figures/<stem>``) and
``cache_dir`` (``results_cache``) injected, into ``book/executed/<stem>.ipynb``, which the
book renders. A failing notebook is reported with its failing cell and the others still
run; the command then exits non-zero. A summary table closes the run and is also written
to ``book/executed/reproduce_summary.json``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .cache import save_json
from .profiles import resolve_device, resolve_profile

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class NotebookRun:
    """One notebook's outcome: its stem, profile, device, wall seconds and status."""

    notebook: str
    profile: str
    device: str
    seconds: float
    status: str  # "ok" or "failed: ..."


def discover(root: Path = ROOT) -> Dict[str, Path]:
    """All figure notebooks, by stem, sorted."""
    return {p.stem: p for p in sorted((Path(root) / "notebooks").glob("*.ipynb"))}


def select_notebooks(names: Sequence[str], root: Path = ROOT) -> List[Path]:
    """Resolve names or unique prefixes to notebook paths; none means all. Unknown names raise ``ValueError``."""
    found = discover(root)
    if not names:
        return list(found.values())
    out = []
    for name in names:
        hits = [stem for stem in found if stem == name] or [stem for stem in found if stem.startswith(name)]
        if not hits:
            raise ValueError(f"no notebook matches {name!r}; available: {', '.join(found)}")
        for stem in hits:
            if found[stem] not in out:
                out.append(found[stem])
    return out


def run_notebook(path: Path, profile: str, device: str, root: Path = ROOT, force: bool = False,
                 cell_timeout: int = 7200, extra: Optional[dict] = None) -> NotebookRun:
    """Execute one notebook with papermill; never raises for a failing cell (the status says it)."""
    import papermill as pm

    root = Path(root)
    out = root / "book" / "executed" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, "device": device, "force": force,
              "out_dir": str(root / "book" / "figures" / path.stem), "cache_dir": str(root / "results_cache")}
    params.update(extra or {})
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3", cwd=str(path.parent),
                            execution_timeout=cell_timeout, progress_bar=False)
        status = "ok"
    except pm.PapermillExecutionError as e:
        status = f"failed at cell {e.exec_count}: {e.ename}: {e.evalue}"
    except Exception as e:  # kernel died, timeout, bad notebook
        status = f"failed: {type(e).__name__}: {e}"
    return NotebookRun(path.stem, profile, device, time.perf_counter() - t0, status)


def format_table(runs: Sequence[NotebookRun]) -> str:
    """The summary table printed at the end of a reproduce run."""
    rows = [("notebook", "profile", "device", "seconds", "status")]
    rows += [(r.notebook, r.profile, r.device, f"{r.seconds:.1f}", r.status) for r in runs]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * max(len(l) for l in lines))
    total = sum(r.seconds for r in runs)
    return "\n".join(lines + [f"total {total:.1f} s"])


def reproduce(names: Sequence[str] = (), profile: str = "auto", device: str = "auto", force: bool = False,
              root: Path = ROOT, cell_timeout: int = 7200) -> List[NotebookRun]:
    """Run the selected notebooks in order, printing a line each and a summary table."""
    profile = resolve_profile(profile, device)
    dev = str(resolve_device(device))
    runs = []
    for path in select_notebooks(names, root):
        print(f"[reproduce] {path.stem} (profile={profile}, device={dev}) ...", flush=True)
        r = run_notebook(path, profile, dev, root, force, cell_timeout)
        print(f"[reproduce] {path.stem}: {r.status} in {r.seconds:.1f} s", flush=True)
        runs.append(r)
    print(format_table(runs), flush=True)
    save_json(Path(root) / "book" / "executed" / "reproduce_summary.json", [asdict(r) for r in runs])
    return runs
