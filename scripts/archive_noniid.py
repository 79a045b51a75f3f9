"""Train Tschannen et al.'s Fig. 4c (non-i.i.d. negatives) into the results archive, chunk by chunk.

    python scripts/archive_noniid.py --profile paper --threads 1 [--commit] [--limit N]

Each finished chunk (one bound, one batch mode, a group of runs trained together) is written to
``results/tschannen_noniid/<profile>/chunks/`` with its provenance and, with ``--commit``, committed
at once, so an interrupted run loses at most the chunk in progress. Rerunning skips the archived
chunks. On the CPU (the critics are tiny); one torch thread is as fast as two.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mi_lib import archive as A
from mi_lib import publish_noniid as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_fig2 import _commit  # noqa: E402  (the same retrying git commit)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    ap.add_argument("--root", default=str(A.ARCHIVE_DIR), help="archive folder (default: the checkout's results/)")
    ap.add_argument("--commit", action="store_true", help="git-commit each chunk as it is written")
    ap.add_argument("--limit", type=int, default=None, help="stop after this many chunks")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(P.status_line(args.profile, Path(args.root)), flush=True)

    def commit(path: Path, done: int, total: int) -> None:
        if args.commit:
            _commit(path.parent, f"fig4c {args.profile} profile: chunk {path.stem} archived ({done}/{total})")

    P.compute_chunks(args.profile, Path(args.root), limit=args.limit, on_chunk=commit)
    print(P.status_line(args.profile, Path(args.root)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
