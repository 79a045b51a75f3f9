"""Train Fig. 5 (dSprites) at a profile into the results archive, resumable from its checkpoint.

    python scripts/archive_dsprites.py --profile paper --threads 1 [--chunk-steps N] [--commit]

Training saves its whole state to ``results/dsprites_fig5/<profile>/checkpoint.pt`` every few
hundred steps (kept out of git); stopped and started again, it continues where it stopped with
the same numbers. When training is done the trained and the random encoder are evaluated and the
entry (``fig5.npz`` and its provenance ``fig5.json``) is written and, with ``--commit``, committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mi_lib import archive as A
from mi_lib import publish_dsprites as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_fig2 import _commit  # noqa: E402  (the same retrying git commit)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    ap.add_argument("--root", default=str(A.ARCHIVE_DIR), help="archive folder (default: the checkout's results/)")
    ap.add_argument("--chunk-steps", type=int, default=None, help="train at most this many more steps, then stop")
    ap.add_argument("--commit", action="store_true", help="git-commit the entry once it is written")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.root)
    print(P.progress_line(args.profile, root), flush=True)
    path = P.compute(args.profile, root, chunk_steps=args.chunk_steps)
    print(P.progress_line(args.profile, root), flush=True)
    if path is not None and args.commit:
        _commit(path.parent, f"fig5 {args.profile} profile archived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
