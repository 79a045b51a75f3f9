r"""The registry of lower bounds: the one place a bound is wired.

``get_bound(name)`` returns a :class:`LowerBound`. Its ``train_value`` has one signature
for every bound, ``(scores, log_baseline, alpha_logit, state) -> (value, state)`` on a
stack of runs ``[..., K, K]``, so the training engine needs no special cases. An entry
also carries what the tables and figures need: its label, the offset of its optimal
critic, its cap as a function of ``K`` and ``alpha_logit``, the Fig. 2 variants, its
closed-form gradient (:mod:`mi_lib.bound_grads`, optional) and the metadata columns of
Poole et al. Tables 1-2, which are the paper's *claims*; the book measures the
empirical ones (variance, batch-size dependence) instead of trusting them.

Adding a bound: its function in :mod:`mi_lib.bounds`, one :func:`register` call here,
and its test (``docs/CONTRIBUTING.md``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch

from . import bound_grads as BG
from . import bounds as B
from .bounds import MINE_MOMENTUM, SMILE_CLIP

TrainValue = Callable[..., Tuple[torch.Tensor, Optional[torch.Tensor]]]
Cap = Callable[[int, Optional[float]], Optional[float]]

__all__ = [
    "LowerBound",
    "register",
    "unregister",
    "registered",
    "get_bound",
    "bound_name",
    "available_bounds",
    "BOUND_ALIASES",
    "MINE_MOMENTUM",
    "SMILE_CLIP",
    "estimators",
    "log_k_cap",
    "no_cap",
    "interpolated_cap",
]


def no_cap(batch_size: int, alpha_logit: Optional[float] = None) -> Optional[float]:
    """A bound with no ceiling in ``K``."""
    return None


def log_k_cap(batch_size: int, alpha_logit: Optional[float] = None) -> Optional[float]:
    r"""InfoNCE's ceiling, :math:`\log K`."""
    return math.log(batch_size)


def interpolated_cap(batch_size: int, alpha_logit: Optional[float] = None) -> Optional[float]:
    r"""I_alpha's ceiling, :math:`1 + \log K - \log\sigma(\text{alpha\_logit})` (Poole et al. Sec. 2.5)."""
    if alpha_logit is None:
        return None
    return 1 + math.log(batch_size) + math.log1p(math.exp(-alpha_logit))  # -log sigmoid(a) = log(1 + e^-a)


@dataclass(frozen=True)
class LowerBound:
    """One lower bound: its function, what it needs, what tables and figures show of it."""

    name: str  # the one name everywhere (configs, cache keys, results)
    label: str  # how figures and legends print it, e.g. "InfoNCE"
    symbol: str  # LaTeX, e.g. r"I_\mathrm{NWJ}"
    fn: Callable[..., torch.Tensor]  # the public pure function in mi_lib.bounds
    train_value: TrainValue  # (scores, log_baseline, alpha_logit, state) -> (value, state)
    citation: str
    parameters: str  # Table 2 "Parameters"
    objective: str  # Table 2 "Objective" (LaTeX)
    value_and_grad: Optional[BG.ValueAndGrad] = None  # closed form for the sweep; None: autograd
    optimal_offset: float = 0.0  # the optimal critic is log p(y|x)/p(y) + optimal_offset
    cap: Cap = no_cap  # (K, alpha_logit) -> the largest value the bound can take, or None
    # Fig. 2's estimators: (label, alpha_logit) for each trained variant; empty: the bound is not in Fig. 2
    variants: Tuple[Tuple[str, Optional[float]], ...] = ()
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


_REGISTRY: Dict[str, LowerBound] = {}
# names the papers and older code use for a registered bound
BOUND_ALIASES: Dict[str, str] = {
    "nce": "infonce",
    "i_nce": "infonce",
    "cpc": "infonce",
    "i_nwj": "nwj",
    "alpha": "interpolated",
    "i_alpha": "interpolated",
}


def register(bound: LowerBound) -> LowerBound:
    """Add ``bound`` to the registry (tables, Fig. 1, Fig. 2, the sweep and ``estimate_mi`` then see it)."""
    if bound.name in _REGISTRY or bound.name in BOUND_ALIASES:
        raise ValueError(f"a bound called {bound.name!r} is already registered")
    _REGISTRY[bound.name] = bound
    return bound


def unregister(name: str) -> None:
    """Remove a bound added with :func:`register`."""
    del _REGISTRY[bound_name(name)]


