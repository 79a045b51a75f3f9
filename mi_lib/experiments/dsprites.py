r"""Decoder-free representation learning on dSprites (Poole et al. 2019, Fig. 5).

An encoder maps a 64x64 sprite to ``n_latents`` codes :math:`\mu(x) \in (-1, 1)^L`
(tanh). The representation is read through a noisy channel
:math:`y = \mu(x) + \sigma\varepsilon`, so that :math:`I(X; Y)` is finite, and the
encoder maximises

.. math:: I_\text{JS}(X; Y) \;-\; \beta\,\widehat{\mathrm{TC}}(Y) \;-\; \lambda\,
          \mathbb{E}\,\lVert \mu(x) - \mu(x') \rVert,

* :math:`I_\text{JS}` (:func:`mi_lib.bounds.js_lower_bound`) with a joint critic
  :math:`f(x, y) = g([\mu(x), y])` (:class:`mi_lib.critics.ConcatCritic`) on all
  ``K^2`` pairs of a minibatch: the critic sees the image through the encoder;
* :math:`\widehat{\mathrm{TC}}` the total correlation of ``y`` by the density-ratio
  trick: a discriminator ``d`` learns, with the f-GAN JS objective, to tell ``y`` from
  codes whose dimensions are shuffled independently across the batch (samples of
  :math:`\prod_l q(y_l)`); its logit estimates :math:`\log q(y)/\prod_l q(y_l)`;
* the smoothness term with ``x'`` the same sprite one grid step away in one of
  scale, orientation, posX, posY (shape has no order), with the squared or the L1 distance
  (``smooth_norm``, :func:`smoothness`).

``dependency="minibatch"`` replaces the discriminator by the paper's own minibatch bounds, which the
known Gaussian channel makes available (:func:`minibatch_tc`): an upper bound on each
:math:`I(X; Y_l)` minus a lower bound on :math:`I(X; Y)` bounds
:math:`\mathrm{TC}(Y) = \sum_l I(X; Y_l) - I(X; Y)` from above. ``dependency="hsic"`` is a
pairwise kernel-independence penalty (:func:`pairwise_hsic`); both alternatives are discussed
in the chapter.

No decoder anywhere. Evaluation: the average of each latent against each factor
value, heat maps over the posX x posY grid, a linear probe per factor and the
mutual information gap (MIG), for the trained encoder and for the same architecture
at its random initialisation. See ``book/dsprites.md``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn.functional import softplus
from tqdm.auto import tqdm

from ..bounds import js_core, loo_upper_bound, tnce_lower_bound
from ..critics import make_critic, mlp
from ..datasets.dsprites import LATENTS_SIZES, DSprites
from ..profiles import resolve_device

FACTORS = ("shape", "scale", "orientation", "posX", "posY")  # latent columns 1..5
_STEP_FACTORS = np.array([2, 3, 4, 5])  # factors with an order (for the smoothness pairs)
DEPENDENCIES = ("discriminator", "minibatch", "hsic")  # DSpritesConfig.dependency


@dataclasses.dataclass(frozen=True)
class DSpritesConfig:
    """One run: training, then evaluation of the trained and the random encoder."""

    steps: int = 1000
    batch_size: int = 64
    n_latents: int = 10
    width: int = 16  # channels of the conv encoder
    noise_std: float = 0.1  # sigma of the channel y = mu(x) + sigma * eps
    beta_tc: float = 20.0  # weight of the total-correlation penalty
    # "discriminator" (density-ratio TC), "minibatch" (TC bounded with the known channel: minibatch_tc)
    # or "hsic" (pairwise normalised HSIC of mu)
    dependency: str = "discriminator"
    disc_steps: int = 3  # discriminator updates per encoder step (fresh shuffles each)
    lambda_smooth: float = 100.0  # weight of the smoothness penalty
    # "l2": squared distance between the codes of neighbours (rotation invariant); "l1": their L1 distance,
    # which charges a step of one factor less when it moves one latent than when it moves several
    smooth_norm: str = "l2"
    lr: float = 1e-3
    disc_lr: float = 1e-3
    critic_hidden: int = 128
    critic_layers: int = 2  # hidden layers of the critic and of the total-correlation discriminator
    eval_per_position: int = 8  # eval set: this many random sprites at each of 32x32 positions
    n_bins: int = 20  # discretisation of the latents for the MIG
    seed: int = 0
    device: str = "auto"
    data_path: str = ""  # official npz, or "" for the generator (DSPRITES_NPZ also works)
    progress: bool = True

    def __post_init__(self):
        if self.dependency not in DEPENDENCIES:
            raise ValueError(f"dependency must be one of {', '.join(DEPENDENCIES)}, got {self.dependency!r}")
        if self.smooth_norm not in ("l1", "l2"):
            raise ValueError(f"smooth_norm must be 'l1' or 'l2', got {self.smooth_norm!r}")


# quick: chosen by measurement (book/dsprites.md, "The setup we chose"): a channel noise of 0.03 and the L1
# smoothness; neither Poole et al.'s text we could read nor any other source gives these settings.
_METHOD: Dict[str, Any] = dict(noise_std=0.03, smooth_norm="l1", lambda_smooth=10.0)
CONFIGS = {
    "smoke": DSpritesConfig(steps=150, batch_size=64, eval_per_position=2, progress=False, **_METHOD),
    "quick": DSpritesConfig(steps=600, **_METHOD),
    # ours, not the paper's settings (which we could not read): the quick method trained 33 times longer with a
    # weaker total-correlation penalty. Chosen by measurement (book/dsprites.md, "Longer training undoes the
    # structure", scripts/dsprites_training_length.py): at beta_tc = 20 the penalty wins by 10,000 steps and the
    # code loses the factors (MIG 0.004 at 20,000); at beta_tc = 5 posX and posY each settle in one latent
    # (MIG 0.155). An earlier paper profile (batch 256, width 32, critic 256, lr 5e-4, beta_tc 20) had reached
    # MIG 0.020 at step 10,500 when it was stopped.
    "paper": DSpritesConfig(steps=20000, eval_per_position=32, **{**_METHOD, "beta_tc": 5.0}),
}


class Encoder(nn.Module):
    """Conv encoder ``[B, 1, 64, 64] -> [B, L]`` in ``(-1, 1)``.

    2x average pooling (sprites are 8-19 pixels wide, 32x32 keeps them), three stride-2
    4x4 convs to 4x4, an MLP, batch norm (codes start spread out, not near 0) and tanh.
    """

    def __init__(self, n_latents: int = 10, width: int = 16):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.AvgPool2d(2),  # 32x32
            nn.Conv2d(1, w, 4, 2, 1),
            nn.ReLU(),  # 16x16
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.ReLU(),  # 8x8
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1),
            nn.ReLU(),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * w * 16, 128),
            nn.ReLU(),
            nn.Linear(128, n_latents),
            nn.BatchNorm1d(n_latents),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def neighbour_classes(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each ``[N, 6]`` latent row moved one step in one random ordered factor (orientation wraps)."""
    out = classes.copy()
    k = rng.choice(_STEP_FACTORS, size=len(classes))
    step = rng.choice([-1, 1], size=len(classes))
    rows = np.arange(len(classes))
    moved = out[rows, k] + step
    size = LATENTS_SIZES[k]
    wrap = np.where(moved < 0, size - 1, moved % size)  # orientation: cyclic
    bounce = np.where((moved < 0) | (moved >= size), out[rows, k] - step, moved)  # others: reflect
    out[rows, k] = np.where(k == 3, wrap, bounce)
    return out


