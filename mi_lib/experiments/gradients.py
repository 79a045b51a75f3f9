r"""Poole et al. Fig. 4: how accurate are the bounds' gradients with respect to an encoder?

The paper's exact encoder could not be checked, so we define one explicitly (the
chapter ``book/bias_variance.md`` says so):

* **Encoder.** :math:`y_c = \rho_c x_c + \sqrt{1-\rho_c^2}\,\epsilon_c`, ``x, eps ~ N(0, I_d)``,
  with the per-dimension vector :math:`\rho \in (-1, 1)^d` its parameters, evaluated at
  :math:`\rho_c = \rho_0` for every ``c``. The true MI and its gradient are closed form:
  :math:`I(\rho) = -\frac12\sum_c\log(1-\rho_c^2)`,
  :math:`\partial I/\partial\rho_c = \rho_c/(1-\rho_c^2)`. The gradient error is the
  squared Euclidean norm :math:`\|\hat g - \nabla I\|^2`, averaged over minibatches.
  The same run also gives the *shared* (scalar) parameterisation: one :math:`\rho` in
  every dimension has gradient :math:`\sum_c \partial/\partial\rho_c`
  (truth :math:`d\rho/(1-\rho^2)`); its errors are kept as ``*_shared``.
* **Critic.** The optimal critic at the current :math:`\rho_0`,
  :math:`f^*_{\rho_0} = \log p_{\rho_0}(y|x)/p(y)`, *held fixed*: no gradient flows
  through the critic's parameter, as for a separately trained critic network.
* **Gradient.** Flows through the samples only, by reparameterisation: ``x`` and
  ``eps`` are drawn once, ``y(rho)`` is differentiated at :math:`\rho = \rho_0`. One
  minibatch of ``K`` pairs gives one gradient estimate per estimator.
* **Truth.** :math:`dI/d\rho` of the *true* MI. Why this is the right target: for any
  fixed critic the bound's expectation :math:`L(\rho)` is :math:`\le I(\rho)`, with
  equality at :math:`\rho_0` for a tight bound (NWJ with :math:`f^*+1`), so
  :math:`I - L` is minimal at :math:`\rho_0` and :math:`L'(\rho_0) = I'(\rho_0)`
  (the envelope argument). NWJ's gradient is therefore unbiased at every ``K``;
  InfoNCE's expected gradient is that of its own optimum, which saturates at
  :math:`\log K`, so it is biased once MI passes :math:`\log K`.

Estimators: NWJ (:math:`f^* + 1`), InfoNCE (:math:`f^*`) and I_alpha
(:math:`f^*`, ``a(y) = 1``) on a grid of ``alpha_logit``. Per (estimator, K, MI):
mean, variance and MSE of the gradient against :math:`dI/d\rho`; per (K, MI) the
alpha with the lowest MSE. Repetitions and estimators are vectorised: each
(estimator, repetition) gets its own copy of :math:`\rho`, so one backward pass
returns every per-repetition gradient.

Why the per-dimension encoder is the headline: with one shared :math:`\rho` the
expected InfoNCE gradient is (by symmetry) a *scaled* copy of the true one, and a
scale error of that single number dominates the MSE; with ``d`` parameters the
squared error weighs variance and bias more evenly, as for a real encoder. The
chapter shows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .. import bounds as B
from ..data import mi_to_rho
from ..profiles import resolve_device
from .bias_variance import chunk_sizes, optimal_scores, rep_generator, torch_threads


@dataclass(frozen=True)
class GradientConfig:
    """Settings of the Fig. 4 experiment (optimal critic held fixed, encoder parameter rho)."""

    dim: int = 20
    mi_levels: Tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0)  # nats
    batch_sizes: Tuple[int, ...] = (8, 16, 32, 64)
    alpha_logits: Tuple[float, ...] = tuple(float(a) for a in np.linspace(-6, 6, 7))
    n_reps: int = 128  # gradient estimates per (K, MI)
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    max_elements: int = 2**23  # entries of one [estimator, chunk, K, K] stack
    num_threads: Optional[int] = 2


CONFIGS: Dict[str, GradientConfig] = {
    "smoke": GradientConfig(mi_levels=(1.0, 10.0), batch_sizes=(8, 32), alpha_logits=(-4.0, 0.0, 4.0), n_reps=32),
    "quick": GradientConfig(),
    "paper": GradientConfig(
        mi_levels=tuple(float(i) for i in np.arange(0.5, 10.5, 0.5)),
        batch_sizes=(4, 8, 16, 32, 64, 128, 256, 512),
        alpha_logits=tuple(float(a) for a in np.linspace(-6, 6, 13)),
        n_reps=2000,
        device="auto",
        max_elements=2**26,
        num_threads=None,
    ),
}


def true_gradient(mi: float, dim: int) -> float:
    r""":math:`\partial I/\partial\rho_c = \rho/(1-\rho^2)`, one component, at the :math:`\rho` giving ``mi`` nats.

    The shared-parameter gradient is ``dim`` times this.
    """
    rho = mi_to_rho(mi, dim)
    return rho / (1.0 - rho * rho)


def estimator_names(alpha_logits: Tuple[float, ...]) -> List[str]:
    """NWJ, InfoNCE, then one I_alpha per alpha_logit (the rows of every result array)."""
    return ["NWJ", "InfoNCE"] + [f"I_alpha(logit={a:g})" for a in alpha_logits]


def estimator_alphas(alpha_logits: Tuple[float, ...]) -> np.ndarray:
    """alpha of each estimator: 0 for NWJ (I_alpha's alpha -> 0 limit), 1 for InfoNCE."""
    return np.concatenate([[0.0, 1.0], 1.0 / (1.0 + np.exp(-np.asarray(alpha_logits, dtype=float)))])


def gradient_estimates(
    x: torch.Tensor, eps: torch.Tensor, rho0: float, alpha_logits: Tuple[float, ...]
) -> torch.Tensor:
    r"""Per-repetition :math:`\partial \hat I/\partial\rho_c` at :math:`\rho_c = \rho_0`: ``[R, K, d] x2 -> [E, R, d]``.

    Each (estimator, repetition) has its own leaf copy of the vector :math:`\rho`, so
    one backward pass of the summed bounds returns every gradient; the critic uses the
    plain float ``rho0`` (held fixed: no gradient through the critic).
    """
    n_est, k, d = 2 + len(alpha_logits), x.shape[-2], x.shape[-1]
    rho = torch.full((n_est, x.shape[0], d), rho0, dtype=x.dtype, device=x.device, requires_grad=True)
    y = rho.unsqueeze(-2) * x + torch.sqrt(1.0 - rho * rho).unsqueeze(-2) * eps  # [E, R, K, d]
    scores = optimal_scores(x, y, rho0)  # f*, [E, R, K, K]
    ones = torch.ones(k, dtype=x.dtype, device=x.device)
    values = [B.tuba_core(scores[0] + 1.0, ones), B.infonce_core(scores[1])]  # NWJ(f* + 1), InfoNCE(f*)
    if alpha_logits:
        logits = torch.tensor(alpha_logits, dtype=x.dtype, device=x.device)[:, None]
        values.extend(B.interpolated_core(scores[2:], 0.0 * ones, logits).unbind(0))  # [A, R]
    (grad,) = torch.autograd.grad(torch.stack(values).sum(), rho)
    return grad


def _cell(config: GradientConfig, k: int, mi: float, gen: torch.Generator, device, dtype) -> np.ndarray:
    """All gradient estimates for one (K, MI) cell: ``[E, n_reps, d]`` float64."""
    rho0 = mi_to_rho(mi, config.dim)
    n_est = 2 + len(config.alpha_logits)
    out = []
    for c in chunk_sizes(config.n_reps, n_est * k * max(k, config.dim), config.max_elements):
        x = torch.randn(c, k, config.dim, generator=gen, dtype=dtype, device=device)
        eps = torch.randn(c, k, config.dim, generator=gen, dtype=dtype, device=device)
        out.append(gradient_estimates(x, eps, rho0, config.alpha_logits).double().cpu().numpy())
    return np.concatenate(out, axis=1)


def _best(mse: np.ndarray, alphas: np.ndarray, names: List[str]) -> Dict[str, np.ndarray]:
    """Lowest-MSE alpha per (K, MI): over every estimator (NWJ = 0, InfoNCE = 1) and over the grid only."""
    missing = np.isnan(mse).all(0)  # a cell not computed yet (a partial archive)
    filled = np.where(np.isnan(mse), np.inf, mse)
    best = filled.argmin(0)
    best_grid = 2 + filled[2:].argmin(0) if mse.shape[0] > 2 else best
    return {
        "alpha": np.where(missing, np.nan, alphas[best]),
        "estimator": np.where(missing, "", np.array(names)[best]),
        "alpha_grid": np.where(missing, np.nan, alphas[best_grid]),
    }


GRAD_KEYS = ("grad_mean", "grad_var", "grad_mse", "grad_mean_shared", "grad_var_shared", "grad_mse_shared")


def cell(config: GradientConfig, k_index: int, mi_index: int, device=None) -> Dict[str, np.ndarray]:
    """One ``(batch size, MI)`` cell of Fig. 4: the six ``grad_*`` statistics per estimator, ``[E]`` each.

    Seeded by ``(seed, k_index, mi_index)`` alone, so a cell computed on its own (as the results archive
    does) equals the same cell of :func:`run`.
    """
    device = resolve_device(config.device) if device is None else device
    dtype = getattr(torch, config.dtype)
    k, mi = config.batch_sizes[k_index], config.mi_levels[mi_index]
    g = _cell(config, k, mi, rep_generator(config.seed, k_index, mi_index, device=device), device, dtype)
    t = true_gradient(mi, config.dim)
    shared = g.sum(-1)  # [E, R]: gradient of one shared rho
    return {
        "grad_mean": g.mean((1, 2)),
        "grad_var": g.var(1, ddof=1).mean(-1),
        "grad_mse": ((g - t) ** 2).sum(-1).mean(-1),
        "grad_mean_shared": shared.mean(1),
        "grad_var_shared": shared.var(1, ddof=1),
        "grad_mse_shared": ((shared - config.dim * t) ** 2).mean(-1),
    }


def cells(config: GradientConfig) -> List[Tuple[int, int]]:
    """Every ``(k_index, mi_index)`` of the grid, cheapest (smallest batch) first."""
    return [(ik, im) for ik in range(len(config.batch_sizes)) for im in range(len(config.mi_levels))]


def assemble(config: GradientConfig, done: Dict[Tuple[int, int], Dict[str, np.ndarray]]) -> Dict[str, object]:
    """Fig. 4 results from its cells (a cell not in ``done`` stays NaN; its best alpha is then NaN / empty)."""
    names, alphas = estimator_names(config.alpha_logits), estimator_alphas(config.alpha_logits)
    shape = (len(names), len(config.batch_sizes), len(config.mi_levels))
    res = {key: np.full(shape, np.nan) for key in GRAD_KEYS}
    for (ik, im), stats in done.items():
        for key in GRAD_KEYS:
            res[key][:, ik, im] = stats[key]
    truth = np.array([true_gradient(mi, config.dim) for mi in config.mi_levels])
    best, best_shared = _best(res["grad_mse"], alphas, names), _best(res["grad_mse_shared"], alphas, names)
    return {
        "estimators": np.array(names),
        "alpha": alphas,
        "alpha_logits": np.array(config.alpha_logits, dtype=float),
        "batch_sizes": np.array(config.batch_sizes),
        "mi": np.array(config.mi_levels, dtype=float),
        "true_grad": truth,
        "true_grad_shared": config.dim * truth,
        **res,
        "best_alpha": best["alpha"],
        "best_estimator": best["estimator"],
        "best_alpha_grid": best["alpha_grid"],
        "best_alpha_shared": best_shared["alpha"],
        "best_estimator_shared": best_shared["estimator"],
        "n_reps": config.n_reps,
        "dim": config.dim,
    }


def run(config: GradientConfig) -> Dict[str, object]:
    """Fig. 4 results: ``grad_mean/grad_var/grad_mse [E, batch, mi]``, ``best_alpha [batch, mi]``.

    ``grad_mean``: mean over repetitions and components; ``grad_var``: variance of one
    component; ``grad_mse``: mean squared error norm. ``*_shared``: the same for the
    shared (scalar) parameter.
    """
    device = resolve_device(config.device)
    with torch_threads(config.num_threads):
        done = {key: cell(config, *key, device=device) for key in cells(config)}
    return assemble(config, done)
