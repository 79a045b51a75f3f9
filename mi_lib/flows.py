r"""Invertible encoders: NICE / RealNVP coupling flows (Dinh et al. 2015, 2017).

Tschannen et al. (2019, Fig. 1) use them as encoders ``g1, g2``: an invertible ``g``
leaves :math:`I(g_1(X_1); g_2(X_2)) = I(X_1; X_2)` unchanged, so any movement of an MI
bound or of a probe's accuracy during training is not a change of MI.

A coupling layer splits ``x = [x_a, x_b]`` in half and keeps ``x_a``:

.. math:: \text{additive: } y_b = x_b + t(x_a), \qquad
          \text{affine: } y_b = x_b \odot e^{s(x_a)} + t(x_a),

with ``log|det J| = 0`` (additive) or ``sum s(x_a)`` (affine). A fixed random permutation
follows each coupling, so every coordinate gets transformed. Two initialisations: ours, the last
layer of each coupling network scaled by ``init_scale``; or Tschannen et al.'s, every kernel
drawn from a normal of std ``kernel_std`` truncated at two std, biases zero. Either way the
flow starts near a permutation of its input (times a constant for Tschannen et al.'s affine
couplings, whose scale is ``1e-7 + softplus(s)``: ``log 2`` at ``s = 0``).
Shapes: ``[N, dim] -> [N, dim]``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, cast

import torch
import torch.nn.functional as F
from torch import nn

SCALES = ("exp_tanh", "softplus")


def truncated_normal_(module: nn.Module, std: float) -> nn.Module:
    """Every ``nn.Linear`` / conv kernel of ``module`` from ``N(0, std^2)`` truncated at ``2 std``
    (TensorFlow's ``truncated_normal_initializer``), every bias zero. Returns ``module``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def _coupling_net(
    in_dim: int, hidden: Sequence[int], out_dim: int, init_scale: float, kernel_std: Optional[float]
) -> nn.Sequential:
    mods, d = [], in_dim
    for h in hidden:
        mods += [nn.Linear(d, h), nn.ReLU()]
        d = h
    last = nn.Linear(d, out_dim)
    net = nn.Sequential(*mods, last)
    if kernel_std is not None:
        return cast(nn.Sequential, truncated_normal_(net, kernel_std))
    with torch.no_grad():
        last.weight.mul_(init_scale)
        last.bias.zero_()
    return net


class Coupling(nn.Module):
    """One additive or affine coupling on ``[N, dim]``: the first ``dim // 2`` coordinates condition the rest.

    ``scale`` (affine only): ``"exp_tanh"``, ``exp(tanh(s))`` (ours: a bounded log-scale), or
    ``"softplus"``, ``1e-7 + softplus(s)`` (Tschannen et al.'s RealNVP).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int],
        kind: str = "additive",
        init_scale: float = 1e-2,
        kernel_std: Optional[float] = None,
        scale: str = "exp_tanh",
    ):
        super().__init__()
        if kind not in ("additive", "affine"):
            raise ValueError(f"kind must be 'additive' or 'affine', got {kind!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        self.kind, self.d_a, self.scale = kind, dim // 2, scale
        d_b = dim - self.d_a
        self.net = _coupling_net(self.d_a, hidden, d_b * (2 if kind == "affine" else 1), init_scale, kernel_std)

    def _st(self, x_a: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log scale, shift)`` of the coupling at ``x_a``."""
        h = self.net(x_a)
        if self.kind == "additive":
            return torch.zeros_like(h), h
        s, t = h.chunk(2, dim=-1)
        if self.scale == "softplus":
            return torch.log(1e-7 + F.softplus(s)), t
        return torch.tanh(s), t  # bounded log-scale keeps the layer well conditioned

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x -> (y, log|det dy/dx|)``: ``[N, dim] -> ([N, dim], [N])``."""
        x_a, x_b = x[:, : self.d_a], x[:, self.d_a :]
        s, t = self._st(x_a)
        return torch.cat([x_a, x_b * torch.exp(s) + t], dim=-1), s.sum(-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y_a, y_b = y[:, : self.d_a], y[:, self.d_a :]
        s, t = self._st(y_a)
        return torch.cat([y_a, (y_b - t) * torch.exp(-s)], dim=-1)


class FlowEncoder(nn.Module):
    """A stack of ``n_couplings`` couplings, each followed by a fixed random permutation (seeded).

    ``forward(x) -> z``, ``inverse(z) -> x``, ``log_det(x) -> [N]`` (log|det dz/dx|),
    ``forward_and_log_det(x) -> (z, log_det)``. Paper scale (Tschannen et al.): 30 additive
    couplings with coupling networks ``[512, 512]`` on 392 dimensions, ``kernel_std=1e-4``
    (Fig. 1a,b), or affine ones with ``scale="softplus"`` (Fig. 1c). ``seed`` fixes the
    permutations; the weights come from torch's global generator.
    """

    def __init__(
        self,
        dim: int,
        n_couplings: int,
        hidden: Sequence[int] = (512, 512),
        kind: str = "additive",
        seed: int = 0,
        init_scale: float = 1e-2,
        kernel_std: Optional[float] = None,
        scale: str = "exp_tanh",
    ):
        super().__init__()
        self.dim = dim
        g = torch.Generator().manual_seed(seed)
        self.couplings = nn.ModuleList(
            Coupling(dim, hidden, kind, init_scale, kernel_std, scale) for _ in range(n_couplings)
        )
        for i in range(n_couplings):
            perm = torch.randperm(dim, generator=g)
            self.register_buffer(f"perm{i}", perm)
            self.register_buffer(f"inv_perm{i}", torch.argsort(perm))

    def forward_and_log_det(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i, c in enumerate(self.couplings):
            x, ld = c(x)
            x = x[:, getattr(self, f"perm{i}")]  # permutation: |det| = 1
            log_det = log_det + ld
        return x, log_det

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_and_log_det(x)[0]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for i in reversed(range(len(self.couplings))):
            z = z[:, getattr(self, f"inv_perm{i}")]
            coupling = cast(Coupling, self.couplings[i])
            z = coupling.inverse(z)
        return z

    def log_det(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_and_log_det(x)[1]
