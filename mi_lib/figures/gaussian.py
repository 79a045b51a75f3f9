"""Figures for Poole et al. Fig. 2: estimates over training, and the critics' efficiency-accuracy trade-off."""

from __future__ import annotations

from typing import Any, Dict

import matplotlib.pyplot as plt
import numpy as np

from ..experiments.gaussian import cap
from . import COLORS, style


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, bias-corrected like pandas' ``adjust=True``."""
    values = np.asarray(values, dtype=float)
    a = 2.0 / (span + 1.0)
    num, den, out = 0.0, 0.0, np.empty_like(values)
    for t, v in enumerate(values):
        num = (1 - a) * num + v
        den = (1 - a) * den + 1.0
        out[t] = num / den
    return out


def plot_estimates(results: Dict, span: int = 200, ncols: int = 6) -> plt.Figure:
    """One panel per (task, estimator), TNCE last; each task fills ``ceil(n / ncols)`` rows of ``ncols`` panels.

    Light: raw per-step estimates; dark: EMA; black: true MI; dashed: the estimator's cap.
    """
    style()
    tasks = list(results["task_names"])
    names = list(results["estimator_names"]) + ["TNCE"]
    mi, k = results["mi"], int(results["batch_size"])
    steps = np.arange(len(mi))
    span = max(2, min(span, len(mi) // 10))
    ncols = min(ncols, len(names))
    rows_per_task = -(-len(names) // ncols)
    fig, axes = plt.subplots(
        rows_per_task * len(tasks),
        ncols,
        figsize=(2.1 * ncols, 1.9 * rows_per_task * len(tasks) + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    top = float(np.max(mi)) + 2.5
    for t, task in enumerate(tasks):
        for n, name in enumerate(names):
            ax = axes[t * rows_per_task + n // ncols, n % ncols]
            if name == "TNCE":
                curves = [("true p(y|x)", results["tnce"][t], COLORS["bilinear"])]
            else:
                sel = (results["tasks"] == task) & (results["labels"] == name)
                curves = [
                    (c, results["estimates"][np.flatnonzero(sel & (results["critics"] == c))[0]], COLORS[c])
                    for c in ("concat", "separable")
                    if np.any(sel & (results["critics"] == c))
                ]
            diverged = []
            for label, values, color in curves:
                ax.plot(steps, np.clip(values, -5, top + 5), color=color, alpha=0.2, lw=0.6)
                ax.plot(steps, ema(values, span), color=color, lw=1.2, label="joint" if label == "concat" else label)
                who = "joint" if label == "concat" else label
                if not np.isfinite(values).all():  # NaN or inf: the run diverged; say from which step on
                    first = int(np.argmax(~np.isfinite(values)))
                    diverged.append((f"{who}: NaN/inf from step {first:,}", color))
                elif np.median(values) < -1.0:  # finite but off the axis for most of the run
                    diverged.append((f"{who}: median {np.median(values):.2g} nats", color))
            for i, (text, color) in enumerate(diverged):
                ax.text(0.03, 0.92 - 0.12 * i, text, transform=ax.transAxes, fontsize=6.5, color=color, va="top")
            ax.plot(steps, mi, color=COLORS["true"], lw=1.0, label="true MI")
            c = cap(name, k)
            if c is not None:
                ax.axhline(c, color=COLORS["cap"], ls="--", lw=0.8, label="cap")
            ax.set_ylim(-1.0, top)
            ax.set_title(f"{task}: {name.replace('alpha', 'α')}")
            if n % ncols == 0:
                ax.set_ylabel("nats")
        for n in range(len(names), rows_per_task * ncols):  # unused panels of the task's last row
            axes[t * rows_per_task + n // ncols, n % ncols].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step")
        ax.xaxis.set_tick_params(labelbottom=True)
    labels: Dict[str, Any] = {}
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(text, handle)
    fig.legend(
        list(labels.values()),
        list(labels.keys()),
        loc="lower center",
        ncol=len(labels),
        frameon=False,
        bbox_to_anchor=(0.5, -0.01),
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def mean_abs_error(results: Dict) -> np.ndarray:
    """Per run: |median estimate - true MI| over the settled second half of each MI level, averaged over levels.

    The median, not the mean: one exploding minibatch of NWJ or JS would otherwise decide the number.
    """
    mi, est = results["mi"], results["estimates"]
    errs = []
    for level in np.unique(mi):
        idx = np.flatnonzero(mi == level)
        idx = idx[len(idx) // 2 :]
        errs.append(np.abs(np.median(est[:, idx], axis=1) - level))
    return np.mean(errs, axis=0)


DIVERGED_NATS = 20.0  # an error beyond this (twice the top MI level) means the run diverged


def plot_tradeoff(results: Dict) -> plt.Figure:
    """Wall-clock per run (x, log) against error (y): one point per (critic, estimator, task)."""
    style()
    err = mean_abs_error(results)
    secs = np.asarray(results["seconds_per_run"], dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    markers = {t: m for t, m in zip(results["task_names"], ("o", "s", "^"))}
    # a diverged run's error (thousands of nats, or NaN) would squash every other point:
    # it is drawn hollow on a line at DIVERGED_NATS instead
    diverged = ~np.isfinite(err) | (err > DIVERGED_NATS)
    for c, name in (("concat", "joint"), ("separable", "separable")):
        for t in results["task_names"]:
            sel = (results["critics"] == c) & (results["tasks"] == t)
            if np.any(sel & ~diverged):
                ax.scatter(
                    secs[sel & ~diverged],
                    err[sel & ~diverged],
                    color=COLORS[c],
                    marker=markers[t],
                    label=f"{name}, {t}",
                    alpha=0.8,
                )
            if np.any(sel & diverged):
                ax.scatter(
                    secs[sel & diverged],
                    np.full(int(np.sum(sel & diverged)), DIVERGED_NATS),
                    facecolors="none",
                    edgecolors=COLORS[c],
                    marker=markers[t],
                )
    if np.any(diverged):
        ax.axhline(DIVERGED_NATS, color="0.6", lw=0.8, ls=":")
        ax.annotate(
            f"diverged (error > {DIVERGED_NATS:g} nats): {int(np.sum(diverged))}",
            (0.02, DIVERGED_NATS),
            xycoords=("axes fraction", "data"),
            xytext=(0, -10),
            textcoords="offset points",
            fontsize=7,
            color="0.4",
            va="top",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall seconds per run (amortised over the batched sweep)")
    ax.set_ylabel("|median estimate − true MI| (nats),\naveraged over MI levels")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
