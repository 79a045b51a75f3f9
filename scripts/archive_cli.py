"""What the ``archive_*.py`` scripts share: their common options and the git commit of each finished piece."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from mi_lib import archive as A


def parser(doc: str, threads: int = 0, pieces: Optional[str] = None) -> argparse.ArgumentParser:
    """``--profile --threads --root --commit`` (and ``--limit`` when the run is made of ``pieces``: cells, chunks)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--threads", type=int, default=threads, help="torch threads (0: torch's choice)")
    ap.add_argument("--root", default=str(A.ARCHIVE_DIR), help="archive folder (default: the checkout's results/)")
    ap.add_argument("--commit", action="store_true", help=f"git-commit each {pieces or 'entry'} as it is written")
    if pieces:
        ap.add_argument("--limit", type=int, default=None, help=f"stop after this many {pieces}")
    return ap


def parse(ap: argparse.ArgumentParser, argv: Optional[list]) -> argparse.Namespace:
    """Parse, and set torch's thread count."""
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def committer(args: argparse.Namespace, message: Callable[[Path, int, int], str]) -> Callable[[Path, int, int], None]:
    """The ``on_chunk``/``on_cell`` callback: with ``--commit``, commit the piece's folder with ``message(...)``."""

    def commit(path: Path, done: int, total: int) -> None:
        if args.commit:
            commit_folder(path.parent, message(path, done, total))

    return commit


def commit_folder(folder: Path, message: str) -> None:
    """Commit the folder's new files (and only them); retried, since other work may hold the index for a moment."""
    for _ in range(30):
        add = subprocess.run(["git", "-C", str(folder), "add", "."], capture_output=True, text=True)
        done = subprocess.run(
            ["git", "-C", str(folder), "commit", "-q", "-m", message, "--", "."], capture_output=True, text=True
        )
        if add.returncode == 0 and (done.returncode == 0 or "nothing" in done.stdout + done.stderr):
            return
        time.sleep(2)
    print(f"warning: could not commit {folder}: {done.stderr.strip()}", file=sys.stderr)
