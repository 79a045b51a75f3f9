"""Benchmark: would bfloat16 matmuls speed up the sweep engine on this CPU?

The engine trains in float32. This measures what bfloat16 would buy on the machine it runs on:
(1) the batched products at the shapes of the Fig. 2 sweeps (separable critic, baseline, joint
critic on the K^2 pairs), forward and both backward products, float32 against bfloat16;
(2) one elementwise pass and one dtype cast over a joint-critic activation; (3) the paper's
separable and joint sweeps of one task (10 runs each) through ``train_sweep``, float32 against
``compute_dtype=torch.bfloat16`` (critics and baselines in bfloat16 on float32 weights; Adam and
the bounds in float32), alternating repetitions. Medians. Writes
benchmarks/results/precision_<device>.json.

    python benchmarks/bench_precision.py [--threads 2] [--reps-sweep 3]
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
from mi_lib.train import train_sweep

SHAPES = {  # name: (runs R, rows N, in, out)
    "separable hidden layer (10 runs, K = 64)": (10, 64, 256, 256),
    "baseline hidden layer (4 runs, K = 64)": (4, 64, 512, 512),
    "joint hidden layer on the K^2 pairs (2 runs)": (2, 64 * 64, 256, 256),
}


def _median_seconds(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def products(reps: int) -> dict:
    out = {}
    for name, (r, n, a, b) in SHAPES.items():
        flops = 2 * r * n * a * b / 1e9
        row = {}
        for dt in (torch.float32, torch.bfloat16):
            h, w = torch.randn(r, n, a).to(dt), torch.randn(r, a, b).to(dt)
            g, bias = torch.randn(r, n, b).to(dt), torch.randn(r, 1, b).to(dt)
            key = str(dt).replace("torch.", "")
            row[key] = {
                "forward_gflops": flops / _median_seconds(lambda: torch.baddbmm(bias, h, w), reps),
                "grad_weight_gflops": flops / _median_seconds(lambda: torch.bmm(h.transpose(1, 2), g), reps),
                "grad_input_gflops": flops / _median_seconds(lambda: torch.bmm(g, w.transpose(1, 2)), reps),
            }
        out[name] = row
    return out


def elementwise(reps: int) -> dict:
    x32 = torch.randn(2, 64 * 64, 256)
    x16 = x32.bfloat16()
    return {
        "relu_us_float32": 1e6 * _median_seconds(lambda: torch.relu_(x32), reps),
        "relu_us_bfloat16": 1e6 * _median_seconds(lambda: torch.relu_(x16), reps),
        "cast_float32_to_bfloat16_us": 1e6 * _median_seconds(lambda: x32.bfloat16(), reps),
    }


def sweeps(critic: str, reps: int, steps: int) -> dict:
    """The paper's sweep of one task (10 runs) for ``critic`` through ``train_sweep``, float32
    against ``compute_dtype=torch.bfloat16``, alternating repetitions of ``steps`` steps."""
    runs = [
        dataclasses.replace(r, mi_levels=(2.0,), steps_per_level=steps)
        for r in run_configs(CONFIGS["paper"])
        if r.task.name == "gaussian" and r.critic == critic
    ]
    secs = {"float32": [], "bfloat16": []}
    for _ in range(reps):
        for name, cd in (("float32", None), ("bfloat16", torch.bfloat16)):
            secs[name].append(train_sweep(runs, device="cpu", progress=False, compute_dtype=cd).seconds)
    return {f"{k}_run_steps_per_s": len(runs) * steps / statistics.median(v) for k, v in secs.items()} | {
        "reps": reps,
        "steps": steps,
        "seconds": secs,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--reps-sweep", type=int, default=3, help="alternating repetitions of each sweep")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    flags = open("/proc/cpuinfo").read().split() if Path("/proc/cpuinfo").exists() else []
    out = {
        "machine": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags,
        }
    }
    out["products"] = products(args.reps)
    for name, row in out["products"].items():
        f, b = row["float32"], row["bfloat16"]
        print(
            f"{name}: float32 {f['forward_gflops']:.0f}/{f['grad_weight_gflops']:.0f}/{f['grad_input_gflops']:.0f}, "
            f"bfloat16 {b['forward_gflops']:.0f}/{b['grad_weight_gflops']:.0f}/{b['grad_input_gflops']:.0f} GFLOP/s "
            "(forward / weight gradient / input gradient)",
            flush=True,
        )
    out["elementwise"] = elementwise(args.reps)
    print("elementwise on [2, 4096, 256]:", {k: round(v) for k, v in out["elementwise"].items()}, flush=True)
    for critic, steps in (("separable", 300), ("concat", 20)):
        out[f"{critic}_sweep"] = res = sweeps(critic, args.reps_sweep, steps)
        print(
            f"{critic} sweep (train_sweep, paper architecture):",
            {k: round(v, 1) for k, v in res.items() if k.endswith("per_s")},
            flush=True,
        )
    path = Path(__file__).parent / "results" / "precision_cpu.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
