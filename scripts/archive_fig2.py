"""Compute Fig. 2 into the results archive, chunk by chunk (a long paper-profile run on a CPU or a GPU).

    python scripts/archive_fig2.py --profile paper --device cpu --threads 1 [--commit] [--limit N]

Each finished chunk (the runs trained together) is written to
``results/fig2_gaussian_estimates/<profile>/chunks/`` with its provenance, and with ``--commit``
committed at once, so an interrupted run loses at most the chunk in progress. Rerunning skips every
chunk already archived for the same configuration. The cheapest chunks (the separable critic's) go first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mi_lib.experiments import gaussian as G
from mi_lib.profiles import override

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive_cli as C  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = C.parser(__doc__, pieces="chunks")
    ap.add_argument("--device", default="cpu")
    args = C.parse(ap, argv)
    if args.profile not in G.CONFIGS:
        ap.error(f"--profile: choose from {', '.join(sorted(G.CONFIGS))}")
    cfg = override(G.CONFIGS[args.profile], device=args.device)
    out = Path(args.root) / "fig2_gaussian_estimates" / args.profile / "chunks"
    todo = sorted(G.chunks(cfg), key=lambda c: c[0].critic != "separable")[: args.limit]  # cheapest first
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
            what = f"chunk {i + 1}/{len(todo)} ({chunk[0].critic})"
            C.commit_folder(out, f"Fig. 2 {args.profile} profile: {what} archived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