@contextmanager
def registered(bound: LowerBound) -> Iterator[LowerBound]:
    """``with registered(b): ...``: ``b`` is in the registry inside the block only (for tests and notebooks)."""
    register(bound)
    try:
        yield bound
    finally:
        unregister(bound.name)


def _plain(core: Callable[[torch.Tensor], torch.Tensor]) -> TrainValue:
    return lambda s, b=None, a=None, state=None: (core(s), None)


def _nwj(s: torch.Tensor, b=None, a=None, state=None):
    return B.tuba_core(s, torch.ones(s.shape[-1], dtype=s.dtype, device=s.device)), None


def _mine(s: torch.Tensor, b=None, a=None, state=None):
    return B.mine_core(s, B.logmeanexp_nodiag(s).detach() if state is None else state, MINE_MOMENTUM)


# In the order of Poole et al. Fig. 2's legend; siblings keep the paper's Fig. 1 order.
register(
    LowerBound(
        name="nwj",
        label="NWJ",
        symbol=r"I_\mathrm{NWJ}",
        fn=B.nwj_lower_bound,
        train_value=_nwj,
        value_and_grad=BG.nwj,
        optimal_offset=1.0,
        variants=(("NWJ", None),),
        citation="Nguyen et al. (2010)",
        parameters=r"$f(x,y)$",
        objective=r"$\mathbb{E}_{p(x,y)}[f] - e^{-1}\mathbb{E}_{p(x)p(y)}[e^{f}]$",
        value_from="NWJ",
        gradient_from="NWJ",
        low_variance=False,
        parent="tuba",
        approximation=r"$a(y)=e$",
    )
)
register(
    LowerBound(
        name="tuba",
        label="TUBA",
        symbol=r"I_\mathrm{TUBA}",
        fn=B.tuba_lower_bound,
        train_value=lambda s, b, a=None, state=None: (B.tuba_core(s, b), None),
        value_and_grad=BG.tuba,
        variants=(("TUBA", None),),
        citation="Poole et al. (2019)",
        parameters=r"$f(x,y)$, $a(y)>0$",
        objective=r"$\mathbb{E}_{p(x,y)}[f] - "
        r"\mathbb{E}_{p(y)}\big[\mathbb{E}_{p(x)}[e^{f}]/a(y) + \log a(y) - 1\big]$",
        needs_baseline=True,
        value_from="TUBA",
        gradient_from="TUBA",
        low_variance=False,
        parent="uba",
        approximation=r"$\log Z \le Z/a + \log a - 1$",
    )
)
register(
    LowerBound(
        name="infonce",
        label="InfoNCE",
        symbol=r"I_\mathrm{NCE}",
        fn=B.infonce_lower_bound,
        train_value=_plain(B.infonce_core),
        value_and_grad=BG.infonce,
        cap=log_k_cap,
        variants=(("InfoNCE", None),),
        citation="van den Oord et al. (2018)",
        parameters=r"$f(x,y)$",
        objective=r"$\mathbb{E}\big[\frac1K\sum_i \log \frac{e^{f(x_i,y_i)}}{\frac1K\sum_j e^{f(x_i,y_j)}}\big]$",
        value_from="InfoNCE",
        gradient_from="InfoNCE",
        batch_size_independent=False,
        low_variance=True,
        parent="tuba",
        approximation=r"multi-sample $a(y)=m(y;x_{1:K})$",
    )
)
register(
    LowerBound(
        name="js",
        label="JS",
        symbol=r"I_\mathrm{JS}",
        fn=B.js_lower_bound,
        train_value=_plain(B.js_core),
        value_and_grad=BG.js,
        variants=(("JS", None),),
        citation="Poole et al. (2019), App. D",
        parameters=r"$f(x,y)$",
        objective=r"$I_\mathrm{NWJ}(f+1)$ for the value, f-GAN JS for the gradient",
        value_from="NWJ on f + 1",
        gradient_from="f-GAN Jensen-Shannon",
        low_variance=False,
        parent="nwj",
        approximation="JS-trained critic",
    )
)
register(
    LowerBound(
        name="interpolated",
        label="I_alpha",
        symbol=r"I_\alpha",
        fn=B.interpolated_lower_bound,
        train_value=lambda s, b, a, state=None: (B.interpolated_core(s, b, a), None),
        value_and_grad=BG.interpolated,
        cap=interpolated_cap,
        # the reference colab's alpha logits -5, 0, 5 (alpha = sigmoid(logit))
        variants=(("alpha=0.01", -5.0), ("alpha=0.5", 0.0), ("alpha=0.99", 5.0)),
        citation="Poole et al. (2019), Eq. 11",
        parameters=r"$f(x,y)$, $\alpha$, $a(y)$",
        objective=r"$1 + \mathbb{E}\big[\log\frac{e^{f}}{\alpha m + (1-\alpha)a}\big] - "
        r"\mathbb{E}\big[\frac{e^{f}}{\alpha m + (1-\alpha)a}\big]$",
        needs_baseline=True,
        needs_alpha=True,
        value_from="I_alpha",
        gradient_from="I_alpha",
        batch_size_independent=False,
        low_variance=True,
        parent="tuba",
        approximation=r"interpolate $m$ and $a(y)$",
    )
)
register(
    LowerBound(
        name="dv",
        label="DV",
        symbol=r"I_\mathrm{DV}",
        fn=B.dv_lower_bound,
        train_value=_plain(B.dv_core),
        value_and_grad=BG.dv,
        variants=(("DV", None),),
        citation="Donsker & Varadhan (1983)",
        parameters=r"$f(x,y)$",
        objective=r"$\mathbb{E}_{p(x,y)}[f] - \log\mathbb{E}_{p(x)p(y)}[e^{f}]$",
        value_from="DV",
        gradient_from="DV",
        tractable_value=False,
        tractable_gradient=False,
        batch_size_independent=None,
        low_variance=None,
        parent="uba",
        approximation=r"Jensen on $\mathbb{E}_{p(y)}\log Z(y)$",
    )
)
register(
    LowerBound(
        name="mine",
        label="MINE",
        symbol=r"I_\mathrm{MINE}",
        fn=B.mine_lower_bound,
        train_value=_mine,
        value_and_grad=BG.mine,
        variants=(("MINE", None),),
        citation="Belghazi et al. (2018)",
        parameters=r"$f(x,y)$, EMA$(\log Z)$",
        objective=r"$I_\mathrm{DV}$ for the value, $I_\mathrm{TUBA}(f, \mathrm{EMA})$ for the gradient",
        stateful=True,
        value_from="DV",
        gradient_from="TUBA with a = EMA of Z",
        tractable_value=False,
        low_variance=False,
        parent="dv",
        approximation="EMA of the partition",
    )
)
register(
    LowerBound(
        name="smile",
        label="SMILE",
        symbol=r"I_\mathrm{SMILE}",
        fn=B.smile_lower_bound,
        train_value=lambda s, b=None, a=None, state=None: (B.smile_core(s, SMILE_CLIP), None),
        value_and_grad=BG.smile,
        variants=(("SMILE", None),),
        citation="Song & Ermon (2020)",
        parameters=r"$f(x,y)$, $\tau$",
        objective=r"$\mathbb{E}_{p}[f] - \log\mathbb{E}_{q}[e^{\mathrm{clip}(f,-\tau,\tau)}]$",
        value_from="DV with clipped partition (tau = 5)",
        gradient_from="f-GAN Jensen-Shannon",
        tractable_value=False,
        batch_size_independent=None,
        low_variance=True,
        parent="dv",
        approximation=r"clip the partition scores",
        extra={"clip": SMILE_CLIP},
    )
)


