"""The reproduce command: selection, failure reporting that keeps the other results, the summary."""
import json

import nbformat
import pytest

from mi_lib import reproduce as R
from mi_lib.__main__ import main


def _write(path, source):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\ndevice = "auto"\nseed = 0\nout_dir = "x"\n'
                                       'cache_dir = "c"\nforce = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _write(tmp_path / "notebooks" / "a_good.ipynb",
           "from pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
           "(Path(out_dir) / 'done.txt').write_text(profile)")
    _write(tmp_path / "notebooks" / "b_bad.ipynb", "x = 1\nraise RuntimeError('boom')")
    return tmp_path


def test_select_by_prefix_and_unknown(root):
    assert [p.stem for p in R.select_notebooks(["a"], root)] == ["a_good"]
    assert len(R.select_notebooks([], root)) == 2
    with pytest.raises(ValueError, match="available: a_good, b_bad"):
        R.select_notebooks(["fig9"], root)


@pytest.mark.slow
def test_failure_is_reported_and_others_kept(root, capsys):
    runs = R.reproduce([], profile="smoke", device="cpu", root=root, cell_timeout=120)
    status = {r.notebook: r.status for r in runs}
    assert status["a_good"] == "ok"
    assert "RuntimeError" in status["b_bad"] and "boom" in status["b_bad"] and "cell" in status["b_bad"]
    assert (root / "book" / "figures" / "a_good" / "done.txt").read_text() == "smoke"
    assert (root / "book" / "executed" / "b_bad.ipynb").exists()  # the failed copy is kept for inspection
    out = capsys.readouterr().out
    assert "notebook" in out and "seconds" in out and "a_good" in out
    summary = json.loads((root / "book" / "executed" / "reproduce_summary.json").read_text())
    assert {s["notebook"] for s in summary} == {"a_good", "b_bad"}


def test_cli_errors():
    assert main(["reproduce", "no_such_notebook_xyz"]) == 2
    with pytest.raises(SystemExit):
        main(["reproduce", "--profile", "huge"])


@pytest.mark.slow
def test_cli_root_runs_another_project_folder(root):
    assert main(["reproduce", "a", "--profile", "smoke", "--device", "cpu", "--root", str(root)]) == 0
    assert (root / "book" / "figures" / "a_good" / "done.txt").read_text() == "smoke"
    assert (root / "book" / "executed" / "reproduce_summary.json").exists()
