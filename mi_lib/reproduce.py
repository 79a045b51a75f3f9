"""Run the figure notebooks with papermill: ``python -m mi_lib reproduce [names] --profile ...``.

Every ``notebooks/*.ipynb`` is a figure; its name is the file stem (``fig2_gaussian_estimates``)
or any unique prefix of it (``fig2``). Each runs in its own kernel (named ``python3``, over IPC
sockets in a private folder where the platform has them) with ``profile``, ``device``, ``force``,
an absolute ``out_dir`` (``book/figures/<stem>``) and ``cache_dir`` (``results_cache``) injected.

Nothing that looks fine and is not is left behind:

- the names, the device, papermill and the output folders are checked before any notebook
  starts (:class:`ReproduceError`, exit status 2);
- a notebook executes into a temporary file that replaces ``book/executed/<stem>.ipynb`` only
  when every cell ran. A failed or interrupted run keeps the previous good notebook, puts its
  own copy in ``book/executed/failed/<stem>.ipynb`` and writes the marker
  ``book/executed/failed/<stem>.json``, which the book shows as a warning box on that
  notebook's page (``book/_ext/reproduce_status.py``). With no earlier good notebook the failed
  one (or a placeholder) takes the page, under the same box. Success removes both.
- Ctrl-C interrupts the running kernels, keeps the previous notebooks, records the runs and starts
  no other notebook.
- ``book/executed/reproduce_summary.json`` keeps every notebook's records from earlier runs too,
  with their finishing times (:func:`latest_ok` picks the one a chapter should quote).

``--jobs`` notebooks run at once (``auto``: one a CPU core up to four, one on a GPU); with more than
one, every kernel's torch and BLAS get an equal share of the cores (``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cache import atomic_write_bytes, save_json
from .profiles import resolve_device, resolve_profile

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = "reproduce_summary.json"
FAILED = "failed"  # folder under book/executed holding failure markers and failed runs' notebooks
STATUS_WIDTH = 80  # the summary table's status column is cut here (the JSON keeps the whole message)
KEEP_RECORDS = 20  # summary records kept per notebook
INTERRUPT_GRACE = 10.0  # seconds a kernel gets to stop after Ctrl-C before it is killed
MAX_AUTO_JOBS = 4  # --jobs auto on a CPU: one notebook a core, at most this many
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
INSTALL_HINT = "pip install 'mi-lib[book]' (in a checkout: pip install -e '.[book]')"


class ReproduceError(ValueError):
    """A problem found before any notebook starts; its message is the one line the user sees (exit 2)."""


@dataclass
class NotebookRun:
    """One notebook's outcome: its stem, profile, device, wall seconds, status and finishing time."""

    notebook: str
    profile: str
    device: str
    seconds: float
    status: str  # "ok", "failed ...", or "interrupted"
    finished: str = ""  # ISO 8601, UTC


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def discover(root: Path = ROOT) -> dict[str, Path]:
    """All figure notebooks, by stem, sorted."""
    return {p.stem: p for p in sorted((Path(root) / "notebooks").glob("*.ipynb"))}


def select_notebooks(names: Sequence[str], root: Path = ROOT) -> list[Path]:
    """Resolve names or unique prefixes to notebook paths; none means all; unknown or empty names raise ``ValueError``.

    An empty name is refused because it is a prefix of every stem and would quietly select them all.
    """
    found = discover(root)
    if not names:
        return list(found.values())
    out: list[Path] = []
    for name in names:
        if not name.strip():  # "" is a prefix of every stem: it would silently select them all
            raise ReproduceError(
                f"empty notebook name {name!r}: give a stem or prefix (`python -m mi_lib list`), or no name to run all"
            )
        hits = [stem for stem in found if stem == name] or [stem for stem in found if stem.startswith(name)]
        if not hits:
            raise ReproduceError(f"no notebook matches {name!r}; available: {', '.join(found)}")
        for stem in hits:
            if found[stem] not in out:
                out.append(found[stem])
    return out


