"""Train Fig. 5 (dSprites) at a profile into the results archive, resumable from its checkpoint.

    python scripts/archive_dsprites.py --profile paper --threads 1 [--chunk-steps N] [--commit]

Training saves its whole state to ``results/dsprites_fig5/<profile>/checkpoint.pt`` every few
hundred steps (kept out of git); stopped and started again, it continues where it stopped with
the same numbers. When training is done the trained and the random encoder are evaluated and the
entry (``fig5.npz`` and its provenance ``fig5.json``) is written and, with ``--commit``, committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mi_lib import publish_dsprites as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive_cli as C  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = C.parser(__doc__, threads=1)
    ap.add_argument("--chunk-steps", type=int, default=None, help="train at most this many more steps, then stop")
    args = C.parse(ap, argv)
    root = Path(args.root)
    print(P.progress_line(args.profile, root), flush=True)
    path = P.compute(args.profile, root, chunk_steps=args.chunk_steps)
    print(P.progress_line(args.profile, root), flush=True)
    if path is not None and args.commit:
        C.commit_folder(path.parent, f"fig5 {args.profile} profile archived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
