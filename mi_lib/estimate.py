r"""``estimate_mi``: a variational lower bound on I(X; Y) for your own paired samples.

The samples are split three ways. A critic is fitted on the first split (by default two candidates: the
closed-form Gaussian-copula critic of :mod:`mi_lib.estimate_gauss`, and a separable MLP trained with
``train_bound``, one :func:`mi_lib.train.train_step` at a time), the validation split picks the candidate, the
stopping step and the critic's additive constant, and ``bound`` is reported on the test split (over all its
pairs for NWJ and DV, on blocks otherwise), which the critic never saw. The defaults were chosen by
measurement on the benchmark of ``benchmarks/bench_estimate.py`` (tasks with known MI in
``benchmarks/mi_tasks.py``, results in ``benchmarks/results/estimate_benchmark.json``). Diagnostics
(:mod:`mi_lib.estimate_diagnostics`) say when the number should not be trusted, and ``MIEstimate.plot()``
shows why.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .critics import BaselineMLP, make_critic
from .estimate_diagnostics import Diagnostics, diagnose
from .estimate_gauss import (
    JACKKNIFE_GROUPS,
    PAIR_BOUNDS,
    SHRINKAGE,
    QuadraticResidualCritic,
    fit_quadratic,
    pair_values,
)
from .optim import make_adam
from .profiles import resolve_device
from .registry import LowerBound, get_bound
from .train import train_step

__all__ = ["MIEstimate", "estimate_mi", "min_samples", "PREPROCESS"]


@dataclass
class MIEstimate:
    """What :func:`estimate_mi` returns; ``diagnostics`` says whether to trust ``estimate``."""

    estimate: float  # nats, the bound on the test split
    stderr: float  # standard error over the test split's blocks
    history: np.ndarray = field(repr=False)  # the training objective's value at every step
    settings: Dict[str, Any] = field(repr=False)
    diagnostics: Diagnostics = field(repr=False)
    val_steps: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))  # steps of the validation checks
    val_history: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))  # the bound on validation

    def __str__(self) -> str:
        s = self.settings
        flag = "" if self.diagnostics.trustworthy else "  [see .diagnostics: not trustworthy]"
        return (
            f"I(X;Y) >= {self.estimate:.3f} ± {self.stderr:.3f} nats ({s['bound']} of a {s['critic']} critic "
            f"trained with {s['train_bound']}){flag}"
        )

    def plot(self, ax: Any = None) -> Any:
        """Draw the training history, the validation checks, the held-out estimate with its ±2 SE band and
        the bound's cap where it has one; returns the matplotlib axes (to see at a glance whether training
        had levelled off and whether the estimate sits against a ceiling)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
        steps = np.arange(1, len(self.history) + 1)
        ax.plot(steps, self.history, color="0.75", lw=0.6, label=f"training batches ({self.settings['train_bound']})")
        if len(self.history) >= 20:
            w = max(len(self.history) // 40, 5)
            smooth = np.convolve(self.history, np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1 :], smooth, color="0.35", lw=1.2, label="training, running mean")
        if len(self.val_steps):
            ax.plot(
                self.val_steps,
                self.val_history,
                "o-",
                color="tab:blue",
                ms=3,
                lw=1,
                label=f"validation ({self.settings['bound']})",
            )
            ax.axvline(self.settings["best_step"], color="tab:blue", ls=":", lw=1, label="critic kept")
        lo, hi = self.estimate - 2 * self.stderr, self.estimate + 2 * self.stderr
        ax.axhspan(lo, hi, color="tab:orange", alpha=0.25, lw=0)
        ax.axhline(self.estimate, color="tab:orange", lw=1.5, label=f"held-out estimate {self.estimate:.2f} ± 2 SE")
        cap = self.diagnostics.cap
        if cap is not None:
            ax.axhline(cap, color="tab:red", ls="--", lw=1, label=f"cap of the bound ({cap:.2f})")
        finite = self.history[np.isfinite(self.history)]
        if len(finite):
            top = max(np.quantile(finite, 0.995), hi, cap or -np.inf)
            bottom = min(np.quantile(finite, 0.05), lo, 0.0)
            ax.set_ylim(bottom - 0.05 * (top - bottom + 1e-9), top + 0.1 * (top - bottom + 1e-9))
        ax.set_xlabel("training step")
        ax.set_ylabel("nats")
        ax.set_title(str(self).split("  [")[0], fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        return ax


# ----------------------------------------------------------------------------------------------- preprocessing
def _standardise(train: np.ndarray, *others: np.ndarray) -> List[np.ndarray]:
    """Centre and scale each coordinate by the training split's moments, in float64."""
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(t - mu) / sd for t in (train,) + others]


