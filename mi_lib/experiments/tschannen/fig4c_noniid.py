r"""Tschannen et al. (2019), Section 4 and Fig. 4c: InfoNCE as metric learning; non-i.i.d. negatives.

1. With an inner-product critic :math:`f(x, y) = \phi(x)^\top\psi(y)`,

   .. math:: I_{NCE} = \log K - L_{K\text{-pair}}, \quad
      L_{K\text{-pair}} = \frac1K\sum_i \log\Big(1 + \sum_{j\ne i} e^{f(x_i, y_j) - f(x_i, y_i)}\Big),

   the multi-class K-pair loss of Sohn (2016). :func:`kpair_loss` computes it on its own.
2. The bound's value is set by how negatives are drawn. In a batch that shares
   :math:`Z \sim N(0, \Sigma_Z)`, :math:`(X_i, Y_i) = Z + \epsilon_i`, the negatives
   :math:`(X_i, Y_j)` are not draws from :math:`p(x)p(y)`, and a trained critic reports more
   than the true :math:`I(X; Y)` (:func:`true_mi`, 0.0204 nats for the paper's covariances).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

from ...critics import make_critic
from ...registry import get_bound

SIGMA_Z = ((1.0, -0.5), (-0.5, 1.0))
SIGMA_EPS = ((1.0, 0.9), (0.9, 1.0))


def kpair_loss(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Multi-class K-pair loss of embeddings ``u = phi(x): [K, E]``, ``v = psi(y): [K, E]``
    (positives ``(u_i, v_i)``)."""
    s = u @ v.T  # [K, K], s[i, j] = phi(x_i) . psi(y_j)
    diff = s - torch.diagonal(s)[:, None]
    off = ~torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    return torch.log1p((torch.exp(diff) * off).sum(1)).mean()


def gaussian_mi(cov: np.ndarray) -> float:
    r""":math:`I(X; Y) = -\tfrac12\log(1 - \rho^2)` of a 2-d Gaussian with covariance ``cov``."""
    cov = np.asarray(cov, dtype=np.float64)
    return float(-0.5 * math.log(np.linalg.det(cov) / (cov[0, 0] * cov[1, 1])))


def true_mi() -> float:
    """I(X; Y) of one pair, marginalising the shared Z: (X, Y) ~ N(0, Sigma_Z + Sigma_eps)."""
    return gaussian_mi(np.add(SIGMA_Z, SIGMA_EPS))


def conditional_mi() -> float:
    """I(X; Y | Z) = MI of eps: what a batch that shares Z lets the critic see."""
    return gaussian_mi(np.asarray(SIGMA_EPS))


def sample_batch(batch_size: int, shared_z: bool, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of shape ``[K, 1]`` each; one Z for the whole batch when ``shared_z``, else one per pair."""
    lz = torch.linalg.cholesky(torch.tensor(SIGMA_Z, dtype=torch.float64))
    le = torch.linalg.cholesky(torch.tensor(SIGMA_EPS, dtype=torch.float64))
    n_z = 1 if shared_z else batch_size
    z = torch.randn(n_z, 2, generator=generator, dtype=torch.float64) @ lz.T
    eps = torch.randn(batch_size, 2, generator=generator, dtype=torch.float64) @ le.T
    xy = (z + eps).float()
    return xy[:, :1], xy[:, 1:]


@dataclass(frozen=True)
class NonIIDConfig:
    """Fig. 4c: a critic trained on i.i.d. or shared-Z batches, with each of ``bounds``."""

    bounds: Tuple[str, ...] = ("infonce", "nwj")
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    hidden_dim: int = 64
    critic: str = "separable"  # or "concat" (joint MLP on all K^2 pairs, far slower on a CPU)
    layers: int = 2
    embed_dim: int = 16  # the separable critic's embedding
    eval_batches: int = 200
    n_runs: int = 2
    seed: int = 0


CONFIGS = {
    "smoke": NonIIDConfig(steps=300, batch_size=64, eval_batches=40, n_runs=1),
    "quick": NonIIDConfig(steps=1000, eval_batches=100, n_runs=2),
    "paper": NonIIDConfig(steps=20000, eval_batches=1000, n_runs=5, critic="concat"),
}


def _train_one(cfg: NonIIDConfig, bound: str, shared_z: bool, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    sizes = dict(hidden_dim=cfg.hidden_dim, layers=cfg.layers)
    if cfg.critic == "separable":
        sizes["embed_dim"] = cfg.embed_dim
    critic = make_critic(cfg.critic, 1, 1, **sizes)
    bound_fn = get_bound(bound).fn
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr)
    trace = np.empty(cfg.steps)
    for step in range(cfg.steps):
        x, y = sample_batch(cfg.batch_size, shared_z, gen)
        est = bound_fn(critic(x, y))
        opt.zero_grad()
        (-est).backward()
        opt.step()
        trace[step] = est.item()
    with torch.no_grad():
        final = np.array(
            [bound_fn(critic(*sample_batch(cfg.batch_size, shared_z, gen))).item() for _ in range(cfg.eval_batches)]
        )
    return trace, final


def run(cfg: NonIIDConfig) -> Dict:
    """Train a critic (separable or concat) with I_NCE and I_NWJ on i.i.d. and on shared-Z batches.

    Returns ``trace/<bound>/<mode>: [n_runs, steps]``, ``final/<bound>/<mode>: [n_runs, eval_batches]``
    (estimates on fresh batches after training), ``true_mi``, ``conditional_mi``, ``log_k``.
    """
    out: Dict = {
        "trace": {},
        "final": {},
        "true_mi": true_mi(),
        "conditional_mi": conditional_mi(),
        "log_k": math.log(cfg.batch_size),
    }
    for b in cfg.bounds:
        out["trace"][b], out["final"][b] = {}, {}
        for mode, shared in (("iid", False), ("shared_z", True)):
            runs = [_train_one(cfg, b, shared, cfg.seed + 1000 * r) for r in range(cfg.n_runs)]
            out["trace"][b][mode] = np.stack([t for t, _ in runs])
            out["final"][b][mode] = np.stack([f for _, f in runs])
    return out
