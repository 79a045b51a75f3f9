"""The Fig. 4c (non-i.i.d. negatives) results archive: chunks, resumption, verify, the paper figure, the CLI.

Everything runs at the smoke profile into a temporary archive (seconds)."""

import json

import numpy as np
import pytest

from mi_lib import archive as A
from mi_lib import publish_noniid as PN
from mi_lib.__main__ import main as cli
from mi_lib.experiments.tschannen import fig4c_noniid as NI


@pytest.fixture(scope="module")
def one_run_chunks(tmp_path_factory):
    """A smoke archive whose chunks hold one run each (two run groups), built once: its root."""
    root = tmp_path_factory.mktemp("archive")
    mp = pytest.MonkeyPatch()
    mp.setattr(PN, "RUNS_PER_CHUNK", 1)
    try:
        PN.compute_chunks("smoke", root, progress=False)
    finally:
        mp.undo()
    return root


def test_chunks_cover_every_configuration_run_group_first():
    cfg = NI.CONFIGS["paper"]
    keys = PN.chunks(cfg)
    assert len(keys) == 2 * 2 * (cfg.n_runs // PN.RUNS_PER_CHUNK)
    first_group = keys[:4]
    assert {(k.bound, k.mode) for k in first_group} == {(b, m) for b in cfg.bounds for m, _ in PN.MODES}
    assert all(k.runs == tuple(range(PN.RUNS_PER_CHUNK)) for k in first_group)
    runs = sorted(r for k in keys if (k.bound, k.mode) == ("nwj", "iid") for r in k.runs)
    assert runs == list(range(cfg.n_runs))
    assert len({PN.chunk_path(k, "paper") for k in keys}) == len(keys)


def test_runs_trained_in_chunks_are_the_runs_trained_together(one_run_chunks, monkeypatch):
    """A run's trajectory depends on its seed only: the one-run chunks reproduce run() with both runs stacked.

    The first 10 steps agree to float32 rounding. After that, rounding in batched matmuls of another batch
    size grows through training (InfoNCE at the smoke profile's learning rate most: a few 1e-3 nats by step
    100), so the whole curves are compared with the run-to-run spread: another seed or batch stream would
    differ by about that spread on average, the same run by less than a tenth of it."""
    monkeypatch.setattr(PN, "RUNS_PER_CHUNK", 1)
    cfg = NI.CONFIGS["smoke"]
    assert PN.VERIFY_STEPS >= cfg.steps  # the head is the whole smoke trace
    got = PN.load("smoke", one_run_chunks)
    done = PN.archived_chunks("smoke", one_run_chunks)
    whole = NI.run(cfg)
    for b in cfg.bounds:
        for m, _ in PN.MODES:
            tr = whole["trace"][b][m]
            head = np.concatenate([done[PN.ChunkKey(cfg, b, m, (r,))][0]["head"] for r in range(cfg.n_runs)])
            np.testing.assert_allclose(head[:, :10], tr[:, :10], atol=1e-5, rtol=0)
            spread = np.abs(tr[0] - tr[1]).mean()
            assert np.abs(head - tr).mean() < 0.1 * spread, (b, m, np.abs(head - tr).mean(), spread)
            quarter = head.astype(np.float64)[:, -cfg.steps // 4 :].mean(1)
            np.testing.assert_array_equal(got.results["last_quarter"][b][m], quarter)
            np.testing.assert_allclose(
                got.results["smoothed"][b][m], NI.smooth(head, cfg.smooth_sigma)[:, :: PN.STRIDE], atol=1e-6
            )
    assert got.results["smoothed_steps"][1] == PN.STRIDE
    assert "all 2 runs" in got.label and got.stale == []


def test_train_stacked_rejects_bad_runs():
    with pytest.raises(ValueError, match="runs must be indices"):
        NI.train_stacked(NI.CONFIGS["smoke"], "nwj", False, runs=[5])
    with pytest.raises(ValueError, match="runs must be indices"):
        NI.train_stacked(NI.CONFIGS["smoke"], "nwj", False, runs=[])


def test_interrupted_archive_resumes_and_shows_only_complete_run_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(PN, "RUNS_PER_CHUNK", 1)
    assert len(PN.compute_chunks("smoke", tmp_path, limit=3, progress=False)) == 3
    with pytest.raises(FileNotFoundError, match="no complete run group"):
        PN.load("smoke", tmp_path)  # 3 of the 4 configurations of run 0
    first = sorted(PN.chunks_dir("smoke", tmp_path).glob("*.npz"))
    mtimes = {p: p.stat().st_mtime_ns for p in first}
    PN.compute_chunks("smoke", tmp_path, limit=1, progress=False)
    got = PN.load("smoke", tmp_path)
    assert "1 of 2 runs" in got.label
    assert all(got.results["last_quarter"][b][m].shape == (1,) for b in ("infonce", "nwj") for m, _ in PN.MODES)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # archived chunks are not recomputed
    assert len(PN.missing_chunks("smoke", tmp_path)) == 4


def test_verify_passes_on_the_archive_and_catches_a_change(tmp_path):
    PN.compute_chunks("smoke", tmp_path, limit=1, progress=False)
    res = PN.verify("smoke", tmp_path)
    assert res["passed"] and res["max_diff"] <= PN.VERIFY_TOLERANCE
    path = PN.chunk_path(PN.chunks(NI.CONFIGS["smoke"])[0], "smoke", tmp_path)
    results, prov = A.load_entry(path)
    results["head"] = results["head"] + 0.01  # as if today's code trained differently
    A.save_entry(path, results, prov)
    bad = PN.verify("smoke", tmp_path)
    assert not bad["passed"] and bad["max_diff"] == pytest.approx(0.01, abs=1e-5)


def test_paper_figure_placeholder_stale_and_label(tmp_path, one_run_chunks, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(PN, "RUNS_PER_CHUNK", 1)

    fig, numbers = PN.paper_figure("smoke", tmp_path)
    assert numbers["stale"] == ["not archived"] and "archive_noniid.py" in numbers["label"]
    plt.close(fig)
    root = one_run_chunks
    # an entry computed with other code: verified first, and the title says so
    for meta in PN.chunks_dir("smoke", root).glob("*.json"):
        prov = json.loads(meta.read_text())
        prov["code_version"] = "older"
        meta.write_text(json.dumps(prov))
    fig, numbers = PN.paper_figure("smoke", root)
    assert numbers["stale"] == [] and "verified with today's code" in numbers["label"]
    mean, se = numbers["nwj_shared_z_last_quarter"]
    assert np.isfinite(mean) and np.isfinite(se)
    plt.close(fig)


def test_cli_publish_and_verify_fig4c(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(PN, "chunks_dir", lambda profile, root=None: tmp_path / PN.NOTEBOOK / profile / "chunks")
    assert cli(["reproduce", "--verify", "fig4c", "--profile", "smoke"]) == 2  # nothing archived
    assert "no archived chunk" in capsys.readouterr().err
    assert cli(["reproduce", "--publish", "fig4c", "--profile", "smoke"]) == 0
    entry = json.loads((tmp_path / PN.NOTEBOOK / "smoke" / "entry.json").read_text())
    assert entry["chunks"] == 4 and entry["bytes"] > 0 and "all 2 runs" in entry["label"]
    assert cli(["reproduce", "--verify", "fig4c", "--profile", "smoke"]) == 0
    assert "PASSED" in capsys.readouterr().out
