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
- Ctrl-C interrupts the running kernel, keeps the previous notebook, records the run and stops.
- ``book/executed/reproduce_summary.json`` keeps every notebook's records from earlier runs too,
  with their finishing times (:func:`latest_ok` picks the one a chapter should quote).
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


def _execute(pm: Any, path: Path, tmp: Path, params: dict, cell_timeout: int) -> str:
    """Run papermill in a worker thread (so Ctrl-C reaches this thread, not nbclient); return the status."""
    sock_dir = tempfile.mkdtemp(prefix="mi-lib-kernel-") if os.name == "posix" else ""
    kernels: list[Any] = []
    outcome: dict[str, str] = {}

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
                kernel_manager_class=_kernel_manager_class(sock_dir, kernels),
            )
            outcome["status"] = "ok"
        except pm.PapermillExecutionError as e:
            outcome["status"] = f"failed at cell {e.exec_count}: {e.ename}: {e.evalue}"
        except Exception as e:  # noqa: BLE001 (kernel died, timeout, bad notebook)
            outcome["status"] = f"failed: {type(e).__name__}: {e}"

    finished = threading.Event()

    def guarded() -> None:
        try:
            work()
        finally:
            finished.set()

    # waited on through an Event: an interrupted Thread.join can mark a running thread as stopped
    worker = threading.Thread(target=guarded, name=f"papermill-{path.stem}", daemon=True)
    worker.start()
    interrupted, deadline = False, float("inf")
    try:
        while not finished.is_set():
            try:
                if time.monotonic() > deadline:  # the kernel ignored the interrupt
                    _signal_kernels(kernels, _KILL)
                    deadline = float("inf")
                finished.wait(0.2)
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: stop waiting for the kernel
                    _signal_kernels(kernels, _KILL)
                    continue
                interrupted = True
                print(f"[reproduce] interrupted: stopping {path.stem} (Ctrl-C again to kill it)", flush=True)
                _signal_kernels(kernels, signal.SIGINT)
                deadline = time.monotonic() + INTERRUPT_GRACE
    finally:
        if sock_dir:
            shutil.rmtree(sock_dir, ignore_errors=True)
    return "interrupted" if interrupted else outcome.get("status", "failed: no result from papermill")


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
    pm = _import_papermill()
    root = Path(root)
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
    t0 = time.perf_counter()
    try:
        status = _execute(pm, path, tmp, params, cell_timeout)
        run = NotebookRun(path.stem, profile, device, time.perf_counter() - t0, status, _now())
        try:
            _settle(run, tmp, executed)
        except OSError as e:
            run.status = f"failed: could not write {executed}: {e}"
    finally:
        tmp.unlink(missing_ok=True)
    return run


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
) -> list[NotebookRun]:
    """Run the selected notebooks in order, printing a line each and a summary table.

    Raises :class:`ReproduceError` before any notebook starts, and ``KeyboardInterrupt`` after
    recording the interrupted notebook.
    """
    root = Path(root)
    notebooks = select_notebooks(names, root)
    dev = check_device(device)
    profile = resolve_profile(profile, dev)
    _import_papermill()
    for folder in (root / "book" / "executed", root / "book" / "figures"):
        check_writable(folder)
    try:
        check_writable(root / "results_cache")
    except ReproduceError as e:  # the figures can still be made; the cache keeps results in memory
        print(f"[reproduce] warning: results will be computed but not cached: {e}", file=sys.stderr, flush=True)
    runs: list[NotebookRun] = []
    try:
        for path in notebooks:
            print(f"[reproduce] {path.stem} (profile={profile}, device={dev}) ...", flush=True)
            r = run_notebook(path, profile, dev, root, force, cell_timeout)
            print(f"[reproduce] {path.stem}: {shorten(r.status, 4 * STATUS_WIDTH)} in {r.seconds:.1f} s", flush=True)
            runs.append(r)
            if r.status == "interrupted":
                raise KeyboardInterrupt
    finally:
        print(format_table(runs), flush=True)
        try:
            merge_summary(summary_path(root), runs)
        except OSError as e:
            print(f"[reproduce] warning: could not write {summary_path(root)}: {e}", file=sys.stderr, flush=True)
    return runs
