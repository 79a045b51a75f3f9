"""Figure functions: results (arrays) -> matplotlib Figure. They never train.

Shared style and saving live here: :func:`style` for the house look and
:func:`save_figure` for PNG + SVG + a small JSON of the numbers, all atomic.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Optional

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from ..cache import atomic_write_bytes, save_json  # noqa: E402

# one palette for the whole book: joint critic vs separable critic, and per-estimator colours
COLORS = {
    "joint": "#1f77b4",
    "concat": "#1f77b4",
    "separable": "#d62728",
    "bilinear": "#2ca02c",
    "true": "#222222",
    "cap": "#7f7f7f",
}


def style() -> None:
    """The book's matplotlib style (readable at page width)."""
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "legend.fontsize": 8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
        }
    )


def save_figure(
    fig: "plt.Figure", out_dir: Path, name: str, numbers: Optional[Dict[str, Any]] = None
) -> Dict[str, Path]:
    """Write ``name.png``, ``name.svg`` (and ``name.json`` with ``numbers``) into ``out_dir``, atomically."""
    out_dir = Path(out_dir)
    paths = {}
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight")
        paths[ext] = out_dir / f"{name}.{ext}"
        atomic_write_bytes(paths[ext], buf.getvalue())
    if numbers is not None:
        paths["json"] = out_dir / f"{name}.json"
        save_json(paths["json"], numbers)
    return paths


def provenance_title(fig: plt.Figure, label: str, stale: Any = (), inches_per_line: float = 0.15) -> plt.Figure:
    """Put an archive entry's provenance ``label`` (and a red ``STALE:`` line per reason) above ``fig``.

    Room is made at the top for the title's lines; a legend the figure placed below its axes keeps its
    room at the bottom (the layout is redone between the legend's top and the title)."""
    title = label + "".join(f"\nSTALE: {s}" for s in stale)
    lines = title.count("\n") + 1
    fig.suptitle(title, y=0.995, fontsize=8.5, color="#b00000" if stale else "black", wrap=True)
    fig.canvas.draw()  # wrapping and legend extents are known only after a draw
    wrapped = getattr(getattr(fig, "_suptitle", None), "_get_wrapped_text", None)  # matplotlib's wrapping
    if wrapped is not None:
        lines = max(lines, wrapped().count("\n") + 1)
    bottom = 0.0
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for legend in fig.legends:
        bbox = legend.get_window_extent(renderer).transformed(fig.transFigure.inverted())
        bottom = max(bottom, bbox.y1 + 0.01)
    top = 1 - (0.08 + inches_per_line * lines) / fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, max(bottom, 0.02), 1, top))
    return fig
