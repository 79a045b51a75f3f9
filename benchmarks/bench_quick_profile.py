"""Wall time of the whole book's figures at the ``quick`` profile, from a clean cache, on this CPU.

The budget (README): every figure of the book in at most 15 minutes on a 2-core CPU. This script
runs ``python -m mi_lib reproduce --profile quick --device cpu --force`` in a scratch copy of the
notebooks (``--root``), so the checkout's executed book is left alone, and records each notebook's
seconds from the run's ``reproduce_summary.json``, the total wall time, the machine and the load
average before and after (the numbers mean something only on otherwise idle cores). Results:
``benchmarks/results/quick_profile_cpu.json``. ``--jobs`` is passed on (default ``auto``: as many
notebooks at once as ``make book`` runs); ``NAMES`` measure a part of the book alone (for example the
critique's share: ``tschannen``), into ``quick_profile_cpu_<names>.json``.

    python benchmarks/bench_quick_profile.py [NAMES ...] [--jobs auto|N] [--scratch /tmp/quick_bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="notebook stems or prefixes (default: the whole book)")
    ap.add_argument("--jobs", default="auto", help="notebooks at once (reproduce --jobs)")
    ap.add_argument("--budget", type=float, default=900, help="seconds allowed (the critique's share: 360)")
    ap.add_argument("--scratch", default="/tmp/quick_bench", help="folder the notebooks are copied to and run in")
    args = ap.parse_args()
    scratch = Path(args.scratch)
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(ROOT / "notebooks", scratch / "notebooks")
    (scratch / "book").mkdir()
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "mi_lib", "reproduce", *args.names, "--profile", "quick", "--device", "cpu"]
    cmd += ["--force", "--jobs", args.jobs]
    subprocess.run([*cmd, "--root", str(scratch)], check=True)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    summary = json.loads((scratch / "book" / "executed" / "reproduce_summary.json").read_text())
    out = dict(
        command=" ".join(["python benchmarks/bench_quick_profile.py", *sys.argv[1:]]),
        names=args.names or "all",
        jobs=args.jobs,
        reproduce_command=" ".join(cmd[1:]),
        git_commit=git,
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=dict(platform=platform.platform(), processor=platform.processor(), cpus=os.cpu_count()),
        load_before=load_before,
        load_after=load_after,
        total_wall_seconds=wall,
        budget_seconds=args.budget,
        within_budget=wall <= args.budget,
        notebooks=summary,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "quick_profile_cpu" + "".join(f"_{n}" for n in args.names)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))
    print(f"total {wall:.0f} s (budget {args.budget:.0f} s); load {load_before[0]:.2f} -> {load_after[0]:.2f}")


if __name__ == "__main__":
    main()
