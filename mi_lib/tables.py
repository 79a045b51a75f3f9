r"""Tables 1 and 2 of Poole et al. (2019), regenerated from the registry's metadata.

The registry (:mod:`mi_lib.registry`) holds, for every lower bound, the *claims* of
Table 1 (tractable value and gradient, batch-size independence, low variance,
unnormalised critic) and the parameters and objective of Table 2. This module turns
them into :class:`pandas.DataFrame` objects and Markdown, and measures the two
empirical columns (variance and batch-size dependence) with the analytic optimal
critic on the correlated Gaussian, so the book can print the paper's claim next to a
measurement. The structured bounds that need a known density (I_BA, I_UBA, I_TNCE) and
the true MI itself are not score functions, so they are not in the registry; their
metadata is in :data:`STRUCTURED_NODES`. See ``book/bounds_map.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd
import torch

from .critics import GaussianOptimalCritic
from .data import mi_to_rho, sample_correlated_gaussian
from .registry import LowerBound, available_bounds, get_bound

# the three tractability classes of the paper's Fig. 1 legend
ESTIMATION_AND_OPTIMIZATION = "estimation and optimisation"
OPTIMIZATION_ONLY = "optimisation only"
NEITHER = "neither"
TRACTABILITY_CLASSES = (ESTIMATION_AND_OPTIMIZATION, OPTIMIZATION_ONLY, NEITHER)


@dataclass(frozen=True)
class StructuredNode:
    """A node of Fig. 1 that is not a score-matrix bound (it needs a known density)."""

    name: str
    symbol: str  # LaTeX
    parent: Optional[str]
    approximation: str
    tractable_value: bool
    tractable_gradient: bool
    parameters: str = ""
    objective: str = ""
    citation: str = ""


STRUCTURED_NODES: Tuple[StructuredNode, ...] = (
    StructuredNode("mi", r"I(X;Y)", None, "", False, False),
    StructuredNode(
        "ba",
        r"I_\mathrm{BA}",
        "mi",
        r"decoder $q(x \mid y)$",
        False,
        True,
        r"$q(x \mid y)$ tractable decoder",
        r"$\mathbb{E}_{p(x,y)}[\log q(x \mid y) - \log p(x)]$",
        "Barber & Agakov (2003)",
    ),
    StructuredNode(
        "uba",
        r"I_\mathrm{UBA}",
        "ba",
        r"$q \propto p(x)e^{f}$",
        False,
        False,
        r"$f(x,y)$",
        r"$\mathbb{E}_{p(x,y)}[f] - \mathbb{E}_{p(y)}[\log Z(y)]$",
        "Poole et al. (2019)",
    ),
    StructuredNode(
        "tnce",
        r"I_\mathrm{TNCE}",
        "infonce",
        r"critic $\log p(y \mid x)$",
        True,
        True,
        r"$e(y \mid x)$ tractable encoder",
        r"$I_\mathrm{NCE}$ with $f(x,y) = \log e(y \mid x)$",
        "Poole et al. (2019)",
    ),
)


def tractability(tractable_value: bool, tractable_gradient: bool) -> str:
    """The Fig. 1 class of a bound from its two Table 1 tractability flags."""
    if tractable_value and tractable_gradient:
        return ESTIMATION_AND_OPTIMIZATION
    if tractable_gradient:
        return OPTIMIZATION_ONLY
    return NEITHER


def graph_nodes() -> List[Dict[str, Any]]:
    """Every node of Fig. 1: the structured nodes, then the registry's bounds.

    Each node is a dict with ``name``, ``symbol``, ``parent``, ``approximation`` and
    ``tractability``. Every ``parent`` names another node, so the nodes form a tree
    rooted at the true MI.
    """
    nodes = [
        dict(
            name=s.name,
            symbol=s.symbol,
            parent=s.parent,
            approximation=s.approximation,
            tractability=tractability(s.tractable_value, s.tractable_gradient),
        )
        for s in STRUCTURED_NODES
    ]
    for name in available_bounds():
        b = get_bound(name)
        nodes.append(
            dict(
                name=b.name,
                symbol=b.symbol,
                parent=b.parent,
                approximation=b.approximation,
                tractability=tractability(b.tractable_value, b.tractable_gradient),
            )
        )
    names = {n["name"] for n in nodes}
    for n in nodes:
        if n["parent"] is not None and n["parent"] not in names:
            raise ValueError(f"node {n['name']!r} has unknown parent {n['parent']!r}")
    return nodes


def _mark(flag: Optional[bool]) -> str:
    return "—" if flag is None else ("✓" if flag else "✗")


TABLE1_COLUMNS = (
    "tractable value",
    "tractable gradient",
    "batch-size independent",
    "low variance",
    "unnormalised critic",
)


def table1(names: Optional[Sequence[str]] = None, measured: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Table 1 (the paper's claims) from the registry, one row per bound, ✓ / ✗ / — cells.

    With ``measured`` (from :func:`measure_table1`), two columns are added:
    ``low variance (measured)`` and ``batch-size independent (measured)``.
    """
    names = tuple(available_bounds() if names is None else names)
    rows = []
    for name in names:
        b: LowerBound = get_bound(name)
        row = {
            "bound": f"${b.symbol}$",
            "citation": b.citation,
            "tractable value": _mark(b.tractable_value),
            "tractable gradient": _mark(b.tractable_gradient),
            "batch-size independent": _mark(b.batch_size_independent),
            "low variance": _mark(b.low_variance),
            "unnormalised critic": _mark(b.unnormalized_critic),
        }
        if measured is not None and name in measured.index:
            m = measured.loc[name]
            row["batch-size independent (measured)"] = _mark(bool(m["batch_size_independent"]))
            row["low variance (measured)"] = _mark(bool(m["low_variance"]))
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(names, name="name"))


