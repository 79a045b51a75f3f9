"""Fig. 2: the experiment's claims on a small real run, the figure functions on small arrays."""

import math

import numpy as np
import pytest

from mi_lib.experiments import gaussian as G
from mi_lib.figures.gaussian import ema, mean_abs_error, plot_estimates, plot_tradeoff
from mi_lib.profiles import override

CLAIMS = override(
    G.Fig2Config(),
    estimators=("NWJ", "InfoNCE"),
    tasks=("gaussian",),
    critics=("concat",),
    mi_levels=(2.0, 4.0),
    steps_per_level=500,
    concat_hidden_dim=128,
    lr=2e-3,
    device="cpu",
)


@pytest.fixture(scope="module")
def claims(tmp_path_factory):
    return G.run(CLAIMS, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def _settled(results, label, level):
    r = list(results["labels"]).index(label)
    idx = np.flatnonzero(results["mi"] == level)
    return results["estimates"][r, idx[len(idx) // 2 :]]


@pytest.mark.slow
def test_joint_nwj_follows_the_2_and_4_nat_steps(claims):
    for level in (2.0, 4.0):
        assert abs(_settled(claims, "NWJ", level).mean() - level) < 1.0


@pytest.mark.slow
def test_infonce_never_exceeds_log_k(claims):
    r = list(claims["labels"]).index("InfoNCE")
    assert np.all(claims["estimates"][r] <= math.log(64) + 1e-5)
    assert np.all(claims["tnce"] <= math.log(64) + 1e-9)
    # TNCE uses the true conditional: nearly exact at 2 nats, biased low at 4 nats (close to log K)
    assert abs(claims["tnce"][0, :500].mean() - 2.0) < 0.25
    assert 2.5 < claims["tnce"][0, 500:].mean() < 4.0


def test_cap_lines():
    assert G.cap("InfoNCE", 64) == math.log(64)
    assert math.isclose(G.cap("alpha=0.5", 64), 1 + math.log(64) + math.log(2))
    assert G.cap("NWJ", 64) is None


def test_run_configs_cover_the_grid_and_reject_unknown():
    runs = G.run_configs(G.CONFIGS["paper"])
    assert len(runs) == 2 * 2 * 10  # the paper's ten estimators, from the registry
    assert {r.hidden_dim for r in runs if r.critic == "concat"} == {256}
    with pytest.raises(ValueError, match="unknown estimators"):
        G.Fig2Config(estimators=("NCE",))


def test_ema_matches_pandas_adjusted_definition():
    v = np.array([1.0, 3.0, 2.0, 5.0])
    a = 2 / (3 + 1)
    w = (1 - a) ** np.arange(4)[::-1]
    assert math.isclose(ema(v, 3)[-1], float((w * v).sum() / w.sum()))


def test_figures_on_small_arrays():
    steps = 40
    mi = np.repeat([2.0, 4.0], steps // 2)
    labels = np.array(["NWJ", "InfoNCE", "NWJ", "InfoNCE"])
    res = {
        "mi": mi,
        "estimates": np.random.default_rng(0).normal(2, 1, (4, steps)),
        "tnce": np.ones((1, steps)),
        "labels": labels,
        "tasks": np.array(["gaussian"] * 4),
        "critics": np.array(["concat", "concat", "separable", "separable"]),
        "task_names": np.array(["gaussian"]),
        "estimator_names": np.array(["NWJ", "InfoNCE"]),
        "batch_size": 64,
        "seconds_per_run": np.array([1.0, 1.0, 0.1, 0.1]),
    }
    fig = plot_estimates(res)
    assert sum(ax.get_visible() for ax in fig.axes) == 3  # NWJ, InfoNCE, TNCE
    assert len(mean_abs_error(res)) == 4
    plot_tradeoff(res)


def test_tradeoff_draws_diverged_runs_on_a_line_not_at_their_error():
    from mi_lib.figures.gaussian import DIVERGED_NATS

    steps = 40
    est = np.random.default_rng(0).normal(2, 0.3, (4, steps))
    est[2] = -3e4  # a diverged run
    est[3] = np.nan  # and one that went NaN
    res = {
        "mi": np.repeat([2.0, 4.0], steps // 2),
        "estimates": est,
        "labels": np.array(["NWJ", "InfoNCE"] * 2),
        "tasks": np.array(["gaussian"] * 4),
        "critics": np.array(["concat", "concat", "separable", "separable"]),
        "task_names": np.array(["gaussian"]),
        "seconds_per_run": np.array([1.0, 1.0, 0.1, 0.1]),
    }
    ax = plot_tradeoff(res).axes[0]
    assert ax.get_ylim()[1] < 3 * DIVERGED_NATS  # the -3e4 run does not stretch the axis
    assert any("diverged" in t.get_text() and ": 2" in t.get_text() for t in ax.texts)


def test_an_interrupted_figure_keeps_its_finished_chunks(tmp_path, monkeypatch):
    """Each chunk of a sweep is cached as it finishes: after an interruption, a rerun trains only
    the chunks that were missing, and gives what an uninterrupted run gives."""
    import dataclasses

    import mi_lib.train as T

    cfg = dataclasses.replace(G.CONFIGS["smoke"], device="cpu")
    monkeypatch.setattr(T, "max_runs_per_chunk", lambda c, dev, budget: 3)  # several chunks per sweep
    chunks = [c for g in T.group_by_architecture(G.run_configs(cfg)) for c in T.plan_chunks(g, "cpu")]
    assert len(chunks) >= 4
    real, calls = G.train_sweep, []

    def interrupted_at_third(group, **kw):
        calls.append(group)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(group, **kw)

    monkeypatch.setattr(G, "train_sweep", interrupted_at_third)
    with pytest.raises(KeyboardInterrupt):
        G.run(cfg, cache_dir=tmp_path / "a", progress=False)
    assert len(list((tmp_path / "a").glob("fig2-*.npz"))) == 2

    calls.clear()
    monkeypatch.setattr(G, "train_sweep", lambda group, **kw: (calls.append(group), real(group, **kw))[1])
    resumed = G.run(cfg, cache_dir=tmp_path / "a", progress=False)
    assert len(calls) == len(chunks) - 2
    fresh = G.run(cfg, cache_dir=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(resumed["estimates"], fresh["estimates"])


def test_precision_is_checked_and_keys_the_cache():
    import dataclasses

    with pytest.raises(ValueError, match="precision"):
        dataclasses.replace(G.CONFIGS["smoke"], precision="float8")
    from mi_lib.cache import config_key

    runs = tuple(G.run_configs(G.CONFIGS["smoke"])[:2])
    assert config_key(G._GroupKey(runs, "bfloat16")) != config_key(G._GroupKey(runs, "float32"))


def test_archived_chunks_are_reused_by_config_and_record_their_provenance(tmp_path, monkeypatch):
    """With archive_dir, each chunk is written with its provenance and reused by configuration alone;
    a changed configuration trains again (its chunks have another name)."""
    import json

    cfg = override(G.CONFIGS["smoke"], device="cpu")
    first = G.run(cfg, archive_dir=tmp_path, profile="smoke", progress=False)
    metas = sorted(tmp_path.glob("*.json"))
    assert len(metas) == len(G.chunks(cfg))
    prov = json.loads(metas[0].read_text())
    for field in (
        "profile",
        "config",
        "config_hash",
        "git_commit",
        "code_version",
        "device_name",
        "torch",
        "seconds",
        "date",
    ):
        assert field in prov
    assert prov["profile"] == "smoke" and prov["seconds"] > 0

    def no_training(*a, **kw):
        raise AssertionError("an archived chunk was trained again")

    monkeypatch.setattr(G, "train_sweep", no_training)
    again = G.run(cfg, archive_dir=tmp_path, profile="smoke", progress=False)
    np.testing.assert_array_equal(again["estimates"], first["estimates"])
    with pytest.raises(AssertionError, match="trained again"):
        G.run(override(cfg, lr=2e-3), archive_dir=tmp_path, profile="smoke", progress=False)