def shuffle_dims(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Permute each column of ``[B, L]`` independently: samples of the product of marginals."""
    b, n_latents = y.shape
    perm = torch.argsort(torch.rand(b, n_latents, generator=generator), dim=0).to(y.device)
    return torch.gather(y, 0, perm)


def channel_log_conditional(mu: torch.Tensor, y: torch.Tensor, noise_std: float) -> torch.Tensor:
    """``log p(y_jl | x_i)`` of the channel ``y = mu(x) + sigma eps`` up to a constant: ``[K, L] x2 -> [K, K, L]``."""
    return -0.5 * ((y[None, :, :] - mu[:, None, :]) / noise_std) ** 2


def minibatch_tc(mu: torch.Tensor, y: torch.Tensor, noise_std: float) -> torch.Tensor:
    r"""Upper bound on the total correlation of ``y`` from the channel's known ``p(y|x)``, on one minibatch.

    .. math:: \mathrm{TC}(Y) = \sum_l I(X; Y_l) - I(X; Y) \;\le\;
       \sum_l I_\text{LOO}(X; Y_l) - I_\text{TNCE}(X; Y),

    the leave-one-out upper bound (:func:`mi_lib.bounds.loo_upper_bound`) on each latent and the
    multi-sample lower bound with the true conditional (:func:`mi_lib.bounds.tnce_lower_bound`) on the
    whole code. The channel factorises over latents, so both use the same ``[K, K, L]`` table. The
    lower bound is capped at ``log K``: past that the estimate overstates the TC and, like a
    beta-VAE's rate, charges every latent for the information it carries.
    """
    logp = channel_log_conditional(mu, y, noise_std)  # [K (x_i), K (y_j), L]
    upper = sum(loo_upper_bound(logp[:, :, k]) for k in range(logp.shape[-1]))
    return upper - tnce_lower_bound(logp.sum(-1))


def pairwise_hsic(codes: torch.Tensor) -> torch.Tensor:
    r"""Normalised HSIC of every pair of latents, Gaussian kernel on standardised codes: ``[B, L] -> [L, L]``.

    ``1`` on the diagonal; near 0 (bias O(1/B)) for independent latents; 1 for copies.
    """
    b = codes.shape[0]
    z = (codes - codes.mean(0)) / (codes.std(0) + 1e-6)
    k = torch.exp(-0.5 * (z.T[:, :, None] - z.T[:, None, :]) ** 2)  # [L, B, B]
    kc = k - k.mean(1, keepdim=True) - k.mean(2, keepdim=True) + k.mean((1, 2), keepdim=True)
    h = torch.einsum("lij,mij->lm", kc, kc) / (b - 1) ** 2
    d = torch.sqrt(torch.diagonal(h).clamp_min(1e-12))
    return h / (d[:, None] * d[None, :])


def smoothness(mu: torch.Tensor, mu_nb: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """Mean distance between the codes ``[B, L]`` of sprites and of their one-step neighbours.

    ``"l2"``: squared Euclidean, the same for any rotation of the code. ``"l1"``: a step of one factor that
    moves one latent by ``d`` costs ``d``, spread over two latents at 45 degrees it costs ``sqrt(2) d``: a sparse
    penalty on the change, which favours codes where each factor moves few latents.
    """
    diff = mu - mu_nb
    return (diff**2).sum(-1).mean() if norm == "l2" else diff.abs().sum(-1).mean()


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32)).unsqueeze(1).to(device)


def checkpoint_key(cfg: DSpritesConfig) -> Dict[str, Any]:
    """What a checkpoint must match to be resumed: the config without what does not change the numbers."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress", "device", "data_path")}


