r"""Critics ``f(x, y)`` and baselines ``log a(y)``.

Every critic's ``forward(x, y)`` takes ``x: [K, x_dim]`` and ``y: [K, y_dim]`` and
returns ``scores: [K, K]`` with ``scores[i, j] = f(x_i, y_j)`` (the convention of
:mod:`mi_lib.bounds`). ``tests/test_critics_data.py`` checks that permuting ``x``
permutes rows and permuting ``y`` permutes columns, for every critic here.

:func:`make_critic` is the one place a critic is built from its name; every training loop,
experiment and :func:`mi_lib.estimate_mi` goes through it.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple, Type, cast

import torch
from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden_dim``, then a linear map to ``out_dim``."""
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    mods, d = [], in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden_dim), nn.ReLU()]
        d = hidden_dim
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


def _check_pair(x: torch.Tensor, y: torch.Tensor, x_dim: int, y_dim: int) -> None:
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"x and y must be 2-D [K, dim], got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    if x.shape[1] != x_dim or y.shape[1] != y_dim:
        raise ValueError(f"expected x_dim={x_dim}, y_dim={y_dim}; got {x.shape[1]} and {y.shape[1]}")


class SeparableCritic(nn.Module):
    r"""Separable critic :math:`f(x, y) = g(x)^\top h(y)` (van den Oord et al. 2018).

    Two MLPs (``layers`` hidden layers of ``hidden_dim``, ReLU) to ``embed_dim``; costs
    ``2K`` network evaluations for ``K^2`` scores. ``[K, dx], [K, dy] -> [K, K]``.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_dim: int = 256, layers: int = 2, embed_dim: int = 32):
        super().__init__()
        self.x_dim, self.y_dim = x_dim, y_dim
        self.g = mlp(x_dim, hidden_dim, embed_dim, layers)
        self.h = mlp(y_dim, hidden_dim, embed_dim, layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.x_dim, self.y_dim)
        return self.g(x) @ self.h(y).T  # [K, E] @ [E, K] -> [K, K]


class ConcatCritic(nn.Module):
    r"""Joint ("concat") critic :math:`f(x, y) = \mathrm{MLP}([x, y])` on all ``K^2`` pairs (Belghazi et al. 2018).

    The first layer is split, :math:`W[x; y] = W_x x + W_y y`, so it costs ``O(K)``;
    the ``K^2`` cost starts at the second layer. No Python loop. ``[K, dx], [K, dy] -> [K, K]``.
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_dim: int = 256, layers: int = 2):
        super().__init__()
        self.x_dim, self.y_dim = x_dim, y_dim
        self.first = nn.Linear(x_dim + y_dim, hidden_dim)  # one layer, applied as W_x x + W_y y
        self.rest = mlp(hidden_dim, hidden_dim, 1, layers - 1) if layers > 1 else nn.Linear(hidden_dim, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.x_dim, self.y_dim)
        w_x, w_y = self.first.weight[:, : self.x_dim], self.first.weight[:, self.x_dim :]
        hx = x @ w_x.T + self.first.bias  # [K, H]
        hy = y @ w_y.T  # [K, H]
        h = torch.relu(hx[:, None, :] + hy[None, :, :])  # [K, K, H], h[i, j] from (x_i, y_j)
        return self.rest(h).squeeze(-1)  # [K, K]


