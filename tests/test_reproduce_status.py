"""The book's warning box for a notebook whose last run failed (book/_ext/reproduce_status.py), in a tiny project."""

import io
import json
import re
import sys
from pathlib import Path

import pytest

sphinx_app = pytest.importorskip("sphinx.application")

EXT = Path(__file__).resolve().parents[1] / "book" / "_ext"


def _build(src: Path) -> str:
    from sphinx.util.docutils import docutils_namespace

    out = src / "_build"
    with docutils_namespace():  # each build registers its nodes afresh, as sphinx-build does
        app = sphinx_app.Sphinx(
            str(src),
            str(src),
            str(out),
            str(out / ".doctrees"),
            "html",
            warningiserror=True,
            status=io.StringIO(),
            warning=io.StringIO(),
        )
        app.build()
    return (out / "book" / "executed" / "fig3.html").read_text()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXT))
    (tmp_path / "conf.py").write_text("extensions = ['reproduce_status']\n")
    (tmp_path / "index.rst").write_text("Book\n====\n\n.. toctree::\n\n   book/executed/fig3\n")
    (tmp_path / "book" / "executed" / "failed").mkdir(parents=True)
    (tmp_path / "book" / "executed" / "fig3.rst").write_text("Fig. 3\n======\n\nThe figure.\n")
    yield tmp_path
    sys.modules.pop("reproduce_status", None)


def test_failed_notebook_page_shows_a_warning_box_that_follows_the_marker(project):
    assert "reproduce-failed" not in _build(project)
    marker = project / "book" / "executed" / "failed" / "fig3.json"
    marker.write_text(
        json.dumps(
            {
                "notebook": "fig3",
                "profile": "quick",
                "device": "cpu",
                "finished": "2026-12-02T10:00:00+00:00",
                "status": "failed at cell 4: RuntimeError: " + "x" * 900,
                "page": "previous",
                "previous_ok": "2026-11-30T09:00:00+00:00",
            }
        )
    )
    html = _build(project)  # incremental: the page is reread because its marker appeared
    (classes,) = re.findall(r'<div class="([^"]*reproduce-failed[^"]*)"', html)
    assert {"admonition", "warning"} <= set(classes.split())  # the theme's warning colours
    assert "failed at cell 4: RuntimeError" in html and "previous successful run" in html
    text = re.sub(r"<[^>]+>", "", html)
    assert "python -m mi_lib reproduce fig3" in text and "x" * 900 not in text
    assert html.index("reproduce-failed") < html.index("The figure.")  # at the top of the page
    marker.unlink()
    assert "reproduce-failed" not in _build(project)  # and dropped once the notebook succeeds
