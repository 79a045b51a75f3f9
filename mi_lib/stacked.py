r"""Stacked ("batched over runs") versions of the critics, for the sweep engine.

R runs of one architecture keep their parameters as tensors with a leading run axis,
copied from ordinary :mod:`mi_lib.critics` modules built with each run's seed. The
forward passes are batched matmuls (``torch.baddbmm``), so all R runs cost one kernel
per layer instead of R. Shapes are in the comments: ``R`` runs, ``K`` batch, ``H`` hidden.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from .critics import BaselineMLP, ConcatCritic, SeparableCritic


def _linears(module: nn.Module) -> List[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def stack_linears(modules: Sequence[nn.Module], device, dtype) -> List[torch.Tensor]:
    """For R same-shaped modules, ``[W_0^T, b_0, W_1^T, b_1, ...]`` with ``W^T: [R, in, out]``, ``b: [R, 1, out]``."""
    per_run = [_linears(m) for m in modules]
    out = []
    for layer in zip(*per_run):
        w = torch.stack([lin.weight.detach().T for lin in layer]).to(device=device, dtype=dtype)
        b = torch.stack([lin.bias.detach()[None, :] for lin in layer]).to(device=device, dtype=dtype)
        out += [w.contiguous().requires_grad_(True), b.contiguous().requires_grad_(True)]
    return out


def stacked_mlp(params: Sequence[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """Apply a stacked ReLU MLP: ``h: [R, N, in] -> [R, N, out]`` (ReLU between layers, not after the last)."""
    n_layers = len(params) // 2
    for layer in range(n_layers):
        w, b = params[2 * layer], params[2 * layer + 1]
        h = torch.baddbmm(b, h, w)
        if layer < n_layers - 1:
            h = torch.relu_(h)  # in place: saves a pass over [R, N, H] (baddbmm's backward does not need h)
    return h


class StackedSeparable:
    """R separable critics ``g(x)^T h(y)``: ``x: [R, K, dx], y: [R, K, dy] -> [R, K, K]``."""

    def __init__(self, critics: Sequence[SeparableCritic], device, dtype):
        self.g = stack_linears([c.g for c in critics], device, dtype)
        self.h = stack_linears([c.h for c in critics], device, dtype)

    def parameters(self) -> List[torch.Tensor]:
        return self.g + self.h

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.bmm(stacked_mlp(self.g, x), stacked_mlp(self.h, y).transpose(1, 2))  # [R, K, K]


class StackedConcat:
    """R joint critics on all K^2 pairs, first layer split as ``W_x x + W_y y``: ``-> [R, K, K]``."""

    def __init__(self, critics: Sequence[ConcatCritic], device, dtype):
        self.x_dim = critics[0].x_dim
        params = stack_linears(critics, device, dtype)
        w_first = params[0].detach()  # [R, dx + dy, H]
        self.w_x = w_first[:, : self.x_dim].contiguous().requires_grad_(True)
        self.w_y = w_first[:, self.x_dim:].contiguous().requires_grad_(True)
        self.b_first = params[1]
        self.rest = params[2:]

    def parameters(self) -> List[torch.Tensor]:
        return [self.w_x, self.w_y, self.b_first] + self.rest

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r, k, _ = x.shape
        hx = torch.baddbmm(self.b_first, x, self.w_x)  # [R, K, H]
        hy = torch.bmm(y, self.w_y)  # [R, K, H]
        h = torch.relu_(hx[:, :, None, :] + hy[:, None, :, :])  # [R, K, K, H], one temporary, not two
        return stacked_mlp(self.rest, h.reshape(r, k * k, -1)).reshape(r, k, k)


class StackedBaseline:
    """R baseline MLPs ``log a(y)``: ``y: [R, K, dy] -> [R, K]``."""

    def __init__(self, baselines: Sequence[BaselineMLP], device, dtype):
        self.params = stack_linears([b.net for b in baselines], device, dtype)

    def parameters(self) -> List[torch.Tensor]:
        return self.params

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return stacked_mlp(self.params, y).squeeze(-1)
