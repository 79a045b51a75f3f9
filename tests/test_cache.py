"""Results cache: keyed by config and code, atomic, forced recomputation, no half-written entries."""
import dataclasses
import os

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


def test_corrupt_entry_is_recomputed(tmp_path):
    fn = lambda cfg: {"x": np.arange(2)}  # noqa: E731
    C.cached(fn, Cfg(), tmp_path, name="t")
    (entry,) = tmp_path.glob("t-*.npz")
    entry.write_bytes(b"garbage")
    assert np.array_equal(C.cached(fn, Cfg(), tmp_path, name="t")["x"], np.arange(2))


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
