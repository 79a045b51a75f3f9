r"""Figures 3 and 4 of Poole et al.: bias / variance / MSE with the optimal critic, and
gradient accuracy with the best alpha of I_alpha. Results in, Figure out; no training.

Inputs are the dicts of :func:`mi_lib.experiments.bias_variance.run` and
:func:`mi_lib.experiments.gradients.run`. Chapter: ``book/bias_variance.md``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap

from . import COLORS, style

FIXED_COLORS = {"NWJ": "#d62728", "InfoNCE": "#1f77b4", "TNCE": "#17becf"}


def _alpha_of(name: str) -> Optional[float]:
    """alpha of an ``I_alpha=...`` / ``I_alpha(logit=...)`` estimator name, else None."""
    if name.startswith("I_alpha="):
        return float(name.split("=", 1)[1])
    if name.startswith("I_alpha(logit="):
        return 1.0 / (1.0 + math.exp(-float(name[len("I_alpha(logit=") : -1])))
    return None


def _label(name: str) -> str:
    a = _alpha_of(name)
    return name if a is None else rf"$I_\alpha$, $\alpha$={a:.3g}"


def estimator_colors(names: Sequence[str]) -> Dict[str, Any]:
    """NWJ red, InfoNCE blue, TNCE cyan; I_alpha from yellow (small alpha) to purple (large)."""
    alphas = [a for a in (_alpha_of(n) for n in names) if a is not None]
    cmap = plt.get_cmap("viridis_r")
    out: Dict[str, Any] = {}
    for n in names:
        a = _alpha_of(n)
        if a is None:
            out[n] = FIXED_COLORS.get(n, "#555555")
        else:
            rank = sorted(alphas).index(a) / max(1, len(alphas) - 1)
            out[n] = cmap(0.1 + 0.75 * rank)
    return out


def _positive(v: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    """NaN where ``v <= floor``: at MI = 0 the variance is 0 up to rounding, which a log axis cannot show."""
    return np.where(v > floor, v, np.nan)


def plot_bias_variance(results: Mapping[str, Any]) -> plt.Figure:
    """Fig. 3: rows = batch sizes, columns = bias, variance, MSE against the true MI."""
    style()
    names, mi, ks = list(results["estimators"]), np.asarray(results["mi"]), np.asarray(results["batch_sizes"])
    colors = estimator_colors(names)
    fig, axes = plt.subplots(len(ks), 3, figsize=(11, 3.0 * len(ks)), squeeze=False, sharex=True)
    for ik, k in enumerate(ks):
        ax_b, ax_v, ax_m = axes[ik]
        ax_b.axhline(0.0, color=COLORS["true"], lw=0.8)
        ax_b.plot(
            mi, np.minimum(0.0, math.log(k) - mi), ls="--", color=COLORS["cap"], lw=1, label=r"$\min(0, \log K - I)$"
        )
        for ie, n in enumerate(names):
            kw = dict(
                color=colors[n],
                label=_label(n),
                lw=1.4 if _alpha_of(n) is None else 1.1,
                ls=":" if n == "TNCE" else "-",
                marker="o",
                ms=2.5,
            )
            ax_b.plot(mi, results["bias"][ie, ik], **kw)
            ax_v.plot(mi, _positive(results["variance"][ie, ik]), **kw)
            ax_m.plot(mi, _positive(results["mse"][ie, ik]), **kw)
        ax_b.set_ylabel(f"K = {k}\nbias (nats)")
        ax_v.set_ylabel("variance (nats²)")
        ax_m.set_ylabel("MSE (nats²)")
        for ax in (ax_v, ax_m):
            if any(np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any() for line in ax.lines):
                ax.set_yscale("log")  # not while nothing positive is in (a partial archive)
    for ax, title in zip(axes[0], ("bias", "variance", "mean squared error")):
        ax.set_title(title)
    for ax in axes[-1]:
        ax.set_xlabel("true MI (nats)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(len(labels), 5),
        frameon=False,
        bbox_to_anchor=(0.5, -0.02 - 0.03 * (len(labels) > 5)),
    )
    fig.suptitle(f"Optimal critic, 20-d Gaussian: {int(results['n_reps'])} minibatches per point")
    fig.tight_layout(rect=(0, 0.06 if len(labels) <= 5 else 0.09, 1, 1))
    return fig


def _pick(batch_sizes: np.ndarray, n: int) -> list:
    """Indices of at most ``n`` batch sizes, spread over the list, smallest and largest included."""
    if len(batch_sizes) <= n:
        return list(range(len(batch_sizes)))
    return sorted(set(np.round(np.linspace(0, len(batch_sizes) - 1, n)).astype(int).tolist()))


def _best_alpha_panel(ax: plt.Axes, results: Mapping[str, Any], key: str = "best_alpha") -> None:
    """Heat map of the lowest-MSE alpha over (MI, batch size), cells labelled."""
    levels = np.unique(np.asarray(results["alpha"]))  # sorted: 0 (NWJ) ... 1 (InfoNCE)
    best = np.asarray(results[key], dtype=float)
    missing = np.isnan(best)  # a cell not computed yet (a partial archive): left blank
    idx = np.ma.masked_array(np.searchsorted(levels, np.where(missing, levels[0], best)), mask=missing)
    cmap = ListedColormap(
        [plt.get_cmap("viridis_r")(0.05 + 0.9 * i / max(1, len(levels) - 1)) for i in range(len(levels))]
    )
    norm = BoundaryNorm(np.arange(len(levels) + 1) - 0.5, cmap.N)
    im = ax.imshow(idx, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    tick = ["NWJ" if a == 0 else "NCE" if a == 1 else f"{a:.3g}" for a in levels]
    mi = np.asarray(results["mi"])
    if len(mi) <= 10:  # cells wide enough to be labelled; on a finer grid the colour bar says it
        for (ik, im_), v in np.ndenumerate(idx.filled(-1)):
            if v < 0:
                continue
            color = "white" if v > len(levels) / 2 else "black"
            ax.text(im_, ik, tick[v], ha="center", va="center", fontsize=6.5, color=color)
    every = int(np.ceil(len(mi) / 10))  # at most about ten MI labels
    shown = range(every - 1, len(mi), every) if every > 1 else range(len(mi))
    ax.set_xticks(list(shown), [f"{mi[i]:g}" for i in shown])
    ax.set_yticks(range(len(results["batch_sizes"])), [str(k) for k in results["batch_sizes"]])
    ax.set_xlabel("true MI (nats)")
    ax.set_ylabel("batch size K")
    ax.grid(False)
    cb = plt.colorbar(im, ax=ax, ticks=range(len(levels)), fraction=0.05)
    cb.ax.set_yticklabels(tick, fontsize=7)
    cb.set_label(r"$\alpha$ with the lowest gradient MSE")


def plot_gradient_accuracy(results: Mapping[str, Any], max_panels: int = 3, shared: bool = False) -> plt.Figure:
    """Fig. 4: gradient MSE against MI (log scale) for a few batch sizes, and the best-alpha heat map.

    ``shared=True`` plots the shared-scalar-parameter variant (``*_shared`` arrays).
    """
    style()
    sfx = "_shared" if shared else ""
    names, mi, ks = list(results["estimators"]), np.asarray(results["mi"]), np.asarray(results["batch_sizes"])
    colors = estimator_colors(names)
    picks = _pick(ks, max_panels)
    fig, axes = plt.subplots(
        1,
        len(picks) + 1,
        figsize=(3.3 * len(picks) + 4.6, 3.6),
        gridspec_kw={"width_ratios": [1] * len(picks) + [1.45]},
    )
    mse = np.asarray(results["grad_mse" + sfx])
    for ax, ik in zip(axes[:-1], picks):
        ax.set_title(f"K = {ks[ik]}")
        if np.isnan(mse[:, ik]).all():  # a partial archive: this batch size is still computing
            ax.text(0.5, 0.5, "not computed yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for ie, n in enumerate(names):
            fixed = _alpha_of(n) is None
            ax.plot(
                mi,
                mse[ie, ik],
                color=colors[n],
                lw=1.8 if fixed else 1.0,
                marker="o" if fixed else None,
                ms=3,
                label=_label(n),
                zorder=3 if fixed else 2,
            )
        ax.set_yscale("log")
        ax.set_xlabel("true MI (nats)")
    axes[0].set_ylabel("gradient MSE" + (" (shared ρ)" if shared else r" $\|\hat g - \nabla I\|^2$"))
    _best_alpha_panel(axes[-1], results, "best_alpha" + sfx)
    axes[-1].set_title("best α (lowest gradient MSE)")
    handles, labels = axes[0].get_legend_handles_labels()
    ncol = min(6, max(1, len(labels)))
    rows = int(np.ceil(len(labels) / ncol))
    height = 3.6 + 0.22 * rows
    fig.set_size_inches(fig.get_size_inches()[0], height)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, (0.15 + 0.22 * rows) / height, 1, 1))
    return fig


def fig3_numbers(results: Mapping[str, Any]) -> Dict[str, Any]:
    """Key numbers of Fig. 3 for the figure's JSON: bias / variance / MSE at the largest MI."""
    out: Dict[str, Any] = {"mi_max": float(results["mi"][-1]), "n_reps": int(results["n_reps"])}
    for ik, k in enumerate(results["batch_sizes"]):
        for ie, n in enumerate(results["estimators"]):
            for key in ("bias", "variance", "mse"):
                out[f"K{int(k)}_{n}_{key}_at_max_mi"] = float(results[key][ie, ik, -1])
    return out


def fig4_numbers(results: Mapping[str, Any]) -> Dict[str, Any]:
    """Key numbers of Fig. 4 for the figure's JSON: the best-alpha grids and the MI / K axes."""
    return {
        "mi": results["mi"],
        "batch_sizes": results["batch_sizes"],
        "best_alpha": results["best_alpha"],
        "best_alpha_shared": results["best_alpha_shared"],
        "n_reps": int(results["n_reps"]),
    }
