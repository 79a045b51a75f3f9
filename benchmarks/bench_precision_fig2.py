"""Does bfloat16 change Fig. 2? The quick-profile figure in float32 and in bfloat16, against its seed noise.

Trains the Fig. 2 experiment three times from scratch (a temporary cache): float32 with seed 0,
bfloat16 (``Fig2Config(precision="bfloat16")``: critics and baselines computed in bfloat16 on
float32 weights; Adam and the bounds in float32) with seed 0, and float32 with seed 1. For every
run it takes the figure's accuracy number (``mi_lib.figures.gaussian.mean_abs_error``: |median
estimate - true MI| over each level's settled half, averaged over levels) and compares the
bfloat16 change with the seed-to-seed change, per critic. Also records each critic sweep's
seconds. Writes benchmarks/results/precision_fig2_<profile>.json.

    python benchmarks/bench_precision_fig2.py [--profile quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mi_lib.experiments import gaussian as G
from mi_lib.figures.gaussian import DIVERGED_NATS, mean_abs_error
from mi_lib.profiles import override

VARIANTS = {"float32": ("float32", 0), "bfloat16": ("bfloat16", 0), "float32_seed1": ("float32", 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = override(G.CONFIGS[args.profile], device=args.device)
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, (precision, seed) in VARIANTS.items():
            cfg = override(base, precision=precision, seed=seed)
            results[name] = G.run(cfg, cache_dir=Path(cache) / name, progress=False)
            print(f"{name}: trained", flush=True)
    ref = results["float32"]
    err = {k: mean_abs_error(r) for k, r in results.items()}
    out = {
        "machine": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": args.device,
        },
        "profile": args.profile,
        "config": {k: str(v) for k, v in dataclasses.asdict(base).items()},
    }
    for critic in base.critics:
        rows = np.flatnonzero(ref["critics"] == critic)
        # runs that diverged in any variant are compared by count, not by error
        ok = rows[np.all([err[k][rows] < DIVERGED_NATS for k in err], axis=0)]
        d_bf16 = np.abs(err["bfloat16"][ok] - err["float32"][ok])
        d_seed = np.abs(err["float32_seed1"][ok] - err["float32"][ok])
        seconds = {k: float(np.sum(r["seconds_per_run"][rows])) for k, r in results.items()}
        out[critic] = {
            "runs": [f"{t}/{lab}" for t, lab in zip(ref["tasks"][rows], ref["labels"][rows])],
            "mean_abs_error": {k: [float(x) for x in v[rows]] for k, v in err.items()},
            "runs_compared": int(len(ok)),
            "diverged": {k: int(np.sum(err[k][rows] >= DIVERGED_NATS)) for k in err},
            "bf16_change_median": float(np.median(d_bf16)),
            "bf16_change_max": float(np.max(d_bf16)),
            "seed_change_median": float(np.median(d_seed)),
            "seed_change_max": float(np.max(d_seed)),
            "sweep_seconds": seconds,
        }
        r = out[critic]
        print(
            f"{critic}: |error change| bfloat16 vs float32 median {r['bf16_change_median']:.3f} "
            f"(max {r['bf16_change_max']:.3f}) nats; seed 1 vs seed 0 median {r['seed_change_median']:.3f} "
            f"(max {r['seed_change_max']:.3f}); diverged {r['diverged']}; seconds {r['sweep_seconds']}",
            flush=True,
        )
    path = Path(__file__).parent / "results" / f"precision_fig2_{args.profile}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