def _rank_gauss(train: np.ndarray, *others: np.ndarray) -> List[np.ndarray]:
    r"""Map each coordinate to normal scores through the training split's empirical CDF, in float64.

    :math:`u = \hat F(v)` (mid-rank, ties averaged), then :math:`\Phi^{-1}(u)`. A strictly increasing map of
    each coordinate leaves :math:`I(X;Y)` unchanged, so heavy tails, cubes and exponentials are undone
    before the critic sees the data.
    """
    from scipy.special import ndtri

    n = train.shape[0]
    ref = np.sort(train, axis=0)

    def f(t: np.ndarray) -> np.ndarray:
        u = np.empty_like(t, dtype=np.float64)
        for c in range(t.shape[1]):
            lo = np.searchsorted(ref[:, c], t[:, c], side="left")
            hi = np.searchsorted(ref[:, c], t[:, c], side="right")
            u[:, c] = (lo + hi) / (2.0 * n)
        return ndtri(np.clip(u, 0.5 / n, 1 - 0.5 / n))

    return [f(t) for t in (train,) + others]


PREPROCESS: Dict[str, Callable[..., List[np.ndarray]]] = {"rank": _rank_gauss, "standardize": _standardise}


# ----------------------------------------------------------------------------------------------- validation
def _as_2d(a: Any, name: str) -> np.ndarray:
    """``a`` as a finite float64 ``[N, d]`` array (float64 first: large offsets and integer IDs survive)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as e:  # ragged lists and other non-arrays
        raise ValueError(f"{name} must be an array of numbers [N] or [N, d]: {e}") from e
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [N] or [N, d], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {arr.shape}); it needs at least one variable")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf ({int((~np.isfinite(arr)).sum())} entries)")
    return arr


def _int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    return int(v)


def _float(name: str, v: Any, lo: float, hi: float, lo_open: bool = True, hi_open: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {v}")
    return v


def _split_sizes(n: int, test_fraction: float, val_fraction: float) -> Tuple[int, int, int]:
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    return n - n_test - n_val, n_val, n_test


def min_samples(
    batch_size: int = 128, eval_batch_size: int = 512, test_fraction: float = 0.3, val_fraction: float = 0.1
) -> int:
    """The smallest N :func:`estimate_mi` accepts with these settings: one training batch and at least two
    evaluation blocks (of at least ``MIN_BLOCK`` samples) in each of the validation and test splits."""
    n = 2
    while True:
        n_train, n_val, n_test = _split_sizes(n, test_fraction, val_fraction)
        if n_train >= batch_size and min(n_val, n_test) >= 2 * MIN_BLOCK:
            return n
        n += 1


EVALUATIONS = ("auto", "pairs", "blocks")
EVAL_BLOCK = 512  # evaluation="blocks": the bound is averaged over blocks of this many pairs
PAIRS_BLOCK = 4096  # evaluation="pairs": every pair of a split up to this size (larger splits: near-equal blocks)
QUADRATIC = "quadratic"  # the closed-form Gaussian-copula critic plus a separable residual (estimate_gauss)
# the MLP is trained from its random initialisation, alone: trained on top of the Gaussian critic it did not
# learn a sharp non-Gaussian ratio (uniform noise 0.1: 1.70 against 2.10 nats from scratch), and a trained
# weight on the quadratic changed no estimate by more than 0.01 nat on the five trained tasks measured
# (student-t, spiral, Swiss roll) while costing about a quarter more time a step

MIN_BLOCK = 16  # the smallest evaluation block: fewer samples give a block bound too noisy to report


def _blocks(n: int, eval_batch_size: int) -> int:
    """The block size for a split of ``n``: ``eval_batch_size`` or less, so that there are at least two."""
    return min(eval_batch_size, n // 2)


# ----------------------------------------------------------------------------------------------- evaluation
def _scores_blocks(critic: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> List[torch.Tensor]:
    """The critic's ``[k, k]`` score matrices on consecutive blocks of ``k`` pairs (the remainder is dropped)."""
    return [critic(x[s : s + k], y[s : s + k]) for s in range(0, len(x) - k + 1, k)]


