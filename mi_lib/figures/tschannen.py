"""Figures for the Tschannen et al. (2019) critique (chapter ``book/critique.md``). They never train."""

from __future__ import annotations

from typing import Dict, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import COLORS, style

BOUND_LABEL = {"infonce": r"$I_{NCE}$", "nwj": r"$I_{NWJ}$"}
BOUND_COLOR = {"infonce": "#1f77b4", "nwj": "#ff7f0e"}
CRITIC_COLOR = {"bilinear": COLORS["bilinear"], "separable": COLORS["separable"], "concat": "#9467bd"}
CRITIC_LABEL = {"concat": "MLP (concat)"}  # Tschannen et al. call the joint critic "MLP"


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    a, out, m = 2.0 / (span + 1.0), np.empty(len(x)), x[0]
    for i, xi in enumerate(x):
        m = a * xi + (1 - a) * m
        out[i] = m
    return out


def _band(ax, steps, runs: np.ndarray, color: str, label: str, ls: str = "-") -> None:
    """Mean over runs (rows) as a line, min-max as a light band."""
    runs = np.atleast_2d(runs)
    ax.plot(steps, runs.mean(0), color=color, ls=ls, label=label, marker="o", ms=3)
    if runs.shape[0] > 1:
        ax.fill_between(steps, runs.min(0), runs.max(0), color=color, alpha=0.2, lw=0)


def _probe_panel(ax, pixel_baseline: float, title: str = "(b) linear-probe accuracy of g1(top half)", **legend) -> None:
    """A probe-accuracy panel of the critique's figures: titled, labelled, with the raw-pixel baseline."""
    ax.axhline(pixel_baseline, color=COLORS["true"], ls="--", lw=1, label=f"raw pixels + noise ({pixel_baseline:.3f})")
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy")
    ax.legend(**legend)


