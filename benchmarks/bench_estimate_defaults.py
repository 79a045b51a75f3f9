"""Choose estimate_mi's defaults by measurement: bounds x critics on data sets with known MI.

Every data set is an invertible transform of a correlated Gaussian, so its MI is known in
closed form while the marginals are far from Gaussian. Writes
benchmarks/results/estimate_defaults.json. Usage: python benchmarks/bench_estimate_defaults.py
"""
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mi_lib import estimate_mi
from mi_lib.data import mi_to_rho, rho_to_mi


def gaussian(n, dim, mi, rng):
    rho = mi_to_rho(mi, dim)
    x = rng.standard_normal((n, dim))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((n, dim))
    return x, y


def datasets(n, rng):
    x, y = gaussian(n, 1, rho_to_mi(0.75, 1), rng)
    yield "gauss-1d-0.41", x, y, rho_to_mi(0.75, 1)
    x, y = gaussian(n, 10, 2.0, rng)
    yield "gauss-10d-2", x, y, 2.0
    x, y = gaussian(n, 5, 2.0, rng)
    w = rng.standard_normal((5, 5)) / math.sqrt(5)
    yield "cubic-5d-2", x, (y @ w.T) ** 3, 2.0
    x, y = gaussian(n, 3, 1.0, rng)
    yield "sinh-exp-3d-1", np.sinh(3 * x), np.exp(2 * y), 1.0
    x, y = gaussian(n, 2, 3.0, rng)
    yield "gauss-2d-3", x, y, 3.0


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    grid = [(b, "separable", "rank") for b in ("smile", "nwj", "infonce", "mine")] + [
        ("smile", "separable", "standardize"), ("nwj", "separable", "standardize"), ("smile", "concat", "rank")]
    for name, x, y, true in datasets(10000, rng):
        for bound, critic, prep in grid:
            t0 = time.perf_counter()
            res = estimate_mi(x, y, bound=bound, critic=critic, preprocess=prep, seed=0)
            rows.append(dict(data=name, true=true, bound=bound, critic=critic, preprocess=prep,
                             estimate=res.estimate, stderr=res.stderr, seconds=time.perf_counter() - t0))
            print(f"{name:14s} {bound:8s} {critic:9s} {prep:11s} est {res.estimate:8.3f} ± {res.stderr:.3f} "
                  f"(true {true:.3f})", flush=True)
    summary = {}
    for bound, critic, prep in grid:
        errs = [abs(r["estimate"] - r["true"]) for r in rows
                if (r["bound"], r["critic"], r["preprocess"]) == (bound, critic, prep)]
        errs = [e if np.isfinite(e) else 1e9 for e in errs]  # a non-finite estimate is the worst error
        summary[f"{bound}/{critic}/{prep}"] = {"mean_abs_error": float(np.mean(errs)), "max_abs_error": float(np.max(errs))}
    out = {"rows": rows, "summary": summary, "machine": {"python": sys.version.split()[0], "torch": torch.__version__,
           "platform": platform.platform(), "threads": torch.get_num_threads()}}
    path = Path(__file__).parent / "results" / "estimate_defaults.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    for k, v in sorted(summary.items(), key=lambda kv: kv[1]["mean_abs_error"]):
        print(f"{k:20s} mean |error| {v['mean_abs_error']:.3f}  max {v['max_abs_error']:.3f}")


if __name__ == "__main__":
    main()