def _save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Atomic: written beside, then renamed, so an interruption never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    cfg: DSpritesConfig,
    data: DSprites,
    device: torch.device,
    checkpoint: Optional[Path] = None,
    checkpoint_every: int = 500,
    stop_after: Optional[int] = None,
):
    """Train encoder, critic and TC discriminator; returns ``(encoder, random_encoder, history)``.

    With ``checkpoint`` (a file), the whole state (networks, optimisers, every random generator, the
    history and the training seconds so far) is saved there every ``checkpoint_every`` steps and at the
    end, and a run that finds a checkpoint of the same configuration resumes from it: an interrupted
    run continues where it stopped, with the numbers it would have had. ``stop_after`` stops once that
    many steps are done (a chunk of a long run) and returns ``None``. A checkpoint of another
    configuration is an error, never silently reused.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive number of steps, got {checkpoint_every!r}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    enc = Encoder(cfg.n_latents, cfg.width).to(device)
    random_enc = Encoder(cfg.n_latents, cfg.width).to(device)
    random_enc.load_state_dict(enc.state_dict())  # same init: the untrained baseline
    critic = make_critic("concat", cfg.n_latents, cfg.n_latents, hidden_dim=cfg.critic_hidden, layers=cfg.critic_layers)
    critic = critic.to(device)
    disc = mlp(cfg.n_latents, cfg.critic_hidden, 1, cfg.critic_layers).to(device)
    opt = torch.optim.Adam([*enc.parameters(), *critic.parameters()], lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    hist = {k: np.zeros(cfg.steps) for k in ("mi", "tc", "smooth")}
    nets: Dict[str, Any] = {
        "enc": enc,
        "random_enc": random_enc,
        "critic": critic,
        "disc": disc,
        "opt": opt,
        "opt_d": opt_d,
    }
    start, seconds = 0, 0.0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["key"] != checkpoint_key(cfg):
            raise ValueError(f"{checkpoint} is a checkpoint of another configuration; remove it or pass another path")
        for name, obj in nets.items():
            obj.load_state_dict(state[name])
        gen.set_state(state["gen"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        hist, start, seconds = state["hist"], state["step"], state["seconds"]

    def save(step: int) -> None:
        if checkpoint is None:
            return
        state = {name: obj.state_dict() for name, obj in nets.items()}
        state.update(
            key=checkpoint_key(cfg),
            step=step,
            seconds=seconds + time.perf_counter() - t_start,
            hist=hist,
            gen=gen.get_state(),
            rng=rng.bit_generator.state,
            torch_rng=torch.get_rng_state(),
        )
        _save_checkpoint(Path(checkpoint), state)

    t_start = time.perf_counter()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    for t in tqdm(range(start, end), disable=not cfg.progress, desc="dsprites", initial=start, total=cfg.steps):
        idx = rng.integers(0, len(data), cfg.batch_size)
        classes = data.classes_of(idx)
        pair = np.concatenate([data.render(idx), data.render_classes(neighbour_classes(classes, rng))])
        mu_all = enc(_to_tensor(pair, device))  # [2B, L]
        mu, mu_nb = mu_all[: cfg.batch_size], mu_all[cfg.batch_size :]
        eps = torch.randn(mu.shape, generator=gen).to(device)
        y = mu + cfg.noise_std * eps  # the noisy channel
        mi = js_core(critic(mu, y))  # scores[i, j] = f(x_i, y_j)
        if cfg.dependency == "hsic":
            tc = torch.triu(pairwise_hsic(mu), diagonal=1).sum()
        elif cfg.dependency == "minibatch":
            tc = minibatch_tc(mu, y, cfg.noise_std)
        else:
            tc = disc(y).mean()  # density-ratio estimate of TC(y)
        smooth = smoothness(mu, mu_nb, cfg.smooth_norm)
        loss = -mi + cfg.beta_tc * tc + cfg.lambda_smooth * smooth
        opt.zero_grad()
        loss.backward()
        opt.step()
        yd = y.detach()  # discriminator: joint codes (label 1) vs shuffled codes (label 0)
        for _ in range(cfg.disc_steps if cfg.dependency == "discriminator" else 0):
            # f-GAN JS objective of the discriminator, as a loss (logistic regression)
            d_loss = softplus(-disc(yd)).mean() + softplus(disc(shuffle_dims(yd, gen))).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        hist["mi"][t], hist["tc"][t], hist["smooth"][t] = mi.item(), tc.item(), smooth.item()
        if (t + 1) % checkpoint_every == 0 and t + 1 < end:
            save(t + 1)
    if end > start:
        save(end)
    if end < cfg.steps:
        return None
    return enc, random_enc, hist


def eval_classes(per_position: int, seed: int) -> np.ndarray:
    """Evaluation latents ``[1024 * per_position, 6]``: every posX x posY cell, random other factors."""
    rng = np.random.default_rng(seed + 1)
    n = 32 * 32 * per_position
    pos = np.arange(n) % 1024
    return np.stack(
        [
            np.zeros(n, np.int64),
            rng.integers(0, 3, n),
            rng.integers(0, 6, n),
            rng.integers(0, 40, n),
            pos // 32,
            pos % 32,
        ],
        axis=1,
    )


@torch.no_grad()
def encode(enc: nn.Module, data: DSprites, classes: np.ndarray, device: torch.device, chunk: int = 1024) -> np.ndarray:
    """Noise-free codes ``mu(x)`` for ``[N, 6]`` latent classes: ``[N, L]``."""
    enc.eval()
    out = [
        enc(_to_tensor(data.render_classes(classes[s : s + chunk]), device)).cpu().numpy()
        for s in range(0, len(classes), chunk)
    ]
    return np.concatenate(out).astype(np.float64)


def factor_curves(codes: np.ndarray, classes: np.ndarray) -> Dict[str, np.ndarray]:
    """Average of each latent at each value of each factor: ``{factor: [L, n_values]}``."""
    out = {}
    for k, name in enumerate(FACTORS, start=1):
        n = LATENTS_SIZES[k]
        counts = np.bincount(classes[:, k], minlength=n)
        sums = np.stack([np.bincount(classes[:, k], weights=c, minlength=n) for c in codes.T])
        out[name] = sums / np.maximum(counts, 1)
    return out


def position_heatmaps(codes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Average of each latent in each cell: ``[L, 32 (posY, rows), 32 (posX, columns)]``."""
    cell = classes[:, 5] * 32 + classes[:, 4]
    counts = np.maximum(np.bincount(cell, minlength=1024), 1)
    return np.stack([np.bincount(cell, weights=c, minlength=1024) / counts for c in codes.T]).reshape(-1, 32, 32)


