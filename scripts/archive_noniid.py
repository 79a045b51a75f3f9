"""Train Tschannen et al.'s Fig. 4c (non-i.i.d. negatives) into the results archive, chunk by chunk.

    python scripts/archive_noniid.py --profile paper --threads 1 [--commit] [--limit N]

Each finished chunk (one bound, one batch mode, a group of runs trained together) is written to
``results/tschannen_noniid/<profile>/chunks/`` with its provenance and, with ``--commit``, committed
at once, so an interrupted run loses at most the chunk in progress. Rerunning skips the archived
chunks. On the CPU (the critics are tiny); one torch thread is as fast as two.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mi_lib import publish_noniid as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive_cli as C  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = C.parse(C.parser(__doc__, threads=1, pieces="chunks"), argv)
    root = Path(args.root)
    print(P.status_line(args.profile, root), flush=True)
    commit = C.committer(args, lambda p, d, t: f"fig4c {args.profile} profile: chunk {p.stem} archived ({d}/{t})")
    P.compute_chunks(args.profile, root, limit=args.limit, on_chunk=commit)
    print(P.status_line(args.profile, root), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
