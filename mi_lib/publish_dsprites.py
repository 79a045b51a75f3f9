r"""The results archive for Fig. 5 (dSprites): one long training run, checkpointed, then evaluated.

The paper profile is a single run of 20,000 steps (11 minutes of one CPU thread, measured on
2026-12-03). :func:`compute` trains it with :func:`mi_lib.experiments.dsprites.train`'s checkpoint, which
holds the whole state (networks, optimisers, every random generator), so a run that is stopped and
started again continues where it stopped with the numbers it would have had; ``chunk_steps``
trains a chunk and returns. The checkpoint (``checkpoint.pt``, a few MB) stays out of git; the
entry ``fig5.npz`` and its provenance ``fig5.json`` are what is committed:

* ``trained`` and ``random``: :func:`~mi_lib.experiments.dsprites.evaluate` of the trained encoder
  and of the same network at its initialisation (everything the figures draw);
* ``history``: the training curves averaged over blocks of :data:`BLOCK` steps;
* ``head``: the first :data:`HEAD_STEPS` steps of the curves, which :func:`verify` retrains with
  today's code and compares (training does not depend on the total number of steps).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from . import archive as A
from .archive import Archived
from .datasets.dsprites import DSprites
from .experiments import dsprites as D

NOTEBOOK = "dsprites_fig5"
BLOCK = 100
HEAD_STEPS = 50
CHECKPOINT_EVERY = 250
VERIFY_TOLERANCE = 1e-4  # the same steps on the CPU; float32 sums in another order at most


def config(profile: str) -> D.DSpritesConfig:
    """The profile's configuration as archived (on the CPU, no progress bar in the key)."""
    if profile not in D.CONFIGS:
        raise ValueError(f"Fig. 5 has no profile {profile!r}; known: {', '.join(D.CONFIGS)}")
    return dataclasses.replace(D.CONFIGS[profile], device="cpu")


