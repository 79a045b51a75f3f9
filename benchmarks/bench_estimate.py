"""The estimate_mi benchmark: every task of ``mi_tasks.py`` (known MI, N = 10,000) under one or more settings.

Each (setting, task) result is written as soon as it is done to ``benchmarks/results/estimate_runs/``, so an
interrupted run loses at most one fit and a rerun skips what is there (``--force`` redoes it).
``--summary`` collects the default setting's runs into ``benchmarks/results/estimate_benchmark.json`` (the
README and the book quote it) and every setting's into ``benchmarks/results/estimate_levers.json``.

Usage::

    python benchmarks/bench_estimate.py --settings default --threads 2        # the full benchmark
    python benchmarks/bench_estimate.py --settings default train-nwj --tasks legacy   # a lever on a subset
    python benchmarks/bench_estimate.py --summary
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from mi_tasks import Task, tasks  # noqa: E402

from mi_lib import estimate_mi  # noqa: E402

N = 10_000
RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "estimate_runs"
DEFAULT = "default"
# the levers: each setting is the default with a few keywords changed
# the first defaults of issue 15 (separable critic trained from scratch, NWJ over blocks of 512 test pairs)
V1 = dict(critic="separable", evaluation="blocks", eval_batch_size=512, lr=5e-4)
SETTINGS: Dict[str, Dict[str, Any]] = {
    DEFAULT: {},
    # the previous default, and the levers measured against it (their runs were made with V1 as the default)
    "v1-default": V1,
    "train-js": dict(V1, train_bound="js"),
    "wide": dict(V1, batch_size=256, hidden_dim=256, embed_dim=64, lr=1e-3, patience=4),
    "train-smile": dict(V1, train_bound="smile"),
    "eval-dv": dict(V1, bound="dv"),
    "js-wide": dict(V1, train_bound="js", batch_size=256, hidden_dim=256, embed_dim=64, lr=1e-3, patience=4),
    "js-eval-dv": dict(V1, train_bound="js", bound="dv"),
    "js-no-early-stop": dict(V1, train_bound="js", patience=10_000),
    "batch-256": dict(V1, batch_size=256),
    "hidden-64": dict(V1, hidden_dim=64),
    "lr-1e-3": dict(V1, lr=1e-3),
    "no-early-stop": dict(V1, patience=10_000),
    "standardize": dict(V1, preprocess="standardize"),
    "concat": dict(V1, critic="concat", hidden_dim=128),
    # levers of the current default (the Gaussian-copula candidate, all-pairs NWJ); the first ones were measured
    # when the MLP had 2 hidden layers (the default until layers-2 and layers-4 were run on all 30 tasks)
    "separable": dict(layers=2, critic="separable"),  # no Gaussian candidate: only the MLP trained from scratch
    "blocks": dict(layers=2, evaluation="blocks"),  # the Gaussian candidate, bound on blocks of 512
    "embed-128": dict(layers=2, embed_dim=128),
    "steps-8000": dict(layers=2, max_steps=8000),
    "layers-2": dict(layers=2),
    "layers-3": dict(layers=3),
}
SUBSETS = {
    "legacy": lambda t: t.legacy,
    "trained": lambda t: t.kind in {"student-t", "embedding", "uniform-noise", "mixture", "outliers"},
    "levers": lambda t: (
        t.name
        in {
            "gauss-1d-0.41",
            "cubic-5d-2",
            "dense-5d-8",
            "dense-50d-2",
            "sparse-5d-10",
            "swissroll-2d-1",
            "uniform-noise-0.1",
            "mixture-x-1d",
            "outliers-sparse-5d-2",
        }
    ),
    "all": lambda t: True,
}


def run_one(setting: str, task: Task, seed: int = 0) -> Dict[str, Any]:
    """Fit one task under one setting; the data are drawn with the task's fixed seed (the same for every setting)."""
    rng = np.random.default_rng(_task_seed(task.name))
    x, y = task.sample(N, rng)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = estimate_mi(x, y, seed=seed, **SETTINGS[setting])
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    err = res.estimate - task.true_mi
    return dict(
        setting=setting,
        task=task.name,
        kind=task.kind,
        true_mi=task.true_mi,
        how=task.how,
        legacy=task.legacy,
        dims=[int(x.shape[1]), int(y.shape[1])],
        estimate=res.estimate,
        stderr=res.stderr,
        error=err,
        rel_error=err / task.true_mi,
        z=err / res.stderr if res.stderr > 0 else None,
        seconds=seconds,
        cpu_seconds=cpu_seconds,  # CPU time of this process: with one thread, the wall time on an idle core
        steps_run=res.settings["steps_run"],
        best_step=res.settings["best_step"],
        converged=res.diagnostics.converged,
        train_value=res.diagnostics.train_value,
        warnings=[str(w.message) for w in caught],
        overrides=SETTINGS[setting],
        threads=torch.get_num_threads(),
        load_avg=os.getloadavg()[0],
    )


