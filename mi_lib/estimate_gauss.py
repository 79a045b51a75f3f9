r"""Pieces of :func:`mi_lib.estimate_mi` for a critic that starts at the exact answer of a Gaussian copula, and
held-out bounds over every pair of a split.

After ``preprocess="rank"`` each coordinate is a normal score, so for a Gaussian copula (every Gaussian,
and every per-coordinate monotone map of one) ``(x, y)`` is jointly Gaussian, and the log density ratio
:math:`\log p(x, y) / p(x) p(y)` is a quadratic form in ``(x, y)``:

.. math:: f(x, y) = x^\top A y + x^\top B_x x + y^\top B_y y + c,\quad A = -P_{xy},\;
   B_x = -\tfrac12 (P_{xx} - \Sigma_{xx}^{-1}),\; B_y = -\tfrac12 (P_{yy} - \Sigma_{yy}^{-1}),

with :math:`P = \Sigma^{-1}` the joint precision. :class:`QuadraticResidualCritic` holds that quadratic,
fitted in closed form (float64) on the training split, plus a separable MLP residual whose output starts
at zero, so training only has to learn what is not Gaussian. :func:`pair_values` evaluates a bound on
every off-diagonal pair of a split (``n (n - 1)`` pairs instead of a few blocks of 512), with a
delete-a-group jackknife standard error.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .critics import SeparableCritic

__all__ = ["fit_quadratic", "QuadraticResidualCritic", "pair_values", "SHRINKAGE", "JACKKNIFE_GROUPS"]

SHRINKAGE: Tuple[float, ...] = (0.0, 0.01, 0.03, 0.1)  # candidate shrinkages of the covariance, picked on validation
JACKKNIFE_GROUPS = 20  # the standard error of an all-pairs bound: delete one of this many groups at a time
RIDGE = 1e-6  # relative ridge on the covariance, so that a singular one (a copy, a constant column) inverts


def fit_quadratic(x: np.ndarray, y: np.ndarray, shrink: float = 0.0) -> Tuple[np.ndarray, ...]:
    r"""The Gaussian log density ratio's quadratic ``(mu_x, mu_y, A, B_x, B_y)`` fitted on ``x: [n, dx]``,
    ``y: [n, dy]`` in float64. ``shrink`` in ``[0, 1)`` pulls the covariance toward its diagonal,
    :math:`(1 - s)\Sigma + s\,\mathrm{diag}\,\Sigma`, which tames the noise of many weak dimensions."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx = x.shape[1]
    z = np.hstack([x, y])
    mu = z.mean(0)
    s = np.cov(z, rowvar=False, bias=True).reshape(z.shape[1], z.shape[1])
    s = (1.0 - shrink) * s + shrink * np.diag(np.diag(s))
    s = s + RIDGE * max(float(np.trace(s)) / len(s), 1e-12) * np.eye(len(s))
    p = np.linalg.inv(s)
    a = -p[:dx, dx:]
    bx = -0.5 * (p[:dx, :dx] - np.linalg.inv(s[:dx, :dx]))
    by = -0.5 * (p[dx:, dx:] - np.linalg.inv(s[dx:, dx:]))
    return mu[:dx], mu[dx:], a, 0.5 * (bx + bx.T), 0.5 * (by + by.T)


