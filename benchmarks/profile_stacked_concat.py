"""Where the stacked MLP ("concat") critic loses on a CPU: torch's profiler, stacked vs one run after another.

``R`` concat critics (the critique's Fig. 3 size: 100-d codes, one hidden layer of 200, ``K`` = 128
pairs a side) are evaluated with a backward pass, once vmapped over their stacked parameters (as
:class:`mi_lib.experiments.tschannen.common.StackedModels` does), once written out with batched
products whose bias is fused (Fig. 4c's :class:`~mi_lib.experiments.tschannen.fig4c_noniid.StackedConcatCritic`)
and once one after another. The
self CPU time of each op is summed into matrix products (``mm``, ``addmm``, ``bmm``), element-wise
passes over the ``[K^2, H]`` activations (ReLU, its backward, additions) and the rest. Medians of
``--reps`` timed calls; one torch thread. Results: ``benchmarks/results/profile_stacked_concat_cpu.json``.

    python benchmarks/profile_stacked_concat.py [--runs 3] [--batch 128] [--reps 10]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from mi_lib.critics import make_critic
from mi_lib.experiments.tschannen.fig4c_noniid import StackedConcatCritic

MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
ELEMENTWISE = ("aten::threshold_backward", "aten::clamp_min", "aten::relu", "aten::add", "aten::add_")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    R, K, D, H = args.runs, args.batch, args.dim, args.hidden
    critics = [make_critic("concat", D, D, hidden_dim=H, layers=2) for _ in range(R)]
    params, buffers = stack_module_state(critics)
    base = copy.deepcopy(critics[0]).to("meta")
    vmapped = vmap(lambda p, b, x, y: functional_call(base, (p, b), (x, y)))
    x, y = torch.randn(R, K, D), torch.randn(R, K, D)

    def stacked() -> None:
        vmapped(params, buffers, x, y).sum().backward()

    explicit = StackedConcatCritic(critics)  # Fig. 4c's: baddbmm with the bias fused, no vmap

    def stacked_baddbmm() -> None:
        explicit(x, y).sum().backward()

    def sequential() -> None:
        for r in range(R):
            critics[r](x[r], y[r]).sum().backward()

    out: dict = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/profile_stacked_concat.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "torch": torch.__version__,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "activation_mb_per_run": K * K * H * 4 / 2**20,
        "ways": {},
    }
    for name, fn in (("stacked", stacked), ("stacked_baddbmm", stacked_baddbmm), ("sequential", sequential)):
        fn()  # warm-up
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        with torch.profiler.profile() as prof:
            for _ in range(args.reps):
                fn()
        ops = {e.key: e.self_cpu_time_total / 1e3 / args.reps for e in prof.key_averages()}  # ms per call
        groups = {
            "matmul_ms": sum(v for k, v in ops.items() if k in MATMUL),
            "elementwise_ms": sum(v for k, v in ops.items() if k in ELEMENTWISE),
        }
        groups["other_ms"] = sum(ops.values()) - groups["matmul_ms"] - groups["elementwise_ms"]
        out["ways"][name] = {"ms_median": 1e3 * statistics.median(times), **groups}
        print(f"{name}: {out['ways'][name]}", flush=True)
    s, q = out["ways"]["stacked"], out["ways"]["sequential"]
    out["ratio_total"] = s["ms_median"] / q["ms_median"]
    out["ratio_matmul"] = s["matmul_ms"] / q["matmul_ms"]
    out["ratio_elementwise"] = s["elementwise_ms"] / q["elementwise_ms"]
    out["ratio_total_baddbmm"] = out["ways"]["stacked_baddbmm"]["ms_median"] / q["ms_median"]
    print({k: round(v, 2) for k, v in out.items() if k.startswith("ratio")})
    path = Path(__file__).parent / "results" / "profile_stacked_concat_cpu.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
