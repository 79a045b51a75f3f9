"""The results archive of Fig. 2: publish, load for the book (with provenance and stale notes), verify."""

import json

import numpy as np
import torch
import pytest

from mi_lib import archive as A
from mi_lib import publish as P
from mi_lib.experiments import gaussian as G


@pytest.fixture(scope="module")
def smoke_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    P.publish_fig2("smoke", device="cpu", root=root, progress=False)
    return root


def test_publish_writes_every_chunk_and_an_entry(smoke_archive):
    entry = json.loads((P.fig2_dir("smoke", smoke_archive) / "entry.json").read_text())
    assert entry["chunks"] == len(G.chunks(G.CONFIGS["smoke"])) and entry["bytes"] > 0
    assert entry["seconds"] > 0 and entry["label"].startswith("smoke profile, 30 steps a run")
    got = P.load_fig2("smoke", smoke_archive)
    assert got.stale == [] and "smoke profile" in got.label
    fresh = G.run(G.CONFIGS["smoke"], cache_dir=smoke_archive / "cache", progress=False)
    np.testing.assert_allclose(got.results["estimates"], fresh["estimates"], rtol=0, atol=1e-6)  # float32 archive


def test_verify_recomputes_a_slice_and_catches_a_changed_number(smoke_archive, tmp_path):
    ok = P.verify_fig2("smoke", steps=10, root=smoke_archive)
    assert ok["passed"] and ok["identical"] and ok["steps"] == 10
    # a tampered archive fails
    import shutil

    shutil.copytree(smoke_archive, tmp_path / "r")
    cfg = G.CONFIGS["smoke"]
    path = G.chunk_path(
        cfg, [c for c in G.chunks(cfg) if c[0].critic == "separable"][0], P.fig2_dir("smoke", tmp_path / "r") / "chunks"
    )
    res, prov = A.load_entry(path)
    res["estimates"][0, 3] += 0.01
    A.save_entry(path, res, prov)
    bad = P.verify_fig2("smoke", steps=10, root=tmp_path / "r")
    assert not bad["passed"] and bad["max_diff"] == pytest.approx(0.01, rel=1e-3)
    # on the archive's CPU a change after step 0 fails (above); archived on another CPU, whose rounding
    # parts the runs after the first update, only step 0 is checked, and the check says so
    prov["device_name"] = "Another CPU (x86_64 CPU, AVX512, 1 torch thread)"
    A.save_entry(path, res, prov)
    part = P.verify_fig2("smoke", steps=10, root=tmp_path / "r", tolerance=1e-3)
    assert part["passed"] and part["partial"] and part["trajectory_diff"] == pytest.approx(0.01, rel=1e-3)
    assert part["what"].startswith("step 0 of the first 10 steps of") and part["unit"] == "relative"
    res["estimates"][0, 0] += 0.01  # ... but not when step 0 moved too
    A.save_entry(path, res, prov)
    assert not P.verify_fig2("smoke", steps=10, root=tmp_path / "r", tolerance=1e-3)["passed"]


def _curves():
    rng = np.random.default_rng(0)
    old = rng.normal(size=(3, 50)) * 100
    old[1, 10:] = -np.inf  # a diverged run
    old[2, 20:] = np.nan
    return old


def test_trajectory_verification_tells_identical_partial_and_failed_apart():
    old = _curves()
    on = {"archived_on": "CPU A", "recomputed_on": "CPU B"}
    same = A.trajectory_verification("the first 50 steps of 3 runs", old.copy(), old, 1e-3, "nats", **on)
    assert same["passed"] and same["identical"] and not same["partial"]
    near = old.copy()
    near[0, 5] += 5e-4
    got = A.trajectory_verification("w", near, old, 1e-3, "nats", **on)
    assert got["passed"] and not got["partial"] and got["max_diff"] == pytest.approx(5e-4, rel=1e-3)
    # later steps apart, step 0 within float32 rounding (relative, values of about 100): partial
    apart = old.copy()
    apart[:, 1:] += 0.5
    apart[0, 0] *= 1 + 2e-6
    got = A.trajectory_verification("the first 50 steps of 3 runs", apart, old, 1e-3, "nats", **on)
    assert got["passed"] and got["partial"] and got["unit"] == "relative"
    assert got["max_diff"] == pytest.approx(2e-6, rel=1e-2) and got["trajectory_diff"] == pytest.approx(0.5, rel=1e-4)
    assert "step 0 of the first 50 steps of 3 runs (the later steps differ by up to 0.5 nats" in got["what"]
    assert "this is CPU B, the archive's was CPU A" in got["what"]
    # on the archive's own device the later steps must agree too
    own = A.trajectory_verification("the first 50", apart, old, 1e-3, archived_on="CPU A", recomputed_on="CPU A")
    assert not own["passed"] and not own["partial"] and own["max_diff"] == pytest.approx(0.5, rel=1e-4)
    line = A.verification_line("fig2", "paper", got)
    assert line.endswith("PASSED") and "tolerance 1e-05 relative" in line
    # a run that diverges elsewhere: still only step 0 can be checked
    other = old.copy()
    other[1, 10:] = 3.0
    got = A.trajectory_verification("w", other, old, 1e-3, **on)
    assert got["partial"] and got["trajectory_diff"] == float("inf") and "NaN or inf at other places" in got["what"]
    # step 0 off by more than rounding, or non-finite where the archive is not: failed, whole slice reported
    for bad in (1e-4, np.nan):
        moved = apart.copy()
        moved[2, 0] = old[2, 0] * (1 + bad) if bad == bad else bad
        got = A.trajectory_verification("the first 50 steps of 3 runs", moved, old, 1e-3, "nats", **on)
        assert not got["passed"] and not got["partial"] and got["what"] == "the first 50 steps of 3 runs"
    with pytest.raises(ValueError, match="shape"):
        A.trajectory_verification("w", old[:, :10], old, 1e-3, **on)


