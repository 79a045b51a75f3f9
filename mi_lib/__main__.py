"""Command line: ``python -m mi_lib reproduce [names ...] --profile quick|paper|smoke|auto --device auto``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Dict, Tuple


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mi_lib``; returns the exit status.

    0: every notebook ran; 1: a notebook failed; 2: nothing ran (bad name, unavailable device,
    missing ``[book]`` extra, unwritable output folder); 130: interrupted with Ctrl-C.
    """
    parser = argparse.ArgumentParser(prog="python -m mi_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the figure notebooks with papermill")
    rep.add_argument("names", nargs="*", help="notebook stems or prefixes (default: all)")
    rep.add_argument(
        "--profile",
        default="auto",
        choices=["smoke", "quick", "paper", "auto"],
        help="auto: paper on CUDA, quick otherwise",
    )
    rep.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    rep.add_argument("--force", action="store_true", help="recompute even when cached results exist")
    rep.add_argument(
        "--jobs",
        default="auto",
        help="notebooks run at once (auto: one a CPU core up to 4, each kernel with its share of the cores; "
        "1 on a GPU)",
    )
    rep.add_argument("--cell-timeout", type=int, default=7200, help="seconds allowed per notebook cell")
    rep.add_argument(
        "--root",
        default=None,
        help="project folder whose notebooks/ run into its book/ and results_cache/ "
        "(default: the checkout mi_lib was installed from)",
    )
    rep.add_argument(
        "--publish",
        action="store_true",
        help="write the named figures' results-archive entries at --profile (computing missing chunks) "
        "instead of running notebooks",
    )
    rep.add_argument(
        "--verify",
        action="store_true",
        help="recompute a cheap slice of the named figures' archive entries on the CPU and compare",
    )
    sub.add_parser("list", help="list the figure notebooks")
    sub.add_parser("archive", help="what the results archive holds: chunks or cells per figure, size, CPU time")
    args = parser.parse_args(argv)
    if args.command == "archive":
        return _archive_status()
    if args.command == "reproduce" and (args.publish or args.verify):
        return _archive(args.names, "paper" if args.profile == "auto" else args.profile, args.device, args.verify)

    from . import reproduce as R

    if args.command == "list":
        for stem in R.discover():
            print(stem)
        return 0
    root = R.ROOT if args.root is None else Path(args.root).resolve()
    try:
        jobs = args.jobs if args.jobs == "auto" else int(args.jobs) if args.jobs.isdigit() else args.jobs
        runs = R.reproduce(
            args.names, args.profile, args.device, args.force, root=root, cell_timeout=args.cell_timeout, jobs=jobs
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the previous executed notebooks were kept", file=sys.stderr)
        return 130
    failed = [r for r in runs if r.status != "ok"]
    for r in failed:
        print(f"error: {r.notebook} {R.shorten(r.status, 4 * R.STATUS_WIDTH)}", file=sys.stderr)
    return 1 if failed else 0


def _archived_figures(device: str) -> Dict[str, Tuple[str, Callable[..., Any], Callable[..., Any], Any]]:
    """``{name: (notebook, publish(profile) -> path or None, verify(profile) -> dict, progress(profile) -> str)}``
    of every archived figure: Figs. 2 and 4c (trained, in chunks), Fig. 5 (one checkpointed run) and
    Figs. 3 and 4 (Monte Carlo, in cells)."""
    from . import publish as P
    from . import publish_dsprites as PD
    from . import publish_grid as PG
    from . import publish_noniid as PN

    out: Dict[str, Tuple[str, Callable[..., Any], Callable[..., Any], Any]] = {
        "fig2": (P.FIG2, lambda pr: P.publish_fig2(pr, device=device), P.verify_fig2, None),
        "fig4c": (PN.NOTEBOOK, PN.publish, PN.verify, PN.status_line),
        "fig5": (PD.NOTEBOOK, PD.compute, PD.verify, PD.progress_line),
    }
    for f in PG.FIGURES.values():
        out[f.name] = (
            f.notebook,
            lambda pr, f=f: PG.publish(f, pr, device=device),
            lambda pr, f=f: PG.verify(f, pr),
            lambda pr, f=f: PG.status_line(f, pr),
        )
    return out


def _archive(names: Sequence[str], profile: str, device: str, verify: bool) -> int:
    """``--publish`` / ``--verify`` of the named archived figures."""
    from . import archive as A

    known = _archived_figures(device)
    picked = []
    for n in names:
        hits = [k for k, (nb, *_) in known.items() if n and (k == n or nb.startswith(n))]
        if len(hits) != 1:
            print(
                f"error: {n!r} names no archived figure; the archive holds {', '.join(sorted(known))} "
                f"(e.g. reproduce --publish fig2)",
                file=sys.stderr,
            )
            return 2
        picked.append(hits[0])
    if not picked:
        print(f"error: name the figures to archive: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    status = 0
    for name in picked:
        _, publish, check, progress = known[name]
        try:
            if verify:
                res = check(profile)
                print(A.verification_line(name, profile, res))
                status = max(status, 0 if res["passed"] else 1)
            else:
                path = publish(profile)  # None: a long run stopped before its end (Fig. 5's checkpointed training)
                print(f"wrote {path}" if path is not None else progress(profile))
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 2
    return status


def _archive_status() -> int:
    """One line per archived figure and profile: how much is in, its size and the time it took."""
    import json

    from . import archive as A

    root = A.ARCHIVE_DIR
    total = 0
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        metas = [json.loads(m.read_text()) for m in folder.rglob("*.json") if m.name != "entry.json"]
        # a training checkpoint (Fig. 5) is kept out of git and out of the archive's size
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.name.startswith("checkpoint"))
        total += size
        if not metas:
            ck, note = folder / "checkpoint.pt", ""
            if ck.exists():  # a long training run in progress (Fig. 5)
                import torch

                step = int(torch.load(ck, map_location="cpu", weights_only=False)["step"])
                note = f"; training checkpointed at step {step:,} (the checkpoint stays out of git)"
            print(f"{folder.parent.name}/{folder.name}: nothing archived yet{note}")
            continue
        minutes = sum(float(m.get("seconds", 0.0)) for m in metas) / 60
        devices = ", ".join(sorted({m.get("device_name", "?") for m in metas}))
        print(
            f"{folder.parent.name}/{folder.name}: {len(metas)} entries, {size / 1e6:.2f} MB, "
            f"{minutes:.0f} min on {devices}"
        )
    print(f"total: {total / 1e6:.2f} MB in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
