r"""Variational bounds on mutual information as pure functions of a score matrix.

The one convention of this package
----------------------------------
``scores`` is a ``[K, K]`` tensor with

.. math:: \text{scores}[i, j] = f(x_i, y_j),

so rows index ``x`` and columns index ``y``. The positive (jointly drawn) pairs
``(x_i, y_i)`` sit on the diagonal; every off-diagonal entry ``(x_i, y_j), i != j``
is a sample from the product of marginals ``p(x)p(y)``. Product-of-marginals terms
average over those ``K(K-1)`` off-diagonal pairs. A baseline ``log_baseline`` is
``log a(y)``: a ``[K]`` tensor indexed like the columns (``y_j``), or a scalar.
Every bound returns a 0-d tensor, in nats.

The paper's reference colab stores the transpose (rows index ``y``) for the
separable critic but not for the concat critic; here there is only this layout,
and ``tests/test_critics_data.py`` checks it for every critic.

No function here changes its inputs, holds state in globals, takes a device
argument or dispatches on strings. Bounds whose *value* and *gradient* come from
different objectives (JS, MINE, SMILE) are built with :func:`value_of_a_gradient_of_b`.
See the book chapter "The variational bounds" (``book/bounds.md``).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch

Number = Union[int, float]

MINE_MOMENTUM = 0.99  # MINE's EMA of the partition function, as trained (Belghazi et al. 2018)
SMILE_CLIP = 5.0  # SMILE's tau, as trained (Song & Ermon 2020)

__all__ = [
    "value_of_a_gradient_of_b",
    "tuba_lower_bound",
    "nwj_lower_bound",
    "dv_lower_bound",
    "infonce_lower_bound",
    "js_lower_bound",
    "js_fgan_objective",
    "interpolated_lower_bound",
    "mine_lower_bound",
    "smile_lower_bound",
    "ba_lower_bound",
    "tnce_lower_bound",
    "variational_upper_bound",
    "loo_upper_bound",
    "log_loo_mean",
    "logmeanexp_nodiag",
]


# --------------------------------------------------------------------------- checks
def check_scores(scores: torch.Tensor, name: str = "scores") -> torch.Tensor:
    """Validate a ``[K, K]`` score matrix (K >= 2, finite, floating point)."""
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dim() != 2:
        raise ValueError(f"{name} must be 2-D [K, K], got shape {tuple(scores.shape)}")
    if scores.shape[0] != scores.shape[1]:
        raise ValueError(f"{name} must be square [K, K], got shape {tuple(scores.shape)}")
    if scores.shape[0] < 2:
        raise ValueError(f"{name} needs K >= 2 samples (off-diagonal pairs), got K={scores.shape[0]}")
    if not scores.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {scores.dtype}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return scores


def _check_baseline(log_baseline, scores: torch.Tensor) -> torch.Tensor:
    """Return ``log a(y_j)`` as a ``[K]`` tensor (from a scalar or a ``[K]`` tensor)."""
    k = scores.shape[-1]
    if isinstance(log_baseline, bool) or not isinstance(log_baseline, (int, float, torch.Tensor)):
        raise ValueError(f"log_baseline must be a number or a tensor, got {type(log_baseline).__name__}")
    b = torch.as_tensor(log_baseline, dtype=scores.dtype, device=scores.device)
    if b.dim() == 0:
        b = b.expand(k)
    elif b.shape != (k,):
        raise ValueError(f"log_baseline must be a scalar or have shape [K]=[{k}], got {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()):
        raise ValueError("log_baseline contains NaN or inf")
    return b


def _check_real(value, name: str) -> torch.Tensor:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise ValueError(f"{name} must be a real number or a 0-d tensor, got {type(value).__name__}")
    if isinstance(value, torch.Tensor) and value.dim() != 0:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(value.shape)}")
    if isinstance(value, torch.Tensor) and not value.is_floating_point():
        value = value.float()
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {float(value)}")
    return torch.as_tensor(value)


# --------------------------------------------------------------------------- helpers
def value_of_a_gradient_of_b(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""A tensor whose value is ``a`` and whose gradient is that of ``b``.

    :math:`b + \mathrm{sg}(a - b)`, with ``sg`` the stop-gradient. Used by JS
    (value NWJ, gradient f-GAN JS), MINE (value DV, gradient TUBA with an EMA
    baseline) and SMILE (value clipped DV, gradient f-GAN JS).
    """
    return b + (a - b).detach()


