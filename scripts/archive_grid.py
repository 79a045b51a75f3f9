"""Compute a Monte Carlo grid figure (Fig. 3 or Fig. 4) into the results archive, cell by cell.

    python scripts/archive_grid.py fig3 --profile paper --device cpu --threads 1 [--commit] [--limit N] [--shard I/N]

Each finished ``(K, MI)`` cell is written to ``results/<notebook>/<profile>/cells/`` with its
provenance and, with ``--commit``, committed at once, so an interrupted run loses at most the cell
in progress. Rerunning skips the archived cells; the cheapest (smallest batch) go first.
``--shard I/N`` splits the grid between N workers (one a core, ``--threads 1``): start one with
each I from 0 to N-1; they never compute the same cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mi_lib import publish_grid as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive_cli as C  # noqa: E402


def shard(text: str) -> tuple:
    """``"I/N"`` -> ``(I, N)``, with ``0 <= I < N``."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, for example 0/2; got {text!r}") from None
    try:
        return P.check_shard((i, n))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--shard {text}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    ap = C.parser(__doc__, pieces="cells")
    ap.add_argument("figure", choices=sorted(P.FIGURES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--shard", type=shard, default=(0, 1), metavar="I/N", help="this worker's share: every N-th cell from the I-th"
    )
    args = C.parse(ap, argv)
    fig, root = P.figure(args.figure), Path(args.root)
    print(P.status_line(fig, args.profile, root), flush=True)
    commit = C.committer(args, lambda p, d, t: f"{fig.name} {args.profile} profile: cell {p.stem} archived ({d}/{t})")
    P.compute_cells(fig, args.profile, args.device, root, limit=args.limit, on_cell=commit, shard=args.shard)
    print(P.status_line(fig, args.profile, root), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
