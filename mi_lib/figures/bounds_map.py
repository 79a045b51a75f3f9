r"""Fig. 1 of Poole et al. (2019): the bounds as a tree, drawn from the registry.

Each node is a bound; each edge goes from a parent to a child that adds one
approximation (the registry's ``parent`` and ``approximation`` fields, plus the
structured nodes of :data:`mi_lib.tables.STRUCTURED_NODES`). Nodes are coloured by
tractability: estimation and optimisation / optimisation only / neither. Pure
matplotlib (no graphviz); the layout is a simple tidy tree: leaves get consecutive
columns, a parent sits above the middle of its children. See ``book/bounds_map.md``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from ..tables import ESTIMATION_AND_OPTIMIZATION, NEITHER, OPTIMIZATION_ONLY, graph_nodes
from . import style

TRACTABILITY_COLORS: Dict[str, str] = {
    ESTIMATION_AND_OPTIMIZATION: "#8fd19e",  # green
    OPTIMIZATION_ONLY: "#ffd27f",  # amber
    NEITHER: "#f4a6a6",  # red
}


def mathtext(label: str) -> str:
    """Adapt a LaTeX label to matplotlib's mathtext (``\\le`` -> ``\\leq``, no ``\\big``)."""
    label = re.sub(r"\\le(?![a-zA-Z])", r"\\leq", label)
    return re.sub(r"\\[Bb]ig[lr]?(?![a-zA-Z])", "", label)


def wrap_label(label: str, width: int = 16) -> str:
    """Break a label into lines of about ``width`` characters, never inside ``$...$``."""
    words = re.findall(r"\$[^$]*\$|\S+", label)
    lines, cur = [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    return "\n".join(lines + [cur])


def tree_layout(nodes: List[Dict[str, Any]]) -> Dict[str, Tuple[float, float]]:
    """``name -> (x, y)``: depth gives ``y`` (root on top), leaves take consecutive ``x``."""
    children: Dict[Optional[str], List[str]] = {}
    for n in nodes:
        children.setdefault(n["parent"], []).append(n["name"])
    pos: Dict[str, Tuple[float, float]] = {}
    next_x = [0.0]

    def place(name: str, depth: int) -> float:
        kids = children.get(name, [])
        if not kids:
            x = next_x[0]
            next_x[0] += 1.3
        else:
            xs = [place(k, depth + 1) for k in kids]
            x = (min(xs) + max(xs)) / 2.0
        pos[name] = (x, -float(depth))
        return x

    for root in children.get(None, []):
        place(root, 0)
    return pos


def bounds_map_figure(nodes: Optional[List[Dict[str, Any]]] = None, figsize=(10.0, 6.6)) -> "plt.Figure":
    """Draw the bounds tree. Every node box is a ``FancyBboxPatch`` with ``gid = "node:<name>"``.

    ``nodes`` defaults to :func:`mi_lib.tables.graph_nodes` (structured nodes + registry).
    Returns the Figure; it does not save it.
    """
    style()
    nodes = graph_nodes() if nodes is None else nodes
    pos = tree_layout(nodes)
    fig, ax = plt.subplots(figsize=figsize)
    w, h = 0.9, 0.38
    for n in nodes:  # edges first, under the boxes
        if n["parent"] is None:
            continue
        (x0, y0), (x1, y1) = pos[n["parent"]], pos[n["name"]]
        ax.annotate(
            "",
            xy=(x1, y1 + h / 2),
            xytext=(x0, y0 - h / 2),
            arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.0, shrinkA=0, shrinkB=0),
        )
        if n["approximation"]:
            t = 0.58  # label nearer the child, where sibling edges are apart
            ax.text(
                x0 + t * (x1 - x0),
                y0 - h / 2 + t * (y1 - y0 + h),
                wrap_label(mathtext(str(n["approximation"]))),
                fontsize=8,
                ha="center",
                va="center",
                color="#333333",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9),
            )
    for n in nodes:
        x, y = pos[n["name"]]
        box = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            fc=TRACTABILITY_COLORS[str(n["tractability"])],
            ec="#333333",
            lw=1.0,
        )
        box.set_gid(f"node:{n['name']}")
        ax.add_patch(box)
        ax.text(x, y, mathtext(f"${n['symbol']}$"), ha="center", va="center", fontsize=13)
    handles = [FancyBboxPatch((0, 0), 1, 1, fc=c, ec="#333333", label=k) for k, c in TRACTABILITY_COLORS.items()]
    ax.legend(handles=handles, loc="upper right", title="tractable for", frameon=False, fontsize=9, title_fontsize=9)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.5)
    ax.set_axis_off()
    ax.set_title("Variational bounds of mutual information: each arrow adds one approximation")
    fig.tight_layout()
    return fig


def node_colors(fig: "plt.Figure") -> Dict[str, str]:
    """``name -> facecolor`` (hex) of every node box in a figure from :func:`bounds_map_figure`."""
    from matplotlib.colors import to_hex

    out = {}
    for ax in fig.axes:
        for p in ax.patches:
            gid = p.get_gid()
            if gid and gid.startswith("node:"):
                out[gid[len("node:") :]] = to_hex(p.get_facecolor())
    return out
