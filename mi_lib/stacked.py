r"""Stacked ("batched over runs") versions of the critics, for the sweep engine.

R runs of one architecture keep their parameters as tensors with a leading run axis,
copied from ordinary :mod:`mi_lib.critics` modules built with each run's seed. The
forward passes are batched matmuls (``torch.baddbmm``), so all R runs cost one kernel
per layer instead of R. Shapes are in the comments: ``R`` runs, ``K`` batch, ``H`` hidden.

Two things here are written for speed (measurements: ``benchmarks/results/sweep_cpu.json`` and
the README):

- A layer with one output unit (the baselines' and the joint critic's last layer) is a
  multiply-and-sum, not a batched matmul: ``bmm`` with an output width of 1 is slow on a CPU.
- The joint critic's layers on the ``K^2`` pairs are one :class:`torch.autograd.Function`
  with a hand-written backward (:class:`PairMLP`): no autograd bookkeeping per op, the
  ReLU masks applied in place, and the two sums that give the split first layer's
  gradients taken straight from the last ``[R, K, K, H]`` gradient. ``tests/test_train.py``
  checks it against autograd through :class:`mi_lib.critics.ConcatCritic`.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from .critics import BaselineMLP, ConcatCritic, SeparableCritic

# ReLU backward written into its first argument: grad[act <= 0] = 0, one pass, no allocation
_relu_backward_ = torch.ops.aten.threshold_backward.grad_input


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


def stacked_linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h @ w + b`` for a stack: ``h: [R, N, in], w: [R, in, out], b: [R, 1, out] -> [R, N, out]``.

    An output width of 1 is a multiply-and-sum (see the module docstring for why).
    """
    if w.shape[-1] == 1:
        return (h * w.transpose(1, 2)).sum(-1, keepdim=True) + b
    return torch.baddbmm(b, h, w)