class BilinearCritic(nn.Module):
    r"""Bilinear critic :math:`f(x, y) = x^\top W y` (Tschannen et al. 2019). ``[K, dx], [K, dy] -> [K, K]``."""

    def __init__(self, x_dim: int, y_dim: int):
        super().__init__()
        self.x_dim, self.y_dim = x_dim, y_dim
        self.weight = nn.Parameter(torch.randn(x_dim, y_dim) / math.sqrt(x_dim * y_dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.x_dim, self.y_dim)
        return x @ self.weight @ y.T


class BaselineMLP(nn.Module):
    r"""Learned baseline :math:`\log a(y)` for I_TUBA and I_alpha: an MLP ``[K, dy] -> [K]``."""

    def __init__(self, y_dim: int, hidden_dim: int = 512, layers: int = 2):
        super().__init__()
        self.net = mlp(y_dim, hidden_dim, 1, layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y).squeeze(-1)


class GaussianOptimalCritic(nn.Module):
    r"""The analytic optimal critic :math:`\log p(y|x) - \log p(y)` for the correlated Gaussian task.

    ``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) eps``; for the cubic task the observed
    ``y' = (W y)^3`` is mapped back, ``y = W^{-1} cbrt(y')``: the Jacobian of the
    invertible transform cancels in the ratio, so the critic is unchanged. With
    ``offset`` 1 it is NWJ's optimum. Per dimension,

    .. math:: \log\frac{p(y|x)}{p(y)} = -\tfrac12\log(1-\rho^2) - \frac{(y-\rho x)^2}{2(1-\rho^2)} + \frac{y^2}{2}.

    ``[K, d], [K, d] -> [K, K]``.
    """

    def __init__(self, rho: float, dim: int, cubic_W: Optional[torch.Tensor] = None, offset: float = 0.0):
        super().__init__()
        if not -1.0 < rho < 1.0:
            raise ValueError(f"rho must be in (-1, 1), got {rho}")
        self.rho, self.dim, self.offset = float(rho), dim, float(offset)
        self.register_buffer("cubic_W_inv", None if cubic_W is None else torch.linalg.inv(cubic_W.double()))

    def log_conditional(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""``[K, K]`` matrix of :math:`\log p(y_j|x_i)` (Gaussian part, in the latent ``y``)."""
        _check_pair(x, y, self.dim, self.dim)
        y = self.uncube(y)
        var = 1.0 - self.rho**2
        diff = y[None, :, :] - self.rho * x[:, None, :]  # [K, K, d]
        return -0.5 * (diff**2).sum(-1) / var - 0.5 * self.dim * math.log(2 * math.pi * var)

    def uncube(self, y: torch.Tensor) -> torch.Tensor:
        """Undo ``(W y)^3`` for the cubic task; identity for the Gaussian task."""
        if self.cubic_W_inv is None:
            return y
        z = torch.sign(y) * y.abs().pow(1.0 / 3.0)
        w_inv = cast(torch.Tensor, self.cubic_W_inv)  # a buffer
        return (z.double() @ w_inv.T).to(y.dtype)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y_lat = self.uncube(y)
        log_py = -0.5 * (y_lat**2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)  # [K]
        cond = self.log_conditional(x, y)
        return cond - log_py[None, :] + self.offset


CRITICS: Dict[str, Type[nn.Module]] = {
    "separable": SeparableCritic,
    "concat": ConcatCritic,
    "bilinear": BilinearCritic,
}
# the papers' own names for the same critics: Poole et al. say "joint", Tschannen et al. "MLP"
CRITIC_ALIASES: Dict[str, str] = {"joint": "concat", "mlp": "concat"}


def critic_name(kind: str) -> str:
    """The canonical name of a critic (``"joint"`` and ``"mlp"`` are ``"concat"``); unknown names raise
    ``ValueError``."""
    name = CRITIC_ALIASES.get(kind, kind)
    if name not in CRITICS:
        valid = ", ".join(list(CRITICS) + [f"{a} (= {c})" for a, c in CRITIC_ALIASES.items()])
        raise ValueError(f"unknown critic {kind!r}; valid critics: {valid}")
    return name


def critic_sizes(kind: str) -> Tuple[str, ...]:
    """The size keywords :func:`make_critic` accepts for ``kind`` (bilinear has none)."""
    return {"separable": ("hidden_dim", "layers", "embed_dim"), "concat": ("hidden_dim", "layers"), "bilinear": ()}[
        critic_name(kind)
    ]


def make_critic(kind: str, x_dim: int, y_dim: int, **sizes: int) -> nn.Module:
    """The critic called ``kind`` for ``x: [K, x_dim]``, ``y: [K, y_dim]``; ``sizes`` are its
    constructor's keywords (:func:`critic_sizes`); a keyword the critic does not have raises ``ValueError``."""
    name = critic_name(kind)
    unknown = sorted(set(sizes) - set(critic_sizes(name)))
    if unknown:
        raise ValueError(f"critic {name!r} takes sizes {critic_sizes(name) or '()'}, not {unknown}")
    return CRITICS[name](x_dim, y_dim, **sizes)
