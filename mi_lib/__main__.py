"""Command line: ``python -m mi_lib reproduce [names ...] --profile quick|paper|smoke|auto --device auto``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


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
        runs = R.reproduce(args.names, args.profile, args.device, args.force, root=root, cell_timeout=args.cell_timeout)
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


def _archive(names: Sequence[str], profile: str, device: str, verify: bool) -> int:
    """``--publish`` / ``--verify``: Figs. 2 and 4c (trained, in chunks), Fig. 5 (one checkpointed run) and Figs. 3
    and 4 (Monte Carlo, in cells)."""
    from . import publish as P
    from . import publish_grid as PG

    known = {
        "fig2": "fig2_gaussian_estimates",
        **{f.name: f.notebook for f in PG.FIGURES.values()},
        "fig4c": "tschannen_noniid",
        "fig5": "dsprites_fig5",
    }
    picked = []
    for n in names:
        hits = [k for k, nb in known.items() if n and (k == n or nb.startswith(n))]
        if len(hits) != 1:
            print(
                f"error: {n!r} names no archived figure; the archive holds {', '.join(known)} "
                f"(e.g. reproduce --publish fig2)",
                file=sys.stderr,
            )
            return 2
        picked.append(hits[0])
    if not picked:
        print(f"error: name the figures to archive: {', '.join(known)}", file=sys.stderr)
        return 2
    status = 0
    for name in picked:
        try:
            if name == "fig2":
                status = max(status, _fig2(P, profile, device, verify))
            elif name == "fig4c":
                status = max(status, _noniid(profile, verify))
            elif name == "fig5":
                status = max(status, _dsprites(profile, verify))
            else:
                status = max(status, _grid(PG, PG.figure(name), profile, device, verify))
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
            print(f"{folder.parent.name}/{folder.name}: nothing archived yet")
            continue
        minutes = sum(float(m.get("seconds", 0.0)) for m in metas) / 60
        devices = ", ".join(sorted({m.get("device_name", "?") for m in metas}))
        print(
            f"{folder.parent.name}/{folder.name}: {len(metas)} entries, {size / 1e6:.2f} MB, "
            f"{minutes:.0f} min on {devices}"
        )
    print(f"total: {total / 1e6:.2f} MB in {root}")
    return 0


def _fig2(P, profile: str, device: str, verify: bool) -> int:  # noqa: N803  (a module)
    if not verify:
        print(f"wrote {P.publish_fig2(profile, device=device)}")
        return 0
    res = P.verify_fig2(profile)
    how = "identical" if res["identical"] else f"tolerance {res['tolerance']}"
    print(
        f"fig2 ({profile}): {res['chunk']}, {res['runs']} runs x {res['steps']} steps recomputed; "
        f"max |diff| {res['max_abs_diff']:.2e} nats ({how}): {'PASSED' if res['passed'] else 'FAILED'}"
    )
    return 0 if res["passed"] else 1


def _noniid(profile: str, verify: bool) -> int:
    from . import publish_noniid as PN

    if not verify:
        print(f"wrote {PN.publish(profile)}")
        return 0
    res = PN.verify(profile)
    how = "identical" if res["identical"] else f"tolerance {res['tolerance']:g} nats"
    print(
        f"fig4c ({profile}): {res['chunk']}, {res['runs']} runs x {res['steps']} steps recomputed; "
        f"max |diff| {res['max_abs_diff']:.2e} nats ({how}): {'PASSED' if res['passed'] else 'FAILED'}"
    )
    return 0 if res["passed"] else 1


def _dsprites(profile: str, verify: bool) -> int:
    from . import publish_dsprites as PD

    if not verify:
        path = PD.compute(profile)
        print(f"wrote {path}" if path else PD.progress_line(profile))
        return 0
    res = PD.verify(profile)
    how = "identical" if res["identical"] else f"tolerance {res['tolerance']:g}"
    print(
        f"fig5 ({profile}): the first {res['steps']} training steps recomputed; "
        f"max |diff| {res['max_abs_diff']:.2e} ({how}): {'PASSED' if res['passed'] else 'FAILED'}"
    )
    return 0 if res["passed"] else 1


def _grid(PG, fig, profile: str, device: str, verify: bool) -> int:  # noqa: N803  (a module)
    if not verify:
        print(f"wrote {PG.publish(fig, profile, device=device)}")
        return 0
    res = PG.verify(fig, profile)
    how = "identical" if res["identical"] else f"relative tolerance {res['rtol']:g}"
    print(
        f"{fig.name} ({profile}): cell {res['cell']} (K={res['k']}, MI={res['mi']:g}) recomputed; "
        f"max relative diff {res['max_rel_diff']:.2e} ({how}): {'PASSED' if res['passed'] else 'FAILED'}"
    )
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