def _discretise(codes: np.ndarray, n_bins: int) -> np.ndarray:
    lo, hi = codes.min(0), codes.max(0)
    z = (codes - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.minimum((z * n_bins).astype(np.int64), n_bins - 1)


def mutual_information_gap(codes: np.ndarray, classes: np.ndarray, n_bins: int = 20):
    """MIG (Chen et al. 2018): per factor, (top - second) MI(latent; factor) / H(factor), averaged.

    Latents are discretised into ``n_bins`` equal-width bins. Returns ``(mig, mi [L, F])``
    with ``mi`` normalised by each factor's entropy (nats / nats).
    """
    from sklearn.metrics import mutual_info_score

    disc = _discretise(codes, n_bins)
    mi = np.zeros((codes.shape[1], len(FACTORS)))
    for j, k in enumerate(range(1, 6)):
        counts = np.bincount(classes[:, k])
        p = counts[counts > 0] / len(classes)
        h = -(p * np.log(p)).sum()
        mi[:, j] = [mutual_info_score(classes[:, k], d) / h for d in disc.T]
    top2 = np.sort(mi, axis=0)[-2:]
    return float((top2[1] - top2[0]).mean()), mi


def latent_for_factor(mi: np.ndarray, factor: str) -> Tuple[int, float, float]:
    """The latent that carries the most about ``factor``, from MIG's normalised ``mi [L, F]`` matrix.

    Returns ``(latent, its share of the factor's entropy, its largest share of any other factor's)``: a latent
    that follows one factor has the first share well above the second.
    """
    j = FACTORS.index(factor)
    latent = int(np.argmax(mi[:, j]))
    others = [mi[latent, k] for k in range(mi.shape[1]) if k != j]
    return latent, float(mi[latent, j]), float(max(others))


def linear_probe(codes: np.ndarray, classes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Held-out score of a linear probe per factor: accuracy for shape, R^2 for the others. ``[5]``."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(codes))
    tr, te = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    scores = []
    for k in range(1, 6):
        target = classes[:, k]
        model = LogisticRegression(max_iter=500) if k == 1 else LinearRegression()
        model.fit(codes[tr], target[tr])
        scores.append(model.score(codes[te], target[te]))
    return np.array(scores)


def evaluate(enc: nn.Module, data: DSprites, cfg: DSpritesConfig, device: torch.device) -> Dict[str, Any]:
    """All the numbers and arrays of the figure for one encoder."""
    classes = eval_classes(cfg.eval_per_position, cfg.seed)
    codes = encode(enc, data, classes, device)
    mig, mi = mutual_information_gap(codes, classes, cfg.n_bins)
    return {
        "curves": factor_curves(codes, classes),
        "heatmaps": position_heatmaps(codes, classes),
        "mig": mig,
        "mi_matrix": mi,
        "probe": linear_probe(codes, classes, cfg.seed),
        "latent_std": codes.std(0),
    }


def run(cfg: DSpritesConfig) -> Dict[str, Any]:
    """Train, evaluate trained and random encoders; a dict of numpy arrays (see module doc)."""
    device = resolve_device(cfg.device)
    data = DSprites(cfg.data_path or None)
    t0 = time.perf_counter()
    enc, random_enc, hist = train(cfg, data, device)
    train_s = time.perf_counter() - t0
    return {
        "trained": evaluate(enc, data, cfg, device),
        "random": evaluate(random_enc, data, cfg, device),
        "history": hist,
        "factors": np.array(FACTORS),
        "train_s": train_s,
        "wall_s": time.perf_counter() - t0,
        "device": str(device),
        "data_source": data.source,
    }
