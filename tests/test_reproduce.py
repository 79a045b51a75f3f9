"""The reproduce command: selection, checks before any notebook runs, failures that keep the last
good notebook and mark the page, Ctrl-C, concurrent runs, and the summary that merges runs."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from mi_lib import reproduce as R
from mi_lib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _write(path, source):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'profile = "quick"\ndevice = "auto"\nseed = 0\nout_dir = "x"\ncache_dir = "c"\nforce = False'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


# smoke: succeeds; quick: fails; paper: writes its kernel's pid and sleeps (to be interrupted)
FLAKY = """\
import os, time
from pathlib import Path
Path(out_dir).mkdir(parents=True, exist_ok=True)
if profile == "quick":
    raise RuntimeError("flaky " + "x" * 600)
if profile == "paper":
    (Path(out_dir) / "kernel.pid").write_text(str(os.getpid()))
    time.sleep(120)
(Path(out_dir) / "done.txt").write_text(profile)
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _write(
        tmp_path / "notebooks" / "a_good.ipynb",
        "from pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
        "(Path(out_dir) / 'done.txt').write_text(profile)",
    )
    _write(tmp_path / "notebooks" / "b_bad.ipynb", "x = 1\nraise RuntimeError('boom')")
    _write(tmp_path / "notebooks" / "c_flaky.ipynb", FLAKY)
    return tmp_path


def _executed(root, stem):
    return root / "book" / "executed" / f"{stem}.ipynb"


def _marker(root, stem):
    return root / "book" / "executed" / "failed" / f"{stem}.json"


def _ran_with(root, stem):
    """The profile papermill injected into the executed notebook on the page."""
    return nbformat.read(_executed(root, stem), 4).metadata["papermill"]["parameters"]["profile"]


def _default_sigint() -> None:
    # a child inherits an ignored SIGINT (ipykernel's kernel app ignores it, and so may whatever started the
    # test run); the command is meant for a terminal, where Ctrl-C is not ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "mi_lib", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
        **kw,
    )


def test_select_by_prefix_unknown_and_empty(root):
    assert [p.stem for p in R.select_notebooks(["a"], root)] == ["a_good"]
    assert len(R.select_notebooks([], root)) == 3
    with pytest.raises(ValueError, match="available: a_good, b_bad, c_flaky"):
        R.select_notebooks(["fig9"], root)
    for empty in ("", "  "):  # "" is a prefix of every stem: it used to select them all
        with pytest.raises(ValueError, match="empty notebook name"):
            R.select_notebooks([empty], root)


def test_cli_errors(capsys):
    assert main(["reproduce", "no_such_notebook_xyz"]) == 2
    assert main(["reproduce", ""]) == 2
    assert "empty notebook name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--profile", "huge"])


