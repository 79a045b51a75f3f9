r"""The batched sweep engine behind :func:`mi_lib.train.train_sweep`.

R runs of one architecture are trained as one: parameters stacked along a run axis
(:mod:`mi_lib.stacked`), one batched forward and backward, every run's bound value and
gradient in one autograd node (:class:`BoundStage`, closed forms from
:mod:`mi_lib.bound_grads`), and Adam inside the backward (:class:`mi_lib.optim.AdamInBackward`).
Each run's history equals the same run trained alone (``tests/test_train.py``).
"""

from __future__ import annotations

import itertools
import resource
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, cast

import numpy as np
import torch
from torch import nn

from .bound_grads import value_and_grad_of
from .critics import BaselineMLP
from .data import GaussianStream, mi_schedule
from .optim import AdamInBackward
from .registry import get_bound
from .stacked import StackedBaseline, StackedConcat, StackedSeparable

if TYPE_CHECKING:
    from .train import RunConfig


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar that stays quiet when ``enabled`` is false."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, mininterval=0.5)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: allocated on CUDA, the process's max resident set elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def max_runs_per_chunk(cfg: RunConfig, dev: torch.device, memory_budget_mb: Optional[float]) -> int:
    """How many runs fit in memory: the concat critic's [K, K, H] activations dominate."""
    k, h = cfg.batch_size, cfg.hidden_dim
    per_run = 4 * (k * k * h * (cfg.layers * 4) if cfg.critic == "concat" else k * h * 8 * cfg.layers)
    if memory_budget_mb is None:
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            memory_budget_mb = 0.5 * free / 2**20
        else:
            # the joint critic's [R, K, K, H] activations are fastest in cache-sized chunks on a CPU
            # (benchmarks/results/sweep_cpu.json); 64 MB is two paper-size runs
            memory_budget_mb = 64.0
    return max(1, int(memory_budget_mb * 2**20 // per_run))


class FusedBounds(torch.autograd.Function):
    """All runs' bound values as one autograd node: the forward also computes each run's
    gradient (:mod:`mi_lib.bound_grads`), the backward scales it by the incoming one."""

    @staticmethod
    def forward(ctx, inner, base_runs, states, out_states, scores, log_b):
        values, grad_s, grad_b, new_states = inner(scores, log_b, states)
        out_states.extend(new_states)
        ctx.base_runs = base_runs  # which runs the baseline rows belong to
        ctx.save_for_backward(grad_s, grad_b)
        return values

    @staticmethod
    def backward(ctx, grad_values):
        grad_s, grad_b = ctx.saved_tensors
        # each run's value depends on its own scores (and baseline) only: the VJP is a per-run scaling
        d_s = grad_s * grad_values[:, None, None]
        d_b = None if grad_b is None else grad_b * grad_values[ctx.base_runs, None]
        return None, None, None, None, d_s, d_b


class BoundStage:
    """Every run's bound value from the stacked scores, as one autograd node.

    Runs arrive sorted by bound, so each bound's runs are one contiguous slice. For each
    slice the bound's value and gradient come from :func:`mi_lib.bound_grads.value_and_grad_of`
    (closed forms; autograd for a bound that has none), in one batched call; the backward is a
    single scaling of those gradients, cheaper than autograd through the bounds
    (``benchmarks/results/sweep_cpu.json``).
    """

    def __init__(self, configs: Sequence[RunConfig], dev: torch.device, dtype: torch.dtype):
        # (value_and_grad, the group's alpha_logits, run slice, baseline slice or None)
        self.groups: List[Tuple[Callable, torch.Tensor, slice, Optional[slice]]] = []
        seen: set = set()
        run0, base0 = 0, 0
        base_runs: List[int] = []
        for b, group in itertools.groupby(configs, key=lambda c: c.bound):
            runs = list(group)
            if b in seen:
                raise ValueError("runs must be sorted by bound")
            seen.add(b)
            spec, n = get_bound(b), len(runs)
            alphas = torch.tensor(
                [0.0 if c.alpha_logit is None else c.alpha_logit for c in runs], device=dev, dtype=dtype
            )
            base = None
            if spec.needs_baseline:
                base, base0 = slice(base0, base0 + n), base0 + n
                base_runs += range(run0, run0 + n)
            self.groups.append((value_and_grad_of(b), alphas, slice(run0, run0 + n), base))
            run0 += n
        self.base_runs = torch.tensor(base_runs, dtype=torch.long, device=dev)

    def values_and_grads(
        self, scores: torch.Tensor, log_b: Optional[torch.Tensor], states: List[Optional[torch.Tensor]]
    ):
        """``(values [R], d/d scores [R, K, K], d/d log_b [R_b, K] or None, new states)``, no autograd."""
        values, g_s, g_b, new_states = [], [], [], []
        for (fn, alphas, rows, base), state in zip(self.groups, states):
            v, gs, gb, st = fn(scores[rows], None if base is None or log_b is None else log_b[base], alphas, state)
            values.append(v)
            g_s.append(gs)
            if base is not None:
                g_b.append(gb)
            new_states.append(st)
        return torch.cat(values), torch.cat(g_s), (torch.cat(g_b) if g_b else None), new_states

    def __call__(
        self, scores: torch.Tensor, log_b: Optional[torch.Tensor], states: List[Optional[torch.Tensor]]
    ) -> Tuple[torch.Tensor, List[Optional[torch.Tensor]]]:
        """``(values [R] with autograd to scores and log_b, new states)``."""
        new_states: List[Optional[torch.Tensor]] = []
        values = FusedBounds.apply(self.values_and_grads, self.base_runs, states, new_states, scores, log_b)
        return values, new_states


def train_chunk(
    configs: Sequence[RunConfig],
    modules: Sequence[Tuple[nn.Module, Optional[nn.Module]]],
    dev: torch.device,
    dtype: torch.dtype,
    progress: bool,
    compute_dtype: Optional[torch.dtype] = None,
    steps: Optional[int] = None,
) -> np.ndarray:
    """Train one chunk of runs of one architecture together, from their initial ``(critic, baseline)``
    ``modules``; returns the per-step estimates ``[R, steps]`` in the caller's run order. ``steps``: stop after
    the schedule's first ``steps`` steps (the same batches and numbers as the full run's first steps)."""
    first = configs[0]
    # runs sorted by bound (stable), so each bound's runs are one contiguous slice of the stack
    # (the bound stage takes views of the scores, and its gradients join back with one cat)
    bound_order = {b: i for i, b in enumerate(dict.fromkeys(c.bound for c in configs))}
    order = sorted(range(len(configs)), key=lambda r: bound_order[configs[r].bound])
    configs = [configs[r] for r in order]
    modules = [modules[r] for r in order]
    stack_cls = StackedSeparable if first.critic == "separable" else StackedConcat
    cd = None if compute_dtype == dtype else compute_dtype
    critic = stack_cls([cast(Any, m[0]) for m in modules], dev, dtype, cd)
    # baselines only for the runs whose bound has one (in run order, so also contiguous per bound)
    with_base = [r for r, c in enumerate(configs) if c.needs_baseline]
    baselines = [cast(BaselineMLP, modules[r][1]) for r in with_base]
    baseline = StackedBaseline(baselines, dev, dtype, cd) if with_base else None
    params = critic.parameters() + ([] if baseline is None else baseline.parameters())
    AdamInBackward(params, first.lr)  # every backward() below also takes the Adam step
    mi = mi_schedule(first.mi_levels, first.steps_per_level)
    stream_keys = sorted({(c.task, c.seed) for c in configs}, key=repr)
    streams = [GaussianStream(t, s, first.batch_size, mi, dev, dtype) for t, s in stream_keys]
    run_stream = torch.tensor([stream_keys.index((c.task, c.seed)) for c in configs], device=dev)
    base_stream = run_stream[with_base] if with_base else None
    stage = BoundStage(configs, dev, dtype)
    states: List[Optional[torch.Tensor]] = [None] * len(stage.groups)
    n_steps = len(mi) if steps is None else min(steps, len(mi))
    estimates = torch.empty(n_steps, len(configs), dtype=dtype, device=dev)
    with progress_bar(n_steps, f"sweep {first.critic} x{len(configs)}", progress) as bar:
        for step in range(n_steps):
            if len(streams) == 1:
                x, y = streams[0].batch(step)
                x_r, y_r = x.expand(len(configs), *x.shape), y.expand(len(configs), *y.shape)  # no copies
                y_b = None if baseline is None else y.expand(len(with_base), *y.shape)
            else:
                xs, ys = zip(*(s.batch(step) for s in streams))
                x_s, y_s = torch.stack(xs), torch.stack(ys)  # [streams, K, d]
                x_r, y_r = x_s[run_stream], y_s[run_stream]
                y_b = None if baseline is None else y_s[base_stream]
            scores = critic(x_r, y_r)  # [R, K, K]
            log_b = baseline(y_b) if baseline is not None and y_b is not None else None  # [R_baseline, K]
            values, states = stage(scores, log_b, states)  # [R]
            (-values.sum()).backward()  # and Adam, parameter by parameter (AdamInBackward)
            estimates[step] = values.detach()
            bar.update(1)
    sorted_estimates = estimates.T.cpu().numpy()
    out = np.empty_like(sorted_estimates)
    out[order] = sorted_estimates  # back to the caller's run order
    return out
