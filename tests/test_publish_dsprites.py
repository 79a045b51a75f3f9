"""Fig. 5's long run: checkpoints that resume bit-identically, and its results-archive entry (smoke, temporary root)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from mi_lib import archive as A
from mi_lib import publish_dsprites as PD
from mi_lib.datasets.dsprites import DSprites
from mi_lib.experiments import dsprites as D

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return DSprites(None)


def _cfg(**kw):
    return dataclasses.replace(D.CONFIGS["smoke"], steps=40, device="cpu", progress=False, **kw)


def test_an_interrupted_run_resumes_to_the_same_numbers(data, tmp_path):
    cfg = _cfg()
    enc, rnd, hist = D.train(cfg, data, CPU)
    ck = tmp_path / "ck.pt"
    assert D.train(cfg, data, CPU, checkpoint=ck, checkpoint_every=15, stop_after=20) is None
    assert torch.load(ck, weights_only=False)["step"] == 20
    torch.manual_seed(12345)  # whatever happens in between must not matter
    np.random.seed(1)
    enc2, rnd2, hist2 = D.train(cfg, data, CPU, checkpoint=ck, checkpoint_every=15)
    for k in hist:
        np.testing.assert_array_equal(hist[k], hist2[k])
    for a, b in zip(enc.state_dict().values(), enc2.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(rnd.state_dict().values(), rnd2.state_dict().values()):
        assert torch.equal(a, b)
    assert not ck.with_name(ck.name + ".tmp").exists()


def test_a_checkpoint_of_another_configuration_is_refused(data, tmp_path):
    ck = tmp_path / "ck.pt"
    D.train(_cfg(), data, CPU, checkpoint=ck, stop_after=5)
    with pytest.raises(ValueError, match="another configuration"):
        D.train(_cfg(lr=2e-3), data, CPU, checkpoint=ck)
    with pytest.raises(ValueError, match="checkpoint_every"):
        D.train(_cfg(), data, CPU, checkpoint=ck, checkpoint_every=0)


def test_archive_entry_chunked_verified_and_labelled(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "CONFIGS", {**D.CONFIGS, "smoke": _cfg()})
    assert PD.compute("smoke", tmp_path, chunk_steps=25, progress=False) is None
    assert "training at step 25 of 40" in PD.progress_line("smoke", tmp_path)
    archived = PD.paper_results("smoke", tmp_path)
    assert archived["results"] is None and archived["stale"] == ["not archived"]
    assert "not archived yet (a run in this checkout is at step 25 of 40)" in archived["label"]
    path = PD.compute("smoke", tmp_path, progress=False)
    assert path == PD.entry_path("smoke", tmp_path) and PD.progress_line("smoke", tmp_path).endswith("archived")
    got = PD.load("smoke", tmp_path)
    res = got.results
    assert res["history"]["mi"].shape == (40 // PD.BLOCK,)
    assert res["head"]["mi"].shape == (min(40, PD.HEAD_STEPS),)
    assert res["trained"]["heatmaps"].shape == (10, 32, 32) and np.isfinite(res["trained"]["mig"])
    assert "40 steps at batch 64" in got.label and got.stale == []
    # the run that was stopped and resumed is the run a single call trains
    _, _, hist = D.train(_cfg(), DSprites(None), CPU)
    np.testing.assert_array_equal(res["head"]["mi"], hist["mi"][: PD.HEAD_STEPS].astype(np.float32))
    assert PD.verify("smoke", tmp_path)["passed"]
    # provenance says how long training took; an entry from other code is verified before it is shown
    meta = PD.entry_path("smoke", tmp_path).with_suffix(".json")
    prov = json.loads(meta.read_text())
    assert prov["train_seconds"] > 0 and prov["config_hash"] == A.config_hash(D.checkpoint_key(_cfg()))
    prov["code_version"] = "older"
    meta.write_text(json.dumps(prov))
    shown = PD.paper_results("smoke", tmp_path)
    assert shown["stale"] == [] and "verified with today's code" in shown["label"]
    # a tampered entry is caught
    results, prov = A.load_entry(PD.entry_path("smoke", tmp_path))
    results["head"]["mi"] = results["head"]["mi"] + 0.01
    A.save_entry(PD.entry_path("smoke", tmp_path), results, prov)
    assert not PD.verify("smoke", tmp_path)["passed"]
    assert PD.paper_results("smoke", tmp_path)["stale"][0].startswith("today's code gives other numbers")
    # the later steps moved, step 0 agrees: on the archive's CPU a failure ...
    results["head"]["mi"] = hist["mi"][: PD.HEAD_STEPS].astype(np.float32)
    results["head"]["mi"][1:] += 0.3
    A.save_entry(PD.entry_path("smoke", tmp_path), results, prov)
    assert not PD.verify("smoke", tmp_path)["passed"]
    # ... archived on another CPU, a partial check that says so (the trajectories part by rounding)
    prov["device_name"] = "Another CPU (x86_64 CPU, AVX512, 1 torch thread)"
    A.save_entry(PD.entry_path("smoke", tmp_path), results, prov)
    check = PD.verify("smoke", tmp_path)
    assert check["passed"] and check["partial"] and check["max_diff"] == 0.0
    assert check["trajectory_diff"] == pytest.approx(0.3, rel=1e-5) and check["what"].startswith("step 0 of the first")
    shown = PD.paper_results("smoke", tmp_path)
    assert shown["stale"] == [] and "verified with today's code: step 0 of the first" in shown["label"]
    # ... but a step 0 that differs is not rounding
    results["head"]["mi"][0] += 1e-4
    A.save_entry(PD.entry_path("smoke", tmp_path), results, prov)
    check = PD.verify("smoke", tmp_path)
    assert not check["passed"] and not check["partial"] and check["what"].startswith("the first")


def test_cli_verify_fig5(tmp_path, monkeypatch, capsys):
    from mi_lib.__main__ import main as cli

    monkeypatch.setattr(D, "CONFIGS", {**D.CONFIGS, "smoke": _cfg()})
    monkeypatch.setattr(PD, "folder", lambda profile, root=None: tmp_path / PD.NOTEBOOK / profile)
    assert cli(["reproduce", "--verify", "fig5", "--profile", "smoke"]) == 2
    assert "no archived Fig. 5" in capsys.readouterr().err
    assert cli(["reproduce", "--publish", "fig5", "--profile", "smoke"]) == 0
    assert cli(["reproduce", "--verify", "fig5", "--profile", "smoke"]) == 0
    assert "PASSED" in capsys.readouterr().out
