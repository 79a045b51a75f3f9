"""The held-out evaluation of ``estimate_mi`` over replicate draws: every pair against blocks of 512.

One benchmark draw per task cannot say whether an evaluation is biased or only lucky, so this draws each task
``--reps`` times (seeds 5000, 5001, ...; N = 10,000), fits the Gaussian-copula critic (the step-0 candidate;
training cut to one step, so the critic is the same for both evaluations) and evaluates NWJ on the same test
split with ``evaluation="pairs"`` and ``evaluation="blocks"``. It reports the mean and spread of the estimates,
the mean standard error, and how many draws came out more than 2 SE above the truth, in
``benchmarks/results/estimate_eval_replicates.json``.

Usage::

    python benchmarks/bench_estimate_replicates.py --tasks sparse-5d-10,dense-10d-10,dense-5d-8 --reps 12
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from mi_tasks import tasks  # noqa: E402

from mi_lib import estimate_mi  # noqa: E402

OUT = Path(__file__).parent / "results" / "estimate_eval_replicates.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="sparse-5d-10,dense-10d-10,dense-5d-8")
    ap.add_argument("--reps", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    by_name = {t.name: t for t in tasks()}
    rows = []
    for name in args.tasks.split(","):
        t = by_name[name]
        runs: dict = {"pairs": [], "blocks": []}
        for r in range(args.reps):
            x, y = t.sample(10_000, np.random.default_rng(5000 + r))
            for ev in runs:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = estimate_mi(x, y, evaluation=ev, max_steps=1, eval_every=1, patience=1, warn=False)
                runs[ev].append([res.estimate, res.stderr])
        for ev, v in runs.items():
            a = np.array(v)
            z = (a[:, 0] - t.true_mi) / a[:, 1]
            row = dict(
                task=name,
                true_mi=t.true_mi,
                evaluation=ev,
                reps=args.reps,
                mean=float(a[:, 0].mean()),
                sd=float(a[:, 0].std(ddof=1)),
                mean_stderr=float(a[:, 1].mean()),
                more_than_2se_above=int((z > 2).sum()),
                estimates=a[:, 0].tolist(),
                stderrs=a[:, 1].tolist(),
            )
            rows.append(row)
            print(
                f"{name:16s} {ev:6s} mean {row['mean']:.3f} sd {row['sd']:.3f} mean SE {row['mean_stderr']:.3f} "
                f">2 SE above: {row['more_than_2se_above']}/{args.reps}",
                flush=True,
            )
    OUT.write_text(
        json.dumps(
            dict(
                n=10_000,
                critic="the Gaussian-copula critic (step-0 candidate; max_steps=1)",
                command=f"python benchmarks/bench_estimate_replicates.py --tasks {args.tasks} --reps {args.reps}",
                rows=rows,
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
