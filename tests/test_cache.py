"""Results cache: keyed by config and code, atomic, forced recomputation, no half-written entries."""

import dataclasses
import json
import os
import stat

import numpy as np
import pytest

from mi_lib import cache as C
from mi_lib import profiles as P


@dataclasses.dataclass(frozen=True)
class Cfg:
    n: int = 3
    name: str = "a"


def test_cached_reuses_and_keys_on_config(tmp_path):
    calls = []

    def fn(cfg):
        calls.append(cfg)
        return {"x": np.arange(cfg.n), "nested": {"v": 1.5, "s": "hi"}}

    a = C.cached(fn, Cfg(), tmp_path)
    b = C.cached(fn, Cfg(), tmp_path)
    assert len(calls) == 1 and np.array_equal(a["x"], b["x"]) and b["nested"] == {"v": 1.5, "s": "hi"}
    C.cached(fn, Cfg(n=4), tmp_path)
    assert len(calls) == 2
    C.cached(fn, Cfg(), tmp_path, force=True)
    assert len(calls) == 3
    assert C.config_key(Cfg()) != C.config_key(Cfg(), version="other-code")


def test_interrupted_computation_leaves_nothing(tmp_path):
    def boom(cfg):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        C.cached(boom, Cfg(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "r.npz"
    C.save_results(path, {"x": np.ones(3)})

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        C.save_results(path, {"x": np.zeros(3)})
    monkeypatch.undo()
    assert np.array_equal(C.load_results(path)["x"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # no temporary file left behind


def _count_calls(values):
    calls = []

    def fn(cfg):
        calls.append(cfg)
        return {"x": np.arange(cfg.n) * values}

    return fn, calls


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_unreadable_entry_is_logged_and_recomputed(tmp_path, caplog, damage):
    fn, calls = _count_calls(1)
    C.cached(fn, Cfg(), tmp_path, name="t")
    (entry,) = tmp_path.glob("t-*.npz")
    data = entry.read_bytes()
    entry.write_bytes({"garbage": os.urandom(200), "empty": b"", "truncated": data[: len(data) // 2]}[damage])
    with caplog.at_level("WARNING", logger="mi_lib.cache"):
        assert np.array_equal(C.cached(fn, Cfg(), tmp_path, name="t")["x"], np.arange(3))
    assert len(calls) == 2
    assert "unreadable" in caplog.text and "recomputing" in caplog.text and entry.name in caplog.text
    assert np.array_equal(C.cached(fn, Cfg(), tmp_path, name="t")["x"], np.arange(3)) and len(calls) == 2


def test_entry_of_another_configuration_is_not_used(tmp_path, caplog):
    fn, calls = _count_calls(1)
    C.cached(fn, Cfg(n=3), tmp_path, name="t")
    C.cached(fn, Cfg(n=4), tmp_path, name="t")
    mine = tmp_path / f"t-{C.config_key(Cfg(n=3))}.npz"
    other = tmp_path / f"t-{C.config_key(Cfg(n=4))}.npz"
    mine.write_bytes(other.read_bytes())  # a readable entry, copied under the wrong key
    with caplog.at_level("WARNING", logger="mi_lib.cache"):
        assert np.array_equal(C.cached(fn, Cfg(n=3), tmp_path, name="t")["x"], np.arange(3))
    assert len(calls) == 3 and "not written for this configuration" in caplog.text
    # an old-format entry (no key inside) is not trusted either
    C.save_results(mine, {"x": np.arange(7)})
    assert np.array_equal(C.cached(fn, Cfg(n=3), tmp_path, name="t")["x"], np.arange(3)) and len(calls) == 4


def test_sidecar_is_checked_against_the_key(tmp_path, caplog):
    fn, calls = _count_calls(1)
    C.cached(fn, Cfg(n=3), tmp_path, name="t")
    C.cached(fn, Cfg(n=4), tmp_path, name="t")
    mine = tmp_path / f"t-{C.config_key(Cfg(n=3))}.json"
    mine.write_text((tmp_path / f"t-{C.config_key(Cfg(n=4))}.json").read_text())
    with caplog.at_level("WARNING", logger="mi_lib.cache"):
        C.cached(fn, Cfg(n=3), tmp_path, name="t")  # the .npz is checked and right: used, sidecar rewritten
    assert len(calls) == 2 and "describes another configuration" in caplog.text
    described = json.loads(mine.read_text())
    assert described["key"] == C.config_key(Cfg(n=3)) and described["config"]["n"] == 3


def test_recompute_keeps_the_old_entry_until_the_new_one_is_written(tmp_path):
    fn, _ = _count_calls(1)
    C.cached(fn, Cfg(), tmp_path, name="t")
    (entry,) = tmp_path.glob("t-*.npz")

    def interrupted(cfg):
        assert entry.exists()  # still there while the new results are computed
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        C.cached(interrupted, Cfg(), tmp_path, force=True, name="t")
    assert np.array_equal(C.cached(fn, Cfg(), tmp_path, name="t")["x"], np.arange(3))
    entry.write_bytes(b"garbage")  # an automatic recompute, interrupted: the old file is left as it was
    with pytest.raises(KeyboardInterrupt):
        C.cached(interrupted, Cfg(), tmp_path, name="t")
    assert entry.read_bytes() == b"garbage"


def test_results_whose_save_fails_are_kept_in_memory(tmp_path, monkeypatch, caplog):
    fn, calls = _count_calls(1)

    def read_only(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(C, "atomic_write_bytes", read_only)
    with caplog.at_level("WARNING", logger="mi_lib.cache"):
        res = C.cached(fn, Cfg(), tmp_path, name="t")
    assert np.array_equal(res["x"], np.arange(3)) and len(calls) == 1
    assert "kept in memory" in caplog.text and "Permission denied" in caplog.text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        C.atomic_write_bytes(tmp_path / "a.png", b"x")
        C.save_json(tmp_path / "a.json", {"a": 1})
        C.cached(lambda cfg: {"x": 1}, Cfg(), tmp_path / "cache", name="t")
    finally:
        os.umask(old)
    files = [tmp_path / "a.png", tmp_path / "a.json", *(tmp_path / "cache").iterdir()]
    assert len(files) == 4
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_profiles():
    configs = {"smoke": Cfg(1), "quick": Cfg(2), "paper": Cfg(3)}
    assert P.select(configs, "smoke").n == 1
    assert P.select(configs, "quick", n=7).n == 7
    assert P.select(configs, "auto", "cpu").n == 2
    with pytest.raises(ValueError, match="valid profiles"):
        P.select(configs, "fast")
    with pytest.raises(ValueError, match="unknown settings"):
        P.select(configs, "quick", steps=3)
    with pytest.raises(ValueError, match="unknown device"):
        P.resolve_device("tpu9")


def test_code_version_follows_computing_code_not_plotting_code(tmp_path):
    from mi_lib.cache import hash_source_tree

    (tmp_path / "figures").mkdir()
    (tmp_path / "train.py").write_text("x = 1\n")
    (tmp_path / "figures" / "plot.py").write_text("colour = 'red'\n")
    v0 = hash_source_tree(tmp_path)
    (tmp_path / "figures" / "plot.py").write_text("colour = 'blue'\n")
    assert hash_source_tree(tmp_path) == v0
    (tmp_path / "train.py").write_text("x = 2\n")
    assert hash_source_tree(tmp_path) != v0