def check_device(device: str) -> str:
    """Resolve ``device`` and make sure this machine has it, so no kernel starts only to fail at its first tensor."""
    import torch

    dev = resolve_device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ReproduceError(f"--device {device}: CUDA is not available on this machine; use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ReproduceError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ReproduceError(f"--device {device}: MPS is not available on this machine; use --device cpu or auto")
    elif dev.type != "cpu":
        raise ReproduceError(f"--device {device}: unsupported device type {dev.type!r}; use auto, cpu, cuda or mps")
    return str(dev)


def _import_papermill() -> Any:
    try:
        import papermill
    except ImportError as e:
        raise ReproduceError(
            f"the reproduce command needs papermill ({e}); install the book extra: {INSTALL_HINT}"
        ) from None
    return papermill


def check_writable(folder: Path) -> None:
    """Create ``folder`` and a file in it, so that a read-only output folder stops the run before the work."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}.{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ReproduceError(
            f"cannot write to {folder} ({e.strerror or e}); make it writable, or pass --root a writable copy"
        ) from None


# ------------------------------------------------------------------ running one notebook


def _kernel_manager_class(sock_dir: str, kernels: list[Any]) -> Any:
    """A kernel manager that talks to its kernel over Unix sockets in ``sock_dir`` and records itself in ``kernels``.

    IPC keeps the kernel's traffic off the loopback TCP ports (where any local user could
    subscribe to its outputs) and so also ends ipykernel's "running over TCP without
    encryption" warning; the socket folder is private to this process.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class _Manager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            kernels.append(self)

        @default("transport")
        def _transport_ipc(self) -> str:
            return "ipc" if sock_dir else "tcp"

        @default("ip")
        def _ip_in_private_folder(self) -> str:
            return os.path.join(sock_dir, "kernel") if sock_dir else "127.0.0.1"

    return _Manager


def _kernel_pid(manager: Any) -> int | None:
    process = getattr(getattr(manager, "provisioner", None), "process", None)
    return getattr(process, "pid", None)


_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)


def _signal_kernels(kernels: Sequence[Any], sig: int) -> None:
    for km in kernels:
        pid = _kernel_pid(km)
        if pid is None:
            continue
        with contextlib.suppress(OSError):  # already gone
            if sig == signal.SIGINT or not hasattr(os, "killpg"):
                os.kill(pid, sig)  # like Jupyter's interrupt button: the running cell raises KeyboardInterrupt
            else:
                os.killpg(pid, sig)  # the kernel leads its own session: its children go with it


class _Job:
    """One notebook executing with papermill in a worker thread (so Ctrl-C reaches the main thread, not
    nbclient), with the kernels it started: the main thread waits on it, interrupts it or kills it."""

    def __init__(self, pm: Any, path: Path, tmp: Path, params: dict, cell_timeout: int) -> None:
        self.path, self.tmp = path, tmp
        self.sock_dir = tempfile.mkdtemp(prefix="mi-lib-kernel-") if os.name == "posix" else ""
        self.kernels: list[Any] = []
        self.outcome: dict[str, str] = {}
        self.finished = threading.Event()  # waited on: an interrupted Thread.join can mark a running thread stopped
        self.interrupted = False
        self.deadline = float("inf")  # when an interrupted kernel that has not stopped gets killed
        self.t0 = time.perf_counter()
        manager = _kernel_manager_class(self.sock_dir, self.kernels)

        def work() -> None:
            try:
                pm.execute_notebook(
                    str(path),
                    str(tmp),
                    parameters=params,
                    kernel_name="python3",
                    cwd=str(path.parent),
                    execution_timeout=cell_timeout,
                    progress_bar=False,
                    kernel_manager_class=manager,
                )
                self.outcome["status"] = "ok"
            except pm.PapermillExecutionError as e:
                self.outcome["status"] = f"failed at cell {e.exec_count}: {e.ename}: {e.evalue}"
            except Exception as e:  # noqa: BLE001 (kernel died, timeout, bad notebook)
                self.outcome["status"] = f"failed: {type(e).__name__}: {e}"
            finally:
                self.finished.set()

        threading.Thread(target=work, name=f"papermill-{path.stem}", daemon=True).start()

    def interrupt(self) -> None:
        """Like Jupyter's interrupt button; killed if the kernel has not stopped ``INTERRUPT_GRACE`` s later."""
        if not self.finished.is_set() and not self.interrupted:
            self.interrupted = True
            print(f"[reproduce] interrupted: stopping {self.path.stem} (Ctrl-C again to kill it)", flush=True)
            _signal_kernels(self.kernels, signal.SIGINT)
            self.deadline = time.monotonic() + INTERRUPT_GRACE

    def kill(self) -> None:
        _signal_kernels(self.kernels, _KILL)
        self.deadline = float("inf")

    def result(self) -> str:
        """The run's status (ok, failed ..., interrupted); its private socket folder removed."""
        if self.sock_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
        return "interrupted" if self.interrupted else self.outcome.get("status", "failed: no result from papermill")


def _wait_any(jobs: Sequence[_Job]) -> tuple[_Job, bool]:
    """Block until one of ``jobs`` finishes; returns it and whether Ctrl-C was pressed meanwhile.

    The first Ctrl-C interrupts every running notebook; a second one kills their kernels.
    """
    pressed = False
    while True:
        try:
            for job in jobs:
                if job.finished.is_set():
                    return job, pressed
                if time.monotonic() > job.deadline:  # the kernel ignored the interrupt
                    job.kill()
            jobs[0].finished.wait(0.2 / len(jobs))
        except KeyboardInterrupt:
            if pressed or any(j.interrupted for j in jobs):  # a second Ctrl-C: stop waiting for the kernels
                for job in jobs:
                    job.kill()
            pressed = True
            for job in jobs:
                job.interrupt()


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _placeholder(stem: str, status: str) -> bytes:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {stem}\n\nThis notebook has not run successfully yet:\n\n    {status}")
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