def stacked_mlp(params: Sequence[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """Apply a stacked ReLU MLP: ``h: [R, N, in] -> [R, N, out]`` (ReLU between layers, not after the last)."""
    n_layers = len(params) // 2
    for layer in range(n_layers):
        h = stacked_linear(h, params[2 * layer], params[2 * layer + 1])
        if layer < n_layers - 1:
            h = torch.relu_(h)  # in place: saves a pass over [R, N, H] (baddbmm's backward does not need h)
    return h


class Workspace:
    """Reusable buffers for :class:`PairMLP`, so a training loop does not allocate its
    ``[R, K^2, H]`` tensors afresh every step.

    Fresh large allocations cost page faults and cold caches, so reusing memory makes a
    joint-critic sweep step faster (README, "Measurements"). A workspace serves one
    forward at a time, from the forward until its backward has run; a second forward
    before that raises instead of overwriting saved activations. Forwards that build no
    graph (``torch.no_grad``, or no input needing a gradient) allocate as usual.
    """

    def __init__(self):
        self.buffers: dict = {}
        self.busy = False

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        buf = self.buffers.get(name)
        if buf is None or buf.shape != torch.Size(shape) or buf.dtype != like.dtype or buf.device != like.device:
            buf = self.buffers[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf


def _buffer(ws: "Workspace | None", name: str, shape, like: torch.Tensor) -> "torch.Tensor | None":
    return None if ws is None else ws.get(name, shape, like)


class PairMLP(torch.autograd.Function):
    r"""The joint critic after its split first layer, on all ``K^2`` pairs of R runs.

    ``apply(workspace, hx, hy, W_1, b_1, ..., W_L, b_L)``: ``hx, hy: [R, K, H]`` are the
    first layer's two halves (``x_i W_x + b`` and ``y_j W_y``); the pairs' first
    activations are ``relu(hx_i + hy_j)``, then ReLU layers ``W_1 .. W_{L-1}``
    (``[R, H, H]``) and the output layer ``W_L: [R, H, 1]``. Returns the scores
    ``[R, K, K]``. ``workspace`` is a :class:`Workspace` or ``None``.

    The backward is the chain rule written out; for the ReLU mask it uses the saved
    activations (``act > 0`` iff the pre-activation was), as autograd does. It is not
    twice differentiable (nothing here needs that).
    """

    @staticmethod
    def forward(ctx, ws: Optional[Workspace], hx: torch.Tensor, hy: torch.Tensor, *params: torch.Tensor):
        if ws is not None and not any(ctx.needs_input_grad):
            ws = None  # no backward will come to release it
        if ws is not None:
            if ws.busy:
                raise RuntimeError("PairMLP workspace in use: run backward on the previous forward first")
            ws.busy = True
        ctx.ws = ws
        r, k, width = hx.shape
        h = torch.add(hx[:, :, None, :], hy[:, None, :, :], out=_buffer(ws, "a0", (r, k, k, width), hx))
        h = torch.relu_(h).view(r, k * k, width)  # [R, K^2, H]
        acts = [h]
        for layer in range(len(params) // 2 - 1):
            out = _buffer(ws, f"a{layer + 1}", (r, k * k, width), hx)
            h = torch.relu_(torch.baddbmm(params[2 * layer + 1], h, params[2 * layer], out=out))
            acts.append(h)
        w_out = params[-2]  # output layer (width 1): one matrix-vector product per run, no temporary
        scores = torch.stack([torch.mv(h[i], w_out[i, :, 0]) for i in range(r)]) + params[-1].view(r, 1)
        ctx.save_for_backward(*acts, *params[0::2])
        ctx.k = k
        return scores.view(r, k, k)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        saved, ws = ctx.saved_tensors, ctx.ws
        n = len(saved) // 2  # n activations, n weights
        acts, weights = saved[:n], saved[n:]
        r, kk, width = acts[0].shape
        g = grad_out.reshape(r, kk, 1)
        grads: List[Optional[torch.Tensor]] = [None] * (2 * n)
        # output layer (width 1): a weighted sum and an outer product, no matmul with a width of 1
        grads[-1] = g.sum(1, keepdim=True)
        grads[-2] = torch.bmm(g.transpose(1, 2), acts[-1]).transpose(1, 2)  # [R, 1, K^2] @ [R, K^2, H]
        gh = torch.mul(g, weights[-1].transpose(1, 2), out=_buffer(ws, "g0", acts[-1].shape, g))  # [R, K^2, H]
        _relu_backward_(gh, acts[-1], 0, grad_input=gh)
        for layer in range(n - 2, -1, -1):  # hidden layers W_1 .. W_{L-1}
            grads[2 * layer + 1] = gh.sum(1, keepdim=True)
            grads[2 * layer] = torch.bmm(acts[layer].transpose(1, 2), gh)
            out = _buffer(ws, f"g{(n - 1 - layer) % 2}", acts[layer].shape, g)  # not the buffer gh is in
            gh = torch.bmm(gh, weights[layer].transpose(1, 2), out=out)
            _relu_backward_(gh, acts[layer], 0, grad_input=gh)
        gh = gh.view(r, ctx.k, ctx.k, width)  # d/d(hx_i + hy_j)
        result = (None, gh.sum(2), gh.sum(1), *grads)
        if ws is not None:
            ws.busy = False
        return result


def pair_mlp(
    hx: torch.Tensor, hy: torch.Tensor, params: Sequence[torch.Tensor], workspace: Optional[Workspace] = None
) -> torch.Tensor:
    """:class:`PairMLP` on ``hx, hy: [R, K, H]`` -> scores ``[R, K, K]``; the workspace only where a backward
    will follow."""
    return PairMLP.apply(workspace if torch.is_grad_enabled() else None, hx, hy, *params)


def _in_compute_dtype(tensors: Sequence[torch.Tensor], dtype: Optional[torch.dtype]) -> List[torch.Tensor]:
    """``tensors`` cast to ``dtype`` (autograd records the casts, so gradients come back in the
    parameters' own dtype), or unchanged when ``dtype`` is ``None``."""
    return list(tensors) if dtype is None else [t.to(dtype) for t in tensors]


class StackedSeparable:
    """R separable critics ``g(x)^T h(y)``: ``x: [R, K, dx], y: [R, K, dy] -> [R, K, K]``.

    ``compute_dtype`` (e.g. ``torch.bfloat16``): run the layers in that dtype on copies of the
    weights and return float scores in the parameters' dtype; ``None``: the parameters' dtype.
    """

    def __init__(self, critics: Sequence[SeparableCritic], device, dtype, compute_dtype=None):
        self.g = stack_linears([c.g for c in critics], device, dtype)
        self.h = stack_linears([c.h for c in critics], device, dtype)
        self.dtype, self.compute_dtype = dtype, compute_dtype

    def parameters(self) -> List[torch.Tensor]:
        return self.g + self.h

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cd = self.compute_dtype
        x, y = _in_compute_dtype([x, y], cd)
        gx = stacked_mlp(_in_compute_dtype(self.g, cd), x)
        hy = stacked_mlp(_in_compute_dtype(self.h, cd), y)
        return torch.bmm(gx, hy.transpose(1, 2)).to(self.dtype)  # [R, K, K]


class StackedConcat:
    """R joint critics on all K^2 pairs, first layer split as ``W_x x + W_y y``: ``-> [R, K, K]``."""

    def __init__(self, critics: Sequence[ConcatCritic], device, dtype, compute_dtype=None):
        self.x_dim = critics[0].x_dim
        self.dtype, self.compute_dtype = dtype, compute_dtype
        params = stack_linears(critics, device, dtype)
        w_first = params[0].detach()  # [R, dx + dy, H]
        self.w_x = w_first[:, : self.x_dim].contiguous().requires_grad_(True)
        self.w_y = w_first[:, self.x_dim :].contiguous().requires_grad_(True)
        self.b_first = params[1]
        self.rest = params[2:]
        self.workspace = Workspace()

    def parameters(self) -> List[torch.Tensor]:
        return [self.w_x, self.w_y, self.b_first] + self.rest

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cd = self.compute_dtype
        hx = torch.baddbmm(self.b_first, x, self.w_x)  # [R, K, H], in the parameters' dtype (O(K) work)
        hy = torch.bmm(y, self.w_y)  # [R, K, H]
        hx, hy = _in_compute_dtype([hx, hy], cd)  # the K^2 part in the compute dtype
        return pair_mlp(hx, hy, _in_compute_dtype(self.rest, cd), self.workspace).to(self.dtype)  # [R, K, K]


class StackedBaseline:
    """R baseline MLPs ``log a(y)``: ``y: [R, K, dy] -> [R, K]``."""

    def __init__(self, baselines: Sequence[BaselineMLP], device, dtype, compute_dtype=None):
        self.params = stack_linears([b.net for b in baselines], device, dtype)
        self.dtype, self.compute_dtype = dtype, compute_dtype

    def parameters(self) -> List[torch.Tensor]:
        return self.params

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        cd = self.compute_dtype
        (y,) = _in_compute_dtype([y], cd)
        return stacked_mlp(_in_compute_dtype(self.params, cd), y).squeeze(-1).to(self.dtype)