class QuadraticResidualCritic(nn.Module):
    r""":math:`f(x, y) = \alpha\, q(x, y) + \gamma\, g(x)^\top h(y)`: the closed-form Gaussian quadratic ``q``
    (float64 buffers) and a separable MLP (trained, from the usual random initialisation), mixed by the
    buffers :math:`\alpha, \gamma` (``set_mix``). :func:`mi_lib.estimate_mi` uses it as two candidates for
    the validation split: the Gaussian critic (:math:`\alpha = 1, \gamma = 0`) and the MLP
    (:math:`\alpha = 0, \gamma = 1`, computed in float32 alone). ``[K, dx], [K, dy] -> [K, K]``, in the dtype
    of ``x`` (float64 in, float64 out)."""

    alpha: torch.Tensor
    gamma: torch.Tensor
    mu_x: torch.Tensor
    mu_y: torch.Tensor
    a: torch.Tensor
    bx: torch.Tensor
    by: torch.Tensor

    def __init__(self, x_dim: int, y_dim: int, hidden_dim: int = 128, layers: int = 2, embed_dim: int = 32):
        super().__init__()
        self.residual = SeparableCritic(x_dim, y_dim, hidden_dim, layers, embed_dim)
        f64 = torch.float64
        self.register_buffer("alpha", torch.ones((), dtype=f64))
        self.register_buffer("gamma", torch.zeros((), dtype=f64))
        self.register_buffer("mu_x", torch.zeros(x_dim, dtype=f64))
        self.register_buffer("mu_y", torch.zeros(y_dim, dtype=f64))
        self.register_buffer("a", torch.zeros(x_dim, y_dim, dtype=f64))
        self.register_buffer("bx", torch.zeros(x_dim, x_dim, dtype=f64))
        self.register_buffer("by", torch.zeros(y_dim, y_dim, dtype=f64))

    def set_quadratic(self, quad: Sequence[np.ndarray]) -> None:
        """Load ``fit_quadratic``'s ``(mu_x, mu_y, A, B_x, B_y)``."""
        for name, v in zip(("mu_x", "mu_y", "a", "bx", "by"), quad):
            buf = getattr(self, name)
            buf.copy_(torch.as_tensor(v, dtype=torch.float64, device=buf.device))

    def set_mix(self, alpha: float, gamma: float) -> None:
        """The weight of the quadratic and whether the MLP is on."""
        with torch.no_grad():
            self.alpha.fill_(alpha)
            self.gamma.fill_(gamma)

    def quadratic(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The quadratic part alone, in float64 (its terms are large and cancel at high MI)."""
        xc, yc = x.double() - self.mu_x, y.double() - self.mu_y
        qx = ((xc @ self.bx) * xc).sum(1)
        qy = ((yc @ self.by) * yc).sum(1)
        return xc @ self.a @ yc.T + qx[:, None] + qy[None, :]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        alpha, gamma = float(self.alpha), float(self.gamma)
        if alpha == 0.0:  # the MLP alone, in float32
            return (gamma * self.residual(x.float(), y.float())).to(x.dtype)
        out = alpha * self.quadratic(x, y)
        if gamma != 0.0:
            out = out + gamma * self.residual(x.float(), y.float()).double()
        return out.to(x.dtype)


# ----------------------------------------------------------------------------------------------- all-pairs bounds
PAIR_BOUNDS = ("nwj", "dv")  # the bounds pair_values evaluates on all pairs


def pair_values(
    bound: str,
    scores: List[torch.Tensor],
    shift: Optional[float],
    optimal_offset: float,
    n_groups: int,
    stderr: bool = True,
) -> Tuple[float, float, float]:
    r"""``bound`` (``"nwj"`` or ``"dv"``) on blocks of scores ``[n_b, n_b]`` (diagonal: the joint pairs),
    the marginal term over every off-diagonal pair of every block; returns ``(value, stderr, shift)``.

    ``shift`` is added to the critic (``None``: the one that makes :math:`\log \mathbb{E}_{p(x)p(y)}e^{f}`
    equal ``optimal_offset - 1`` here, NWJ's optimum; DV does not depend on it). ``stderr`` is the
    delete-a-group jackknife over ``n_groups`` groups of pairs (group ``i mod n_groups``): deleting a
    group removes its joint pairs and every marginal pair that uses one of its x or y (``stderr=False``
    skips it and returns NaN).
    """
    d_all, parts = [], []
    per_group_d = np.zeros(n_groups)
    per_group_n = np.zeros(n_groups)
    for s in scores:
        s = s.double()
        n = s.shape[0]
        d = torch.diagonal(s)
        off = s.masked_fill(torch.eye(n, dtype=torch.bool, device=s.device), -math.inf)
        m = float(off.max())
        e = torch.exp(off - m)
        tot = float(e.sum())
        removed = np.zeros(n_groups)
        sizes = np.bincount(np.arange(n) % n_groups, minlength=n_groups)
        if stderr:
            g = torch.arange(n, device=s.device) % n_groups
            onehot = torch.nn.functional.one_hot(g, n_groups).double()  # [n, G]
            by_rows = onehot.T @ e.sum(1)  # [G]: marginal pairs whose x is in the group
            by_cols = onehot.T @ e.sum(0)  # [G]: ... whose y is
            within = torch.diagonal(onehot.T @ e @ onehot)  # [G]: both
            removed = (by_rows + by_cols - within).cpu().numpy()
            dn = d.cpu().numpy()
            per_group_d += np.bincount(np.arange(n) % n_groups, weights=dn, minlength=n_groups)
            per_group_n += sizes
        d_all.append(d.cpu().numpy())
        parts.append((m, tot, removed, n * (n - 1), (n - sizes) * (n - sizes - 1)))
    top = max(p[0] for p in parts)
    pairs = sum(p[3] for p in parts)
    lme = math.log(sum(p[1] * math.exp(p[0] - top) for p in parts) / pairs) + top
    d_cat = np.concatenate(d_all)
    joint = float(d_cat.mean())
    if shift is None:
        shift = optimal_offset - lme

    def value(j: Any, l_: Any) -> Any:
        return j - l_ if bound == "dv" else j + shift - np.exp(shift - 1.0 + l_)

    full = float(value(joint, lme))
    if not stderr:
        return full, math.nan, float(shift)
    total_minus = sum((p[1] - p[2]) * math.exp(p[0] - top) for p in parts)
    pairs_minus = sum(p[4] for p in parts)
    with np.errstate(divide="ignore"):
        lme_minus = np.log(np.maximum(total_minus, 0.0) / pairs_minus) + top
    joint_minus = (d_cat.sum() - per_group_d) / (len(d_cat) - per_group_n)
    th = value(joint_minus, lme_minus)
    se = float(math.sqrt((n_groups - 1) / n_groups * float(((th - th.mean()) ** 2).sum())))
    return full, se, float(shift)
