"""Benchmark: the Fig. 2 sweep, one run at a time (reference style) vs the batched engine.

Same data streams, same initial weights, same Adam, same number of steps, in one
process, alternating, several repetitions; medians reported. The per-run loop is
``train_run`` with the ordinary ``nn.Module`` critics (autograd, one run per step, as the
reference code trains). (``torch.compile`` of the bound stage was measured here before and
did not pay on the CPU, see the README; the option was removed.) Also measures
the machine's float32 matmul rate (2048 x 2048 products) so the sweeps' FLOP rates can be
put against it. Writes benchmarks/results/sweep_<device>.json.

    python benchmarks/bench_sweep.py [--device cpu|cuda] [--threads N] [--reps 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from mi_lib.experiments.gaussian import CONFIGS, run_configs
from mi_lib.train import RunConfig, train_run, train_sweep


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for _ in range(reps + 1):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times[1:]) / 1e9


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mlp_flops(k: int, dims) -> int:
    return sum(2 * k * a * b for a, b in zip(dims[:-1], dims[1:]))


def flops_per_run_step(c: RunConfig) -> float:
    """Forward + backward (~3x forward) FLOPs of one training step of one run (matmuls only)."""
    k, d, h = c.batch_size, c.task.dim, c.hidden_dim
    if c.critic == "separable":
        net = [d] + [h] * c.layers + [c.embed_dim]
        fwd = 2 * _mlp_flops(k, net) + 2 * k * k * c.embed_dim
    else:
        fwd = 2 * k * 2 * d * h + _mlp_flops(k * k, [h] * c.layers + [1])
    if c.needs_baseline:
        fwd += _mlp_flops(k, [d] + [c.baseline_hidden] * c.baseline_layers + [1])
    return 3.0 * fwd


def _timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def bench(runs, steps, device, reps):
    runs = [dataclasses.replace(r, mi_levels=(2.0,), steps_per_level=steps) for r in runs]
    flops = sum(flops_per_run_step(r) for r in runs) * steps
    per_run_t, sweep_t, mem = [], [], []
    for rep in range(reps):
        per_run_t.append(_timed(lambda: [train_run(r, device=str(device), progress=False) for r in runs], device)[0])
        t, res = _timed(lambda: train_sweep(runs, device=str(device), progress=False), device)
        sweep_t.append(t)
        mem.append(res.peak_memory_mb)
        line = f"  rep {rep}: per-run {per_run_t[-1]:.2f} s, sweep {sweep_t[-1]:.2f} s"
        print(line, flush=True)
    run_steps = len(runs) * steps
    p, s = statistics.median(per_run_t), statistics.median(sweep_t)
    out = {
        "runs": len(runs),
        "bounds": [r.bound for r in runs],
        "steps": steps,
        "reps": reps,
        "per_run_seconds": per_run_t,
        "sweep_seconds": sweep_t,
        "per_run_run_steps_per_s": run_steps / p,
        "sweep_run_steps_per_s": run_steps / s,
        "per_run_wall_s_per_run": p / len(runs),
        "sweep_wall_s_per_run": s / len(runs),
        "speedup_median": p / s,
        # each repetition's ratio (per-run and sweep timed back to back): robust to the machine's
        # speed drifting between repetitions, which the ratio of medians is not
        "speedup_per_rep": [a / b for a, b in zip(per_run_t, sweep_t)],
        "speedup_median_of_reps": statistics.median(a / b for a, b in zip(per_run_t, sweep_t)),
        "sweep_gflops": flops / s / 1e9,
        "per_run_gflops": flops / p / 1e9,
        "flops_per_run_step": flops / run_steps,
        "peak_memory_mb": max(mem),
    }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--separable-steps", type=int, default=300)
    ap.add_argument("--concat-steps", type=int, default=20)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    paper = CONFIGS["paper"]
    runs = [r for r in run_configs(paper) if r.task.name == "gaussian"]
    out = {
        "machine": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        }
    }
    out["matmul_gflops_2048"] = matmul_gflops(device)
    print(f"matmul 2048^2 float32: {out['matmul_gflops_2048']:.1f} GFLOP/s", flush=True)
    for critic, steps in (("separable", args.separable_steps), ("concat", args.concat_steps)):
        sel = [r for r in runs if r.critic == critic]
        print(f"{critic}: {len(sel)} runs x {steps} steps (paper architecture)", flush=True)
        res = bench(sel, steps, device, args.reps)
        res["fraction_of_matmul_rate"] = res["sweep_gflops"] / out["matmul_gflops_2048"]
        out[critic] = res
        print(
            f"  {critic}: per-run {res['per_run_run_steps_per_s']:.0f} run-steps/s, sweep "
            f"{res['sweep_run_steps_per_s']:.0f} run-steps/s, speedup x{res['speedup_median']:.2f} "
            f"(per repetition: {', '.join(f'{r:.2f}' for r in res['speedup_per_rep'])}), "
            f"sweep {res['sweep_gflops']:.1f} GFLOP/s ({100 * res['fraction_of_matmul_rate']:.0f}% of matmul)",
            flush=True,
        )
    path = Path(__file__).parent / "results" / f"sweep_{device.type}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
