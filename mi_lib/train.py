r"""Training critics under any bound: one run (the reference loop) and batched sweeps.

:func:`train_run` trains one critic (and baseline) the way the paper's reference code
does, one step at a time through :func:`train_step`. :func:`train_sweep` trains many runs
of one architecture together (the engine is :mod:`mi_lib.sweep`), in chunks that fit in
memory (:func:`plan_chunks`); each run's history equals the history of the same run
trained alone (``tests/test_train.py`` checks this in float64). Both loops draw their data
from the same :class:`mi_lib.data.GaussianStream`, so "the same run" really is the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .critics import BaselineMLP, critic_name, make_critic
from .data import GaussianStream, GaussianTask, mi_schedule
from .optim import make_adam
from .profiles import resolve_device
from .registry import LowerBound, bound_name, get_bound
from .sweep import max_runs_per_chunk, peak_memory_mb, progress_bar, train_chunk

SWEEP_CRITICS = ("separable", "concat")  # the critics the stacked engine has
PER_RUN_FIELDS = ("bound", "alpha_logit", "seed", "task")  # what may differ between the runs of one sweep


@dataclass(frozen=True)
class RunConfig:
    """One training run of Poole et al. Fig. 2: a bound, a critic, a task, a seed, a schedule."""

    bound: str = "nwj"
    critic: str = "separable"  # "separable" | "concat" (the joint critic); aliases are resolved
    task: GaussianTask = field(default_factory=GaussianTask)
    alpha_logit: Optional[float] = None  # only for bound="interpolated"
    seed: int = 0
    batch_size: int = 64
    mi_levels: Tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)
    steps_per_level: int = 4000
    lr: float = 5e-4
    hidden_dim: int = 256
    layers: int = 2
    embed_dim: int = 32
    baseline_hidden: int = 512
    baseline_layers: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "bound", bound_name(self.bound))  # raises on an unknown name
        object.__setattr__(self, "critic", critic_name(self.critic))
        spec = get_bound(self.bound)
        if self.critic not in SWEEP_CRITICS:
            raise ValueError(
                f"critic {self.critic!r} cannot be trained here; valid critics: {', '.join(SWEEP_CRITICS)}"
            )
        if spec.needs_alpha and self.alpha_logit is None:
            raise ValueError(f"bound {self.bound!r} needs alpha_logit")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")

    @property
    def needs_baseline(self) -> bool:
        """Whether the bound trains a baseline network ``log a(y)`` (TUBA, I_alpha)."""
        return get_bound(self.bound).needs_baseline

    def arch_key(self) -> tuple:
        """Runs with equal keys can be stacked into one sweep: every field but what may differ between
        the runs of a sweep (:data:`PER_RUN_FIELDS`), so a new field is part of the key unless it is listed there."""
        shared = tuple((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in PER_RUN_FIELDS)
        return shared + (("dim", self.task.dim),)  # tasks may differ, their dimension may not


def build_modules(cfg: RunConfig, dtype: torch.dtype = torch.float32) -> Tuple[nn.Module, Optional[nn.Module]]:
    """The critic (and baseline, or None) of a run, initialised from its seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        d = cfg.task.dim
        sizes = dict(hidden_dim=cfg.hidden_dim, layers=cfg.layers)
        if cfg.critic == "separable":
            sizes["embed_dim"] = cfg.embed_dim
        critic = make_critic(cfg.critic, d, d, **sizes)
        baseline = BaselineMLP(d, cfg.baseline_hidden, cfg.baseline_layers) if cfg.needs_baseline else None
    return critic.to(dtype), (None if baseline is None else baseline.to(dtype))


