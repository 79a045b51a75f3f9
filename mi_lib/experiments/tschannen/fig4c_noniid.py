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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn
from tqdm.auto import tqdm

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
    """Fig. 4c, as the authors: a concat critic (``layers`` hidden layers of ``hidden_dim``) trained with
    Adam on a fresh batch each step, with each of ``bounds``, on i.i.d. and on shared-Z batches;
    the training-batch estimates smoothed by a Gaussian filter of std ``smooth_sigma`` steps.
    The ``n_runs`` seeds of a configuration are trained together (:class:`StackedConcatCritic`)."""

    bounds: Tuple[str, ...] = ("infonce", "nwj")
    steps: int = 20000
    batch_size: int = 128
    lr: float = 1e-4
    critic: str = "concat"
    hidden_dim: int = 10
    layers: int = 5
    smooth_sigma: float = 100.0
    n_runs: int = 20
    seed: int = 0


CONFIGS = {
    "smoke": NonIIDConfig(steps=300, batch_size=64, lr=1e-3, n_runs=2, smooth_sigma=10.0),
    "quick": NonIIDConfig(steps=600, lr=1e-3, n_runs=3),
    "paper": NonIIDConfig(),
}


def smooth(trace: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of std ``sigma`` steps along the last axis (``scipy.ndimage.gaussian_filter1d``)."""
    return gaussian_filter1d(np.asarray(trace, dtype=np.float64), sigma, axis=-1)


class StackedConcatCritic(nn.Module):
    """``R`` concat critics (:class:`mi_lib.critics.ConcatCritic`) with their parameters stacked, applied with
    batched matmuls: ``x, y: [R, K, 1] -> scores [R, K, K]``, ``scores[r]`` = critic ``r`` on ``(x[r], y[r])``."""

    def __init__(self, critics: List[nn.Module]):
        super().__init__()
        lins = [[m for m in c.modules() if isinstance(m, nn.Linear)] for c in critics]
        self.x_dim = critics[0].x_dim
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([c[i].weight.detach().T.clone() for c in lins])) for i in range(len(lins[0]))
        )  # [R, in, out] each
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([c[i].bias.detach().clone() for c in lins])) for i in range(len(lins[0]))
        )  # [R, out] each

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w0, b0 = self.weights[0], self.biases[0]
        hx = torch.baddbmm(b0[:, None, :], x, w0[:, : self.x_dim])  # [R, K, H]
        hy = torch.bmm(y, w0[:, self.x_dim :])  # [R, K, H]
        r, k, h = hx.shape
        z = torch.relu(hx[:, :, None, :] + hy[:, None, :, :]).reshape(r, k * k, h)  # pair (i, j) at i * K + j
        for i in range(1, len(self.weights)):
            z = torch.baddbmm(self.biases[i][:, None, :], z, self.weights[i])
            if i < len(self.weights) - 1:
                z = torch.relu(z)
        return z.reshape(r, k, k)


def train_stacked(
    cfg: NonIIDConfig, bound: str, shared_z: bool, runs: Optional[Sequence[int]] = None, progress: bool = False
) -> np.ndarray:
    """``n_runs`` critics trained together on independent batches -> training-batch estimates ``[n_runs, steps]``.

    Run ``r`` starts from the critic built after ``torch.manual_seed(seed + 1000 r)`` and draws its batches
    from its own generator; Adam is elementwise, so one optimizer over the stacked parameters is
    ``n_runs`` independent ones. ``runs`` trains only those run indices (default: ``range(n_runs)``), so a
    long paper-profile run can be archived a group of runs at a time (:mod:`mi_lib.publish_noniid`).
    ``progress`` shows a progress bar (a paper-profile chunk takes minutes).
    """
    runs = range(cfg.n_runs) if runs is None else list(runs)
    if not len(runs) or any(not 0 <= r < cfg.n_runs for r in runs):
        raise ValueError(f"runs must be indices in [0, {cfg.n_runs}), got {list(runs)}")
    seeds = [cfg.seed + 1000 * r for r in runs]
    critics = []
    for s in seeds:
        torch.manual_seed(s)
        critics.append(make_critic(cfg.critic, 1, 1, hidden_dim=cfg.hidden_dim, layers=cfg.layers))
    stacked = StackedConcatCritic(critics)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    bound_fn = get_bound(bound).fn
    opt = torch.optim.Adam(stacked.parameters(), lr=cfg.lr)
    trace = np.empty((len(seeds), cfg.steps))
    desc = f"{bound} {'shared-Z' if shared_z else 'i.i.d.'}"
    for step in tqdm(range(cfg.steps), disable=not progress, desc=desc, mininterval=5):
        xy = [sample_batch(cfg.batch_size, shared_z, g) for g in gens]
        x, y = torch.stack([a for a, _ in xy]), torch.stack([b for _, b in xy])  # [R, K, 1] each
        scores = stacked(x, y)  # [R, K, K]
        est = torch.stack([bound_fn(sc) for sc in scores])  # [R]
        opt.zero_grad()
        (-est.sum()).backward()
        opt.step()
        trace[:, step] = est.detach().numpy()
    return trace


def run(cfg: NonIIDConfig) -> Dict:
    """Train the critics with I_NCE and I_NWJ on i.i.d. and on shared-Z batches.

    Returns ``trace/<bound>/<mode>`` and ``smoothed/<bound>/<mode>``: ``[n_runs, steps]`` (training-batch
    estimates, raw and Gaussian-filtered), ``true_mi``, ``conditional_mi``, ``log_k``.
    """
    out: Dict = {
        "trace": {},
        "smoothed": {},
        "true_mi": true_mi(),
        "conditional_mi": conditional_mi(),
        "log_k": math.log(cfg.batch_size),
    }
    for b in cfg.bounds:
        out["trace"][b], out["smoothed"][b] = {}, {}
        for mode, shared in (("iid", False), ("shared_z", True)):
            tr = train_stacked(cfg, b, shared)
            out["trace"][b][mode], out["smoothed"][b][mode] = tr, smooth(tr, cfg.smooth_sigma)
    return out


def last_quarter(trace: np.ndarray) -> Tuple[float, float]:
    """Mean over runs of each run's mean over the last quarter of training, and its standard error."""
    per_run = np.asarray(trace)[:, -max(1, trace.shape[1] // 4) :].mean(1)
    return float(per_run.mean()), float(per_run.std(ddof=1) / np.sqrt(len(per_run))) if len(per_run) > 1 else math.nan