def available_bounds() -> Tuple[str, ...]:
    """Names accepted by :func:`get_bound`, in registry order (aliases in :data:`BOUND_ALIASES`)."""
    return tuple(_REGISTRY)


def bound_name(name: str) -> str:
    """The registry name of ``name`` or of its alias (``"nce"`` -> ``"infonce"``); unknown names raise
    ``ValueError``."""
    if not isinstance(name, str):
        raise ValueError(f"a bound name must be a string, got {name!r}")
    canonical = name if name in _REGISTRY else BOUND_ALIASES.get(name.lower(), name.lower())
    if canonical not in _REGISTRY:
        aliases = ", ".join(f"{a} (= {c})" for a, c in BOUND_ALIASES.items())
        raise ValueError(f"unknown bound {name!r}; valid bounds: {', '.join(_REGISTRY)}; aliases: {aliases}")
    return canonical


def get_bound(name: str) -> LowerBound:
    """Look a lower bound up by its name or an alias; an unknown name raises ``ValueError`` listing the valid ones."""
    return _REGISTRY[bound_name(name)]


def estimators() -> Dict[str, Tuple[str, Optional[float]]]:
    """Fig. 2's estimators, ``label -> (bound name, alpha_logit)``, from every entry's ``variants``."""
    return {label: (b.name, a) for b in _REGISTRY.values() for label, a in b.variants}