def train_step(
    spec: LowerBound,
    critic: nn.Module,
    baseline: Optional[nn.Module],
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    state: Optional[torch.Tensor],
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """One Adam step that maximises ``spec``'s training objective on the batch ``(x, y)``.

    Returns the bound's value on the batch (detached) and the bound's new state (MINE's EMA).
    The one training step of :func:`train_run` and :func:`mi_lib.estimate_mi`.
    """
    scores = critic(x, y)  # [K, K]
    log_b = baseline(y) if baseline is not None else None  # [K]
    value, state = spec.train_value(scores, log_b, alpha, state)
    opt.zero_grad(set_to_none=True)
    (-value).backward()
    opt.step()
    return value.detach(), state


def train_run(
    cfg: RunConfig, device: str = "auto", dtype: torch.dtype = torch.float32, progress: bool = True
) -> Dict[str, Any]:
    """Train one run, one step at a time (the reference style). Returns per-step ``estimates`` and ``mi``."""
    dev = resolve_device(device)
    critic, baseline = build_modules(cfg, dtype)
    critic.to(dev)
    params = list(critic.parameters()) + ([] if baseline is None else list(baseline.to(dev).parameters()))
    opt = make_adam(params, cfg.lr)
    spec = get_bound(cfg.bound)
    mi = mi_schedule(cfg.mi_levels, cfg.steps_per_level)
    stream = GaussianStream(cfg.task, cfg.seed, cfg.batch_size, mi, dev, dtype)
    alpha = torch.tensor(0.0 if cfg.alpha_logit is None else cfg.alpha_logit, device=dev, dtype=dtype)
    estimates = torch.empty(len(mi), dtype=dtype, device=dev)
    state: Optional[torch.Tensor] = None
    t0 = time.perf_counter()
    with progress_bar(len(mi), f"{cfg.bound}/{cfg.critic}", progress) as bar:
        for step in range(len(mi)):
            x, y = stream.batch(step)
            estimates[step], state = train_step(spec, critic, baseline, opt, x, y, alpha, state)
            bar.update(1)
    seconds = time.perf_counter() - t0
    return {"estimates": estimates.cpu().numpy(), "mi": mi, "seconds": seconds}


@dataclass
class SweepResult:
    """Histories of R runs trained together, with timing and memory."""

    configs: List[RunConfig]
    estimates: np.ndarray  # [R, steps]
    mi: np.ndarray  # [steps]
    seconds: float
    peak_memory_mb: float
    chunks: int


def train_sweep(
    configs: Sequence[RunConfig],
    device: str = "auto",
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    memory_budget_mb: Optional[float] = None,
    compute_dtype: Optional[torch.dtype] = None,
    steps: Optional[int] = None,
) -> SweepResult:
    """Train runs of one architecture together; chunked automatically when they do not fit in memory.

    ``configs`` may differ in bound, ``alpha_logit``, seed and task; everything in
    :meth:`RunConfig.arch_key` must agree. Returns a :class:`SweepResult` with the same
    per-step estimates each run would have had alone.

    ``compute_dtype=torch.bfloat16`` runs the critics' and baselines' layers in bfloat16 on
    copies of the weights; the weights, Adam and the bounds stay in ``dtype``. ``None`` (the
    default): everything in ``dtype``. What bfloat16 does to the Fig. 2 estimates is measured in
    ``benchmarks/bench_precision_fig2.py``. ``steps``: train only the schedule's first ``steps`` steps, which
    are the full run's first steps exactly (what ``reproduce --verify`` recomputes).
    """
    configs = list(configs)
    if not configs:
        raise ValueError("train_sweep needs at least one RunConfig")
    if compute_dtype is not None and not (isinstance(compute_dtype, torch.dtype) and compute_dtype.is_floating_point):
        raise ValueError(f"compute_dtype must be a floating-point torch.dtype or None, got {compute_dtype!r}")
    keys = {c.arch_key() for c in configs}
    if len(keys) > 1:
        raise ValueError(
            "all runs of a sweep must share the architecture, batch size, schedule and lr; "
            "group them with group_by_architecture()"
        )
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    chunks = plan_chunks(configs, dev, memory_budget_mb)
    t0 = time.perf_counter()
    results = [
        train_chunk(c, [build_modules(r, dtype) for r in c], dev, dtype, progress, compute_dtype, steps) for c in chunks
    ]
    return SweepResult(
        configs,
        np.concatenate(results),
        mi_schedule(configs[0].mi_levels, configs[0].steps_per_level)[: results[0].shape[1]],
        time.perf_counter() - t0,
        peak_memory_mb(dev),
        len(chunks),
    )


def plan_chunks(
    configs: Sequence[RunConfig], device: torch.device | str = "auto", memory_budget_mb: Optional[float] = None
) -> List[List[RunConfig]]:
    """The chunks :func:`train_sweep` trains one after another, in order (runs of one architecture).

    A caller that saves results chunk by chunk (as the Fig. 2 experiment does) can train each
    chunk with its own :func:`train_sweep` call and lose at most one chunk to an interruption:
    a chunk gives the same histories alone as inside a larger sweep.
    """
    configs = list(configs)
    if not configs:
        return []
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    per_chunk = max_runs_per_chunk(configs[0], dev, memory_budget_mb)
    return [configs[i : i + per_chunk] for i in range(0, len(configs), per_chunk)]


def group_by_architecture(configs: Sequence[RunConfig]) -> List[List[RunConfig]]:
    """Split runs into stackable groups (order kept within each group)."""
    groups: Dict[tuple, List[RunConfig]] = {}
    for c in configs:
        groups.setdefault(c.arch_key(), []).append(c)
    return list(groups.values())
