"""Sphinx extension: a warning box on an executed notebook's page when its last run failed.

``python -m mi_lib reproduce`` writes ``book/executed/failed/<stem>.json`` when a notebook
fails or is interrupted (and removes it when the notebook next succeeds). The page of
``book/executed/<stem>`` then starts with a warning that says which run failed, how, and
whether the page shows the previous successful run or the failed one. A page is reread when
its marker appears, changes or goes, so an incremental build never keeps a stale box.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from docutils import nodes

EXECUTED = "book/executed/"
STATUS_CHARS = 400  # the box quotes at most this much of the error (the marker keeps all of it)


def _marker(srcdir: str, docname: str) -> Path | None:
    if not docname.startswith(EXECUTED) or "/" in docname[len(EXECUTED) :]:
        return None
    return Path(srcdir) / EXECUTED / "failed" / f"{docname[len(EXECUTED) :]}.json"


def _stamp(srcdir: str, docname: str) -> float | None:
    marker = _marker(srcdir, docname)
    try:
        return marker.stat().st_mtime if marker is not None else None
    except OSError:
        return None


def _when(iso: Any) -> str:
    try:
        return datetime.fromisoformat(str(iso)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return "at an unknown time" if not iso else str(iso)


def warning_box(info: dict[str, Any]) -> nodes.admonition:
    """The admonition for a failure marker's contents (``reproduce._settle`` writes them)."""
    stem = info.get("notebook", "?")
    status = " ".join(str(info.get("status", "failed")).split())
    if len(status) > STATUS_CHARS:
        status = status[: STATUS_CHARS - 3] + "..."
    run = f"{_when(info.get('finished'))}, profile {info.get('profile')}, device {info.get('device')}"
    page = info.get("page")
    if page == "previous":
        shows = (
            f"This page shows the previous successful run (written {_when(info.get('previous_ok'))}). "
            "Figures this notebook had already rewritten before it stopped come from the failed run."
        )
    elif page == "failed":
        shows = (
            "This page shows the failed run itself: its outputs stop where it failed, and its figures may be missing."
        )
    else:
        shows = "The notebook has not run successfully yet, so there are no outputs to show."
    box = nodes.admonition(classes=["warning", "reproduce-failed"])
    box += nodes.title(text=f"The last run of this notebook did not finish: {status}")
    box += nodes.paragraph(text=f"That run: {run}. {shows}")
    rerun = nodes.paragraph(text="To rerun it: ")
    rerun += nodes.literal(text=f"python -m mi_lib reproduce {stem}")
    box += rerun
    return box


def _insert(app: Any, doctree: nodes.document) -> None:
    docname = app.env.docname
    marker = _marker(app.srcdir, docname)
    if marker is None:
        return
    stamps = app.env.__dict__.setdefault("reproduce_status", {})
    stamps[docname] = _stamp(app.srcdir, docname)
    if stamps[docname] is None:
        return
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        info = {"notebook": docname[len(EXECUTED) :], "status": "failed (the failure marker is unreadable)"}
    box = warning_box(info if isinstance(info, dict) else {})
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        doctree.insert(0, box)
    else:
        at = 1 if section.children and isinstance(section[0], nodes.title) else 0
        section.insert(at, box)


def _outdated(app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    stamps = env.__dict__.get("reproduce_status", {})
    return [
        d
        for d in env.found_docs
        if _marker(app.srcdir, d) is not None
        and d not in added
        and d not in changed
        and stamps.get(d) != _stamp(app.srcdir, d)
    ]


def _purge(app: Any, env: Any, docname: str) -> None:
    env.__dict__.get("reproduce_status", {}).pop(docname, None)


def _merge(app: Any, env: Any, docnames: set[str], other: Any) -> None:
    mine = env.__dict__.setdefault("reproduce_status", {})
    for d, stamp in other.__dict__.get("reproduce_status", {}).items():
        if d in docnames:
            mine[d] = stamp


def setup(app: Any) -> dict[str, Any]:
    """Register the box and the rereading of pages whose marker changed."""
    app.connect("doctree-read", _insert)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
