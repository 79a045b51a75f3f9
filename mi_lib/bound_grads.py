r"""Each training bound's value and its gradient with respect to the scores, written out.

The sweep engine (:mod:`mi_lib.sweep`) trains many runs at once. Through autograd, a
bound is a few dozen small operations forward and as many backward, for every group
of runs every step (its share of a step: ``benchmarks/results/sweep_cpu.json``).
The gradients of these bounds have short closed forms, so the engine computes value
and gradient together here, in a handful of operations on the whole ``[R, K, K]``
stack, and autograd sees one node (:class:`mi_lib.sweep.FusedBounds`).

Notation: ``S`` is a stack of score matrices ``[R, K, K]`` (``S[r, i, j] = f(x_i, y_j)``),
``I`` the identity, ``O = 1 - I`` the off-diagonal mask, ``n = K(K-1)``, and
:math:`\mathrm{sm}_O(T)` the softmax of ``T`` over its off-diagonal entries (zero on the
diagonal), so that :math:`\partial\,\mathrm{lme}_O(T)/\partial T = \mathrm{sm}_O(T)`
with :math:`\mathrm{lme}_O(T) = \log\frac1n\sum_{i\neq j} e^{T_{ij}}`.

- TUBA, baseline ``b``, :math:`T_{ij} = S_{ij} - b_j`:
  value :math:`1 + \overline{S_{ii} - b_i} - e^{\mathrm{lme}_O(T)}`;
  :math:`\partial S = I/K - e^{\mathrm{lme}_O(T)}\mathrm{sm}_O(T)`,
  :math:`\partial b_j = -1/K + \sum_i [e^{\mathrm{lme}_O(T)}\mathrm{sm}_O(T)]_{ij}`.
- NWJ: TUBA with :math:`b = 1`.
- InfoNCE: value :math:`\overline{S_{ii} - \mathrm{lse}_j S_{ij}} + \log K`;
  :math:`\partial S = (I - \mathrm{softmax}_j S)/K`.
- DV: value :math:`\overline{S_{ii}} - \mathrm{lme}_O(S)`; :math:`\partial S = I/K - \mathrm{sm}_O(S)`.
- JS: value NWJ of ``S + 1``, :math:`1 + \overline{S_{ii}} - e^{\mathrm{lme}_O(S)}`; gradient the f-GAN JS
  objective's, :math:`\partial S = I\sigma(-S)/K - O\sigma(S)/n`.
- MINE: value DV; gradient :math:`I/K - e^{\mathrm{lme}_O(S) - \bar z}\mathrm{sm}_O(S)`, with :math:`\bar z`
  the updated log-EMA of the partition (the state).
- SMILE (:math:`\tau = 5`): value :math:`\overline{S_{ii}} - \mathrm{lme}_O(\mathrm{clip}(S, -\tau, \tau))`;
  gradient the f-GAN JS objective's, as for JS.
- I_alpha: the value of :func:`mi_lib.bounds.interpolated_lower_bound`; its gradient runs
  through the leave-one-out baseline and is written out in :func:`interpolated`.

(:math:`\overline{\,\cdot\,}` is the mean over ``i``.) :func:`autograd_value_and_grad`
gets any bound's value and gradient from autograd instead; :func:`value_and_grad_of`
falls back to it for a registered bound that has no closed form here.
``tests/test_bound_grads.py`` checks every closed form against autograd through the
registry's ``train_value`` (float64, scores from 0.1 to 30 in scale, clipping active,
and finite wherever autograd is at a scale of 1000).

Every function here has the signature ``(scores [R, K, K], log_baseline [R, K] or None,
alpha_logit [R], state) -> (value [R], d value/d scores [R, K, K], d value/d log_baseline
[R, K] or None, new state)``; each run's value depends on its own slice only, so
``grad_out[r] * gradient[r]`` is the vector-Jacobian product.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional, Tuple

import torch

from . import bounds as B
from .bounds import (
    MINE_MOMENTUM,
    SMILE_CLIP,
    diag,  # the diagonal view [..., K] of [..., K, K]
)

ValueAndGrad = Callable[..., Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]]


@lru_cache(maxsize=None)
def _eye_cached(k: int, device: torch.device) -> torch.Tensor:
    return torch.eye(k, dtype=torch.bool, device=device)


def _eye(k: int, device: torch.device) -> torch.Tensor:
    """The ``[K, K]`` boolean identity, made once per size and device."""
    return _eye_cached(k, device)


def _offdiag_lse(t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(lme_O(t) [R], sm_O(t) [R, K, K])``: log-mean-exp and softmax over the off-diagonal entries."""
    k = t.shape[-1]
    masked = t.masked_fill(_eye(k, t.device), float("-inf"))
    lse = torch.logsumexp(masked.flatten(-2), dim=-1)  # [R]
    soft = torch.exp(masked - lse[:, None, None])  # 0 on the diagonal
    return lse - math.log(k * (k - 1)), soft


