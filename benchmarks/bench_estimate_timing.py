"""Wall time of ``estimate_mi`` at its defaults on every benchmark task, on otherwise idle cores.

The accuracy benchmark (``bench_estimate.py``) ran on a shared, loaded machine, so its wall seconds
say little about the target "at most 10 s a fit on 2 CPU cores". This script refits every task at the
defaults with ``--threads`` torch threads (2: the target's machine), records each fit's wall and CPU
seconds, the load average before and after, and records how far each estimate is from the
accuracy benchmark's (same data and seed; another thread count sums in another order). Results:
``benchmarks/results/estimate_timing.json``.

    python benchmarks/bench_estimate_timing.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_estimate as B  # noqa: E402
from mi_tasks import tasks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", default="all", help="comma-separated task names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    chosen = [t for t in tasks() if args.tasks == "all" or t.name in args.tasks.split(",")]
    rows = []
    for task in chosen:
        load_before = os.getloadavg()[0]
        r = B.run_one(B.DEFAULT, task, seed=0)
        ref = B.RUNS / f"{B.DEFAULT}__{task.name}.json"
        bench = json.loads(ref.read_text())["estimate"] if ref.exists() else None
        rows.append(
            dict(
                task=task.name,
                seconds=r["seconds"],
                cpu_seconds=r["cpu_seconds"],
                steps_run=r["steps_run"],
                estimate=r["estimate"],
                benchmark_estimate=bench,
                load_before=load_before,
                load_after=os.getloadavg()[0],
            )
        )
        print(
            f"{task.name:28s} {r['seconds']:6.1f} s wall {r['cpu_seconds']:6.1f} s CPU  est {r['estimate']:.4f}",
            flush=True,
        )
    secs = [r["seconds"] for r in rows]
    out = dict(
        command=f"python benchmarks/bench_estimate_timing.py --threads {args.threads}",
        threads=args.threads,
        machine=dict(platform=platform.platform(), processor=platform.processor(), cpus=os.cpu_count()),
        torch=torch.__version__,
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        summary=dict(
            n=len(rows),
            median_seconds=statistics.median(secs),
            mean_seconds=statistics.mean(secs),
            max_seconds=max(secs),
            over_10s=[r["task"] for r in rows if r["seconds"] > 10.0],
            max_abs_diff_from_benchmark=max(
                abs(r["estimate"] - r["benchmark_estimate"]) for r in rows if r["benchmark_estimate"] is not None
            ),
        ),
        rows=rows,
    )
    (B.RESULTS / "estimate_timing.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