def _task_seed(name: str) -> int:
    """A seed fixed by the task's name (Python's hash() is salted per process, so not that)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(name))


def _mean_or_none(v: List[Any]) -> Any:
    return None if any(x is None for x in v) else float(np.mean(v))


def _max_or_none(v: List[Any]) -> Any:
    return None if any(x is None for x in v) else float(np.max(v))


def summarise(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The targets of issue 15 on one setting's rows."""
    errs = np.array([abs(r["error"]) if math.isfinite(r["error"]) else 1e9 for r in rows])
    below = [r["task"] for r in rows if r["rel_error"] < -0.15]
    above = [r["task"] for r in rows if r["z"] is not None and r["z"] > 2]
    return dict(
        n_tasks=len(rows),
        mean_abs_error=float(errs.mean()),
        median_abs_error=float(np.median(errs)),
        max_abs_error=float(errs.max()),
        worst=max(rows, key=lambda r: abs(r["error"]))["task"],
        more_than_15pct_below=below,
        more_than_2se_above=above,
        mean_seconds=float(np.mean([r["seconds"] for r in rows])),
        max_seconds=float(np.max([r["seconds"] for r in rows])),
        mean_cpu_seconds=_mean_or_none([r.get("cpu_seconds") for r in rows]),
        max_cpu_seconds=_max_or_none([r.get("cpu_seconds") for r in rows]),
        mean_load_avg=float(np.mean([r["load_avg"] for r in rows])),
        targets_met=dict(
            mean_abs_error_below_0_10=bool(errs.mean() < 0.10),
            none_15pct_below=not below,
            none_2se_above=not above,
            at_most_10s=bool(np.max([r["seconds"] for r in rows]) <= 10.0),
        ),
    )


# why a task misses a target at the defaults, from the levers measured on it (estimate_levers.json); a task that
# misses one and is not here is listed as unexplained
WHY: Dict[str, str] = {
    "spiral-2d-1": "not a Gaussian copula (a rotation growing with the squared radius), so the MLP candidate decides; "
    "the separable MLP plateaus below the truth: with 2 hidden layers 0.79 nats, unchanged by 8,000 steps "
    "(steps-8000) or a 128-wide embedding (embed-128); 3 hidden layers 0.85 (layers-3), 4 hidden layers 0.86",
    "uniform-noise-2": "a density ratio with sharp edges (uniform noise) that the smooth MLP critic rounds off; "
    "0.20-0.22 of 0.25 nats under every lever measured",
}


