r"""Training critics under any bound: one run (the reference loop) and the batched sweep engine.

:func:`train_run` trains one critic (and baseline) the way the paper's reference code
does, one run at a time. :func:`train_sweep` trains many runs of one architecture
together: parameters stacked along a run axis (:mod:`mi_lib.stacked`), one batched
forward and backward for all, with Adam applied inside the backward
(:class:`AdamInBackward`). Adam is elementwise, so a stacked Adam is exactly R
independent Adams, and each run's history equals the history of the same run trained
alone (``tests/test_train.py`` checks this in float64). Both loops draw their data from
the same :class:`GaussianStream`, so "the same run" really is the same run.
"""
from __future__ import annotations

import contextlib
import itertools
import resource
import warnings
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.optim.adam import adam as adam_update

from .critics import BaselineMLP, ConcatCritic, SeparableCritic
from .data import GaussianTask, mi_schedule, mi_to_rho
from .profiles import resolve_device
from .bound_grads import value_and_grad_of
from .registry import get_bound
from .stacked import StackedBaseline, StackedConcat, StackedSeparable

CRITICS = ("separable", "concat")


@dataclass(frozen=True)
class RunConfig:
    """One training run of Poole et al. Fig. 2: a bound, a critic, a task, a seed, a schedule."""

    bound: str = "nwj"
    critic: str = "separable"  # "separable" | "concat" (joint)
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

    def __post_init__(self):
        spec = get_bound(self.bound)  # raises on an unknown name
        if self.critic not in CRITICS:
            raise ValueError(f"unknown critic {self.critic!r}; valid critics: {', '.join(CRITICS)}")
        if spec.needs_alpha and self.alpha_logit is None:
            raise ValueError(f"bound {self.bound!r} needs alpha_logit")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")

    @property
    def needs_baseline(self) -> bool:
        """Whether the bound trains a baseline network ``log a(y)`` (TUBA, I_alpha)."""
        return get_bound(self.bound).needs_baseline

    def arch_key(self) -> tuple:
        """Runs with equal keys can be stacked into one sweep."""
        return (self.critic, self.task.dim, self.batch_size, self.mi_levels, self.steps_per_level, self.lr,
                self.hidden_dim, self.layers, self.embed_dim, self.baseline_hidden, self.baseline_layers)


