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