def test_incomplete_and_stale_archives_say_so(smoke_archive, tmp_path):
    import shutil

    shutil.copytree(smoke_archive, tmp_path / "r")
    chunk_dir = P.fig2_dir("smoke", tmp_path / "r") / "chunks"
    for p in chunk_dir.glob("concat-*"):
        p.unlink()
    with pytest.raises(G.MissingChunks):
        P.load_fig2("smoke", tmp_path / "r")
    half = P.load_fig2("smoke", tmp_path / "r", partial=True)
    assert set(half.results["critics"]) == {"separable"} and "separable critic only" in half.label
    assert "1 of 2 chunks" in P.placeholder_text("smoke", tmp_path / "r")
    for meta in chunk_dir.glob("*.json"):  # computed by other code
        prov = json.loads(meta.read_text())
        prov["code_version"] = "0" * 16
        meta.write_text(json.dumps(prov))
    assert any("code has changed" in s for s in P.load_fig2("smoke", tmp_path / "r", partial=True).stale)
    assert P.placeholder_text("smoke", smoke_archive) is None


def test_the_chapters_paper_figure_carries_its_provenance_or_says_what_is_missing(smoke_archive, tmp_path):
    from mi_lib.figures.gaussian import plot_estimates

    fig, numbers = P.fig2_paper_figure(plot_estimates, G.summary, "smoke", smoke_archive)
    assert fig._suptitle.get_text().startswith("smoke profile") and numbers["stale"] == []
    assert "gaussian/concat/NWJ" in numbers
    fig, numbers = P.fig2_paper_figure(plot_estimates, G.summary, "smoke", tmp_path)  # nothing archived
    assert "0 of 2 chunks" in numbers["label"] and "not archived yet" in fig.axes[0].texts[0].get_text()


def test_the_command_line_verifies_and_refuses_what_is_not_archived(smoke_archive, monkeypatch, capsys):
    from mi_lib.__main__ import main

    monkeypatch.setattr(A, "ARCHIVE_DIR", smoke_archive)
    monkeypatch.setattr(P, "fig2_dir", lambda profile, root=smoke_archive: smoke_archive / P.FIG2 / profile)
    assert main(["reproduce", "--verify", "fig2", "--profile", "smoke"]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["reproduce", "--publish", "fig9", "--profile", "smoke"]) == 2  # no such archived figure


def test_the_cpu_model_is_recorded(tmp_path, monkeypatch):
    """Two CPUs can round a training run apart, so an entry names the CPU, not just the architecture."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD  EPYC 7B13\nflags\t: fpu\n")
    assert A.cpu_model(info) == "AMD EPYC 7B13"
    info.write_text("processor\t: 0\nmodel name\t:\n")
    monkeypatch.setattr(A.platform, "processor", lambda: "")
    assert A.cpu_model(info) == "" and A.cpu_model(tmp_path / "none") == ""
    monkeypatch.setattr(A, "cpu_model", lambda: "AMD EPYC 7B13")
    import platform

    isa = torch.backends.cpu.get_cpu_capability()
    assert A.device_name(torch.device("cpu")) == (
        f"AMD EPYC 7B13 ({platform.machine()} CPU, {isa}, {torch.get_num_threads()} torch thread"
        + ("" if torch.get_num_threads() == 1 else "s")
        + ")"
    )
    monkeypatch.setattr(A, "cpu_model", lambda: "")
    assert A.device_name(torch.device("cpu")).startswith(f"{platform.machine()} CPU (")
