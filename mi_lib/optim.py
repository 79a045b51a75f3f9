r"""Adam for the training loops: torch's optimiser with the fused kernel, and Adam applied
inside ``backward()`` for the batched sweep (:mod:`mi_lib.sweep`).

Adam is elementwise, so one Adam over a stack of R runs' parameters is exactly R
independent Adams: the sweep's histories equal the one-run loop's (``tests/test_train.py``).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Tuple

import torch
from torch.optim.adam import adam as adam_update


def make_adam(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where the device has one (faster than ``foreach`` for these
    sizes, same maths; ``benchmarks/results/sweep_cpu.json``), plain Adam elsewhere."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device without a fused kernel (e.g. mps on old torch)
        return torch.optim.Adam(params, lr=lr)


class AdamInBackward:
    """Adam (``torch.optim.Adam``'s defaults) applied to each parameter inside ``backward()``,
    as soon as its gradient is complete, through a post-accumulate-grad hook.

    The same update as :func:`make_adam`'s optimiser, step for step (``tests/test_train.py``
    checks the histories against the one-run loop), but each gradient is used while it is
    still in cache and then freed, instead of all of a sweep's gradients being written out
    and read back by one ``step()`` (timings: ``benchmarks/results/sweep_cpu.json``). There is
    no ``step()`` or ``zero_grad()`` to call.
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        # the fused kernel where there is one (CPU, CUDA); torch's default implementation elsewhere
        self.fused: Optional[bool] = True if self.params[0].device.type in ("cpu", "cuda") else None
        for i, p in enumerate(self.params):
            p.register_post_accumulate_grad_hook(self._hook(i))

    def _hook(self, i: int) -> Callable[[torch.Tensor], None]:
        if self.fused:
            # torch's fused kernel called directly: the functional ``adam()`` around it regroups
            # its one-element lists by device and dtype on every call; the maths is the kernel's
            m, v, step = self.exp_avg[i], self.exp_avg_sq[i], self.steps[i]
            b1, b2, lr, eps = self.betas[0], self.betas[1], self.lr, self.eps

            def fused_update(p: torch.Tensor) -> None:
                assert p.grad is not None  # a post-accumulate-grad hook runs once the gradient exists
                step.add_(1)
                torch._fused_adam_(
                    [p],
                    [p.grad],
                    [m],
                    [v],
                    [],
                    [step],
                    amsgrad=False,
                    lr=lr,
                    beta1=b1,
                    beta2=b2,
                    weight_decay=0.0,
                    eps=eps,
                    maximize=False,
                )
                p.grad = None

            return fused_update

        def update(p: torch.Tensor) -> None:
            assert p.grad is not None
            adam_update(
                [p],
                [p.grad],
                [self.exp_avg[i]],
                [self.exp_avg_sq[i]],
                [],
                [self.steps[i]],
                fused=self.fused,
                amsgrad=False,
                beta1=self.betas[0],
                beta2=self.betas[1],
                lr=self.lr,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )
            p.grad = None

        return update