def _settle(run: NotebookRun, tmp: Path, executed: Path) -> None:
    """Move the run's notebook where it belongs and write or clear its failure marker."""
    failed_dir = executed.parent / FAILED
    marker, failed_copy = failed_dir / f"{run.notebook}.json", failed_dir / executed.name
    if run.status == "ok":
        os.replace(tmp, executed)
        for stale in (marker, failed_copy):
            stale.unlink(missing_ok=True)
        return
    previous = _read_json(marker)
    page_is_good = executed.exists() and (not isinstance(previous, dict) or previous.get("page") == "previous")
    failed_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {**asdict(run), "previous_ok": None, "failed_copy": None}
    if page_is_good:
        info["page"] = "previous"
        info["previous_ok"] = (
            previous.get("previous_ok")
            if isinstance(previous, dict)
            else datetime.fromtimestamp(executed.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        )
        if tmp.exists():
            os.replace(tmp, failed_copy)
            info["failed_copy"] = f"book/executed/{FAILED}/{failed_copy.name}"
    elif tmp.exists():
        info["page"] = "failed"  # nothing good to keep: the failed run itself, under the warning box
        os.replace(tmp, executed)
    else:
        info["page"] = "placeholder"
        atomic_write_bytes(executed, _placeholder(run.notebook, run.status))
    save_json(marker, info)


def _start(
    pm: Any, path: Path, profile: str, device: str, root: Path, force: bool, cell_timeout: int, extra: dict | None
) -> _Job:
    executed = root / "book" / "executed" / path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    # in the same folder (so that os.replace is atomic), unique to this run, and no page of the
    # book: Sphinx reads only what _toc.yml lists, and the leading dot keeps it out of its globs
    tmp = executed.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.part.ipynb"
    params = {
        "profile": profile,
        "device": device,
        "force": force,
        "out_dir": str(root / "book" / "figures" / path.stem),
        "cache_dir": str(root / "results_cache"),
    }
    params.update(extra or {})
    return _Job(pm, path, tmp, params, cell_timeout)


def _finish(job: _Job, profile: str, device: str, root: Path) -> NotebookRun:
    """The finished job's record; its notebook moved where it belongs (or kept aside, with a marker)."""
    run = NotebookRun(job.path.stem, profile, device, time.perf_counter() - job.t0, job.result(), _now())
    executed = root / "book" / "executed" / job.path.name
    try:
        _settle(run, job.tmp, executed)
    except OSError as e:
        run.status = f"failed: could not write {executed}: {e}"
    finally:
        job.tmp.unlink(missing_ok=True)
    return run


def run_notebook(
    path: Path,
    profile: str,
    device: str,
    root: Path = ROOT,
    force: bool = False,
    cell_timeout: int = 7200,
    extra: dict | None = None,
) -> NotebookRun:
    """Execute one notebook with papermill; never raises for a failing cell (the status says it)."""
    root = Path(root)
    job = _start(_import_papermill(), path, profile, device, root, force, cell_timeout, extra)
    try:
        _wait_any([job])
    finally:
        run = _finish(job, profile, device, root)
    return run


def auto_jobs(device: str) -> int:
    """How many notebooks ``--jobs auto`` runs at once: one on an accelerator (they would share it);
    on a CPU one a core, at most ``MAX_AUTO_JOBS`` (each kernel holds its data sets in memory)."""
    if device != "cpu":
        return 1
    return max(1, min(MAX_AUTO_JOBS, _cpus()))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _threads_per_kernel(jobs: int) -> Iterator[None]:
    """With ``jobs`` notebooks at once on a CPU, each kernel's torch and BLAS get an equal share of the
    cores (``OMP_NUM_THREADS`` and friends, read when a kernel starts), unless the user set them."""
    if jobs <= 1:
        yield
        return
    share = str(max(1, _cpus() // jobs))
    added = [k for k in THREAD_VARIABLES if k not in os.environ]
    for k in added:
        os.environ[k] = share
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


# ------------------------------------------------------------------ summary


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters: an ATen error must not stretch the table."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(runs: Sequence[NotebookRun], status_width: int = STATUS_WIDTH) -> str:
    """The summary table printed at the end of a reproduce run (status cut to ``status_width``)."""
    rows = [("notebook", "profile", "device", "seconds", "status")]
    rows += [(r.notebook, r.profile, r.device, f"{r.seconds:.1f}", shorten(r.status, status_width)) for r in runs]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    total = sum(r.seconds for r in runs)
    return "\n".join(lines + [f"total {total:.1f} s"])


def summary_path(root: Path = ROOT) -> Path:
    """Where the per-notebook records live."""
    return Path(root) / "book" / "executed" / SUMMARY


def load_summary(path: Path) -> list[dict[str, Any]]:
    """The summary's records (``[]`` when there is none); an unreadable file is moved aside to ``<name>.corrupt``."""
    path = Path(path)
    if not path.exists():
        return []
    data = _read_json(path)
    if isinstance(data, list) and all(isinstance(r, dict) and "notebook" in r for r in data):
        return data
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(path.name + ".corrupt"))
    print(f"[reproduce] warning: {path} was unreadable; moved to {path.name}.corrupt, starting afresh", flush=True)
    return []


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent runs may then lose each other's records
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def merge_summary(path: Path, runs: Sequence[NotebookRun], keep: int = KEEP_RECORDS) -> list[dict[str, Any]]:
    """Add ``runs`` to the records in ``path`` (newest ``keep`` per notebook), locked against concurrent runs.

    A partial rerun thus keeps the other notebooks' records, which the chapters quote.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(f".{path.name}.lock")):
        records = load_summary(path) + [asdict(r) for r in runs]
        records.sort(key=lambda r: str(r.get("finished") or ""))  # stable: old undated records first
        count: dict[str, int] = {}
        kept = []
        for r in reversed(records):
            count[r["notebook"]] = count.get(r["notebook"], 0) + 1
            if count[r["notebook"]] <= keep:
                kept.append(r)
        kept.reverse()
        save_json(path, kept)
    return kept


def latest_ok(summary: Sequence[dict[str, Any]], notebook: str) -> dict[str, Any] | None:
    """The newest record of ``notebook`` whose status is ok: what a chapter quoting a runtime should read."""
    ok = [r for r in summary if r.get("notebook") == notebook and r.get("status") == "ok"]
    return max(ok, key=lambda r: str(r.get("finished") or ""), default=None)


# ------------------------------------------------------------------ the command


def reproduce(
    names: Sequence[str] = (),
    profile: str = "auto",
    device: str = "auto",
    force: bool = False,
    root: Path = ROOT,
    cell_timeout: int = 7200,
    jobs: int | str = 1,
) -> list[NotebookRun]:
    """Run the selected notebooks, ``jobs`` at a time (``"auto"``: :func:`auto_jobs`), printing a line as
    each starts and ends and a summary table in the notebooks' order.

    Raises :class:`ReproduceError` before any notebook starts, and ``KeyboardInterrupt`` after
    recording the interrupted notebooks (no further notebook starts after Ctrl-C).
    """
    root = Path(root)
    notebooks = select_notebooks(names, root)
    dev = check_device(device)
    profile = resolve_profile(profile, dev)
    if jobs == "auto":
        n_jobs = auto_jobs(dev)
    elif isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1:
        n_jobs = jobs
    else:
        raise ReproduceError(f"jobs must be a positive integer or 'auto', got {jobs!r}")
    pm = _import_papermill()
    for folder in (root / "book" / "executed", root / "book" / "figures"):
        check_writable(folder)
    try:
        check_writable(root / "results_cache")
    except ReproduceError as e:  # the figures can still be made; the cache keeps results in memory
        print(f"[reproduce] warning: results will be computed but not cached: {e}", file=sys.stderr, flush=True)
    runs: list[NotebookRun] = []
    pending, running = list(notebooks), list[_Job]()
    stop = False
    try:
        with _threads_per_kernel(min(n_jobs, len(notebooks))):
            while pending or running:
                while pending and not stop and len(running) < n_jobs:
                    path = pending.pop(0)
                    print(f"[reproduce] {path.stem} (profile={profile}, device={dev}) ...", flush=True)
                    running.append(_start(pm, path, profile, dev, root, force, cell_timeout, None))
                if not running:
                    break
                job, pressed = _wait_any(running)
                running.remove(job)
                r = _finish(job, profile, dev, root)
                print(
                    f"[reproduce] {r.notebook}: {shorten(r.status, 4 * STATUS_WIDTH)} in {r.seconds:.1f} s", flush=True
                )
                runs.append(r)
                stop = stop or pressed or r.status == "interrupted"  # _wait_any interrupted the others
        if stop:
            raise KeyboardInterrupt
    finally:
        for job in running:  # only when something above raised: leave no kernel behind
            job.kill()
            job.finished.wait(INTERRUPT_GRACE)
            runs.append(_finish(job, profile, dev, root))
        order = {p.stem: i for i, p in enumerate(notebooks)}
        runs.sort(key=lambda r: order[r.notebook])
        print(format_table(runs), flush=True)
        try:
            merge_summary(summary_path(root), runs)
        except OSError as e:
            print(f"[reproduce] warning: could not write {summary_path(root)}: {e}", file=sys.stderr, flush=True)
    return runs
