r"""The registry of lower bounds: names, functions and the metadata behind Tables 1 and 2.

``get_bound(name)`` returns a :class:`LowerBound`. Its ``train_value`` has one signature
for every bound, ``(scores, log_baseline, alpha_logit, state) -> (value, state)`` on a
stack of runs ``[..., K, K]``, so the training engine needs no special cases. The
metadata columns are the *claims* of Poole et al. Table 1; the book measures the
empirical ones (variance, batch-size dependence) instead of trusting them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import torch

from . import bounds as B

MINE_MOMENTUM = 0.99  # MINE's EMA of the partition function
SMILE_CLIP = 5.0  # SMILE's tau

TrainValue = Callable[..., Tuple[torch.Tensor, Optional[torch.Tensor]]]


@dataclass(frozen=True)
class LowerBound:
    """One lower bound: its function, what it needs, and its Table 1/2 metadata."""

    name: str
    symbol: str  # LaTeX, e.g. r"I_\mathrm{NWJ}"
    fn: Callable[..., torch.Tensor]  # the public pure function in mi_lib.bounds
    train_value: TrainValue  # (scores, log_baseline, alpha_logit, state) -> (value, state)
    citation: str
    parameters: str  # Table 2 "Parameters"
    objective: str  # Table 2 "Objective" (LaTeX)
    needs_baseline: bool = False
    needs_alpha: bool = False
    stateful: bool = False
    value_from: str = ""  # what the reported value is
    gradient_from: str = ""  # what the gradient is
    # Table 1 columns (claims of the paper): tractable value, tractable gradient,
    # batch-size independent, low variance, works with an unnormalised critic.
    tractable_value: bool = True
    tractable_gradient: bool = True
    batch_size_independent: Optional[bool] = True
    low_variance: Optional[bool] = False
    unnormalized_critic: bool = True
    parent: Optional[str] = None  # edge of the paper's Fig. 1 graph
    approximation: str = ""  # what this node adds to its parent
    extra: Dict[str, object] = field(default_factory=dict)


def _plain(core):
    return lambda s, b=None, a=None, state=None: (core(s), None)


_REGISTRY: Dict[str, LowerBound] = {}


def _register(bound: LowerBound) -> None:
    _REGISTRY[bound.name] = bound


_register(LowerBound(
    "nwj", r"I_\mathrm{NWJ}", B.nwj_lower_bound,
    lambda s, b=None, a=None, state=None: (B._tuba(s, torch.ones(s.shape[-1], dtype=s.dtype, device=s.device)), None),
    "Nguyen et al. (2010)", r"$f(x,y)$",
    r"$\mathbb{E}_{p(x,y)}[f] - e^{-1}\mathbb{E}_{p(x)p(y)}[e^{f}]$",
    value_from="NWJ", gradient_from="NWJ", low_variance=False,
    parent="tuba", approximation=r"$a(y)=e$"))
_register(LowerBound(
    "tuba", r"I_\mathrm{TUBA}", B.tuba_lower_bound,
    lambda s, b, a=None, state=None: (B._tuba(s, b), None),
    "Poole et al. (2019)", r"$f(x,y)$, $a(y)>0$",
    r"$\mathbb{E}_{p(x,y)}[f] - \mathbb{E}_{p(y)}\big[\mathbb{E}_{p(x)}[e^{f}]/a(y) + \log a(y) - 1\big]$",
    needs_baseline=True, value_from="TUBA", gradient_from="TUBA", low_variance=False,
    parent="uba", approximation=r"$\log Z \le Z/a + \log a - 1$"))
_register(LowerBound(
    "dv", r"I_\mathrm{DV}", B.dv_lower_bound, _plain(B._dv),
    "Donsker & Varadhan (1983)", r"$f(x,y)$",
    r"$\mathbb{E}_{p(x,y)}[f] - \log\mathbb{E}_{p(x)p(y)}[e^{f}]$",
    value_from="DV", gradient_from="DV", tractable_value=False, tractable_gradient=False,
    batch_size_independent=None, low_variance=None,
    parent="uba", approximation=r"Jensen on $\mathbb{E}_{p(y)}\log Z(y)$"))
_register(LowerBound(
    "mine", r"I_\mathrm{MINE}", B.mine_lower_bound,
    lambda s, b=None, a=None, state=None: B._mine(
        s, B.logmeanexp_nodiag(s).detach() if state is None else state, MINE_MOMENTUM),
    "Belghazi et al. (2018)", r"$f(x,y)$, EMA$(\log Z)$",
    r"$I_\mathrm{DV}$ for the value, $I_\mathrm{TUBA}(f, \mathrm{EMA})$ for the gradient",
    stateful=True, value_from="DV", gradient_from="TUBA with a = EMA of Z",
    tractable_value=False, low_variance=False,
    parent="dv", approximation="EMA of the partition"))
_register(LowerBound(
    "infonce", r"I_\mathrm{NCE}", B.infonce_lower_bound, _plain(B._infonce),
    "van den Oord et al. (2018)", r"$f(x,y)$",
    r"$\mathbb{E}\big[\frac1K\sum_i \log \frac{e^{f(x_i,y_i)}}{\frac1K\sum_j e^{f(x_i,y_j)}}\big]$",
    value_from="InfoNCE", gradient_from="InfoNCE", batch_size_independent=False, low_variance=True,
    parent="tuba", approximation=r"multi-sample $a(y)=m(y;x_{1:K})$"))
_register(LowerBound(
    "js", r"I_\mathrm{JS}", B.js_lower_bound, _plain(B._js),
    "Poole et al. (2019), App. D", r"$f(x,y)$",
    r"$I_\mathrm{NWJ}(f+1)$ for the value, f-GAN JS for the gradient",
    value_from="NWJ on f + 1", gradient_from="f-GAN Jensen-Shannon", low_variance=False,
    parent="nwj", approximation="JS-trained critic"))
_register(LowerBound(
    "interpolated", r"I_\alpha", B.interpolated_lower_bound,
    lambda s, b, a, state=None: (B._interpolated(s, b, a), None),
    "Poole et al. (2019), Eq. 11", r"$f(x,y)$, $\alpha$, $a(y)$",
    r"$1 + \mathbb{E}\big[\log\frac{e^{f}}{\alpha m + (1-\alpha)a}\big] - \mathbb{E}\big[\frac{e^{f}}{\alpha m + (1-\alpha)a}\big]$",
    needs_baseline=True, needs_alpha=True, value_from="I_alpha", gradient_from="I_alpha",
    batch_size_independent=False, low_variance=True,
    parent="tuba", approximation=r"interpolate $m$ and $a(y)$"))
_register(LowerBound(
    "smile", r"I_\mathrm{SMILE}", B.smile_lower_bound,
    lambda s, b=None, a=None, state=None: (B._smile(s, SMILE_CLIP), None),
    "Song & Ermon (2020)", r"$f(x,y)$, $\tau$",
    r"$\mathbb{E}_{p}[f] - \log\mathbb{E}_{q}[e^{\mathrm{clip}(f,-\tau,\tau)}]$",
    value_from="DV with clipped partition (tau = 5)", gradient_from="f-GAN Jensen-Shannon",
    tractable_value=False, batch_size_independent=None, low_variance=True,
    parent="dv", approximation=r"clip the partition scores", extra={"clip": SMILE_CLIP}))


def available_bounds() -> Tuple[str, ...]:
    """Names accepted by :func:`get_bound`, in registry order."""
    return tuple(_REGISTRY)


def get_bound(name: str) -> LowerBound:
    """Look a lower bound up by name; an unknown name raises ``ValueError`` listing the valid ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown bound {name!r}; valid bounds: {', '.join(_REGISTRY)}") from None
