r"""Poole et al. Fig. 2: estimators trained on the 20-d Gaussian and cubic tasks, MI staircase 2..10 nats.

:func:`run` trains every (task x critic x estimator) run with the batched engine, one
sweep per critic architecture (both tasks, every estimator), trained and cached chunk by
chunk (:func:`mi_lib.train.plan_chunks`), so an interrupted run keeps every finished
chunk. TNCE (InfoNCE with the true conditional) needs no training and is evaluated on
the very batches the trained runs saw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import archive as A
from .. import bounds as B
from ..cache import cached
from ..critics import GaussianOptimalCritic
from ..data import GaussianStream, GaussianTask, mi_schedule, mi_to_rho
from ..profiles import override, resolve_device
from ..registry import estimators, get_bound
from ..train import RunConfig, group_by_architecture, plan_chunks, train_sweep

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}  # Fig2Config.precision -> train_sweep's compute_dtype


@dataclass(frozen=True)
class Fig2Config:
    """Settings of the Fig. 2 sweep (the ``paper`` profile is the paper's protocol).

    ``run`` is the template every trained run is made from (:func:`run_configs` sets its bound,
    ``alpha_logit``, critic and task); its ``hidden_dim`` is the separable critic's width and
    ``concat_hidden_dim`` the joint critic's. :func:`mi_lib.profiles.override` reaches inside
    ``run``: ``override(cfg, steps_per_level=500)``.
    """

    run: RunConfig = RunConfig(task=GaussianTask(dim=20, w_seed=1))
    # labels of the registry's Fig. 2 variants (mi_lib.registry.estimators); default: all of them
    estimators: Tuple[str, ...] = field(default_factory=lambda: tuple(estimators()))
    tasks: Tuple[str, ...] = ("gaussian", "cubic")
    critics: Tuple[str, ...] = ("concat", "separable")
    concat_hidden_dim: int = 256
    device: str = "auto"
    precision: str = "float32"  # "bfloat16": critics and baselines computed in bfloat16 (train_sweep's compute_dtype)

    def __post_init__(self) -> None:
        known = estimators()
        unknown = [e for e in self.estimators if e not in known]
        if unknown:
            raise ValueError(f"unknown estimators {unknown}; valid: {', '.join(known)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")


def _profile(**changes: object) -> Fig2Config:
    return override(Fig2Config(), **changes)


CONFIGS = {
    "smoke": _profile(
        estimators=("NWJ", "InfoNCE", "JS", "alpha=0.5"),
        mi_levels=(2.0, 4.0),
        steps_per_level=15,
        hidden_dim=16,
        concat_hidden_dim=16,
        embed_dim=8,
        baseline_hidden=16,
        batch_size=16,
        lr=1e-3,
    ),
    # chosen by measurement (book/gaussian.md, "The quick profile"): critics with one hidden layer, the joint
    # one 256 wide (its K^2 pairs then cost one ReLU and one dot product each), 750 steps a level bring the
    # joint critic to the 2- and 4-nat steps within the CPU budget; the paper's lr 5e-4 (2e-3 before) keeps the
    # separable runs from collapsing; W entries with std 0.1 keep the cubed values free of tails that send the
    # separable critic's exp(f) to overflow in a short run
    "quick": _profile(
        steps_per_level=750,
        layers=1,
        hidden_dim=128,
        concat_hidden_dim=256,
        embed_dim=32,
        baseline_hidden=128,
        lr=5e-4,
        w_std=0.1,
    ),
    # the caption's cubic W, entries N(0, 1); smoke keeps the default N(0, 1/d) (mi_lib.data: unit-scale W y)
    "paper": _profile(w_std=1.0),
}


def task_of(cfg: Fig2Config, name: str) -> GaussianTask:
    """The :class:`GaussianTask` called ``name`` ("gaussian" or "cubic") at the config's dimension."""
    if name not in ("gaussian", "cubic"):
        raise ValueError(f"unknown task {name!r}; valid: gaussian, cubic")
    return dataclasses.replace(cfg.run.task, cubic=name == "cubic")


def run_configs(cfg: Fig2Config) -> List[RunConfig]:
    """Every trained run of the figure, in (task, critic, estimator) order."""
    runs, known = [], estimators()
    for task in cfg.tasks:
        for critic in cfg.critics:
            for est in cfg.estimators:
                bound, alpha_logit = known[est]
                runs.append(
                    dataclasses.replace(
                        cfg.run,
                        bound=bound,
                        critic=critic,
                        task=task_of(cfg, task),
                        alpha_logit=alpha_logit,
                        hidden_dim=cfg.concat_hidden_dim if critic == "concat" else cfg.run.hidden_dim,
                    )
                )
    return runs


def tnce_history(cfg: Fig2Config, task: str, device: str = "cpu") -> np.ndarray:
    """TNCE at every step, on the batches the trained runs of ``task`` saw (same stream, same seed).

    The critic is ``GaussianOptimalCritic.log_conditional``, which undoes ``(W y)^3`` for the
    cubic task; the Jacobian is a factor of ``y`` alone and cancels in TNCE.
    """
    dev = resolve_device(device)
    r = cfg.run
    mi = mi_schedule(r.mi_levels, r.steps_per_level)
    t = task_of(cfg, task)
    stream = GaussianStream(t, r.seed, r.batch_size, mi, dev)
    critics = {
        level: GaussianOptimalCritic(mi_to_rho(level, t.dim), t.dim, t.cubic_W()).to(dev) for level in np.unique(mi)
    }
    out = np.empty(len(mi))
    for step in range(len(mi)):
        x, y = (v.double() for v in stream.batch(step))
        out[step] = B.tnce_lower_bound(critics[mi[step]].log_conditional(x, y)).item()
    return out


def _train_group(group: List[RunConfig], device: str, progress: bool, precision: str = "float32") -> Dict[str, Any]:
    res = train_sweep(group, device=device, progress=progress, compute_dtype=PRECISIONS[precision])
    return {"estimates": res.estimates, "seconds": res.seconds, "peak_memory_mb": res.peak_memory_mb}


@dataclass(frozen=True)
class _GroupKey:
    """What a cached sweep group depends on (the runs themselves)."""

    runs: Tuple[RunConfig, ...]
    precision: str = "float32"


def chunks(cfg: Fig2Config) -> List[List[RunConfig]]:
    """The runs of the figure in the chunks they are trained (and cached, and archived) in."""
    return [c for group in group_by_architecture(run_configs(cfg)) for c in plan_chunks(group, cfg.device)]


def _chunk(
    cfg: Fig2Config,
    chunk: List[RunConfig],
    cache_dir: Optional[Path],
    force: bool,
    progress: bool,
    archive_dir: Optional[Path],
    profile: str,
) -> Dict[str, Any]:
    """One chunk's histories: from the cache (keyed by config and code), or, with ``archive_dir``, from
    the results archive (keyed by config alone, provenance recorded), training it when it is missing."""
    key = _GroupKey(tuple(chunk), cfg.precision)
    if archive_dir is None:
        return cached(
            lambda k: _train_group(list(k.runs), cfg.device, progress, k.precision),
            key,
            cache_dir,
            force=force,
            name=f"fig2-{chunk[0].critic}",
        )
    path = chunk_path(cfg, chunk, archive_dir)
    entry = None if force else A.matching_entry(path, key)
    if entry is not None:
        return entry[0]
    res = _train_group(list(chunk), cfg.device, progress, cfg.precision)
    res["estimates"] = A.as_float32(res["estimates"])
    A.save_entry(path, res, A.provenance(profile, key, resolve_device(cfg.device), res["seconds"]))
    return res


class MissingChunks(FileNotFoundError):
    """Some chunks of a figure are not archived yet (``missing``: their run lists, ``total``: all chunks)."""

    def __init__(self, message: str, missing: List[List[RunConfig]], total: int):
        super().__init__(message)
        self.missing, self.total = missing, total


def chunk_path(cfg: Fig2Config, chunk: List[RunConfig], archive_dir: Path) -> Path:
    """Where a chunk is archived: named by its critic and the hash of its runs' configuration."""
    return Path(archive_dir) / f"{chunk[0].critic}-{A.config_hash(_GroupKey(tuple(chunk), cfg.precision))}.npz"


def missing_chunks(cfg: Fig2Config, archive_dir: Path) -> List[List[RunConfig]]:
    """The chunks of ``cfg`` with no finished entry in ``archive_dir``."""
    return [
        c for c in chunks(cfg) if not A.has_entry(chunk_path(cfg, c, archive_dir), _GroupKey(tuple(c), cfg.precision))
    ]


def run(
    cfg: Fig2Config,
    cache_dir: Optional[Path] = None,
    force: bool = False,
    progress: bool = True,
    archive_dir: Optional[Path] = None,
    profile: str = "",
    archived_only: bool = False,
) -> Dict:
    """Train the whole figure. Returns ``{"mi", "labels", "tasks", "critics", "estimates" [R, T], "seconds", ...}``.

    Each chunk of a sweep (the runs trained together) is saved as it finishes, so an interrupted figure
    keeps every finished chunk: in the cache, or, with ``archive_dir``, in the results archive
    (:mod:`mi_lib.archive`; ``profile`` is recorded in each chunk's provenance). ``archived_only``:
    never train; a chunk missing from the archive raises :class:`MissingChunks`.
    """
    runs = run_configs(cfg)
    mi = mi_schedule(cfg.run.mi_levels, cfg.run.steps_per_level)
    estimates = np.zeros((len(runs), len(mi)))
    seconds = np.zeros(len(runs))
    peak = 0.0
    todo = chunks(cfg)
    if archived_only:
        if archive_dir is None:
            raise ValueError("archived_only needs archive_dir")
        missing = missing_chunks(cfg, archive_dir)
        if missing:
            raise MissingChunks(f"{len(missing)} of {len(todo)} chunks are not in {archive_dir}", missing, len(todo))
    with tqdm(total=len(todo), desc="fig2 sweeps", disable=not progress or len(todo) < 2, leave=False) as bar:
        for chunk in todo:
            res = _chunk(cfg, chunk, cache_dir, force, progress, archive_dir, profile)
            idx = [runs.index(r) for r in chunk]
            estimates[idx] = res["estimates"]
            seconds[idx] = res["seconds"] / len(chunk)  # wall seconds per run, amortised over the sweep
            peak = max(peak, float(res["peak_memory_mb"]))
            bar.update(1)
    tnce = np.stack([tnce_history(cfg, t) for t in cfg.tasks])
    return {
        "mi": mi,
        "estimates": estimates,
        "tnce": tnce,
        "labels": np.array([_label(r) for r in runs]),
        "tasks": np.array([r.task.name for r in runs]),
        "critics": np.array([r.critic for r in runs]),
        "seconds_per_run": seconds,
        "steps": estimates.shape[1],
        "batch_size": cfg.run.batch_size,
        "peak_memory_mb": peak,
        "task_names": np.array(cfg.tasks),
        "estimator_names": np.array(cfg.estimators),
    }


def _label(r: RunConfig) -> str:
    for name, (bound, a) in estimators().items():
        if bound == r.bound and a == r.alpha_logit:
            return name
    raise KeyError(r.bound)


def cap(label: str, batch_size: int) -> Optional[float]:
    """The estimator's ceiling in nats (the registry's ``cap``); TNCE is InfoNCE with the true critic."""
    if label == "TNCE":
        label = "InfoNCE"
    known = estimators()
    if label not in known:
        return None
    bound, alpha_logit = known[label]
    return get_bound(bound).cap(batch_size, alpha_logit)


def summary(results: Dict) -> Dict[str, Dict[str, float]]:
    """Per (task, critic, estimator): mean estimate over the last half of each MI level, and its bias."""
    mi, est = results["mi"], results["estimates"]
    levels = np.unique(mi)
    out: Dict[str, Dict[str, float]] = {}
    for r in range(len(est)):
        key = f"{results['tasks'][r]}/{results['critics'][r]}/{results['labels'][r]}"
        out[key] = {}
        for level in levels:
            idx = np.flatnonzero(mi == level)
            out[key][f"{level:g}"] = float(np.mean(est[r, idx[len(idx) // 2 :]]))
    return out