def _add_diag_(g: torch.Tensor, value) -> torch.Tensor:
    """``g[:, i, i] += value`` (a number or ``[R, K]``), in place."""
    d = diag(g)
    d += value
    return g


def _tuba_core(scores: torch.Tensor, log_b: torch.Tensor):
    k = scores.shape[-1]
    lme, soft = _offdiag_lse(scores - log_b[:, None, :])
    marg = torch.exp(lme)  # [R]
    value = 1.0 + (diag(scores) - log_b).mean(-1) - marg
    weighted = soft.mul_(marg[:, None, None])  # e^{lme} sm_O, the marginal term's gradient
    grad_b = weighted.sum(-2) - 1.0 / k
    grad_s = _add_diag_(weighted.neg_(), 1.0 / k)
    return value, grad_s, grad_b


def tuba(scores, log_b, alpha=None, state=None):
    """I_TUBA with the learned baseline ``log_b``."""
    value, grad_s, grad_b = _tuba_core(scores, log_b)
    return value, grad_s, grad_b, None


def nwj(scores, log_b=None, alpha=None, state=None):
    """I_NWJ: TUBA with ``log a(y) = 1``."""
    ones = torch.ones(scores.shape[:-1], dtype=scores.dtype, device=scores.device)
    value, grad_s, _ = _tuba_core(scores, ones)
    return value, grad_s, None, None


def infonce(scores, log_b=None, alpha=None, state=None):
    """I_NCE: rows normalised over ``y_j``."""
    k = scores.shape[-1]
    lse = torch.logsumexp(scores, dim=-1)  # [R, K]
    value = (diag(scores) - lse).mean(-1) + math.log(k)
    grad_s = _add_diag_(torch.exp(scores - lse[..., None]).div_(-k), 1.0 / k)
    return value, grad_s, None, None


def dv(scores, log_b=None, alpha=None, state=None):
    """I_DV, the log of the off-diagonal mean inside."""
    k = scores.shape[-1]
    lme, soft = _offdiag_lse(scores)
    return diag(scores).mean(-1) - lme, _add_diag_(soft.neg_(), 1.0 / k), None, None


def _js_fgan_grad(scores: torch.Tensor) -> torch.Tensor:
    """Gradient of the f-GAN JS objective: ``sigma(-S_ii)/K`` on the diagonal, ``-sigma(S_ij)/n`` off it."""
    k = scores.shape[-1]
    grad = torch.sigmoid(scores).div_(-k * (k - 1))
    diag(grad).copy_(torch.sigmoid(-diag(scores)).div_(k))  # sigma(-x) directly: 1 - sigma(x) loses it
    return grad


def js(scores, log_b=None, alpha=None, state=None):
    """I_JS: value NWJ on ``S + 1``, gradient the f-GAN JS objective's."""
    lme, _ = _offdiag_lse(scores)
    value = 1.0 + diag(scores).mean(-1) - torch.exp(lme)
    return value, _js_fgan_grad(scores), None, None


def mine(scores, log_b=None, alpha=None, state=None):
    """MINE: value DV; gradient TUBA's with ``a`` the EMA of the partition (``state``: its log, [R])."""
    k = scores.shape[-1]
    log_z, soft = _offdiag_lse(scores)
    log_ema = log_z if state is None else state
    new_log_ema = torch.logaddexp(math.log(MINE_MOMENTUM) + log_ema, math.log1p(-MINE_MOMENTUM) + log_z)
    value = diag(scores).mean(-1) - log_z
    grad_s = _add_diag_(soft.mul_(-torch.exp(log_z - new_log_ema)[:, None, None]), 1.0 / k)
    return value, grad_s, None, new_log_ema