def _log_partition(blocks: List[torch.Tensor]) -> float:
    r""":math:`\log \mathbb{E}_{p(x)p(y)} e^{f}` over every off-diagonal pair of every block."""
    k = blocks[0].shape[0]
    mask = ~torch.eye(k, dtype=torch.bool, device=blocks[0].device)
    lse = torch.stack([torch.logsumexp(b.double()[mask], 0) for b in blocks])
    return float(torch.logsumexp(lse, 0) - math.log(len(blocks) * k * (k - 1)))


def _block_values(
    spec: LowerBound,
    blocks: List[torch.Tensor],
    shift: float,
    baseline: Optional[nn.Module],
    y: torch.Tensor,
    alpha: torch.Tensor,
) -> np.ndarray:
    """``spec``'s value on each block of scores ``f + shift`` (``shift`` sets the critic's constant)."""
    k = blocks[0].shape[0]
    vals = []
    for i, s in enumerate(blocks):
        log_b = None if baseline is None else baseline(y[i * k : (i + 1) * k])
        v, _ = spec.train_value(s.double() + shift, None if log_b is None else log_b.double(), alpha.double(), None)
        vals.append(float(v))
    return np.asarray(vals)


# ----------------------------------------------------------------------------------------------- the estimator
def estimate_mi(
    x: Any,
    y: Any,
    bound: str = "nwj",
    train_bound: Optional[str] = None,
    critic: str = "quadratic",
    max_steps: int = 4000,
    batch_size: int = 128,
    eval_batch_size: Optional[int] = None,
    evaluation: str = "auto",
    lr: float = 1e-3,
    hidden_dim: int = 128,
    layers: int = 4,
    embed_dim: int = 32,
    val_fraction: float = 0.1,
    test_fraction: float = 0.3,
    eval_every: int = 200,
    patience: int = 6,
    min_delta: float = 0.005,
    preprocess: str = "rank",
    alpha_logit: float = 0.0,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    warn: bool = True,
) -> MIEstimate:
    r"""Estimate a lower bound on :math:`I(X;Y)` in nats from paired samples ``x: [N, dx]``, ``y: [N, dy]``.

    Why each step (the defaults are measured, ``benchmarks/results/estimate_benchmark.json``):

    * ``preprocess="rank"`` maps every coordinate to normal scores through its empirical CDF, in float64
      (MI is unchanged by monotone maps of each coordinate); ``"standardize"`` only centres and scales.
    * ``critic="quadratic"`` first fits the Gaussian critic in closed form: after the rank transform a Gaussian
      copula is jointly Gaussian and its log density ratio is a quadratic in ``(x, y)``; the covariance's
      shrinkage (0 to 0.1) is picked on the validation split, and the result is the candidate at step 0.
      Then a separable MLP (sizes ``hidden_dim``, ``layers``, ``embed_dim``) is trained from its random start.
      ``"separable"``, ``"concat"`` and ``"bilinear"`` train that critic alone. Training uses
      ``train_bound``'s objective (``None``: ``bound`` itself) on minibatches of ``batch_size`` from the
      training split, for at most ``max_steps`` steps.
    * Every ``eval_every`` steps ``bound`` is evaluated on the validation split (``val_fraction``);
      training stops when it has not improved by ``min_delta`` for ``patience`` checks, and the best
      critic (the step-0 candidate included) is kept; one that does not beat a constant by two standard
      errors there is replaced by it (estimate 0). Its additive constant is set on the validation split
      too, so that :math:`\mathbb{E}_{p(x)p(y)}e^{f}` is one there (this makes NWJ as tight as DV for it).
    * ``evaluation="pairs"`` (``"auto"`` picks it for NWJ and DV) evaluates ``bound`` on the test split
      (``test_fraction``) with the marginal term over all its off-diagonal pairs (splits above
      ``eval_batch_size``, default 4096, in near-equal blocks); ``stderr`` is a delete-a-group jackknife
      over 20 groups. ``"blocks"`` (``"auto"`` for the other bounds) averages ``bound`` over blocks of
      ``eval_batch_size`` (default 512) pairs, ``stderr`` over the blocks. InfoNCE cannot exceed
      ``log(eval_batch_size)``; NWJ with a critic fixed before the test split is seen is a lower bound in
      expectation, DV and SMILE are not strict ones.

    ``result.diagnostics`` says whether training converged, how close the estimate is to the bound's cap
    and to :math:`\log N_\mathrm{test}`, and the bound on training data against held-out data; with
    ``warn=True`` a ``UserWarning`` names every reason not to trust the number. ``result.plot()`` shows it.
    Every argument is checked; bad ones raise ``ValueError``.

    >>> res = estimate_mi(x, y)            # doctest: +SKIP
    >>> res.estimate, res.stderr           # doctest: +SKIP
    """
    spec = get_bound(bound)
    train_spec = spec if train_bound is None else get_bound(train_bound)
    if spec.needs_baseline and not train_spec.needs_baseline:
        raise ValueError(
            f"bound={spec.name!r} needs a learned baseline a(y) that train_bound={train_spec.name!r} "
            f"does not train; use train_bound=None or a bound without a baseline"
        )
    max_steps = _int("max_steps", max_steps, 1)
    batch_size = _int("batch_size", batch_size, 2)
    if evaluation not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {evaluation!r}; valid: {', '.join(EVALUATIONS)}")
    if evaluation == "auto":
        evaluation = "pairs" if spec.name in PAIR_BOUNDS else "blocks"
    if eval_batch_size is None:
        eval_batch_size = PAIRS_BLOCK if evaluation == "pairs" else EVAL_BLOCK
    eval_batch_size = _int("eval_batch_size", eval_batch_size, MIN_BLOCK)
    hidden_dim = _int("hidden_dim", hidden_dim, 1)
    layers = _int("layers", layers, 1)
    embed_dim = _int("embed_dim", embed_dim, 1)
    eval_every = _int("eval_every", eval_every, 1)
    patience = _int("patience", patience, 1)
    seed = _int("seed", seed, 0)
    lr = _float("lr", lr, 0.0, math.inf)
    min_delta = _float("min_delta", min_delta, 0.0, math.inf, lo_open=False)
    alpha_logit = _float("alpha_logit", alpha_logit, -math.inf, math.inf)
    test_fraction = _float("test_fraction", test_fraction, 0.0, 1.0)
    val_fraction = _float("val_fraction", val_fraction, 0.0, 1.0)
    if test_fraction + val_fraction >= 1.0:
        raise ValueError(f"test_fraction + val_fraction must be below 1, got {test_fraction} + {val_fraction}")
    if evaluation == "pairs" and spec.name not in PAIR_BOUNDS:
        raise ValueError(f"evaluation='pairs' evaluates {', '.join(PAIR_BOUNDS)}, not bound={spec.name!r}")
    if not isinstance(preprocess, str) or preprocess not in PREPROCESS:
        raise ValueError(f"unknown preprocess {preprocess!r}; valid: {', '.join(PREPROCESS)}")
    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    for name, flag in (("progress", progress), ("warn", warn)):
        if not isinstance(flag, bool):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    sizes = {"hidden_dim": hidden_dim, "layers": layers, "embed_dim": embed_dim}
    from .critics import critic_sizes  # the size keywords this critic takes

    quadratic = critic == QUADRATIC
    if not quadratic:
        sizes = {k: v for k, v in sizes.items() if k in critic_sizes(critic)}  # unknown critic names raise here
    xa, ya = _as_2d(x, "x"), _as_2d(y, "y")
    n = xa.shape[0]
    if ya.shape[0] != n:
        raise ValueError(f"x and y must have the same number of samples, got {n} and {ya.shape[0]}")
    n_train, n_val, n_test = _split_sizes(n, test_fraction, val_fraction)
    need = min_samples(batch_size, eval_batch_size, test_fraction, val_fraction)
    if n < need:
        raise ValueError(
            f"N={n} samples are too few: with batch_size={batch_size}, test_fraction={test_fraction} and "
            f"val_fraction={val_fraction} estimate_mi needs N >= {need} (one training batch and two "
            f"blocks of >= {MIN_BLOCK} pairs in each held-out split); lower batch_size or pass more "
            f"samples"
        )
    dev = resolve_device(device)

    # splits and preprocessing, all in float64; the cast to float32 comes last
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    tr, va, te = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    prep = PREPROCESS[preprocess]
    # the quadratic critic keeps float64 inputs (its terms cancel at high MI); its residual casts to float32
    dtype = torch.float64 if quadratic else torch.float32
    xs64, ys64 = prep(xa[tr], xa[va], xa[te]), prep(ya[tr], ya[va], ya[te])
    x_tr, x_va, x_te = (torch.as_tensor(a, dtype=dtype, device=dev) for a in xs64)
    y_tr, y_va, y_te = (torch.as_tensor(a, dtype=dtype, device=dev) for a in ys64)
    k_val, k_test = _blocks(n_val, eval_batch_size), _blocks(n_test, eval_batch_size)

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        f = (
            QuadraticResidualCritic(xa.shape[1], ya.shape[1], **sizes)
            if quadratic
            else make_critic(critic, xa.shape[1], ya.shape[1], **sizes)
        ).to(dev)
        base = BaselineMLP(ya.shape[1], hidden_dim, layers).to(dev) if train_spec.needs_baseline else None
    params = list(f.parameters()) + ([] if base is None else list(base.parameters()))
    opt = make_adam(params, lr)
    alpha = torch.tensor(alpha_logit, device=dev)

    def held_out(
        xs: torch.Tensor, ys: torch.Tensor, k: int, shift: Optional[float], se: bool = True
    ) -> Tuple[np.ndarray, float]:
        """The bound on a held-out split: one value per block ("blocks"), or (value, jackknife SE) ("pairs")."""
        with torch.no_grad():
            if evaluation == "pairs":
                parts = np.array_split(np.arange(len(xs)), max(1, math.ceil(len(xs) / eval_batch_size)))
                scores = [f(xs[p], ys[p]).double() for p in parts]
                groups = max(2, min(JACKKNIFE_GROUPS, min(len(p) for p in parts) // MIN_BLOCK))
                v, sd, shift = pair_values(spec.name, scores, shift, spec.optimal_offset, groups, se)
                return np.array([v, sd, groups]), shift
            blocks = _scores_blocks(f, xs, ys, k)
            if shift is None:  # the constant that makes E_q e^f = 1 on these blocks, then the bound's own offset
                shift = spec.optimal_offset - _log_partition(blocks)
            return _block_values(spec, blocks, shift, base, ys, alpha), shift

    def val_value() -> float:
        out = held_out(x_va, y_va, k_val, None, se=False)[0]
        return float(out[0] if evaluation == "pairs" else np.mean(out))

    shrink = None
    if quadratic:  # the closed-form Gaussian critic, its shrinkage picked on the validation split
        assert isinstance(f, QuadraticResidualCritic)
        fits = {s: fit_quadratic(xs64[0], ys64[0], s) for s in SHRINKAGE}
        vals = {}
        for s, quad in fits.items():
            f.set_quadratic(quad)
            vals[s] = val_value()
        shrink = max(vals, key=lambda s: vals[s])
        f.set_quadratic(fits[shrink])
        f.set_mix(1.0, 0.0)

    history = np.empty(max_steps)
    v0 = val_value()  # step 0: the critic before training is a candidate too
    val_steps: List[int] = [0]
    val_history: List[float] = [v0]
    best = (v0 if math.isfinite(v0) else -math.inf, 0, _snapshot(f, base))
    if quadratic:  # then the second candidate: the MLP, trained from its random start
        assert isinstance(f, QuadraticResidualCritic)
        f.set_mix(0.0, 1.0)
    state: Optional[torch.Tensor] = None
    bad_checks, step = 0, 0
    from tqdm.auto import tqdm

    with tqdm(total=max_steps, disable=not progress, desc=f"estimate_mi ({train_spec.name} -> {spec.name})") as bar:
        for step in range(1, max_steps + 1):
            idx = torch.randint(n_train, (batch_size,), generator=gen).to(dev)
            value, state = train_step(train_spec, f, base, opt, x_tr[idx], y_tr[idx], alpha, state)
            history[step - 1] = float(value)
            bar.update(1)
            if step % eval_every == 0 or step == max_steps:
                v = val_value()
                val_steps.append(step)
                val_history.append(v)
                if v > best[0] + min_delta or not math.isfinite(best[0]):
                    best, bad_checks = (v, step, _snapshot(f, base)), 0
                else:
                    bad_checks += 1
                    if bad_checks >= patience:
                        break
    history = history[:step]
    f.load_state_dict(best[2][0])
    if base is not None:
        base.load_state_dict(best[2][1])
    val_values, shift = held_out(x_va, y_va, k_val, None)
    if evaluation == "pairs":
        val_best, val_se = float(val_values[0]), float(val_values[1])
    else:
        val_best, val_se = float(val_values.mean()), float(val_values.std(ddof=1) / math.sqrt(len(val_values)))
    values, _ = held_out(x_te, y_te, k_test, shift)
    train_values, _ = held_out(x_tr[:n_test], y_tr[:n_test], k_test, shift)
    if evaluation == "pairs":
        estimate, stderr, n_pieces = float(values[0]), float(values[1]), int(values[2])
        train_value = float(train_values[0])
    else:
        estimate, n_pieces = float(values.mean()), len(values)
        stderr = float(values.std(ddof=1) / math.sqrt(len(values)))
        train_value = float(train_values.mean())
    # model selection on the validation split: a critic that does not beat a constant there (whose bound is 0)
    # by two standard errors is replaced by the constant, so independent data give 0, a valid lower bound, not
    # a negative number (a Gaussian critic fitted to independent data is noise: -0.004 ± 0.002 on test)
    constant_critic = (best[0] <= 0.0 or val_best <= 2 * val_se) and not spec.needs_baseline
    if constant_critic:
        estimate, stderr, train_value = 0.0, 0.0, 0.0
    settings: Dict[str, Any] = dict(
        bound=spec.name,
        train_bound=train_spec.name,
        critic=critic,
        max_steps=max_steps,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        evaluation=evaluation,
        lr=lr,
        hidden_dim=hidden_dim,
        layers=layers,
        embed_dim=embed_dim,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        eval_every=eval_every,
        patience=patience,
        min_delta=min_delta,
        preprocess=preprocess,
        alpha_logit=alpha_logit,
        seed=seed,
        device=str(dev),
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        test_block=k_test if evaluation == "blocks" else min(n_test, eval_batch_size),
        n_test_blocks=n_pieces,
        shrinkage=shrink,
        steps_run=step,
        best_step=best[1],
        shift=shift,
        constant_critic=constant_critic,
    )
    diag = diagnose(
        estimate=estimate,
        stderr=stderr,
        train_value=train_value,
        val_steps=np.asarray(val_steps),
        val_history=np.asarray(val_history),
        max_steps=max_steps,
        steps_run=step,
        cap=spec.cap(k_test, alpha_logit),
        n_test=n_test,
        identical=_identical(xa, ya),
        min_delta=min_delta,
        patience=patience,
    )
    if warn and diag.reasons:
        warnings.warn(
            "estimate_mi: do not trust this number as it stands: " + "; ".join(diag.reasons), UserWarning, stacklevel=2
        )
    return MIEstimate(estimate, stderr, history, settings, diag, np.asarray(val_steps), np.asarray(val_history))


def _snapshot(f: nn.Module, base: Optional[nn.Module]) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """A copy of the critic's (and baseline's) parameters and buffers."""

    def copy(m: Optional[nn.Module]) -> Dict[str, torch.Tensor]:
        return {} if m is None else {k: v.detach().clone() for k, v in m.state_dict().items()}

    return copy(f), copy(base)


def _identical(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether some column of y is a copy of a column of x up to a monotone map (then MI is infinite)."""
    if x.shape[0] < 3:
        return False
    ox = np.argsort(np.argsort(x, axis=0, kind="stable"), axis=0, kind="stable")
    oy = np.argsort(np.argsort(y, axis=0, kind="stable"), axis=0, kind="stable")
    for i in range(x.shape[1]):
        if len(np.unique(x[:, i])) < 0.5 * x.shape[0]:
            continue  # discrete columns can share ranks honestly
        for j in range(y.shape[1]):
            if np.array_equal(ox[:, i], oy[:, j]) or np.array_equal(ox[:, i], x.shape[0] - 1 - oy[:, j]):
                return True
    return False
