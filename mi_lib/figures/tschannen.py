"""Figures for the Tschannen et al. (2019) critique (chapter ``book/critique.md``). They never train."""

from __future__ import annotations

from typing import Dict, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from . import COLORS, style

BOUND_LABEL = {"infonce": r"$I_{NCE}$", "nwj": r"$I_{NWJ}$"}
BOUND_COLOR = {"infonce": "#1f77b4", "nwj": "#ff7f0e"}
CRITIC_COLOR = {"bilinear": COLORS["bilinear"], "separable": COLORS["separable"], "concat": "#9467bd"}
CRITIC_LABEL = {"concat": "MLP (concat)"}  # Tschannen et al. call the joint critic "MLP"


def _band(ax, steps, runs: np.ndarray, color: str, label: str, ls: str = "-") -> None:
    """Mean over runs (rows) as a line, min-max over runs as a light band."""
    runs = np.atleast_2d(runs)
    ax.plot(steps, runs.mean(0), color=color, ls=ls, label=label, marker="o", ms=3)
    if runs.shape[0] > 1:
        ax.fill_between(steps, runs.min(0), runs.max(0), color=color, alpha=0.2, lw=0)


def _probe_panel(ax, pixel_baseline: float, title: str = "linear-probe accuracy of g1(top half)", **legend) -> None:
    """A probe-accuracy panel of the critique's figures: titled, labelled, with the raw-pixel baseline."""
    ax.axhline(pixel_baseline, color=COLORS["true"], ls="--", lw=1, label=f"raw pixels + noise ({pixel_baseline:.3f})")
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy")
    ax.legend(**legend)


def _bound_panel(ax, title: str, log_k: float | None = None) -> None:
    if log_k is not None:
        ax.axhline(log_k, color=COLORS["cap"], lw=0.8, ls=":", label=f"log K = {log_k:.2f}")
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("nats")
    ax.legend(fontsize=7)