def smile(scores, log_b=None, alpha=None, state=None):
    """SMILE (tau = 5): value DV with the partition's scores clipped, gradient the f-GAN JS objective's."""
    lme, _ = _offdiag_lse(scores.clamp(-SMILE_CLIP, SMILE_CLIP))
    return diag(scores).mean(-1) - lme, _js_fgan_grad(scores), None, None


def interpolated(scores, log_b, alpha, state=None):
    """I_alpha: value and gradient through the leave-one-out baseline, written out.

    With ``L[i, j]`` the leave-one-out log-mean down column ``j`` without row ``i``,
    ``u = log(alpha) + L``, ``v_j = log(1 - alpha) + b_j`` and ``interp = logaddexp(u, v)``:
    the value's gradient with respect to ``interp`` is ``G = -1/n`` off the diagonal and
    ``G_jj = sum_i E_ij`` on it (``E`` the marginal term's ``e^{lme_O} sm_O``). Then
    ``dL = G w`` with ``w = e^{u - interp}``, ``db_j = sum_i G_ij (1 - w_ij)``, and
    ``dS_kj = [k = j]/K - E_kj + sum_{i != k} dL_ij e^{S_kj - L_ij}/(K-1)``. The last sum
    is taken as ``log_loo_mean`` takes its logs: over the rows that are not the column's
    max through ``1/rest`` (each ``rest >= 1``), and the max row's term on its own, so
    every exponential is at most 1 and large scores do not overflow.
    """
    k = scores.shape[-1]
    n = k * (k - 1)
    log_alpha = -torch.nn.functional.softplus(-alpha)[:, None, None]
    log_1m_alpha = -torch.nn.functional.softplus(alpha)[:, None]
    loo, shifted, rest, is_argmax, loo_argmax = B.log_loo_parts(scores)
    u = log_alpha + loo
    interp = torch.logaddexp(u, (log_1m_alpha + log_b)[:, None, :])  # [R, K, K]
    eye = _eye(k, scores.device)
    diag_s = diag(scores)
    joint = (diag_s[:, None, :] - interp).masked_fill_(eye, 0.0).sum((-2, -1)) / n
    lme, soft = _offdiag_lse(scores - diag(interp)[:, None, :])
    marg = torch.exp(lme)
    value = 1.0 + joint - marg
    e_marg = soft.mul_(marg[:, None, None])  # E
    g_interp = torch.full_like(scores, -1.0 / n)
    diag(g_interp).copy_(e_marg.sum(-2))
    d_loo = g_interp * torch.exp(u - interp)  # G w
    grad_b = (g_interp - d_loo).sum(-2)  # G (1 - w), summed down each column
    # sum_{i != k} dL_ij e^{S_kj - L_ij}/(K-1): rows other than the max through 1/rest ...
    c = torch.where(is_argmax, 0.0, d_loo / rest)
    through_loo = shifted * (c.sum(-2, keepdim=True) - c)
    # ... and the max row's own term, e^{S_kj - loo_argmax_j} for k != argmax
    d_loo_max = (d_loo * is_argmax).sum(-2, keepdim=True)
    through_loo += torch.exp(scores - loo_argmax).masked_fill_(is_argmax, 0.0) * d_loo_max
    grad_s = _add_diag_(through_loo.sub_(e_marg), 1.0 / k)
    return value, grad_s, grad_b, None


def autograd_value_and_grad(train_value) -> ValueAndGrad:
    """A bound's ``(value, gradients, state)`` from its registry ``train_value``, through autograd."""

    def value_and_grad(scores, log_b, alpha, state):
        with torch.enable_grad():
            s = scores.detach().requires_grad_(True)
            b = None if log_b is None else log_b.detach().requires_grad_(True)
            value, new_state = train_value(s, b, alpha, state)
            grads = torch.autograd.grad(value.sum(), [s] if b is None else [s, b])
        new_state = None if new_state is None else new_state.detach()
        return value.detach(), grads[0], (None if b is None else grads[1]), new_state

    return value_and_grad


def value_and_grad_of(name: str) -> ValueAndGrad:
    """The registry entry's closed form (its ``value_and_grad``) where it has one, else autograd through its
    ``train_value``."""
    from .registry import get_bound  # the registry wires these closed forms in, so it imports this module

    spec = get_bound(name)  # raises on an unknown name
    return spec.value_and_grad or autograd_value_and_grad(spec.train_value)
