"""Compute Fig. 2 into the results archive, chunk by chunk (a long paper-profile run on a CPU or a GPU).

    python scripts/archive_fig2.py --profile paper --device cpu --threads 1 [--commit]

Each finished chunk (the runs trained together) is written to
``results/fig2_gaussian_estimates/<profile>/chunks/`` with its provenance, and with ``--commit``
committed at once, so an interrupted run loses at most the chunk in progress. Rerunning skips every
chunk already archived for the same configuration. The cheapest chunks (the separable critic's) go first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from mi_lib import archive as A
from mi_lib.experiments import gaussian as G
from mi_lib.profiles import override


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper", choices=sorted(G.CONFIGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--root", default=str(A.ARCHIVE_DIR), help="archive folder (default: the checkout's results/)")
    ap.add_argument("--commit", action="store_true", help="git-commit each chunk as it is written")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = override(G.CONFIGS[args.profile], device=args.device)
    out = Path(args.root) / "fig2_gaussian_estimates" / args.profile / "chunks"
    todo = sorted(G.chunks(cfg), key=lambda c: c[0].critic != "separable")  # cheapest first
    print(f"{len(todo)} chunks into {out}", flush=True)
    for i, chunk in enumerate(todo):
        t0 = time.perf_counter()
        G._chunk(cfg, chunk, None, False, True, out, args.profile)
        print(
            f"[{time.strftime('%H:%M:%S')}] chunk {i + 1}/{len(todo)} ({chunk[0].critic}, {len(chunk)} runs): "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        if args.commit:
            _commit(out, f"Fig. 2 {args.profile} profile: chunk {i + 1}/{len(todo)} ({chunk[0].critic}) archived")
    return 0


def _commit(folder: Path, message: str) -> None:
    """Commit the folder's new files; retried, since other work may hold the index for a moment."""
    for _ in range(30):
        add = subprocess.run(["git", "-C", str(folder), "add", "."], capture_output=True, text=True)
        done = subprocess.run(
            ["git", "-C", str(folder), "commit", "-q", "-m", message, "--", "."], capture_output=True, text=True
        )
        if add.returncode == 0 and (done.returncode == 0 or "nothing" in done.stdout + done.stderr):
            return
        time.sleep(2)
    print(f"warning: could not commit {folder}: {done.stderr.strip()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
