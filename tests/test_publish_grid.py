"""The results archive of the Monte Carlo grid figures (Figs. 3 and 4): cells, assembly, verify, labels, CLI."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from mi_lib import archive as A
from mi_lib import publish_grid as PG
from mi_lib.__main__ import main


def _run(fig):
    return fig.module.run(dataclasses.replace(fig.module.CONFIGS["smoke"], device="cpu"))


@pytest.fixture(scope="module")
def smoke_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for fig in PG.FIGURES.values():
        PG.publish(fig, "smoke", device="cpu", root=root)
    return root


@pytest.mark.parametrize("name", ["fig3", "fig4"])
def test_cells_assemble_to_exactly_the_full_run(smoke_archive, name):
    """Each cell has its own generator: computed one by one, they give the figure of one run."""
    fig = PG.figure(name)
    got = PG.load(fig, "smoke", smoke_archive)
    assert got.stale == [] and "all " in got.label and "smoke profile" in got.label
    full = _run(fig)
    assert set(full) == set(got.results)
    for key, want in full.items():
        have = np.asarray(got.results[key])
        want = np.asarray(want)
        assert have.shape == want.shape, key
        if want.dtype.kind == "f":
            np.testing.assert_array_equal(have, want, err_msg=key)
        else:
            assert np.array_equal(have, want), key
    entry = json.loads((PG.cells_dir(fig, "smoke", smoke_archive).parent / "entry.json").read_text())
    assert entry["cells"] == len(fig.module.cells(fig.module.CONFIGS["smoke"])) and entry["bytes"] > 0


def test_a_partial_archive_is_nan_where_missing_and_says_so(smoke_archive, tmp_path):
    fig = PG.figure("fig4")
    shutil.copytree(smoke_archive, tmp_path / "r")
    cfg = PG.config(fig, "smoke")
    last = fig.module.cells(cfg)[-1]
    PG.cell_path(fig, cfg, *last, tmp_path / "r", "smoke").unlink()
    assert PG.missing_cells(fig, "smoke", tmp_path / "r") == [last]
    got = PG.load(fig, "smoke", tmp_path / "r")
    ik, im = last
    assert np.isnan(got.results["grad_mse"][:, ik, im]).all() and np.isnan(got.results["best_alpha"][ik, im])
    assert got.results["best_estimator"][ik, im] == ""
    assert np.isfinite(got.results["grad_mse"][:, 0, 0]).all()
    n = len(fig.module.cells(cfg))
    assert f"{n - 1} of {n} cells (the rest still computing)" in got.label
    # computing again fills exactly the missing cell
    new = PG.compute_cells(fig, "smoke", "cpu", tmp_path / "r", progress=False)
    assert [p.name for p in new] == [PG.cell_path(fig, cfg, *last, tmp_path / "r", "smoke").name]


def test_shards_split_the_missing_cells_without_overlap(smoke_archive, tmp_path):
    """N workers with --shard 0/N .. N-1/N cover every missing cell once, however many are done."""
    fig = PG.figure("fig4")
    shutil.copytree(smoke_archive, tmp_path / "r")
    cfg = PG.config(fig, "smoke")
    cells = fig.module.cells(cfg)
    for c in cells[1::2]:  # half missing, interleaved with the done ones
        PG.cell_path(fig, cfg, *c, tmp_path / "r", "smoke").unlink()
    missing = PG.missing_cells(fig, "smoke", tmp_path / "r")
    assert missing == cells[1::2]
    for n in (1, 2, 3):
        shares = [PG.missing_cells(fig, "smoke", tmp_path / "r", (i, n)) for i in range(n)]
        assert sorted(c for s in shares for c in s) == sorted(missing), n
        assert sum(map(len, shares)) == len(missing), n  # no cell in two shares
    # the split is by place in the grid: shard 1/2 takes every odd cell, done or not
    assert PG.missing_cells(fig, "smoke", tmp_path / "r", (0, 2)) == []
    assert PG.compute_cells(fig, "smoke", "cpu", tmp_path / "r", shard=(0, 2), progress=False) == []
    for bad in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="bad shard"):
            PG.missing_cells(fig, "smoke", tmp_path / "r", bad)


def test_verify_passes_on_the_archive_and_fails_on_a_changed_number(smoke_archive, tmp_path):
    fig = PG.figure("fig3")
    ok = PG.verify(fig, "smoke", smoke_archive)
    assert ok["passed"] and ok["k"] == 16 and ok["mi"] == 4.0  # the cheapest cell with MI > 0
    shutil.copytree(smoke_archive, tmp_path / "r")
    cfg = PG.config(fig, "smoke")
    path = PG.cell_path(fig, cfg, 0, 1, tmp_path / "r", "smoke")
    stats, prov = A.load_entry(path)
    stats["variance"][1] *= 1.01
    A.save_entry(path, stats, prov)
    bad = PG.verify(fig, "smoke", tmp_path / "r")
    assert not bad["passed"] and bad["max_diff"] == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert main(["reproduce", "--verify", "fig3", "--profile", "smoke"]) in (0, 1, 2)  # the real archive: any state


def test_a_cell_of_another_configuration_is_not_used(smoke_archive, tmp_path):
    fig = PG.figure("fig3")
    shutil.copytree(smoke_archive, tmp_path / "r")
    cfg = PG.config(fig, "smoke")
    path = PG.cell_path(fig, cfg, 0, 0, tmp_path / "r", "smoke")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config_hash"] = "0" * 16
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert (0, 0) in PG.missing_cells(fig, "smoke", tmp_path / "r")


def test_stale_code_is_verified_before_the_figure_is_shown(smoke_archive, tmp_path):
    fig = PG.figure("fig3")
    shutil.copytree(smoke_archive, tmp_path / "r")
    for meta in PG.cells_dir(fig, "smoke", tmp_path / "r").glob("*.json"):
        prov = json.loads(meta.read_text())
        prov["code_version"] = "older"
        meta.write_text(json.dumps(prov))
    assert PG.load(fig, "smoke", tmp_path / "r").stale  # older code: stale until verified
    from mi_lib.figures.bias_variance import fig3_numbers, plot_bias_variance

    _, numbers = PG.paper_figure(fig, plot_bias_variance, fig3_numbers, "smoke", tmp_path / "r")
    assert numbers["stale"] == [] and "verified with today's code" in numbers["label"]
    # and a figure whose numbers today's code no longer gives is shown as stale
    path = PG.cell_path(fig, PG.config(fig, "smoke"), 0, 1, tmp_path / "r", "smoke")
    stats, prov = A.load_entry(path)
    stats["mean"] += 0.5
    A.save_entry(path, stats, prov)
    _, numbers = PG.paper_figure(fig, plot_bias_variance, fig3_numbers, "smoke", tmp_path / "r")
    assert numbers["stale"] and "other numbers" in numbers["stale"][0]


def test_nothing_archived_gives_a_figure_that_says_so(tmp_path):
    from mi_lib.figures.bias_variance import fig4_numbers, plot_gradient_accuracy

    fig = PG.figure("fig4")
    _, numbers = PG.paper_figure(fig, plot_gradient_accuracy, fig4_numbers, "smoke", tmp_path)
    assert numbers["stale"] == ["not archived"] and "archive_grid.py fig4" in numbers["label"]


def test_command_line_names(capsys):
    assert main(["reproduce", "--verify", "fig9"]) == 2
    assert "fig2, fig3, fig4" in capsys.readouterr().err
    assert main(["reproduce", "--publish"]) == 2
    with pytest.raises(ValueError):
        PG.figure("fig2")
    with pytest.raises(ValueError):
        PG.config(PG.figure("fig3"), "huge")


def test_partial_archives_draw(smoke_archive, tmp_path):
    """A figure with cells still missing is drawn with them blank (log axes only where values are positive)."""
    from mi_lib.figures.bias_variance import fig3_numbers, fig4_numbers, plot_bias_variance, plot_gradient_accuracy

    shutil.copytree(smoke_archive, tmp_path / "r")
    figures = (("fig3", plot_bias_variance, fig3_numbers), ("fig4", plot_gradient_accuracy, fig4_numbers))
    for name, plot, nums in figures:
        fig = PG.figure(name)
        cfg = PG.config(fig, "smoke")
        for ik, im in fig.module.cells(cfg)[1:]:  # keep one cell only (fig3: MI = 0, all variances 0)
            PG.cell_path(fig, cfg, ik, im, tmp_path / "r", "smoke").unlink()
        out, numbers = PG.paper_figure(fig, plot, nums, "smoke", tmp_path / "r")
        out.savefig(tmp_path / f"{name}.png")
        assert "1 of" in numbers["label"] and numbers["stale"] == []


def test_archive_command_lists_the_archive(capsys):
    assert main(["archive"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("total: ") and " MB in " in out


def test_archive_command_says_how_far_a_checkpointed_training_is(tmp_path, monkeypatch, capsys):
    import torch

    from mi_lib import archive as A

    folder = tmp_path / "dsprites_fig5" / "paper"
    folder.mkdir(parents=True)
    torch.save({"step": 1250, "model": {}}, folder / "checkpoint.pt")
    (tmp_path / "empty_fig" / "paper").mkdir(parents=True)
    monkeypatch.setattr(A, "ARCHIVE_DIR", tmp_path)
    assert main(["archive"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "dsprites_fig5/paper: nothing archived yet; training checkpointed at step 1,250" in lines[0]
    assert lines[1] == "empty_fig/paper: nothing archived yet"
    assert lines[-1] == f"total: 0.00 MB in {tmp_path}"  # the checkpoint is not counted
