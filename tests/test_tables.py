"""Tables 1 and 2 and the Fig. 1 bounds map, regenerated from the registry."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from mi_lib import tables as T  # noqa: E402
from mi_lib.figures.bounds_map import TRACTABILITY_COLORS, bounds_map_figure, node_colors, tree_layout  # noqa: E402
from mi_lib.registry import available_bounds, get_bound  # noqa: E402


def test_every_registry_bound_in_both_tables():
    t1, t2 = T.table1(), T.table2()
    for name in available_bounds():
        assert name in t1.index and name in t2.index
        assert t1.loc[name, "bound"] == f"${get_bound(name).symbol}$"
    assert len(t1) == len(available_bounds())
    # Table 2 also lists the structured bounds that have an objective
    assert {"ba", "uba", "tnce"} <= set(t2.index)


def test_table1_cells_follow_the_registry_claims():
    t1 = T.table1()
    assert t1.loc["infonce", "batch-size independent"] == "✗"  # capped at log K
    assert t1.loc["interpolated", "batch-size independent"] == "✗"
    assert t1.loc["nwj", "batch-size independent"] == "✓"
    assert t1.loc["nwj", "low variance"] == "✗"
    assert t1.loc["infonce", "low variance"] == "✓"
    assert t1.loc["dv", "tractable value"] == "✗"
    assert t1.loc["dv", "batch-size independent"] == "—"
    for name in available_bounds():
        b = get_bound(name)
        assert t1.loc[name, "tractable gradient"] == ("✓" if b.tractable_gradient else "✗")


def test_markdown_is_a_pipe_table_without_stray_pipes():
    md = T.to_markdown(T.table2())
    lines = md.splitlines()
    n_cols = lines[0].count("|")
    assert all(line.count("|") == n_cols for line in lines)  # "q(x|y)" must not split a cell
    assert len(lines) == 2 + len(T.table2())
    assert r"\vert" in T.to_markdown(T.table2().assign(objective="$p(y|x)$"))


def test_tractability_classes():
    assert T.tractability(True, True) == T.ESTIMATION_AND_OPTIMIZATION
    assert T.tractability(False, True) == T.OPTIMIZATION_ONLY
    assert T.tractability(False, False) == T.NEITHER


def test_graph_is_a_tree_rooted_at_true_mi():
    nodes = T.graph_nodes()
    names = [n["name"] for n in nodes]
    assert len(names) == len(set(names))
    assert set(available_bounds()) <= set(names) and {"mi", "ba", "uba"} <= set(names)
    roots = [n["name"] for n in nodes if n["parent"] is None]
    assert roots == ["mi"]
    parent = {n["name"]: n["parent"] for n in nodes}
    for name in names:  # every chain reaches the root without a cycle
        seen, cur = set(), name
        while parent[cur] is not None:
            assert cur not in seen
            seen.add(cur)
            cur = parent[cur]
        assert cur == "mi"
    pos = tree_layout(nodes)
    for name in names:
        if parent[name] is not None:
            assert pos[name][1] == pos[parent[name]][1] - 1  # a child is one level below its parent
    assert len({p for p in pos.values()}) == len(names)  # no two boxes on top of each other


def test_unknown_parent_raises(monkeypatch):
    bad = T.StructuredNode("orphan", "I_x", "nowhere", "", True, True)
    monkeypatch.setattr(T, "STRUCTURED_NODES", T.STRUCTURED_NODES + (bad,))
    with pytest.raises(ValueError, match="unknown parent"):
        T.graph_nodes()


def test_bounds_map_has_one_node_per_bound_coloured_by_tractability():
    fig = bounds_map_figure()
    colors = node_colors(fig)
    nodes = T.graph_nodes()
    assert set(colors) == {n["name"] for n in nodes}
    for n in nodes:
        assert colors[n["name"]] == to_hex(TRACTABILITY_COLORS[n["tractability"]])
    assert colors["nwj"] == to_hex(TRACTABILITY_COLORS[T.ESTIMATION_AND_OPTIMIZATION])
    assert colors["mine"] == to_hex(TRACTABILITY_COLORS[T.OPTIMIZATION_ONLY])
    assert colors["dv"] == to_hex(TRACTABILITY_COLORS[T.NEITHER])
    assert len(set(TRACTABILITY_COLORS.values())) == 3


def test_measured_columns_detect_the_infonce_cap():
    raw, summary = T.measure_table1(
        names=("nwj", "infonce"), mi_values=(1.0, 8.0), batch_sizes=(16, 64), reps=6, seed=1
    )
    assert set(summary.index) == {"nwj", "infonce"}
    assert len(raw) == 2 * 2 * 2
    assert not summary.loc["infonce", "batch_size_independent"]  # log 16 vs log 64 at 8 nats
    assert summary.loc["infonce", "bs_shift"] == pytest.approx(
        0.9, abs=0.5
    )  # roughly log 64 - log 16 = 1.39 minus bias
    assert summary.loc["infonce", "low_variance"]
    infonce = raw[(raw.name == "infonce")]
    import math

    assert (infonce["mean"] <= infonce["batch_size"].map(math.log) + 1e-9).all()
    t1 = T.table1(names=("nwj", "infonce"), measured=summary)
    assert t1.loc["infonce", "batch-size independent (measured)"] == "✗"
