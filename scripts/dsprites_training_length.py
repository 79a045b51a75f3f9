"""How Fig. 5's code changes as training goes on: one profile's settings trained longer, evaluated every few steps.

    python scripts/dsprites_training_length.py [--profile quick] [--steps 20000] [--every 2500] [--threads 1]
        [--set beta_tc=5 --set lambda_smooth=30 ...]
    python scripts/dsprites_training_length.py --profile paper --checkpoint results/dsprites_fig5/paper/checkpoint.pt

Trains ``--profile``'s configuration (``steps`` replaced by ``--steps``, any other field by ``--set``)
and, every ``--every`` steps, evaluates the encoder as the figure does: the linear probe (shape accuracy; R^2 of scale,
orientation, posX, posY), the MIG, and for scale, posX and posY the latent that carries the most
about the factor, its share of the factor's entropy and its largest share of any other factor (the
quick claims' test, ``tests/test_quick_claims.py``). The training is the one ``mi_lib`` runs: the
chunks resume from a checkpoint in a temporary folder, with the numbers of one uninterrupted run.
Writes ``results/dsprites_fig5/training_length_<profile>[_<field><value>...].json`` with provenance.
With ``--checkpoint``, evaluates a saved training state of ``--profile`` instead (for example the paper run's, part way
through) into ``results/dsprites_fig5/checkpoint_<profile>_step<N>.json``. It backs a finding of
book/dsprites.md, not a figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from mi_lib import archive as A
from mi_lib.datasets.dsprites import DSprites
from mi_lib.experiments import dsprites as E

FOLLOWED = ("scale", "posX", "posY")
PROBE_NAMES = ("shape_accuracy", "scale_r2", "orientation_r2", "posX_r2", "posY_r2")
FIXED = ("steps", "device", "progress")  # set by the options, not by --set
CPU = torch.device("cpu")


def summary(r: Dict[str, Any]) -> Dict[str, Any]:
    """The numbers of one evaluation (:func:`mi_lib.experiments.dsprites.evaluate`'s dict) that the finding uses."""
    out: Dict[str, Any] = {"mig": float(r["mig"]), "probe": dict(zip(PROBE_NAMES, map(float, r["probe"])))}
    for f in FOLLOWED:
        latent, share, other = E.latent_for_factor(r["mi_matrix"], f)
        out[f] = {"latent": int(latent), "share": float(share), "other": float(other)}
    return out


def overrides(pairs: List[str]) -> Dict[str, Any]:
    """``["beta_tc=5", ...]`` -> ``{"beta_tc": 5.0, ...}``, each value of its field's type."""
    allowed = [f.name for f in dataclasses.fields(E.DSpritesConfig) if f.name not in FIXED]
    out: Dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in allowed:
            raise ValueError(f"--set takes FIELD=VALUE with FIELD one of {', '.join(allowed)}; got {pair!r}")
        kind = type(getattr(E.CONFIGS["quick"], name))
        out[name] = kind(value)
    return out


def _encoder(cfg: E.DSpritesConfig, state: Dict[str, Any]) -> torch.nn.Module:
    """The encoder of a training state saved by :func:`mi_lib.experiments.dsprites.train`, in eval mode."""
    enc = E.Encoder(cfg.n_latents, cfg.width)
    enc.load_state_dict(state["enc"])
    return enc.eval()


def run(
    profile: str, steps: int, every: int, progress: bool = True, changes: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    if steps < 1 or every < 1:
        raise ValueError(f"--steps and --every must be positive, got {steps} and {every}")
    cfg = dataclasses.replace(E.CONFIGS[profile], steps=steps, progress=progress, device="cpu", **(changes or {}))
    data = DSprites(cfg.data_path or None)
    stops = sorted({*range(every, steps, every), steps})
    evals = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "checkpoint.pt"
        for stop in stops:
            if stop < steps:
                E.train(cfg, data, CPU, checkpoint=ck, checkpoint_every=every, stop_after=stop)
                enc = _encoder(cfg, torch.load(ck, map_location=CPU, weights_only=False))
            else:
                enc, random_enc, hist = E.train(cfg, data, CPU, checkpoint=ck, checkpoint_every=every)
                enc.eval()
            evals.append({"step": stop, **summary(E.evaluate(enc, data, cfg, CPU))})
            print(f"step {stop}: MIG {evals[-1]['mig']:.3f}, probe {evals[-1]['probe']}", flush=True)
    random_enc.eval()
    blocks = [(a, min(a + every, steps)) for a in range(0, steps, every)]
    result = {
        "changes": dict(changes or {}),
        "evaluations": evals,
        "random_encoder": summary(E.evaluate(random_enc, data, cfg, CPU)),
        # per block of ``every`` steps, the median of the training terms (the information term's value is
        # NWJ's, which a few batches can send far below zero: the median ignores them)
        "training_medians": [
            {"steps": [a, b], **{k: float(np.median(hist[k][a:b])) for k in ("mi", "tc", "smooth")}} for a, b in blocks
        ],
        "data_source": data.source,
    }
    return A.provenance(profile, cfg, CPU, time.perf_counter() - t0, result)


def evaluate_checkpoint(profile: str, path: Path) -> Dict[str, Any]:
    """The evaluation of a training state saved by :func:`mi_lib.experiments.dsprites.train` for ``profile``."""
    cfg = dataclasses.replace(E.CONFIGS[profile], device="cpu")
    state = torch.load(path, map_location=CPU, weights_only=False)
    if state["key"] != E.checkpoint_key(cfg):
        raise ValueError(f"{path} is not a checkpoint of the {profile!r} profile")
    t0 = time.perf_counter()
    data = DSprites(cfg.data_path or None)
    result = {
        "step": int(state["step"]),
        "of_steps": cfg.steps,
        **summary(E.evaluate(_encoder(cfg, state), data, cfg, CPU)),
    }
    return A.provenance(profile, cfg, CPU, time.perf_counter() - t0, result)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=sorted(E.CONFIGS))
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--every", type=int, default=2500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="change a setting")
    ap.add_argument("--checkpoint", default=None, help="evaluate this saved training state of --profile instead")
    ap.add_argument("--out", default=None, help="default: results/dsprites_fig5/training_length_<profile>.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        ev = evaluate_checkpoint(args.profile, Path(args.checkpoint))
        name = f"checkpoint_{args.profile}_step{ev['step']}.json"
        out = Path(args.out) if args.out else A.ARCHIVE_DIR / "dsprites_fig5" / name
        out.write_text(json.dumps(ev, indent=1) + "\n")
        print(json.dumps(ev), f"\nwrote {out}")
        return 0
    changes = overrides(args.set)
    name = "_".join(
        [
            f"training_length_{args.profile}",
            *(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in changes.items()),
        ]
    )
    out = Path(args.out) if args.out else A.ARCHIVE_DIR / "dsprites_fig5" / f"{name}.json"
    res = run(args.profile, args.steps, args.every, changes=changes)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