def _offdiag_mask(k: int, device) -> torch.Tensor:
    return ~torch.eye(k, dtype=torch.bool, device=device)


def logmeanexp_nodiag(scores: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \frac{1}{K(K-1)}\sum_{i\neq j} e^{S_{ij}}` over the last two dims ``[..., K, K]``."""
    k = scores.shape[-1]
    masked = scores.masked_fill(~_offdiag_mask(k, scores.device), float("-inf"))
    return torch.logsumexp(masked.flatten(-2), dim=-1) - math.log(k * (k - 1))


def diag(scores: torch.Tensor) -> torch.Tensor:
    """The positives' scores, a view: ``[..., K, K] -> [..., K]``."""
    return torch.diagonal(scores, dim1=-2, dim2=-1)


def log_loo_mean(scores: torch.Tensor) -> torch.Tensor:
    r"""Leave-one-out log-mean-exp down each column.

    ``out[i, j]`` :math:`= \log \frac{1}{K-1}\sum_{k\neq i} e^{S_{kj}}`: for ``y_j``,
    the average of :math:`e^{f(x_k, y_j)}` over every ``x`` but ``x_i``. This is the
    InfoNCE baseline :math:`m(y; x_{1:K})` that I_alpha uses. Stable: for every row
    but each column's argmax the remaining sum is at least 1 after shifting by the
    column max; the argmax row is recomputed with that row masked out.
    Shapes: ``[..., K, K] -> [..., K, K]``.
    """
    return log_loo_parts(scores)[0]


def log_loo_parts(scores: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """:func:`log_loo_mean` and the pieces its gradient needs (:mod:`mi_lib.bound_grads`):
    ``(loo, shifted, rest, is_argmax, loo_argmax)`` with ``shifted = exp(S - col_max)``,
    ``rest`` the column sums of ``shifted`` without row ``i``, ``is_argmax`` marking each
    column's max row, and ``loo_argmax = log sum_{k != argmax} e^{S_kj}`` (``[..., 1, K]``)."""
    k = scores.shape[-2]
    col_max, argmax = scores.max(dim=-2, keepdim=True)  # [..., 1, K]
    shifted = torch.exp(scores - col_max)
    total = shifted.sum(dim=-2, keepdim=True)
    rest = (total - shifted).clamp_min(torch.finfo(scores.dtype).tiny)
    loo = col_max + torch.log(rest)
    rows = torch.arange(k, device=scores.device).view(*([1] * (scores.dim() - 2)), k, 1)
    is_argmax = rows == argmax  # [..., K, K]
    masked = scores.masked_fill(is_argmax, float("-inf"))
    loo_argmax = torch.logsumexp(masked, dim=-2, keepdim=True)  # max's row left out
    loo = torch.where(is_argmax, loo_argmax.expand_as(loo), loo)
    return loo - math.log(k - 1), shifted, rest, is_argmax, loo_argmax


# --------------------------------------------------------------------------- batched cores
# These work on a stack of runs [..., K, K] -> [...] and do no validation: the registry
# (mi_lib.registry), the sweep engine and the tables call them; the public bounds below
# validate their input and call them.
def tuba_core(scores: torch.Tensor, log_baseline: torch.Tensor) -> torch.Tensor:
    """I_TUBA on a stack, ``log_baseline: [..., K]`` (:func:`tuba_lower_bound`)."""
    joint = (diag(scores) - log_baseline).mean(-1)
    marg = torch.exp(logmeanexp_nodiag(scores - log_baseline.unsqueeze(-2)))
    return 1.0 + joint - marg


def dv_core(scores: torch.Tensor) -> torch.Tensor:
    """I_DV on a stack (:func:`dv_lower_bound`)."""
    return diag(scores).mean(-1) - logmeanexp_nodiag(scores)


def infonce_core(scores: torch.Tensor) -> torch.Tensor:
    """I_NCE on a stack (:func:`infonce_lower_bound`)."""
    k = scores.shape[-1]
    return (diag(scores) - torch.logsumexp(scores, dim=-1)).mean(-1) + math.log(k)


def js_fgan_core(scores: torch.Tensor) -> torch.Tensor:
    """The f-GAN Jensen-Shannon objective on a stack (:func:`js_fgan_objective`)."""
    k = scores.shape[-1]
    joint = -torch.nn.functional.softplus(-diag(scores)).mean(-1)
    sp = torch.nn.functional.softplus(scores)
    marg = (sp.sum((-2, -1)) - diag(sp).sum(-1)) / (k * (k - 1))
    return joint - marg


def js_core(scores: torch.Tensor) -> torch.Tensor:
    """Value NWJ(f + 1), gradient f-GAN JS, on a stack (:func:`js_lower_bound`)."""
    ones = torch.ones(scores.shape[-1], dtype=scores.dtype, device=scores.device)
    return value_of_a_gradient_of_b(tuba_core(scores + 1.0, ones), js_fgan_core(scores))


def interpolated_core(scores: torch.Tensor, log_baseline: torch.Tensor, alpha_logit: object) -> torch.Tensor:
    """I_alpha on a stack, ``log_baseline: [..., K]``, ``alpha_logit`` scalar or ``[...]``
    (:func:`interpolated_lower_bound`)."""
    k = scores.shape[-1]
    alpha_logit = torch.as_tensor(alpha_logit, dtype=scores.dtype, device=scores.device)
    log_alpha = -torch.nn.functional.softplus(-alpha_logit)
    log_1m_alpha = -torch.nn.functional.softplus(alpha_logit)
    # interp[i, j] = log(alpha * m(y_j; x without x_i) + (1 - alpha) * a(y_j))
    interp = torch.logaddexp(
        log_alpha[..., None, None] + log_loo_mean(scores), (log_1m_alpha[..., None] + log_baseline).unsqueeze(-2)
    )
    # positive (x_j, y_j): baseline for y_j with x_i left out, averaged over i != j
    mask = _offdiag_mask(k, scores.device)
    joint_mat = (diag(scores).unsqueeze(-2) - interp).masked_fill(~mask, 0.0)
    joint = joint_mat.sum((-2, -1)) / (k * (k - 1))
    # negative (x_i, y_j), i != j: baseline for y_j with its own positive x_j left out
    marg = torch.exp(logmeanexp_nodiag(scores - diag(interp).unsqueeze(-2)))
    return 1.0 + joint - marg


def mine_core(scores: torch.Tensor, log_ema: torch.Tensor, momentum: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """MINE on a stack: ``(value DV with gradient TUBA(EMA), new log-EMA)`` (:func:`mine_lower_bound`)."""
    log_z = logmeanexp_nodiag(scores)
    new_log_ema = torch.logaddexp(math.log(momentum) + log_ema, math.log1p(-momentum) + log_z.detach())
    surrogate = diag(scores).mean(-1) - torch.exp(log_z - new_log_ema)
    return value_of_a_gradient_of_b(dv_core(scores), surrogate), new_log_ema


def smile_core(scores: torch.Tensor, clip: Optional[float]) -> torch.Tensor:
    """SMILE on a stack: clipped-partition DV value, f-GAN JS gradient (:func:`smile_lower_bound`)."""
    clipped = scores if clip is None else scores.clamp(-clip, clip)
    value = diag(scores).mean(-1) - logmeanexp_nodiag(clipped)
    return value_of_a_gradient_of_b(value, js_fgan_core(scores))


# --------------------------------------------------------------------------- public bounds
def tuba_lower_bound(scores: torch.Tensor, log_baseline=None) -> torch.Tensor:
    r"""Tractable unnormalised Barber-Agakov bound, I_TUBA (Poole et al. Eq. 6).

    .. math:: 1 + \frac1K\sum_i (S_{ii} - b_i) - \frac{1}{K(K-1)}\sum_{i\neq j} e^{S_{ij} - b_j},
       \quad b_j = \log a(y_j).

    ``scores``: ``[K, K]``; ``log_baseline``: ``[K]``, scalar, or ``None`` (= 0, a(y) = 1).
    """
    check_scores(scores)
    b = _check_baseline(0.0 if log_baseline is None else log_baseline, scores)
    return tuba_core(scores, b)


def nwj_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    r"""Nguyen-Wainwright-Jordan bound, I_NWJ = I_TUBA with log a(y) = 1 (Poole et al. Eq. 7).

    .. math:: \frac1K\sum_i S_{ii} - \frac{1}{e}\frac{1}{K(K-1)}\sum_{i\neq j} e^{S_{ij}}.

    Optimal critic: :math:`f^* = 1 + \log p(y|x)/p(y)`. ``scores``: ``[K, K]``.
    """
    return tuba_lower_bound(scores, 1.0)


def dv_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    r"""Donsker-Varadhan bound, I_DV (Poole et al. Eq. 4 with the sample mean inside the log).

    .. math:: \frac1K\sum_i S_{ii} - \log\frac{1}{K(K-1)}\sum_{i\neq j} e^{S_{ij}}.

    Biased as a minibatch estimate (the log of a mean). ``scores``: ``[K, K]``.
    """
    return dv_core(check_scores(scores))


def infonce_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    r"""InfoNCE / CPC bound, I_NCE (Poole et al. Eq. 10).

    .. math:: \frac1K\sum_i \Big[S_{ii} - \log\sum_j e^{S_{ij}}\Big] + \log K \;\le\; \log K.

    Each ``x_i`` is scored against every ``y_j``, its own positive included, so the
    value never exceeds ``log K``. Invariant to adding ``c_i`` to row ``i``.
    ``scores``: ``[K, K]``.
    """
    return infonce_core(check_scores(scores))


def js_fgan_objective(scores: torch.Tensor) -> torch.Tensor:
    r"""The f-GAN Jensen-Shannon objective used to *train* the JS critic.

    .. math:: \frac1K\sum_i -\mathrm{sp}(-S_{ii}) - \frac{1}{K(K-1)}\sum_{i\neq j}\mathrm{sp}(S_{ij}),

    with ``sp`` the softplus. Its maximiser is :math:`f = \log p(y|x)/p(y)`.
    """
    return js_fgan_core(check_scores(scores))


def js_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    r"""I_JS (Poole et al. Appendix D): value ``nwj_lower_bound(scores + 1)``, gradient f-GAN JS.

    The JS-optimal critic is :math:`\log p(y|x)/p(y)`, while NWJ's optimum is that plus
    one, so the value is NWJ evaluated on ``scores + 1``. The reference code reports
    ``nwj(scores)``, which sits :math:`1/e` nats low at the optimum (the erratum
    discussed in ``book/bounds.md``). ``scores``: ``[K, K]``.
    """
    return js_core(check_scores(scores))


def interpolated_lower_bound(scores: torch.Tensor, log_baseline, alpha_logit) -> torch.Tensor:
    r"""Interpolated multi-sample bound I_alpha (Poole et al. Eq. 11).

    .. math:: 1 + \mathbb{E}\Big[\log\frac{e^{f(x_1,y)}}{\alpha m(y;x_{1:K}) + (1-\alpha)a(y)}\Big]
              - \mathbb{E}\Big[\frac{e^{f(x_1,y)}}{\alpha m(y;x_{1:K}) + (1-\alpha)a(y)}\Big]

    with :math:`\alpha = \sigma(\text{alpha\_logit})` and ``m`` the leave-one-out mean
    :func:`log_loo_mean`, mixed with ``a(y)`` in log space. Capped near
    :math:`\log(K/\alpha)`; as ``alpha_logit -> -inf`` it equals
    ``tuba_lower_bound(scores, log_baseline)``. ``scores``: ``[K, K]``,
    ``log_baseline``: ``[K]`` or scalar, ``alpha_logit``: real scalar.
    """
    check_scores(scores)
    b = _check_baseline(log_baseline, scores)
    a = _check_real(alpha_logit, "alpha_logit")
    return interpolated_core(scores, b, a)


def mine_lower_bound(scores: torch.Tensor, log_ema=None, momentum: float = 0.99):
    r"""MINE (Belghazi et al. 2018): value I_DV, gradient I_TUBA with a(y) = EMA of the partition.

    Returns ``(bound, new_log_ema)``. ``log_ema`` is the log of the moving average of
    :math:`\frac{1}{K(K-1)}\sum_{i\neq j} e^{S_{ij}}` from earlier minibatches (``None``
    starts it at this batch's value); the caller keeps it and passes it back: the state
    is explicit, never global. The gradient is that of
    :math:`\frac1K\sum_i S_{ii} - Z_\text{batch}/\mathrm{EMA}`, the bias-corrected MINE gradient.
    """
    check_scores(scores)
    _check_real(momentum, "momentum")
    m = momentum.item() if isinstance(momentum, torch.Tensor) else float(momentum)
    if not 0.0 <= m < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {m}")
    if log_ema is None:
        log_ema = logmeanexp_nodiag(scores).detach()
    else:
        log_ema = _check_real(log_ema, "log_ema").to(scores)
    return mine_core(scores, log_ema, m)


def smile_lower_bound(scores: torch.Tensor, clip: Optional[float] = None) -> torch.Tensor:
    r"""SMILE (Song & Ermon 2020): value I_DV with the partition scores clipped to ``[-clip, clip]``.

    .. math:: \frac1K\sum_i S_{ii} - \log\frac{1}{K(K-1)}\sum_{i\neq j} e^{\mathrm{clip}(S_{ij}, -\tau, \tau)},

    gradient the f-GAN JS objective (as for :func:`js_lower_bound`). ``clip=None``
    is plain DV. ``scores``: ``[K, K]``; ``clip``: positive real or ``None``.
    """
    check_scores(scores)
    if clip is not None:
        c = _check_real(clip, "clip")
        clip = c.item() if isinstance(clip, torch.Tensor) else float(clip)
        if clip <= 0:
            raise ValueError(f"clip must be positive, got {clip}")
    return smile_core(scores, clip)


# --------------------------------------------------------------------------- structured bounds
def ba_lower_bound(log_q_x_given_y: torch.Tensor, entropy_x: Number) -> torch.Tensor:
    r"""Barber-Agakov bound with a tractable decoder (Poole et al. Eq. 2).

    .. math:: I_\text{BA} = \frac1K\sum_i \log q(x_i|y_i) + h(X).

    ``log_q_x_given_y``: ``[K]`` log-densities of each positive pair; ``entropy_x``: the
    known differential entropy of ``X`` in nats.
    """
    if not isinstance(log_q_x_given_y, torch.Tensor) or log_q_x_given_y.dim() != 1:
        raise ValueError("log_q_x_given_y must be a 1-D tensor [K]")
    if not bool(torch.isfinite(log_q_x_given_y).all()):
        raise ValueError("log_q_x_given_y contains NaN or inf")
    h = _check_real(entropy_x, "entropy_x")
    return log_q_x_given_y.mean() + h.to(log_q_x_given_y)


def tnce_lower_bound(log_conditional: torch.Tensor) -> torch.Tensor:
    r"""I_TNCE: the multi-sample bound with the true conditional, ``log_conditional[i, j] = log p(y_j|x_i)``.

    .. math:: \frac1K\sum_i \log\frac{p(y_i|x_i)}{\frac1K\sum_j p(y_i|x_j)} \;\le\; \log K
       \quad\text{(Poole et al. Eq. 12)}.

    Each ``y_i`` is normalised over the ``x_j`` (down column ``i``), so a factor that
    depends on ``y`` alone (a Jacobian, ``p(y)``) cancels: this is InfoNCE on the
    transpose. Needs no training; exact up to the ``log K`` cap.
    """
    return infonce_lower_bound(check_scores(log_conditional, "log_conditional").T)


def variational_upper_bound(log_p_y_given_x: torch.Tensor, log_q_y: torch.Tensor) -> torch.Tensor:
    r"""Variational upper bound with a marginal ``q(y)`` (Poole et al. Eq. 13).

    .. math:: I \le \frac1K\sum_i \big[\log p(y_i|x_i) - \log q(y_i)\big],

    tight when ``q(y) = p(y)``; the gap is :math:`KL(p(y)\|q(y))`. Both inputs ``[K]``.
    """
    for name, t in (("log_p_y_given_x", log_p_y_given_x), ("log_q_y", log_q_y)):
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            raise ValueError(f"{name} must be a 1-D tensor [K]")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf")
    if log_p_y_given_x.shape != log_q_y.shape:
        raise ValueError("log_p_y_given_x and log_q_y must have the same shape [K]")
    return (log_p_y_given_x - log_q_y).mean()


def loo_upper_bound(log_conditional: torch.Tensor) -> torch.Tensor:
    r"""Minibatch leave-one-out upper bound for a known ``p(y|x)`` (Poole et al. Eq. 13 with Eq. 12's q).

    .. math:: I \le \frac1K\sum_i\Big[\log p(y_i|x_i) - \log\frac{1}{K-1}\sum_{j\neq i} p(y_i|x_j)\Big],

    ``log_conditional[i, j] = log p(y_j|x_i)``, ``[K, K]``.
    """
    check_scores(log_conditional, "log_conditional")
    k = log_conditional.shape[0]
    masked = log_conditional.masked_fill(~_offdiag_mask(k, log_conditional.device), float("-inf"))
    log_mix = torch.logsumexp(masked, dim=0) - math.log(k - 1)  # over x_j, j != i, for y_i
    return (diag(log_conditional) - log_mix).mean()
