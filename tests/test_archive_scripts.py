"""The archive scripts' shared pieces: options, and a commit that takes the finished piece's folder only."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import archive_cli as C  # noqa: E402
import archive_grid  # noqa: E402


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_commit_folder_commits_that_folder_and_nothing_else(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results" / "cells").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.org")
    _git(repo, "config", "user.name", "t")
    (repo / "other.py").write_text("work in progress\n")
    _git(repo, "add", "other.py")  # staged work elsewhere must stay out of the archive's commit
    (repo / "results" / "cells" / "a.npz").write_bytes(b"x")
    commit = C.committer(
        C.parse(C.parser("d", pieces="cells"), ["--commit"]), lambda p, d, t: f"cell {p.stem} ({d}/{t})"
    )
    commit(repo / "results" / "cells" / "a.npz", 1, 4)
    assert _git(repo, "log", "--format=%s") == "cell a (1/4)\n"
    assert _git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["results/cells/a.npz"]
    assert _git(repo, "diff", "--cached", "--name-only").split() == ["other.py"]
    C.committer(C.parse(C.parser("d", pieces="cells"), []), lambda *a: "no")(repo / "results" / "cells" / "a.npz", 1, 4)
    assert _git(repo, "log", "--format=%s") == "cell a (1/4)\n"  # without --commit nothing is committed


def test_options():
    args = C.parser("d", threads=1, pieces="chunks").parse_args(["--profile", "smoke", "--limit", "2"])
    assert (args.profile, args.threads, args.limit, args.commit) == ("smoke", 1, 2, False)
    assert not hasattr(C.parser("d").parse_args([]), "limit")


def test_archive_grid_parses_its_shard():
    assert archive_grid.shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "1", "-1/2"):
        with pytest.raises(Exception, match="shard"):
            archive_grid.shard(bad)