def _bound_and_probe(curves, pixel_baseline: float, title: str, probe_legend: Dict) -> plt.Figure:
    """Two panels, test bound (a) and probe accuracy (b), one band per ``(result, color, bound label,
    probe label)`` in ``curves``."""
    style()
    fig, (a, b_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for r, color, bound_label, probe_label in curves:
        _band(a, r["steps"], r["test_bound"], color, bound_label)
        _band(b_ax, r["steps"], r["accuracy"], color, probe_label)
    a.set_title(title)
    a.set_xlabel("training step")
    a.set_ylabel("nats")
    a.legend()
    _probe_panel(b_ax, pixel_baseline, **probe_legend)
    fig.tight_layout()
    return fig


def fig_noniid(res: Dict, span: int = 50) -> plt.Figure:
    """Fig. 4c: trained-critic estimates on i.i.d. vs shared-Z batches, against the true MI."""
    style()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    top = 0.1
    for ax, b in zip(axes, ("infonce", "nwj")):
        for mode, color, label in (
            ("iid", "#7f7f7f", "i.i.d. batches"),
            ("shared_z", BOUND_COLOR[b], "shared-Z batches"),
        ):
            tr = np.atleast_2d(res["trace"][b][mode])
            for r in tr:
                ax.plot(r, color=color, alpha=0.15, lw=0.5)
            smooth = _ema(tr.mean(0), span)
            ax.plot(smooth, color=color, lw=1.8, label=f"{label} (EMA)")
            top = max(top, float(smooth.max()))
        ax.axhline(res["true_mi"], color=COLORS["true"], ls="--", lw=1, label=f"true I(X;Y) = {res['true_mi']:.4f}")
        ax.set_title(f"{BOUND_LABEL[b]} with a trained critic")
        ax.set_xlabel("training step")
    axes[0].set_ylabel("estimate (nats)")
    axes[0].set_ylim(-0.2, 1.5 * top)  # raw single-batch values spike far lower; the EMA is what to read
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def fig_invertible(res: Dict, bounds: Sequence[str] = ("infonce", "nwj")) -> plt.Figure:
    """Fig. 1a,b: test bound and probe accuracy over training, invertible encoders (MI constant)."""
    curves = [(res[b], BOUND_COLOR[b], BOUND_LABEL[b], f"trained with {BOUND_LABEL[b]}") for b in bounds]
    return _bound_and_probe(curves, res["pixel_baseline"], "(a) bound on test pairs; true MI never changes", {})


def fig_critics(res: Dict, bound: str = "infonce") -> plt.Figure:
    """Fig. 3: bound and probe accuracy under bilinear, separable and MLP critics."""
    curves = [
        (r, CRITIC_COLOR.get(c, "k"), CRITIC_LABEL.get(c, c), CRITIC_LABEL.get(c, c)) for c, r in res[bound].items()
    ]
    return _bound_and_probe(
        curves, res["pixel_baseline"], f"(a) {BOUND_LABEL[bound]} on test pairs", {"loc": "upper left"}
    )


def fig_adversarial(res: Dict) -> plt.Figure:
    """Fig. 1c: an invertible encoder trained against linear separability: probe accuracy falls."""
    style()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    _band(ax, res["steps"], res["accuracy"], "#d62728", "fresh linear probe on g1(top half)")
    _band(ax, res["steps"], res["clf_accuracy"], "#7f7f7f", "online logistic classifier", ls=":")
    _probe_panel(
        ax,
        res["pixel_baseline"],
        f"(c) adversarial invertible $g_1$; $\\max|g_1^{{-1}}(g_1(x)) - x|$ = {res['reconstruction_error']:.1e}",
        loc="lower left",
    )
    fig.tight_layout()
    return fig


def fig_hard(res: Dict) -> plt.Figure:
    """Fig. 2: condition number of the encoder Jacobian (percentile bands) beside probe accuracy."""
    style()
    fig, (a, b_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    steps, c, p = res["steps"], np.asarray(res["log10_cond"]), list(np.asarray(res["percentiles"]))
    mid = len(p) // 2
    for lo, hi, alpha in ((0, -1, 0.15), (1, -2, 0.3)):
        a.fill_between(
            steps, c[:, lo], c[:, hi], color="#1f77b4", alpha=alpha, lw=0, label=f"{p[lo]:g}-{p[hi]:g} percentile"
        )
    a.plot(steps, c[:, mid], color="#1f77b4", marker="o", ms=3, label="median")
    a.set_title(r"(a) $\log_{10}$ condition number of $\partial g_1/\partial x$")
    a.set_xlabel("training step")
    a.legend(loc="upper left")
    b_ax.plot(steps, res["accuracy"], color="#1f77b4", marker="o", ms=3, label="probe on g1(top half)")
    _probe_panel(b_ax, res["pixel_baseline"], "(b) linear-probe accuracy", loc="lower right")
    fig.tight_layout()
    return fig


def fig_matched(res: Dict) -> plt.Figure:
    """Fig. 4a,b: MLP vs ConvNet encoders trained to a target bound t: bound and probe accuracy."""
    style()
    fig, (a, b_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    enc_color = {"mlp": "#ff7f0e", "conv": "#2ca02c"}
    for t, ls in zip(np.atleast_1d(res["targets"]), ("-", "--", ":")):
        r = res[f"t{t:g}"]
        for e, rr in r.items():
            a.plot(_ema(np.asarray(rr["train_bound"]), 25), color=enc_color.get(e, "k"), ls=ls, label=f"{e}, t = {t:g}")
            b_ax.plot(
                rr["steps"],
                rr["accuracy"],
                color=enc_color.get(e, "k"),
                ls=ls,
                marker="o",
                ms=3,
                label=f"{e}, t = {t:g}",
            )
        a.axhline(t, color=COLORS["cap"], lw=0.8, ls=ls)
    a.set_title(r"(a) training $I_{NCE}$ (K = 128, EMA); loss $|I_{NCE} - t|$")
    a.set_xlabel("training step")
    a.set_ylabel("nats")
    a.legend()
    _probe_panel(b_ax, res["pixel_baseline"], fontsize=7)
    fig.tight_layout()
    return fig