def table2(names: Optional[Sequence[str]] = None, structured: bool = True) -> pd.DataFrame:
    """Table 2: parameters and objective of every bound (registry, then I_BA, I_UBA, I_TNCE)."""
    names = tuple(available_bounds() if names is None else names)
    rows, index = [], []
    for name in names:
        b = get_bound(name)
        rows.append(
            {
                "bound": f"${b.symbol}$",
                "parameters": b.parameters,
                "objective": b.objective,
                "value from": b.value_from,
                "gradient from": b.gradient_from,
            }
        )
        index.append(name)
    if structured:
        for s in STRUCTURED_NODES:
            if s.objective:
                rows.append(
                    {
                        "bound": f"${s.symbol}$",
                        "parameters": s.parameters,
                        "objective": s.objective,
                        "value from": "",
                        "gradient from": "",
                    }
                )
                index.append(s.name)
    return pd.DataFrame(rows, index=pd.Index(index, name="name"))


def to_markdown(df: pd.DataFrame, columns: Optional[Iterable[str]] = None) -> str:
    """A pipe table (MyST/GFM) of ``df``'s ``columns``; ``|`` inside cells becomes ``\\vert``."""
    cols = list(df.columns if columns is None else columns)

    def cell(v) -> str:
        if isinstance(v, float):
            v = f"{v:.3g}"
        return str(v).replace("|", r"\vert ").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(df.loc[i, c]) for c in cols) + " |" for i in df.index]
    return "\n".join(lines)


# --------------------------------------------------------------------------- measurement
def evaluate_registry_bound(name: str, scores: torch.Tensor, alpha_logit: float = 0.0) -> torch.Tensor:
    """Registry bound ``name`` on a stack of score matrices ``[..., K, K] -> [...]``, with ``a(y) = 1``."""
    b = get_bound(name)
    zeros = torch.zeros(scores.shape[-1], dtype=scores.dtype)
    value, _ = b.train_value(scores, zeros, torch.tensor(alpha_logit, dtype=scores.dtype), None)
    return value.detach()


def measure_table1(
    names: Optional[Sequence[str]] = None,
    mi_values: Sequence[float] = (2.0, 6.0, 10.0),
    batch_sizes: Sequence[int] = (64, 256),
    reps: int = 20,
    dim: int = 20,
    seed: int = 0,
    var_threshold: float = 0.5,
    bs_threshold: float = 0.25,
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Measure Table 1's empirical columns with the optimal critic on the ``dim``-d Gaussian.

    For every true MI in ``mi_values`` and batch size in ``batch_sizes``: ``reps`` fresh
    batches (float64), every bound's value on each (``alpha_logit = 0`` for I_alpha).
    Returns ``(raw, summary)``: ``raw`` has one row per (bound, mi, batch_size) with the
    mean and std over reps; ``summary`` one row per bound with ``max_std`` (the largest
    std over all settings), ``low_variance`` (``max_std < var_threshold`` nats),
    ``bs_shift`` (mean at the largest batch minus mean at the smallest, at the largest
    MI), its standard error ``bs_shift_se``, and ``batch_size_independent``
    (``|bs_shift| < max(bs_threshold, 3 SE)``).
    """
    names = tuple(available_bounds() if names is None else names)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for mi in mi_values:
        rho = mi_to_rho(mi, dim)
        critic = GaussianOptimalCritic(rho, dim)  # log p(y|x)/p(y)
        for k in batch_sizes:
            stack = []
            for _ in range(reps):
                x, y = sample_correlated_gaussian(rho, dim, k, generator=g, dtype=torch.float64)
                stack.append(critic(x, y))
            scores = torch.stack(stack)  # [reps, K, K]
            for name in names:
                v = evaluate_registry_bound(name, get_bound(name).optimal_offset + scores).numpy()
                rows.append(
                    {"name": name, "mi": mi, "batch_size": k, "mean": float(v.mean()), "std": float(v.std(ddof=1))}
                )
    raw = pd.DataFrame(rows)
    top, k_lo, k_hi = max(mi_values), min(batch_sizes), max(batch_sizes)
    summary = []
    for name in names:
        r = raw[raw.name == name]
        lo = r[(r.mi == top) & (r.batch_size == k_lo)].iloc[0]
        hi = r[(r.mi == top) & (r.batch_size == k_hi)].iloc[0]
        shift = float(hi["mean"] - lo["mean"])
        se = math.sqrt((lo["std"] ** 2 + hi["std"] ** 2) / reps)
        max_std = float(r["std"].max())
        summary.append(
            {
                "name": name,
                "max_std": max_std,
                "low_variance": max_std < var_threshold,
                "bs_shift": shift,
                "bs_shift_se": se,
                "batch_size_independent": abs(shift) < max(bs_threshold, 3.0 * se),
            }
        )
    return raw, pd.DataFrame(summary).set_index("name")