class GaussianStream:
    """The data of one (task, seed): ``x, y: [K, d]`` for each step, drawn in blocks of steps.

    Noise for ``block`` steps is drawn in one call (fewer, larger kernels); runs with the
    same task and seed see identical batches, whichever loop trains them.
    """

    def __init__(self, task: GaussianTask, seed: int, batch_size: int, mi_per_step: np.ndarray,
                 device, dtype=torch.float32, block: int = 500):
        self.task, self.k, self.block = task, batch_size, block
        self.device, self.dtype = device, dtype
        self.gen = torch.Generator(device=device).manual_seed(seed)
        rhos = [mi_to_rho(m, task.dim) for m in mi_per_step]
        self.rho = torch.tensor(rhos, dtype=dtype, device=device)
        w = task.cubic_W()
        self.w_t = None if w is None else w.T.to(device=device, dtype=dtype)
        self._start, self._x, self._y = -1, None, None

    def _fill(self, step: int) -> None:
        n = min(self.block, len(self.rho) - step)
        shape = (n, self.k, self.task.dim)
        x = torch.randn(shape, generator=self.gen, device=self.device, dtype=self.dtype)
        eps = torch.randn(shape, generator=self.gen, device=self.device, dtype=self.dtype)
        rho = self.rho[step: step + n, None, None]
        y = rho * x + torch.sqrt(1 - rho * rho) * eps
        if self.w_t is not None:
            y = (y @ self.w_t) ** 3
        self._start, self._x, self._y = step, x, y

    def batch(self, step: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` for ``step``; steps must be asked for in order."""
        if not (self._start <= step < self._start + (0 if self._x is None else len(self._x))):
            self._fill(step)
        return self._x[step - self._start], self._y[step - self._start]


def build_modules(cfg: RunConfig, dtype=torch.float32):
    """The critic (and baseline, or None) of a run, initialised from its seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        d = cfg.task.dim
        if cfg.critic == "separable":
            critic = SeparableCritic(d, d, cfg.hidden_dim, cfg.layers, cfg.embed_dim)
        else:
            critic = ConcatCritic(d, d, cfg.hidden_dim, cfg.layers)
        baseline = BaselineMLP(d, cfg.baseline_hidden, cfg.baseline_layers) if cfg.needs_baseline else None
    return critic.to(dtype), (None if baseline is None else baseline.to(dtype))


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (CPU and CUDA): about 6x faster than ``foreach`` on a CPU
    for these parameter sizes (measured: 29 ms vs 175 ms a step for the paper's sweep), same maths."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device without a fused kernel (e.g. mps on old torch)
        return torch.optim.Adam(params, lr=lr)


class AdamInBackward:
    """Adam (``torch.optim.Adam``'s defaults) applied to each parameter inside ``backward()``,
    as soon as its gradient is complete, through a post-accumulate-grad hook.

    The same update as :func:`make_adam`'s optimiser, step for step (``tests/test_train.py``
    checks the histories against the one-run loop), but each gradient is used while it is
    still in cache and then freed, instead of all of a sweep's gradients (11 MB for the
    paper's separable sweep) being written out and read back by one ``step()``: about 10%
    faster a step on the 2-core CPU (``benchmarks/bench_sweep.py``). There is no
    ``step()`` or ``zero_grad()`` to call.
    """

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        # the fused kernel where there is one (CPU, CUDA); torch's default implementation elsewhere
        self.fused = True if self.params[0].device.type in ("cpu", "cuda") else None
        for i, p in enumerate(self.params):
            p.register_post_accumulate_grad_hook(self._hook(i))

    def _hook(self, i: int):
        if self.fused:
            # torch's fused kernel called directly: the functional ``adam()`` around it regroups
            # its one-element lists by device and dtype on every call (tens of microseconds
            # each, 18 calls a step for the paper's separable sweep); the maths is the kernel's
            m, v, step = self.exp_avg[i], self.exp_avg_sq[i], self.steps[i]
            b1, b2, lr, eps = self.betas[0], self.betas[1], self.lr, self.eps

            def fused_update(p: torch.Tensor) -> None:
                step.add_(1)
                torch._fused_adam_([p], [p.grad], [m], [v], [], [step], amsgrad=False, lr=lr, beta1=b1,
                                   beta2=b2, weight_decay=0.0, eps=eps, maximize=False)
                p.grad = None
            return fused_update

        def update(p: torch.Tensor) -> None:
            adam_update([p], [p.grad], [self.exp_avg[i]], [self.exp_avg_sq[i]], [], [self.steps[i]],
                        fused=self.fused, amsgrad=False, beta1=self.betas[0], beta2=self.betas[1],
                        lr=self.lr, weight_decay=0.0, eps=self.eps, maximize=False)
            p.grad = None
        return update


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, mininterval=0.5)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _alpha_tensor(cfg: RunConfig, device, dtype) -> torch.Tensor:
    return torch.tensor(0.0 if cfg.alpha_logit is None else cfg.alpha_logit, device=device, dtype=dtype)


def train_run(cfg: RunConfig, device: str = "auto", dtype=torch.float32, progress: bool = True) -> Dict[str, np.ndarray]:
    """Train one run, one step at a time (the reference style). Returns per-step ``estimates`` and ``mi``."""
    dev = resolve_device(device)
    critic, baseline = build_modules(cfg, dtype)
    critic.to(dev)
    params = list(critic.parameters()) + ([] if baseline is None else list(baseline.to(dev).parameters()))
    opt = make_adam(params, cfg.lr)
    spec = get_bound(cfg.bound)
    mi = mi_schedule(cfg.mi_levels, cfg.steps_per_level)
    stream = GaussianStream(cfg.task, cfg.seed, cfg.batch_size, mi, dev, dtype)
    alpha = _alpha_tensor(cfg, dev, dtype)
    estimates = torch.empty(len(mi), dtype=dtype, device=dev)
    state, t0 = None, time.perf_counter()
    with _progress(len(mi), f"{cfg.bound}/{cfg.critic}", progress) as bar:
        for step in range(len(mi)):
            x, y = stream.batch(step)
            scores = critic(x, y)
            log_b = baseline(y) if baseline is not None else None
            value, state = spec.train_value(scores, log_b, alpha, state)
            opt.zero_grad(set_to_none=True)
            (-value).backward()
            opt.step()
            estimates[step] = value.detach()
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
    compile_seconds: float = 0.0  # of ``seconds``: time spent in the calls that compiled (0 if eager)


def _max_runs_per_chunk(cfg: RunConfig, dev: torch.device, memory_budget_mb: Optional[float]) -> int:
    """How many runs fit in memory: the concat critic's [K, K, H] activations dominate."""
    k, h = cfg.batch_size, cfg.hidden_dim
    per_run = 4 * (k * k * h * (cfg.layers * 4) if cfg.critic == "concat" else k * h * 8 * cfg.layers)
    if memory_budget_mb is None:
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            memory_budget_mb = 0.5 * free / 2**20
        else:
            # measured (benchmarks/bench_sweep.py, 2-core CPU): the joint critic's [R, K, K, H]
            # activations are fastest in cache-sized chunks; 64 MB is two paper-size runs
            memory_budget_mb = 64.0
    return max(1, int(memory_budget_mb * 2**20 // per_run))


def train_sweep(configs: Sequence[RunConfig], device: str = "auto", dtype=torch.float32, progress: bool = True,
                memory_budget_mb: Optional[float] = None, compile: bool = False,
                compute_dtype: Optional[torch.dtype] = None) -> SweepResult:
    """Train runs of one architecture together; chunked automatically when they do not fit in memory.

    ``configs`` may differ in bound, ``alpha_logit``, seed and task; everything in
    :meth:`RunConfig.arch_key` must agree. Returns a :class:`SweepResult` with the same
    per-step estimates each run would have had alone.

    ``compile=True`` runs the bound stage (values and gradients of every run's bound,
    :mod:`mi_lib.bound_grads`) through ``torch.compile``. The default is eager, as
    measured on a 2-core CPU: since the bounds' gradients are written out, the eager
    stage is about as fast as the compiled one (paper-size separable sweep: 783 against
    815 run-steps/s in ``benchmarks/results/sweep_cpu.json``, the other way round in an
    A/B run; quick-profile widths: 7.3 against 7.1 ms a step), while compiling costs 3 s
    with inductor's cache warm and about 18 s cold. Compiling the critics and baselines
    too measured slower (14.2 against 11.5 ms a step). Not yet measured on CUDA. A
    compiler failure falls back to eager with a warning.

    ``compute_dtype=torch.bfloat16`` runs the critics' and baselines' layers in bfloat16 on
    copies of the weights; the weights, Adam and the bounds stay in ``dtype``. ``None`` (the
    default): everything in ``dtype``. What bfloat16 does to the Fig. 2 estimates is measured in
    ``benchmarks/bench_precision_fig2.py``.
    """
    configs = list(configs)
    if not configs:
        raise ValueError("train_sweep needs at least one RunConfig")
    if compute_dtype is not None and not (isinstance(compute_dtype, torch.dtype) and compute_dtype.is_floating_point):
        raise ValueError(f"compute_dtype must be a floating-point torch.dtype or None, got {compute_dtype!r}")
    keys = {c.arch_key() for c in configs}
    if len(keys) > 1:
        raise ValueError("all runs of a sweep must share the architecture, batch size, schedule and lr; "
                         "group them with group_by_architecture()")
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    chunks = plan_chunks(configs, dev, memory_budget_mb)
    t0 = time.perf_counter()
    results = [_train_chunk(c, dev, dtype, progress, compile, compute_dtype) for c in chunks]
    estimates = np.concatenate([r[0] for r in results])
    return SweepResult(configs, estimates, mi_schedule(configs[0].mi_levels, configs[0].steps_per_level),
                       time.perf_counter() - t0, _peak_memory_mb(dev), len(chunks),
                       compile_seconds=sum(r[1] for r in results))


def plan_chunks(configs: Sequence[RunConfig], device="auto",
                memory_budget_mb: Optional[float] = None) -> List[List[RunConfig]]:
    """The chunks :func:`train_sweep` trains one after another, in order (runs of one architecture).

    A caller that saves results chunk by chunk (as the Fig. 2 experiment does) can train each
    chunk with its own :func:`train_sweep` call and lose at most one chunk to an interruption:
    a chunk gives the same histories alone as inside a larger sweep.
    """
    configs = list(configs)
    if not configs:
        return []
    per_chunk = _max_runs_per_chunk(configs[0], resolve_device(device), memory_budget_mb)
    return [configs[i: i + per_chunk] for i in range(0, len(configs), per_chunk)]


def group_by_architecture(configs: Sequence[RunConfig]) -> List[List[RunConfig]]:
    """Split runs into stackable groups (order kept within each group)."""
    groups: Dict[tuple, List[RunConfig]] = {}
    for c in configs:
        groups.setdefault(c.arch_key(), []).append(c)
    return list(groups.values())


class _FusedBounds(torch.autograd.Function):
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


class _BoundStage:
    """Every run's bound value from the stacked scores, as one autograd node.

    Runs arrive sorted by bound, so each bound's runs are one contiguous slice. For each
    slice the bound's value and gradient come from :func:`mi_lib.bound_grads.value_and_grad_of`
    (closed forms; autograd for a bound that has none), in one batched call; the backward is a
    single scaling of those gradients. Measured on the 2-core CPU for the paper's ten
    separable runs of one task: forward and backward of the stage 1.6 ms, against 2.3 ms
    through autograd (1.1 ms through autograd compiled); a quick-profile separable sweep
    step 7.3 ms against 8.8 ms.
    """

    def __init__(self, configs: List[RunConfig], dev, dtype):
        self.groups = []  # (value_and_grad, the group's alpha_logits, run slice, baseline slice or None)
        seen, run0, base0, base_runs = set(), 0, 0, []
        for b, runs in itertools.groupby(configs, key=lambda c: c.bound):
            runs = list(runs)
            if b in seen:
                raise ValueError("runs must be sorted by bound")
            seen.add(b)
            spec, n = get_bound(b), len(runs)
            alphas = torch.tensor([0.0 if c.alpha_logit is None else c.alpha_logit for c in runs], device=dev, dtype=dtype)
            base = None
            if spec.needs_baseline:
                base, base0 = slice(base0, base0 + n), base0 + n
                base_runs += range(run0, run0 + n)
            self.groups.append((value_and_grad_of(b), alphas, slice(run0, run0 + n), base))
            run0 += n
        self.base_runs = torch.tensor(base_runs, dtype=torch.long, device=dev)

    def values_and_grads(self, scores: torch.Tensor, log_b: Optional[torch.Tensor], states: List[Optional[torch.Tensor]]):
        """``(values [R], d/d scores [R, K, K], d/d log_b [R_b, K] or None, new states)``, no autograd."""
        values, g_s, g_b, new_states = [], [], [], []
        for (fn, alphas, rows, base), state in zip(self.groups, states):
            v, gs, gb, st = fn(scores[rows], None if base is None else log_b[base], alphas, state)
            values.append(v)
            g_s.append(gs)
            if base is not None:
                g_b.append(gb)
            new_states.append(st)
        return torch.cat(values), torch.cat(g_s), (torch.cat(g_b) if g_b else None), new_states

    def __call__(self, scores: torch.Tensor, log_b: Optional[torch.Tensor], states: List[Optional[torch.Tensor]],
                 inner=None):
        new_states: List[Optional[torch.Tensor]] = []
        values = _FusedBounds.apply(inner or self.values_and_grads, self.base_runs, states, new_states, scores, log_b)
        return values, new_states


@contextlib.contextmanager
def _quiet_torch():
    """Silence torch's own deprecation notices while it imports and runs its compiler."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"torch\.")
        yield


def _compiled(stage: "_BoundStage", compile: bool):
    """``stage`` compiled with ``torch.compile`` (static shapes), or ``stage`` itself.

    If the compiler fails (no C++ compiler for the CPU backend, an unsupported platform)
    the first call warns once and the stage runs eagerly: same numbers, only slower.
    """
    if not compile:
        return stage
    with _quiet_torch():
        compiled = torch.compile(stage.values_and_grads, dynamic=False)
    state = {"fn": compiled}

    def inner(*args):
        try:
            return state["fn"](*args)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back to the same maths
            if state["fn"] is stage.values_and_grads:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); running the bounds eagerly")
            state["fn"] = stage.values_and_grads
            return state["fn"](*args)
    return lambda scores, log_b, states: stage(scores, log_b, states, inner=inner)


def _train_chunk(configs: List[RunConfig], dev: torch.device, dtype, progress: bool,
                 compile: bool = False, compute_dtype: Optional[torch.dtype] = None) -> Tuple[np.ndarray, float]:
    """Train one chunk of runs; returns ``(estimates [R, steps], seconds spent compiling)``."""
    first = configs[0]
    # runs sorted by bound (stable), so each bound's runs are one contiguous slice of the stack
    # (the bound stage takes views of the scores, and its gradients join back with one cat)
    bound_order = {b: i for i, b in enumerate(dict.fromkeys(c.bound for c in configs))}
    order = sorted(range(len(configs)), key=lambda r: bound_order[configs[r].bound])
    configs = [configs[r] for r in order]
    modules = [build_modules(c, dtype) for c in configs]
    stack_cls = StackedSeparable if first.critic == "separable" else StackedConcat
    cd = None if compute_dtype == dtype else compute_dtype
    critic = stack_cls([m[0] for m in modules], dev, dtype, cd)
    # baselines only for the runs whose bound has one (in run order, so also contiguous per bound)
    with_base = [r for r, c in enumerate(configs) if c.needs_baseline]
    baseline = StackedBaseline([modules[r][1] for r in with_base], dev, dtype, cd) if with_base else None
    params = critic.parameters() + ([] if baseline is None else baseline.parameters())
    AdamInBackward(params, first.lr)  # every backward() below also takes the Adam step
    mi = mi_schedule(first.mi_levels, first.steps_per_level)
    stream_keys = sorted({(c.task, c.seed) for c in configs}, key=repr)
    streams = [GaussianStream(t, s, first.batch_size, mi, dev, dtype) for t, s in stream_keys]
    run_stream = torch.tensor([stream_keys.index((c.task, c.seed)) for c in configs], device=dev)
    base_stream = run_stream[with_base] if with_base else None
    stage = _BoundStage(configs, dev, dtype)
    t_setup = time.perf_counter()
    bound_values = _compiled(stage, compile)  # the first torch.compile imports the compiler (seconds)
    t_setup = time.perf_counter() - t_setup
    states: List[Optional[torch.Tensor]] = [None] * len(stage.groups)
    estimates = torch.empty(len(mi), len(configs), dtype=dtype, device=dev)
    step_seconds = []
    with _progress(len(mi), f"sweep {first.critic} x{len(configs)}", progress) as bar:
        for step in range(len(mi)):
            if step < 5:  # start times of steps 0-4
                step_seconds.append(time.perf_counter())
            if len(streams) == 1:
                x, y = streams[0].batch(step)
                x_r, y_r = x.expand(len(configs), *x.shape), y.expand(len(configs), *y.shape)  # no copies
                y_b = None if baseline is None else y.expand(len(with_base), *y.shape)
            else:
                xs, ys = zip(*(s.batch(step) for s in streams))
                x_s, y_s = torch.stack(xs), torch.stack(ys)  # [streams, K, d]
                x_r, y_r = x_s[run_stream], y_s[run_stream]
                y_b = None if baseline is None else y_s[base_stream]
            # step 1 compiles the bound stage: torch's own deprecation notices then are not the
            # user's business
            with _quiet_torch() if compile and step == 1 else contextlib.nullcontext():
                scores = critic(x_r, y_r)  # [R, K, K]
                log_b = baseline(y_b) if baseline is not None else None  # [R_baseline, K]
                # step 0 in eager mode: it creates the stateful bounds' state (MINE's EMA), so the
                # compiled stage sees one signature and compiles once
                values, states = (stage if step == 0 else bound_values)(scores, log_b, states)  # [R]
                (-values.sum()).backward()  # and Adam, parameter by parameter (AdamInBackward)
            estimates[step] = values.detach()
            bar.update(1)
    sorted_estimates = estimates.T.cpu().numpy()
    out = np.empty_like(sorted_estimates)
    out[order] = sorted_estimates  # back to the caller's run order
    # compiling happens in step 1, with one-off costs around it: the first three steps' excess
    # over three times step 4, plus importing the compiler
    if compile and len(step_seconds) == 5:
        compile_seconds = t_setup + max(0.0, (step_seconds[3] - step_seconds[0]) - 3 * (step_seconds[4] - step_seconds[3]))
    else:
        compile_seconds = 0.0
    return out, compile_seconds
