r"""The correlated Gaussian tasks of Poole et al. Fig. 2, and the MI schedule.

``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) eps`` with ``eps ~ N(0, I_d)``, so
:math:`I(X;Y) = -\frac d2 \log(1-\rho^2)` nats. The cubic task observes
``(W y)^3`` elementwise, with ``W`` fixed by a seed: ``W`` is full rank (almost surely,
and checked), the map is invertible and the MI is unchanged. Poole et al.'s caption draws
``W_ij ~ N(0, 1)`` (``GaussianTask(w_std=1.0)``, the paper profile); the default,
``W_ij ~ N(0, 1/d)``, keeps ``W y`` at unit scale, so the cubed values stay in the range a
critic with unnormalised inputs learns from in a short run. Any invertible rescaling
leaves the MI as it is.
Sampling takes a ``torch.Generator``, so seeded runs reproduce exactly. :class:`GaussianStream`
is the batches one training run sees, the same whichever loop trains it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch


def mi_to_rho(mi: float, dim: int) -> float:
    r"""Correlation that gives ``mi`` nats in ``dim`` dimensions: :math:`\rho = \sqrt{1 - e^{-2I/d}}`."""
    if mi < 0:
        raise ValueError(f"mi must be >= 0 nats, got {mi}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return math.sqrt(1.0 - math.exp(-2.0 * mi / dim))


def rho_to_mi(rho: float, dim: int) -> float:
    r""":math:`I = -\frac d2 \log(1-\rho^2)` nats, for ``|rho| < 1``."""
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must be in (-1, 1), got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def cubic_matrix(dim: int, seed: int, std: Optional[float] = None) -> torch.Tensor:
    """The fixed ``W`` of the cubic task, ``W_ij ~ N(0, std^2)`` (``std=None``: ``1/sqrt(d)``), drawn
    from ``seed`` (float32, ``[d, d]``)."""
    if std is not None and not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, dim, generator=g)
    w = w / math.sqrt(dim) if std is None else w * std
    if torch.linalg.matrix_rank(w.double()) < dim:  # pragma: no cover - probability zero
        raise RuntimeError(f"W drawn from seed {seed} is singular; pick another seed")
    return w


def sample_correlated_gaussian(
    rho: float,
    dim: int,
    batch_size: int,
    generator: Optional[torch.Generator] = None,
    cubic_W: Optional[torch.Tensor] = None,
    dtype=torch.float32,
    device=None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw ``x, y`` of shape ``[batch_size, dim]`` with correlation ``rho`` per dimension.

    With ``cubic_W`` the returned ``y`` is ``(y @ W.T)^3``.
    """
    x = torch.randn(batch_size, dim, generator=generator, dtype=dtype, device=device)
    eps = torch.randn(batch_size, dim, generator=generator, dtype=dtype, device=device)
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must be in (-1, 1), got {rho}")
    y = rho * x + math.sqrt(1.0 - rho * rho) * eps
    if cubic_W is not None:
        y = (y @ cubic_W.to(y).T) ** 3
    return x, y


@dataclass(frozen=True)
class GaussianTask:
    """A Fig. 2 task: the correlated Gaussian, optionally observed through ``(W y)^3``."""

    dim: int = 20
    cubic: bool = False
    w_seed: int = 0  # seed of W for the cubic task
    w_std: Optional[float] = None  # std of W's entries; None: 1/sqrt(dim); Poole et al.'s caption: 1.0

    @property
    def name(self) -> str:
        """ "gaussian" or "cubic"."""
        return "cubic" if self.cubic else "gaussian"

    def cubic_W(self) -> Optional[torch.Tensor]:
        """The fixed ``W`` (``[d, d]``) of the cubic task, or ``None`` for the Gaussian task."""
        return cubic_matrix(self.dim, self.w_seed, self.w_std) if self.cubic else None


def mi_schedule(levels: Sequence[float] = (2, 4, 6, 8, 10), steps_per_level: int = 4000) -> np.ndarray:
    """True MI (nats) at each training step: a staircase, ``steps_per_level`` steps per level."""
    if steps_per_level < 1:
        raise ValueError(f"steps_per_level must be >= 1, got {steps_per_level}")
    if len(levels) == 0:
        raise ValueError("levels must not be empty")
    return np.repeat(np.asarray(levels, dtype=np.float64), steps_per_level)


class GaussianStream:
    """The data of one (task, seed): ``x, y: [K, d]`` for each step, drawn in blocks of steps.

    Noise for ``block`` steps is drawn in one call (fewer, larger kernels); runs with the
    same task and seed see identical batches, whichever loop trains them.
    """

    def __init__(
        self,
        task: GaussianTask,
        seed: int,
        batch_size: int,
        mi_per_step: np.ndarray,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        block: int = 500,
    ):
        self.task, self.k, self.block = task, batch_size, block
        self.device, self.dtype = device, dtype
        self.gen = torch.Generator(device=device).manual_seed(seed)
        rhos = [mi_to_rho(m, task.dim) for m in mi_per_step]
        self.rho = torch.tensor(rhos, dtype=dtype, device=device)
        w = task.cubic_W()
        self.w_t = None if w is None else w.T.to(device=device, dtype=dtype)
        self._start = -1
        self._x: Optional[torch.Tensor] = None
        self._y: Optional[torch.Tensor] = None

    def _fill(self, step: int) -> None:
        n = min(self.block, len(self.rho) - step)
        shape = (n, self.k, self.task.dim)
        x = torch.randn(shape, generator=self.gen, device=self.device, dtype=self.dtype)
        eps = torch.randn(shape, generator=self.gen, device=self.device, dtype=self.dtype)
        rho = self.rho[step : step + n, None, None]
        y = rho * x + torch.sqrt(1 - rho * rho) * eps
        if self.w_t is not None:
            y = (y @ self.w_t) ** 3
        self._start, self._x, self._y = step, x, y

    def batch(self, step: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` for ``step``; steps must be asked for in order."""
        if self._x is None or not (self._start <= step < self._start + len(self._x)):
            self._fill(step)
        assert self._x is not None and self._y is not None
        return self._x[step - self._start], self._y[step - self._start]