def folder(profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    return Path(root) / NOTEBOOK / profile


def entry_path(profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    return folder(profile, root) / "fig5.npz"


def checkpoint_path(profile: str, root: Path = A.ARCHIVE_DIR) -> Path:
    return folder(profile, root) / "checkpoint.pt"


def _key(cfg: D.DSpritesConfig) -> Dict[str, Any]:
    return D.checkpoint_key(cfg)


def compute(
    profile: str = "paper",
    root: Path = A.ARCHIVE_DIR,
    chunk_steps: Optional[int] = None,
    progress: bool = True,
) -> Optional[Path]:
    """Train (resuming from the checkpoint) at most ``chunk_steps`` more steps; once training is done,
    evaluate and write the entry. Returns the entry's path, or ``None`` while training is unfinished."""
    cfg = dataclasses.replace(config(profile), progress=progress)
    dev = torch.device("cpu")
    ck = checkpoint_path(profile, root)
    if A.has_entry(entry_path(profile, root), _key(cfg)):
        return entry_path(profile, root)
    done = int(torch.load(ck, weights_only=False)["step"]) if ck.exists() else 0
    stop = None if chunk_steps is None else done + chunk_steps
    data = DSprites(cfg.data_path or None)
    out = D.train(cfg, data, dev, checkpoint=ck, checkpoint_every=CHECKPOINT_EVERY, stop_after=stop)
    if out is None:
        return None
    enc, random_enc, hist = out
    train_seconds = float(torch.load(ck, weights_only=False)["seconds"])
    t0 = time.perf_counter()
    results = {
        "trained": D.evaluate(enc, data, cfg, dev),
        "random": D.evaluate(random_enc, data, cfg, dev),
        "history": {k: A.as_float32(v[: len(v) // BLOCK * BLOCK].reshape(-1, BLOCK).mean(1)) for k, v in hist.items()},
        "head": {k: A.as_float32(v[:HEAD_STEPS]) for k, v in hist.items()},
        "factors": np.array(D.FACTORS),
    }
    eval_seconds = time.perf_counter() - t0
    extra = {"figure": "fig5", "train_seconds": train_seconds, "eval_seconds": eval_seconds, "data": data.source}
    prov = A.provenance(profile, _key(cfg), dev, train_seconds + eval_seconds, extra)
    A.save_entry(entry_path(profile, root), results, prov)
    return entry_path(profile, root)


def progress_line(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> str:
    """``fig5 (<profile>): archived`` or how far the checkpointed training is."""
    cfg = config(profile)
    if A.has_entry(entry_path(profile, root), _key(cfg)):
        return f"fig5 ({profile}): archived"
    ck = checkpoint_path(profile, root)
    step = int(torch.load(ck, weights_only=False)["step"]) if ck.exists() else 0
    return f"fig5 ({profile}): not archived; training at step {step:,} of {cfg.steps:,}"


def label(profile: str, cfg: D.DSpritesConfig, prov: Dict[str, Any]) -> str:
    """One line: profile, steps, batch size, device, minutes, date, commit."""
    return A.provenance_label(f"{profile} profile, {cfg.steps:,} steps at batch {cfg.batch_size}", [prov])


def _entry(profile: str, root: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(results, provenance)`` of the profile's entry; ``FileNotFoundError`` unless one of its
    configuration is archived."""
    path = entry_path(profile, root)
    entry = A.matching_entry(path, _key(config(profile)))
    if entry is None:
        raise FileNotFoundError(f"no archived Fig. 5 ({profile}) at {path}")
    return entry


def load(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> Archived:
    """The archived results with their provenance label; ``FileNotFoundError`` if not archived."""
    results, prov = _entry(profile, root)
    return Archived(
        results, label(profile, config(profile), prov), A.stale_reasons([prov], "fig5", "retrains the first steps")
    )


def verify(profile: str = "paper", root: Path = A.ARCHIVE_DIR, tolerance: float = VERIFY_TOLERANCE) -> Dict:
    """Retrain the first :data:`HEAD_STEPS` steps on the CPU (one thread) and compare the curves.

    On a CPU that rounds as the archive's did, every step agrees within ``tolerance``. On another the
    run parts after the first update, and only step 0 is compared, as the check says
    (:func:`mi_lib.archive.trajectory_verification`).
    """
    results, prov = _entry(profile, root)
    head = results["head"]
    cfg = dataclasses.replace(config(profile), steps=len(head["mi"]), progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, _, hist = D.train(cfg, DSprites(cfg.data_path or None), torch.device("cpu"))
        here = A.device_name(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    keys = sorted(head)
    return A.trajectory_verification(
        f"the first {cfg.steps} steps",
        np.stack([A.as_float32(hist[k]) for k in keys]),
        np.stack([head[k] for k in keys]),
        tolerance,
        file=entry_path(profile, root).name,
        archived_on=prov.get("device_name", "?"),
        recomputed_on=here,
        steps=cfg.steps,
    )


def missing_text(profile: str = "paper", root: Path = A.ARCHIVE_DIR) -> str:
    """What the chapter says while Fig. 5 is not archived: how far a run in this checkout is, how to train it."""
    ck = checkpoint_path(profile, root)
    here = ""
    if ck.exists():
        step = int(torch.load(ck, weights_only=False)["step"])
        here = f" (a run in this checkout is at step {step:,} of {config(profile).steps:,})"
    return (
        f"The {profile}-profile Fig. 5 is not archived yet{here}: "
        f"`python scripts/archive_dsprites.py --profile {profile}` trains it, resumable "
        "(about 11 minutes of one CPU thread)."
    )


def paper_results(profile: str = "paper", root: Path = A.ARCHIVE_DIR, verify_first: bool = True) -> Dict[str, Any]:
    """``{"results": ... or None, "label": str, "stale": [...]}`` for the notebook's paper-profile figures:
    verified first when the code changed since it was computed."""
    got = A.checked(
        lambda: load(profile, root),
        lambda: missing_text(profile, root),
        (lambda: verify(profile, root)) if verify_first else None,
    )
    return {"results": got.results, "label": got.label, "stale": got.stale}


def titled(fig: Any, archived: Dict[str, Any]) -> Any:
    """Put the provenance label (and any STALE line, in red) above a figure drawn from the archive."""
    from .figures import provenance_title

    return provenance_title(fig, archived["label"], archived["stale"])
