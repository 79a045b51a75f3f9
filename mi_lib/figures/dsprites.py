"""Figures for the dSprites chapter (Poole et al. 2019, Fig. 5): arrays in, Figures out.

``results`` is what :func:`mi_lib.experiments.dsprites.run` returns; ``which`` picks the
trained or the random encoder. See ``book/dsprites.md``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import style

FACTOR_AXES = {  # x-axis values and label of each factor's curve
    "shape": (np.array([1, 2, 3]), "shape"),
    "scale": (np.linspace(0.5, 1.0, 6), "scale"),
    "orientation": (np.degrees(np.linspace(0, 2 * np.pi, 40)), "orientation (deg)"),
    "posX": (np.linspace(0, 1, 32), "posX (columns)"),
    "posY": (np.linspace(0, 1, 32), "posY (rows)"),
}
SHAPE_NAMES = ("square", "ellipse", "heart")


def _factors(results: Dict[str, Any]) -> Sequence[str]:
    return [str(f) for f in np.atleast_1d(results["factors"])]


def activation_curves(
    results: Dict[str, Any], which: str = "trained", latents: Optional[Sequence[int]] = None
) -> plt.Figure:
    """Average activation of each latent (rows) against each factor's values (columns).

    Each row is labelled with the factor it shares the most information with (MIG's matrix).
    """
    style()
    curves = results[which]["curves"]
    factors = _factors(results)
    n_lat = curves[factors[0]].shape[0]
    latents = list(range(n_lat)) if latents is None else list(latents)
    top = [factors[j] for j in np.argmax(results[which]["mi_matrix"], axis=1)]  # most informative factor
    fig, axes = plt.subplots(
        len(latents), len(factors), figsize=(1.6 * len(factors), 0.95 * len(latents) + 0.6), sharey=True, squeeze=False
    )
    for r, z in enumerate(latents):
        for c, f in enumerate(factors):
            ax = axes[r, c]
            xs, label = FACTOR_AXES[f]
            ys = curves[f][z]
            if f == "shape":
                ax.bar(xs, ys, color="#4c72b0", width=0.6)
                ax.set_xticks(xs, SHAPE_NAMES if r == len(latents) - 1 else [""] * 3, rotation=30, fontsize=7)
            else:
                ax.plot(xs, ys, color="#4c72b0", lw=1.4)
            ax.set_ylim(-1.05, 1.05)
            ax.axhline(0, color="#999999", lw=0.6)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(label, fontsize=9)
            if r < len(latents) - 1 and f != "shape":
                ax.set_xticklabels([])
            if c == 0:
                ax.set_ylabel(f"z{z}\n({top[z]})", rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"average activation per factor value ({which} encoder)", y=1.0)
    fig.tight_layout(h_pad=0.3, w_pad=0.3)
    return fig


def position_heatmaps(results: Dict[str, Any], which: str = "trained", ncols: int = 5) -> plt.Figure:
    """Each latent's average over the posX x posY grid (image orientation: posX right, posY down)."""
    style()
    maps = results[which]["heatmaps"]  # [L, posY, posX]
    n = maps.shape[0]
    nrows = int(np.ceil(n / ncols))
    lim = max(float(np.abs(maps).max()), 1e-12)
    fig = plt.figure(figsize=(1.9 * ncols + 0.5, 1.9 * nrows + 0.4))
    # the colour bar gets its own grid column, so that a later tight_layout (provenance_title) keeps it clear
    gs = fig.add_gridspec(nrows, ncols + 1, width_ratios=[1.0] * ncols + [0.07])
    axes = np.array([[fig.add_subplot(gs[r, c]) for c in range(ncols)] for r in range(nrows)])
    for j, ax in enumerate(axes.flat):
        ax.grid(False)
        if j >= n:
            ax.axis("off")
            continue
        im = ax.imshow(maps[j], cmap="RdBu_r", vmin=-lim, vmax=lim, extent=(0, 1, 1, 0), interpolation="nearest")
        ax.set_title(f"z{j}", fontsize=9)
        ax.set_xticks([0, 1])
        ax.set_yticks([0, 1])
        ax.tick_params(labelsize=7)
        if j % ncols == 0:
            ax.set_ylabel("posY", fontsize=8)
        if j // ncols == nrows - 1:
            ax.set_xlabel("posX", fontsize=8)
    fig.colorbar(im, cax=fig.add_subplot(gs[:, ncols]), label="mean activation")
    fig.suptitle(f"latents over the position grid ({which} encoder)")
    return fig


def disentanglement_scores(results: Dict[str, Any]) -> plt.Figure:
    """Linear-probe score per factor and the MIG, trained vs random encoder."""
    style()
    factors = _factors(results)
    labels = [f"{f}\n(acc.)" if f == "shape" else f"{f}\n(R$^2$)" for f in factors] + ["MIG"]
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    xs = np.arange(len(labels))
    for off, (which, color) in zip((-0.2, 0.2), (("trained", "#4c72b0"), ("random", "#aaaaaa"))):
        vals = np.append(np.asarray(results[which]["probe"]), results[which]["mig"])
        ax.bar(xs + off, vals, width=0.4, color=color, label=f"{which} encoder")
    ax.hlines(1 / 3, -0.45, 0.45, colors="k", linestyles="--", lw=0.8, label="chance (shape)")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.0)
    ax.set_ylabel("score")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def sprite_title(classes: Sequence[int]) -> str:
    """Short label of one ``[6]`` latent-class row: shape, then the scale, orientation, posX, posY classes."""
    c = [int(v) for v in classes]
    return f"{SHAPE_NAMES[c[1]]}\nsc {c[2]} or {c[3]} x {c[4]} y {c[5]}"


def sprite_grid(images: np.ndarray, classes: Optional[np.ndarray] = None, ncols: int = 8) -> plt.Figure:
    """A grid of ``[N, 64, 64]`` sprites, titled with their ``[N, 6]`` latent classes if given."""
    style()
    titles = None if classes is None else [sprite_title(c) for c in classes]
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.45 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=6)
    fig.tight_layout()
    return fig