@pytest.mark.parametrize("args", [["--device", "cuda"], ["--device", "cuda:0", "--profile", "auto"]])
def test_cuda_request_on_a_cpu_machine_fails_before_any_notebook(root, monkeypatch, capsys, args):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["reproduce", "a", "--root", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and len(err.strip().splitlines()) == 1
    assert not (root / "book").exists()  # no kernel started, nothing written


def test_mps_request_without_mps_fails(root, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert main(["reproduce", "a", "--device", "mps", "--root", str(root)]) == 2
    assert "MPS is not available" in capsys.readouterr().err


def test_missing_book_extra_names_the_install_command(root, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "papermill", None)  # import papermill now raises ImportError
    assert main(["reproduce", "a", "--device", "cpu", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'mi-lib[book]'" in err and len(err.strip().splitlines()) == 1


def test_unwritable_output_folder_stops_before_the_work(root, capsys):
    (root / "book").mkdir()
    (root / "book" / "executed").write_text("not a folder")  # unwritable even for root, unlike chmod
    assert main(["reproduce", "a", "--device", "cpu", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "cannot write to" in err and "executed" in err
    assert not (root / "book" / "figures" / "a_good").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(root, capsys):
    (root / "book" / "executed").mkdir(parents=True)
    (root / "book" / "executed").chmod(0o555)
    try:
        assert main(["reproduce", "a", "--device", "cpu", "--root", str(root)]) == 2
    finally:
        (root / "book" / "executed").chmod(0o755)
    assert "cannot write to" in capsys.readouterr().err


def test_summary_table_width_is_capped():
    aten = "failed at cell 4: RuntimeError: " + "Could not run 'aten::empty' with arguments from 'CUDA'. " * 11
    runs = [R.NotebookRun("fig3_bias_variance", "paper", "cuda", 1.0, aten + "\nsecond line")]
    lines = R.format_table(runs).splitlines()
    assert len(lines) == 4 and max(len(line) for line in lines) <= 150  # was 640 wide
    assert lines[2].startswith("fig3_bias_variance") and "failed at cell 4" in lines[2]


def test_summary_merges_runs_and_latest_ok(tmp_path):
    path = tmp_path / "summary.json"
    old = [
        R.NotebookRun("fig2", "quick", "cpu", 102.0, "ok", "2026-11-30T10:00:00+00:00"),
        R.NotebookRun("fig3", "quick", "cpu", 6.0, "ok", "2026-11-30T10:02:00+00:00"),
    ]
    R.merge_summary(path, old)
    R.merge_summary(path, [R.NotebookRun("fig2", "quick", "cpu", 5.0, "failed: boom", "2026-12-01T09:00:00+00:00")])
    records = R.load_summary(path)
    assert {r["notebook"] for r in records} == {"fig2", "fig3"}  # a partial rerun keeps fig3's record
    assert all(r["finished"] for r in records)
    assert R.latest_ok(records, "fig2")["seconds"] == 102.0  # the failed rerun is not what chapters quote
    R.merge_summary(path, [R.NotebookRun("fig2", "quick", "cpu", 99.0, "ok", "2026-12-02T09:00:00+00:00")])
    assert R.latest_ok(R.load_summary(path), "fig2")["seconds"] == 99.0
    assert R.latest_ok(records, "fig9") is None
    R.merge_summary(
        path,
        [R.NotebookRun("fig3", "quick", "cpu", 1.0, "ok", f"2026-12-03T00:00:{i:02d}+00:00") for i in range(30)],
        keep=5,
    )
    assert sum(r["notebook"] == "fig3" for r in R.load_summary(path)) == 5


def test_summary_of_the_old_format_and_unreadable_summary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(
        json.dumps([{"notebook": "fig2", "profile": "quick", "device": "cpu", "seconds": 1.0, "status": "ok"}])
    )
    R.merge_summary(path, [R.NotebookRun("fig3", "quick", "cpu", 2.0, "ok", R._now())])
    assert [r["notebook"] for r in R.load_summary(path)] == ["fig2", "fig3"]
    path.write_text("{truncated")
    assert R.load_summary(path) == [] and path.with_name("summary.json.corrupt").exists()


def test_concurrent_summary_merges_lose_no_record(tmp_path):
    path = tmp_path / "summary.json"

    def writer(i):
        for j in range(10):
            R.merge_summary(path, [R.NotebookRun(f"nb{i}", "smoke", "cpu", float(j), "ok", R._now())])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(R.load_summary(path)) == 60


@pytest.mark.slow
def test_failure_is_reported_marked_and_others_kept(root, capsys):
    runs = R.reproduce(["a", "b"], profile="smoke", device="cpu", root=root, cell_timeout=120)
    status = {r.notebook: r.status for r in runs}
    assert status["a_good"] == "ok"
    assert "RuntimeError" in status["b_bad"] and "boom" in status["b_bad"] and "cell" in status["b_bad"]
    assert (root / "book" / "figures" / "a_good" / "done.txt").read_text() == "smoke"
    # no earlier good run of b_bad: the failed run takes the page, under the warning box
    assert _executed(root, "b_bad").exists()
    assert json.loads(_marker(root, "b_bad").read_text())["page"] == "failed"
    assert not _marker(root, "a_good").exists()
    assert not list((root / "book" / "executed").glob(".*.part.ipynb"))  # no temporary left behind
    out = capsys.readouterr().out
    assert "notebook" in out and "seconds" in out and "a_good" in out
    summary = json.loads(R.summary_path(root).read_text())
    assert {s["notebook"] for s in summary} == {"a_good", "b_bad"}
    umask = os.umask(0)
    os.umask(umask)
    for path in (_executed(root, "a_good"), R.summary_path(root), _marker(root, "b_bad")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


@pytest.mark.slow
def test_failed_rerun_keeps_the_previous_good_notebook(root):
    R.reproduce(["c"], profile="smoke", device="cpu", root=root, cell_timeout=120)
    assert _ran_with(root, "c_flaky") == "smoke" and not _marker(root, "c_flaky").exists()
    (run,) = R.reproduce(["c"], profile="quick", device="cpu", root=root, cell_timeout=120)
    assert run.status.startswith("failed at cell")
    assert _ran_with(root, "c_flaky") == "smoke"  # the good page survives the failed run
    marker = json.loads(_marker(root, "c_flaky").read_text())
    assert marker["page"] == "previous" and "flaky" in marker["status"] and marker["previous_ok"]
    failed_copy = root / marker["failed_copy"]
    assert nbformat.read(failed_copy, 4).metadata["papermill"]["parameters"]["profile"] == "quick"
    # the summary still quotes the good run, and a later success clears the marker
    assert R.latest_ok(R.load_summary(R.summary_path(root)), "c_flaky")["profile"] == "smoke"
    R.reproduce(["c"], profile="smoke", device="cpu", root=root, cell_timeout=120)
    assert not _marker(root, "c_flaky").exists() and not failed_copy.exists()


@pytest.mark.slow
def test_sigint_keeps_the_previous_executed_notebook(root):
    R.reproduce(["c"], profile="smoke", device="cpu", root=root, cell_timeout=120)
    good = _executed(root, "c_flaky").read_bytes()
    pid_file = root / "book" / "figures" / "c_flaky" / "kernel.pid"
    proc = _cli("reproduce", "c", "a", "--profile", "paper", "--device", "cpu", "--root", str(root), "--jobs", "1")
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook never started"
            time.sleep(0.1)
        kernel = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        # the notebook sleeps 120 s: only the interrupt ends it early (the margin is for a loaded machine)
        _, err = proc.communicate(timeout=100)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert _executed(root, "c_flaky").read_bytes() == good
    assert json.loads(_marker(root, "c_flaky").read_text())["status"] == "interrupted"
    assert not (root / "book" / "figures" / "a_good").exists()  # the run stopped there
    with pytest.raises(ProcessLookupError):
        os.kill(kernel, 0)  # the kernel did not outlive the run
    records = R.load_summary(R.summary_path(root))
    assert [r["status"] for r in records if r["notebook"] == "c_flaky"] == ["ok", "interrupted"]


@pytest.mark.slow
def test_two_concurrent_runs(root):
    procs = [_cli("reproduce", name, "--profile", "smoke", "--device", "cpu", "--root", str(root)) for name in "ac"]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "without encryption" not in out + err  # the kernel talks over private IPC sockets
    records = R.load_summary(R.summary_path(root))
    assert sorted(r["notebook"] for r in records) == ["a_good", "c_flaky"]  # neither run erased the other's
    assert _ran_with(root, "a_good") == _ran_with(root, "c_flaky") == "smoke"
    assert not list((root / "book" / "executed").glob(".*.part.ipynb"))


@pytest.mark.slow
def test_cli_root_runs_another_project_folder(root):
    assert main(["reproduce", "a", "--profile", "smoke", "--device", "cpu", "--root", str(root)]) == 0
    assert (root / "book" / "figures" / "a_good" / "done.txt").read_text() == "smoke"
    assert R.summary_path(root).exists()


# each waits (10 s at most) for the other's file: both succeed only when they run at the same time
MEETS = """\
import os, time
from pathlib import Path
import torch
me, other = Path(out_dir), Path(out_dir).parent / OTHER
me.mkdir(parents=True, exist_ok=True)
(me / "here").write_text(f"{os.environ.get('OMP_NUM_THREADS')} {torch.get_num_threads()}")
deadline = time.monotonic() + 10
while not (other / "here").exists():
    assert time.monotonic() < deadline, "the other notebook is not running"
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_jobs_run_notebooks_at_once_with_a_share_of_the_cores(tmp_path, monkeypatch, capsys):
    (tmp_path / "notebooks").mkdir()
    for name, other in (("m_one", "m_two"), ("m_two", "m_one")):
        _write(tmp_path / "notebooks" / f"{name}.ipynb", f"OTHER = {other!r}\n" + MEETS)
    _write(tmp_path / "notebooks" / "z_last.ipynb", "x = 1")
    for var in R.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    runs = R.reproduce(["m_two", "m_one", "z"], profile="smoke", device="cpu", root=tmp_path, jobs=2, cell_timeout=60)
    assert [r.notebook for r in runs] == ["m_two", "m_one", "z_last"]  # the table keeps the order asked for
    assert [r.status for r in runs] == ["ok", "ok", "ok"]
    share = max(1, R._cpus() // 2)
    for name in ("m_one", "m_two"):
        assert (tmp_path / "book" / "figures" / name / "here").read_text() == f"{share} {share}"
    assert not any(v in os.environ for v in R.THREAD_VARIABLES)  # the parent's environment is restored
    table = capsys.readouterr().out.split("notebook  ")[-1]
    assert table.index("m_two") < table.index("m_one") < table.index("z_last")


def test_jobs_must_be_positive(root, capsys):
    for bad in (0, -1, "two", True):
        with pytest.raises(R.ReproduceError, match="jobs"):
            R.reproduce(["a"], profile="smoke", device="cpu", root=root, jobs=bad)
    assert main(["reproduce", "a", "--device", "cpu", "--root", str(root), "--jobs", "x"]) == 2
    assert "jobs" in capsys.readouterr().err
    assert not (root / "book" / "figures" / "a_good").exists()
    assert R.auto_jobs("cuda") == 1 and 1 <= R.auto_jobs("cpu") <= R.MAX_AUTO_JOBS


@pytest.mark.slow
def test_sigint_with_two_jobs_stops_both_and_starts_no_other(root):
    _write(root / "notebooks" / "d_sleepy.ipynb", FLAKY)
    pids = [root / "book" / "figures" / stem / "kernel.pid" for stem in ("c_flaky", "d_sleepy")]
    proc = _cli("reproduce", "c", "d", "a", "--profile", "paper", "--device", "cpu", "--root", str(root), "--jobs", "2")
    try:
        deadline = time.monotonic() + 90
        while not all(p.exists() for p in pids):
            assert proc.poll() is None and time.monotonic() < deadline, "the notebooks never started together"
            time.sleep(0.1)
        kernels = [int(p.read_text()) for p in pids]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=100)  # both sleep 120 s: only the interrupt ends them early
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    records = R.load_summary(R.summary_path(root))
    assert sorted((r["notebook"], r["status"]) for r in records) == [
        ("c_flaky", "interrupted"),
        ("d_sleepy", "interrupted"),
    ]
    assert not (root / "book" / "figures" / "a_good").exists()  # nothing started after Ctrl-C
    for kernel in kernels:
        with pytest.raises(ProcessLookupError):
            os.kill(kernel, 0)