def fig_noniid(res: Dict) -> plt.Figure:
    """Fig. 4c: training-batch estimates (Gaussian-filtered) on i.i.d. vs shared-Z batches, against the true MI."""
    style()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    top = 0.1
    for ax, b in zip(axes, res["smoothed"]):
        for mode, color, label in (
            ("iid", "#7f7f7f", "i.i.d. batches"),
            ("shared_z", BOUND_COLOR.get(b, "k"), "shared-Z batches"),
        ):
            sm = np.atleast_2d(res["smoothed"][b][mode])
            # an archived (downsampled) curve carries its steps; a fresh one is one value a step
            steps = np.asarray(res.get("smoothed_steps", np.arange(sm.shape[1])))
            for r in sm:
                ax.plot(steps, r, color=color, alpha=0.25, lw=0.5)
            ax.plot(steps, sm.mean(0), color=color, lw=1.8, label=f"{label} (mean of {len(sm)} runs)")
            top = max(top, float(sm.mean(0).max()))
        ax.axhline(res["true_mi"], color=COLORS["true"], ls="--", lw=1, label=f"true I(X;Y) = {res['true_mi']:.4f}")
        ax.set_title(f"{BOUND_LABEL.get(b, b)}, training batches, Gaussian-filtered")
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))  # 20,000 steps: labels that do not collide
    axes[0].set_ylabel("estimate (nats)")
    axes[0].set_ylim(-0.1, 1.3 * top)
    axes[0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def fig_invertible(res: Dict, bounds: Sequence[str] = ("infonce", "nwj")) -> plt.Figure:
    """Fig. 1a,b: the bound on training batches and the probe accuracy over training, invertible encoders."""
    style()
    fig, (a, b_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for b in bounds:
        _band(a, res[b]["steps"], res[b]["bound"], BOUND_COLOR[b], BOUND_LABEL[b])
        _band(b_ax, res[b]["steps"], res[b]["accuracy"], BOUND_COLOR[b], f"trained with {BOUND_LABEL[b]}")
    _bound_panel(a, "(a) bound on training batches; true MI never changes", res.get("log_k"))
    _probe_panel(b_ax, res["pixel_baseline"], "(b) linear-probe accuracy of g1(top half)", fontsize=7)
    fig.tight_layout()
    return fig


def fig_critics(res: Dict, bounds: Sequence[str] | None = None) -> plt.Figure:
    """Fig. 3: per bound (rows), the bound and the probe accuracy under bilinear, separable and MLP critics."""
    style()
    bounds = [b for b in (bounds or ("infonce", "nwj")) if b in res]
    fig, axes = plt.subplots(len(bounds), 2, figsize=(9, 3.2 * len(bounds)), squeeze=False)
    for (a, b_ax), b in zip(axes, bounds):
        for c, r in res[b].items():
            color, label = CRITIC_COLOR.get(c, "k"), CRITIC_LABEL.get(c, c)
            _band(a, r["steps"], r["bound"], color, label)
            _band(b_ax, r["steps"], r["accuracy"], color, label)
        _bound_panel(a, f"trained with {BOUND_LABEL[b]}: the bound", res.get("log_k") if b == "infonce" else None)
        _probe_panel(b_ax, res["pixel_baseline"], f"trained with {BOUND_LABEL[b]}: probe accuracy", fontsize=7)
    fig.tight_layout()
    return fig


def fig_adversarial(res: Dict) -> plt.Figure:
    """Fig. 1c: an invertible encoder trained against linear separability: probe accuracy falls."""
    style()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    _band(ax, res["steps"], res["accuracy"], "#d62728", "fresh linear probe on g1(top half)")
    _band(ax, res["steps"], res["clf_accuracy"], "#7f7f7f", "the adversary's linear classifier", ls=":")
    rec = float(np.max(res["reconstruction_error"]))
    title = f"(c) adversarial invertible $g_1$; $\\max|g_1^{{-1}}(g_1(x)) - x|$ = {rec:.1e}"
    if "reconstruction_error_float64" in res:
        title += f" (float32), {float(np.max(res['reconstruction_error_float64'])):.1e} (float64)"
    _probe_panel(ax, res["pixel_baseline"], title, fontsize=7)
    ax.set_xlabel("iteration (10 classifier steps, 1 encoder step)")
    fig.tight_layout()
    return fig


def fig_hard(res: Dict, bounds: Sequence[str] | None = None) -> plt.Figure:
    """Fig. 2: per bound (rows), ln condition number of the encoder Jacobian (bands between the min, 20th, 40th,
    60th, 80th percentiles and the max, pooled over runs and examples) beside probe accuracy."""
    from ..experiments.tschannen.fig2_hard import pooled_bands

    style()
    bounds = [b for b in (bounds or ("infonce", "nwj")) if b in res]
    fig, axes = plt.subplots(len(bounds), 2, figsize=(9, 3.2 * len(bounds)), squeeze=False)
    p = [int(q) for q in np.asarray(res["percentiles"])]
    for (a, b_ax), b in zip(axes, bounds):
        r, color = res[b], BOUND_COLOR[b]
        c = pooled_bands(r["log_cond"], p)
        for i in range(len(p) - 1):
            alpha = 0.15 + 0.25 * min(i, len(p) - 2 - i)
            a.fill_between(r["steps"], c[:, i], c[:, i + 1], color=color, alpha=alpha, lw=0)
        a.plot(r["steps"], np.median(np.moveaxis(r["log_cond"], 1, 0).reshape(len(r["steps"]), -1), 1), color=color)
        a.set_title(rf"trained with {BOUND_LABEL[b]}: $\ln(\sigma_1/\sigma_{{392}})$ of $\partial g_1/\partial x$")
        a.set_xlabel("training step")
        a.set_ylabel("ln condition number")
        _band(b_ax, r["steps"], r["accuracy"], color, f"trained with {BOUND_LABEL[b]}")
        _probe_panel(b_ax, res["pixel_baseline"], "linear-probe accuracy (inputs with fresh noise)", fontsize=7)
    fig.tight_layout()
    return fig


def fig_matched(res: Dict, bounds: Sequence[str] | None = None) -> plt.Figure:
    """Fig. 4a,b: per bound (rows), MLP vs ConvNet encoders trained to a target t: bound and probe accuracy."""
    style()
    bounds = [b for b in (bounds or ("nwj", "infonce")) if b in res]
    fig, axes = plt.subplots(len(bounds), 2, figsize=(9, 3.2 * len(bounds)), squeeze=False)
    enc_color = {"mlp": "#ff7f0e", "conv": "#2ca02c"}
    for (a, b_ax), b in zip(axes, bounds):
        for t, ls in zip(np.atleast_1d(res["targets"]), ("-", "--", ":")):
            for e, rr in res[b][f"t{t:g}"].items():
                _band(a, rr["steps"], rr["bound"], enc_color.get(e, "k"), f"{e}, t = {t:g}", ls=ls)
                _band(b_ax, rr["steps"], rr["accuracy"], enc_color.get(e, "k"), f"{e}, t = {t:g}", ls=ls)
            a.axhline(t, color=COLORS["cap"], lw=0.8, ls=ls)
        _bound_panel(a, rf"{BOUND_LABEL[b]} on training batches; loss $|{BOUND_LABEL[b][1:-1]} - t|$")
        _probe_panel(b_ax, res["pixel_baseline"], f"trained with {BOUND_LABEL[b]}: probe accuracy", fontsize=7)
    fig.tight_layout()
    return fig
