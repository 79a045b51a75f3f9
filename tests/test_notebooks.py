"""Every figure notebook is committed stripped, with one `parameters` cell of the conventional names."""

import json

import pytest

from mi_lib.reproduce import ROOT, discover

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
    # nbformat 4.5 cells carry ids; a cell without one makes every run print nbformat's MissingIDFieldWarning
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id (nbformat.validator.normalize)"


# Executing every notebook at the smoke profile is tests/test_book.py's first step
# (`python -m mi_lib reproduce --profile smoke` must exit 0), so it is not repeated here.
