"""Compute a Monte Carlo grid figure (Fig. 3 or Fig. 4) into the results archive, cell by cell.

    python scripts/archive_grid.py fig3 --profile paper --device cpu --threads 1 [--commit] [--limit N]

Each finished ``(K, MI)`` cell is written to ``results/<notebook>/<profile>/cells/`` with its
provenance and, with ``--commit``, committed at once, so an interrupted run loses at most the cell
in progress. Rerunning skips the archived cells; the cheapest (smallest batch) go first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mi_lib import archive as A
from mi_lib import publish_grid as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_fig2 import _commit  # noqa: E402  (the same retrying git commit)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("figure", choices=sorted(P.FIGURES))
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--root", default=str(A.ARCHIVE_DIR), help="archive folder (default: the checkout's results/)")
    ap.add_argument("--commit", action="store_true", help="git-commit each cell as it is written")
    ap.add_argument("--limit", type=int, default=None, help="stop after this many cells")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fig = P.figure(args.figure)
    print(P.status_line(fig, args.profile, Path(args.root)), flush=True)

    def commit(path: Path, done: int, total: int) -> None:
        if args.commit:
            _commit(path.parent, f"{fig.name} {args.profile} profile: cell {path.stem} archived ({done}/{total})")

    P.compute_cells(fig, args.profile, args.device, Path(args.root), limit=args.limit, on_cell=commit)
    print(P.status_line(fig, args.profile, Path(args.root)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
