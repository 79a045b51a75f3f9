r"""Poole et al. Fig. 3: bias, variance and MSE of the estimates with the OPTIMAL critic.

The task is the correlated Gaussian of Fig. 2 (``x ~ N(0, I_d)``,
``y = rho x + sqrt(1 - rho^2) eps``, :math:`I = -\frac d2\log(1-\rho^2)`), so the
critic needs no training: :math:`f^*(x, y) = \log p(y|x)/p(y)`. For each true MI and
batch size ``K`` we draw ``n_reps`` independent minibatches at once, as a ``[R, K, d]``
stack, score them as ``[R, K, K]`` stacks and evaluate every bound with the batched
cores of :mod:`mi_lib.bounds` (no Python loop over repetitions; chunks only to bound
memory). Per (estimator, K, MI) we keep the mean, bias, variance and MSE.

Estimators and the critic each gets (all at their optimum, or as near as a fixed
critic allows):

* ``NWJ``: :math:`I_\text{NWJ}(f^* + 1)`, NWJ's own optimum; unbiased.
* ``InfoNCE``: :math:`I_\text{NCE}(f^*)`; capped at :math:`\log K`.
* ``TNCE``: InfoNCE with :math:`\log p(y|x)`, normalised over the ``x``'s in the batch
  for each ``y`` (the minibatch estimate of p(y) in the denominator). It equals ``InfoNCE(f^*)`` in distribution.
* ``I_alpha``: :math:`I_\alpha(f^*, a(y) = 1)`. With :math:`f = \log p(y|x)/p(y) + c` the
  ideal baseline is the partition :math:`\mathbb{E}_{p(x)}e^{f} = e^{c}`; for ``c = 0``
  that is ``a(y) = 1``, i.e. ``log_baseline = 0``. Then ``alpha -> 0`` is exactly the
  NWJ estimate above and ``alpha -> 1`` is InfoNCE-like, capped near ``log(K/alpha)``.

The chapter is ``book/bias_variance.md``; the figure function
:func:`mi_lib.figures.bias_variance.plot_bias_variance`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from .. import bounds as B
from ..data import mi_to_rho
from ..profiles import resolve_device


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


ALPHAS = (0.01, 0.1, 0.5, 0.99)


@dataclass(frozen=True)
class BiasVarianceConfig:
    """Settings of the Fig. 3 experiment (optimal critic, no training)."""

    dim: int = 20
    mi_levels: Tuple[float, ...] = tuple(float(i) for i in range(11))  # nats
    batch_sizes: Tuple[int, ...] = (64, 512)
    n_reps: int = 1000  # Monte Carlo repetitions per (K, MI)
    alphas: Tuple[float, ...] = ALPHAS  # I_alpha, with a(y) = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    max_elements: int = 2**23  # entries of one [chunk, K, K] stack (bounds memory)
    num_threads: Optional[int] = 2  # torch CPU threads during the run (restored after)


CONFIGS: Dict[str, BiasVarianceConfig] = {
    "smoke": BiasVarianceConfig(mi_levels=(0.0, 4.0, 10.0), batch_sizes=(16, 64), n_reps=100),
    "quick": BiasVarianceConfig(batch_sizes=(16, 64), n_reps=400),
    "paper": BiasVarianceConfig(
        mi_levels=tuple(float(i) for i in np.arange(0, 10.5, 0.5)),
        batch_sizes=(16, 64, 512),
        n_reps=10000,
        device="auto",
        max_elements=2**26,
        num_threads=None,
    ),
}


# --------------------------------------------------------------------------- shared helpers
@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (``None``: leave as is), then restore the old setting."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def rep_generator(seed: int, *indices: int, device=None) -> torch.Generator:
    """An independent, reproducible generator for one cell ``indices`` of a grid."""
    state = int(np.random.SeedSequence([seed, *indices]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def chunk_sizes(n_reps: int, per_rep: int, max_elements: int) -> List[int]:
    """Split ``n_reps`` repetitions into chunks of at most ``max_elements // per_rep`` each."""
    size = max(1, max_elements // max(1, per_rep))
    return [min(size, n_reps - start) for start in range(0, n_reps, size)]


def log_conditional(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    r"""``out[..., i, j]`` :math:`= \log p(y_j|x_i)` for the correlated Gaussian.

    ``[..., K, d], [..., K, d] -> [..., K, K]``; the batched twin of
    :meth:`mi_lib.critics.GaussianOptimalCritic.log_conditional`, by one matmul
    (:math:`\|y_j - \rho x_i\|^2 = \|y_j\|^2 - 2\rho\, x_i\cdot y_j + \rho^2\|x_i\|^2`).
    """
    d = x.shape[-1]
    var = 1.0 - rho * rho
    sq = (
        (y * y).sum(-1).unsqueeze(-2)
        - 2.0 * rho * (x @ y.transpose(-1, -2))
        + rho * rho * (x * x).sum(-1).unsqueeze(-1)
    )  # [..., K, K]
    return -0.5 * sq / var - 0.5 * d * math.log(2.0 * math.pi * var)


def log_marginal(y: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(y_j) = \log N(y_j; 0, I_d)`, ``[..., K, d] -> [..., K]``."""
    return -0.5 * (y * y).sum(-1) - 0.5 * y.shape[-1] * math.log(2.0 * math.pi)


def optimal_scores(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    r""":math:`f^*(x_i, y_j) = \log p(y_j|x_i) - \log p(y_j)`, ``[..., K, d] x2 -> [..., K, K]``."""
    return log_conditional(x, y, rho) - log_marginal(y).unsqueeze(-2)


def tnce(log_cond: torch.Tensor) -> torch.Tensor:
    r"""I_TNCE on a stack ``[..., K, K]`` of :math:`\log p(y_j|x_i)`.

    :math:`\frac1K\sum_i \log p(y_i|x_i) - \log\frac1K\sum_j p(y_i|x_j)`: each ``y_i`` is
    normalised over the ``x``'s, i.e. InfoNCE on the transpose.
    """
    return B.infonce_core(log_cond.transpose(-1, -2))


def estimator_names(alphas: Tuple[float, ...]) -> List[str]:
    """Names of the Fig. 3 estimators, in the order :func:`evaluate_estimators` returns them."""
    return ["NWJ", "InfoNCE", "TNCE"] + [f"I_alpha={a:g}" for a in alphas]


def evaluate_estimators(x: torch.Tensor, y: torch.Tensor, rho: float, alphas: Tuple[float, ...]) -> torch.Tensor:
    """Every Fig. 3 estimate on a stack of minibatches: ``[R, K, d] x2 -> [E, R]``."""
    k = x.shape[-2]
    log_cond = log_conditional(x, y, rho)  # [R, K, K]
    scores = log_cond - log_marginal(y).unsqueeze(-2)  # f*, [R, K, K]
    ones = torch.ones(k, dtype=x.dtype, device=x.device)
    zeros = torch.zeros(k, dtype=x.dtype, device=x.device)
    rows = [B.tuba_core(scores + 1.0, ones), B.infonce_core(scores), tnce(log_cond)]  # NWJ(f*+1), NCE, TNCE
    if alphas:
        logits = torch.tensor([_logit(a) for a in alphas], dtype=x.dtype, device=x.device)
        rows.extend(B.interpolated_core(scores, zeros, logits[:, None]).unbind(0))  # [A, R]
    return torch.stack(rows)


def _summarise(values: np.ndarray, truth: float) -> Dict[str, np.ndarray]:
    """mean, bias, variance (ddof 1), MSE and the standard error of the mean over the last axis."""
    mean = values.mean(-1)
    var = values.var(-1, ddof=1)
    return {
        "mean": mean,
        "bias": mean - truth,
        "variance": var,
        "mse": ((values - truth) ** 2).mean(-1),
        "stderr": np.sqrt(var / values.shape[-1]),
    }


def cell(config: BiasVarianceConfig, k_index: int, mi_index: int, device=None) -> Dict[str, np.ndarray]:
    """One ``(batch size, MI)`` cell of Fig. 3: mean, bias, variance, MSE and stderr per estimator, ``[E]`` each.

    Its repetitions come from their own generator, seeded by ``(seed, k_index, mi_index)``, so a cell
    computed alone (the results archive computes them one by one) equals the same cell of :func:`run`.
    """
    device = resolve_device(config.device) if device is None else device
    dtype = getattr(torch, config.dtype)
    k, mi = config.batch_sizes[k_index], config.mi_levels[mi_index]
    rho = mi_to_rho(mi, config.dim)
    gen = rep_generator(config.seed, k_index, mi_index, device=device)
    values = []
    with torch.no_grad():
        for c in chunk_sizes(config.n_reps, (3 + len(config.alphas)) * k * k, config.max_elements):
            x = torch.randn(c, k, config.dim, generator=gen, dtype=dtype, device=device)
            eps = torch.randn(c, k, config.dim, generator=gen, dtype=dtype, device=device)
            y = rho * x + math.sqrt(1.0 - rho * rho) * eps
            values.append(evaluate_estimators(x, y, rho, config.alphas).double().cpu().numpy())
    return _summarise(np.concatenate(values, axis=1), mi)


def cells(config: BiasVarianceConfig) -> List[Tuple[int, int]]:
    """Every ``(k_index, mi_index)`` of the grid, cheapest (smallest batch) first."""
    return [(ik, im) for ik in range(len(config.batch_sizes)) for im in range(len(config.mi_levels))]


def assemble(config: BiasVarianceConfig, done: Dict[Tuple[int, int], Dict[str, np.ndarray]]) -> Dict[str, object]:
    """Fig. 3 results from its cells (a cell not in ``done`` stays NaN)."""
    names = estimator_names(config.alphas)
    shape = (len(names), len(config.batch_sizes), len(config.mi_levels))
    out = {key: np.full(shape, np.nan) for key in ("mean", "bias", "variance", "mse", "stderr")}
    for (ik, im), stats in done.items():
        for key, v in stats.items():
            out[key][:, ik, im] = v
    return {
        "estimators": np.array(names),
        "alphas": np.array(config.alphas, dtype=float),
        "batch_sizes": np.array(config.batch_sizes),
        "mi": np.array(config.mi_levels, dtype=float),
        "n_reps": config.n_reps,
        "dim": config.dim,
        **out,
    }


def run(config: BiasVarianceConfig) -> Dict[str, object]:
    """Fig. 3 results: arrays ``[estimator, batch_size, mi]`` of mean, bias, variance, MSE, stderr."""
    device = resolve_device(config.device)
    with torch_threads(config.num_threads):
        done = {key: cell(config, *key, device=device) for key in cells(config)}
    return assemble(config, done)
