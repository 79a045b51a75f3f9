r"""Linear probe: how linearly separable are the classes in a representation?

Tschannen et al. (2019) judge a representation ``g1(top half)`` by multinomial logistic
regression on MinMax-scaled features, trained on the train images and scored on the
test images. The baseline to beat is the raw top half plus ``N(0, 0.05^2)`` noise
(:func:`pixel_baseline`); we compute it, never type it in.
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler

PIXEL_NOISE_STD = 0.05


def linear_probe_accuracy(
    f_train: np.ndarray,
    y_train: np.ndarray,
    f_test: np.ndarray,
    y_test: np.ndarray,
    max_iter: int = 200,
    C: float = 1.0,
) -> float:
    """Test accuracy of multinomial logistic regression (lbfgs) on MinMax-scaled features.

    ``f_train: [N, d]``, ``f_test: [M, d]``; the scaler is fitted on the train features only.
    """
    scaler = MinMaxScaler().fit(f_train)
    clf = LogisticRegression(max_iter=max_iter, C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(f_train), y_train)
    return float(clf.score(scaler.transform(f_test), y_test))


def add_pixel_noise(x: np.ndarray, seed: int, std: float = PIXEL_NOISE_STD) -> np.ndarray:
    """``x + N(0, std^2)`` with a fixed seed (float32)."""
    rng = np.random.default_rng(seed)
    return (x + std * rng.standard_normal(x.shape)).astype(np.float32)


def pixel_baseline(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, seed: int = 0, max_iter: int = 200
) -> float:
    """Probe accuracy of the raw top-half pixels plus ``N(0, 0.05^2)`` noise."""
    return linear_probe_accuracy(
        add_pixel_noise(x_train, seed), y_train, add_pixel_noise(x_test, seed + 1), y_test, max_iter=max_iter
    )


@torch.no_grad()
def encode(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    x: np.ndarray,
    batch_size: int = 1024,
    device: Optional[torch.device] = None,
) -> np.ndarray:
    """Apply ``encoder`` to ``x: [N, d]`` in batches; returns float64 numpy ``[N, d_out]``."""
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i : i + batch_size], dtype=torch.float32, device=device)
        out.append(encoder(xb).double().cpu().numpy())
    return np.concatenate(out)


def probe_encoder(
    encoder: torch.nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    max_iter: int = 200,
    device: Optional[torch.device] = None,
) -> float:
    """Linear-probe accuracy of ``encoder``'s features (inputs already noised by the caller)."""
    was_training = getattr(encoder, "training", False)
    if hasattr(encoder, "eval"):
        encoder.eval()
    try:
        f_tr = encode(encoder, x_train, device=device)
        f_te = encode(encoder, x_test, device=device)
    finally:
        if was_training:
            encoder.train()
    if not (np.isfinite(f_tr).all() and np.isfinite(f_te).all()):
        return float("nan")
    return linear_probe_accuracy(f_tr, y_train, f_te, y_test, max_iter=max_iter)