def shortfalls(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Task by task, where the defaults miss a target and why (``WHY``), and the fits slower than 10 s."""
    out: Dict[str, Any] = {}
    for r in rows:
        missed = []
        if r["rel_error"] < -0.15:
            missed.append(f"{100 * r['rel_error']:+.1f}% (more than 15% below)")
        if r["z"] is not None and r["z"] > 2:
            missed.append(f"{r['z']:+.1f} SE above the truth")
        if missed:
            out[r["task"]] = dict(missed=missed, why=WHY.get(r["task"], "not explained by a measured lever yet"))
    slow = [
        dict(task=r["task"], seconds=r["seconds"], cpu_seconds=r.get("cpu_seconds"), steps_run=r["steps_run"])
        for r in rows
        if r["seconds"] > 10.0
    ]
    return dict(
        tasks=out,
        slower_than_10s=slow,
        time_note="seconds are wall time with one torch thread on a shared 2-core machine (load_avg per row); "
        "cpu_seconds is the process's CPU time, the wall time of the same fit on an idle core",
    )


def collect() -> None:
    by: Dict[str, List[Dict[str, Any]]] = {}
    for p in sorted(RUNS.glob("*.json")):
        r = json.loads(p.read_text())
        by.setdefault(r["setting"], []).append(r)
    order = {t.name: i for i, t in enumerate(tasks())}
    for rows in by.values():
        rows.sort(key=lambda r: order.get(r["task"], 1e9))
    machine = dict(
        python=sys.version.split()[0], torch=torch.__version__, platform=platform.platform(), cpus=os.cpu_count()
    )
    if DEFAULT in by:
        rows = by[DEFAULT]
        out = dict(
            n=N,
            settings="estimate_mi defaults",
            summary=summarise(rows),
            shortfalls=shortfalls(rows),
            legacy_summary=summarise([r for r in rows if r["legacy"]]),
            rows=rows,
            machine=machine,
            command="python benchmarks/bench_estimate.py --settings default --threads 1 && "
            "python benchmarks/bench_estimate.py --summary",
            provenance="these rows were run as setting layers-4 (then 'layers': 4 on top of a 2-layer default) in two "
            "processes at once, each on every other task, then renamed default when 4 layers became the default "
            "(the same code path); the 2-layer rows are setting layers-2",
        )
        (RESULTS / "estimate_benchmark.json").write_text(json.dumps(out, indent=1))
    levers = {}
    for s, rows in by.items():
        names = {r["task"] for r in rows}
        levers[s] = dict(tasks=sorted(names), overrides=SETTINGS.get(s, rows[0]["overrides"]), summary=summarise(rows))
        # the default on the same tasks, for a like-for-like comparison
        if DEFAULT in by and s != DEFAULT:
            same = [r for r in by[DEFAULT] if r["task"] in names]
            if len(same) == len(rows):
                levers[s]["default_on_same_tasks"] = summarise(same)
    (RESULTS / "estimate_levers.json").write_text(json.dumps(dict(n=N, levers=levers, machine=machine), indent=1))
    for s, v in sorted(levers.items(), key=lambda kv: kv[1]["summary"]["mean_abs_error"]):
        sm, ref = v["summary"], v.get("default_on_same_tasks", v["summary"])
        print(
            f"{s:16s} {sm['n_tasks']:3d} tasks  mean|err| {sm['mean_abs_error']:.3f} "
            f"(default {ref['mean_abs_error']:.3f})"
            f"  max {sm['max_abs_error']:.3f} ({sm['worst']})  {sm['mean_seconds']:.1f} s/fit  "
            f"<-15%: {len(sm['more_than_15pct_below'])}  >2SE: {len(sm['more_than_2se_above'])}"
        )


def readme_table() -> str:
    """The README's task-by-task table, written from ``estimate_benchmark.json`` (so the README quotes the file),
    with each fit's seconds on two idle cores from ``estimate_timing.json`` (bench_estimate_timing.py)."""
    bench = json.loads((RESULTS / "estimate_benchmark.json").read_text())
    timing_file = RESULTS / "estimate_timing.json"
    timing = {r["task"]: r["seconds"] for r in json.loads(timing_file.read_text())["rows"]} if timing_file.exists() else {}
    lines = ["| task | true MI | estimate ± SE | error | s/fit (2 idle cores) |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in bench["rows"]:
        flag = " ⚠" if r["warnings"] else ""
        secs = f"{timing[r['task']]:.1f}" if r["task"] in timing else "?"
        lines.append(
            f"| {r['task']}{flag} | {r['true_mi']:.2f} | {r['estimate']:.2f} ± {r['stderr']:.2f} | "
            f"{100 * r['rel_error']:+.0f}% | {secs} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="*", default=[DEFAULT], choices=list(SETTINGS))
    ap.add_argument("--tasks", default="all", help=f"a subset ({', '.join(SUBSETS)}) or comma-separated task names")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--readme-table", action="store_true", help="print the README's table from the results file")
    args = ap.parse_args()
    if args.summary:
        collect()
        return
    if args.readme_table:
        print(readme_table())
        return
    torch.set_num_threads(args.threads)
    chosen = [
        t for t in tasks() if (SUBSETS[args.tasks](t) if args.tasks in SUBSETS else t.name in args.tasks.split(","))
    ]
    RUNS.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        for task in chosen:
            path = RUNS / f"{setting}__{task.name}.json"
            if path.exists() and not args.force:
                continue
            r = run_one(setting, task)
            path.write_text(json.dumps(r, indent=1))
            print(
                f"{setting:14s} {task.name:24s} true {r['true_mi']:6.3f} est {r['estimate']:6.3f} ± {r['stderr']:.3f} "
                f"({100 * r['rel_error']:+5.1f}%) {r['seconds']:5.1f} s {r['steps_run']:5d} steps "
                f"{'WARN' if r['warnings'] else ''}",
                flush=True,
            )


if __name__ == "__main__":
    main()
