"""Every figure notebook: committed stripped with a `parameters` cell, and executes at the smoke profile."""
import json
import shutil
from pathlib import Path

import pytest

from mi_lib.reproduce import ROOT, discover, run_notebook

NOTEBOOKS = sorted(discover(ROOT).values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_committed_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    src = "".join(params[0]["source"])
    for name in ("profile", "device", "seed", "out_dir"):
        assert f"{name} =" in src, f"parameters cell lacks {name}"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_smoke(path, tmp_path):
    (tmp_path / "notebooks").mkdir()
    shutil.copy(path, tmp_path / "notebooks" / path.name)
    run = run_notebook(tmp_path / "notebooks" / path.name, "smoke", "cpu", root=tmp_path, cell_timeout=600)
    assert run.status == "ok", run.status
    figures = list((tmp_path / "book" / "figures" / path.stem).glob("*.png"))
    assert figures, "the notebook saved no PNG"
    assert (tmp_path / "book" / "executed" / path.name).exists()
