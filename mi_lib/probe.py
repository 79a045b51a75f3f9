r"""Linear probe: how linearly separable are the classes in a representation?

Tschannen et al. (2019) judge a representation ``g1(top half)`` by multinomial logistic
regression on MinMax-scaled features, trained on the train images and scored on the
test images. The baseline to beat is the raw top half plus ``N(0, 0.05^2)`` noise
(:func:`pixel_baseline`); we compute it, never type it in.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

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


# ----------------------------------------------------------------------------------------------
# Batched probe: many checkpoints' probes solved together in torch.
#
# Objective per probe, exactly sklearn's multinomial L2 logistic regression:
#     F(W, b) = C * sum_i [logsumexp(z_i) - z_i[y_i]] + 0.5 * ||W||^2,   z_i = x_i W + b,
# on MinMax-scaled features (scaler fitted on that probe's train features), b unpenalised.
# Solver: L-BFGS with a fixed preconditioner and a per-probe Armijo backtracking line search.
#   * The features are centred inside the solver. Since b is unpenalised this is an exact
#     reparametrisation (b' = b + mean W) that leaves F unchanged, and it makes the
#     intercept block of the Hessian orthogonal to the weight block.
#   * The preconditioner is Boehning's bound on the Hessian, M = I + (C/2) X^T X per class
#     (X^T X from a strided subset of rows when N is large), inverted by Cholesky. The first
#     step -M^{-1} g is then a majorise-minimise step, and later steps use it as H_0.
#   * Every probe keeps its own history, step size and stopping test, so a probe's result
#     does not depend on which other probes share its batch. Converged probes are dropped.
# ----------------------------------------------------------------------------------------------

FeatureStack = Union[np.ndarray, torch.Tensor, Sequence[Union[np.ndarray, torch.Tensor]]]


@dataclass(frozen=True)
class ProbeFit:
    """Fitted batched probes, in the coordinates sklearn uses (MinMax-scaled features).

    ``coef: [P, K, d]`` and ``intercept: [P, K]`` as sklearn's ``coef_`` / ``intercept_`` (the
    intercept centred over classes, its free direction), ``data_min`` / ``scale: [P, d]`` the
    scaler (``x_scaled = (x - data_min) * scale``), ``n_iter`` / ``converged`` / ``grad_max: [P]``
    with ``grad_max`` the final ``max |dF/dtheta| / (C N)``, the quantity ``tol`` bounds (the
    same scaling as sklearn's lbfgs ``tol``). Probes whose features are not finite are NaN.
    """

    coef: np.ndarray
    intercept: np.ndarray
    data_min: np.ndarray
    scale: np.ndarray
    classes: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    grad_max: np.ndarray

    def decision_function(self, feats: FeatureStack) -> np.ndarray:
        """Logits ``[P, M, K]`` for raw (unscaled) features ``[P, M, d]``."""
        x = _as_stack(feats, "feats", dtype=torch.float64, device=torch.device("cpu")).numpy()
        if x.shape[0] != self.coef.shape[0] or x.shape[2] != self.coef.shape[2]:
            raise ValueError(f"feats has shape {x.shape}; expected [{self.coef.shape[0]}, M, {self.coef.shape[2]}]")
        xs = (x - self.data_min[:, None, :]) * self.scale[:, None, :]
        return np.einsum("pmd,pkd->pmk", xs, self.coef) + self.intercept[:, None, :]

    def accuracy(self, feats: FeatureStack, y: np.ndarray) -> np.ndarray:
        """Fraction of ``y`` predicted correctly, per probe ``[P]`` (NaN where the fit is NaN)."""
        logits = self.decision_function(feats)
        pred = self.classes[np.argmax(logits, axis=2)]
        acc = (pred == np.asarray(y)[None, :]).mean(axis=1)
        return np.where(np.isfinite(logits).all(axis=(1, 2)), acc, np.nan)


def _as_stack(feats: FeatureStack, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``[P, N, d]`` tensor from an array/tensor of that shape or a list of ``[N, d]`` matrices."""
    if isinstance(feats, (np.ndarray, torch.Tensor)):
        items = [feats]
        stacked = True
    elif isinstance(feats, Sequence) and not isinstance(feats, (str, bytes)):
        if len(feats) == 0:
            raise ValueError(f"{name} is an empty list; give at least one feature matrix")
        items = list(feats)
        stacked = False
    else:
        raise ValueError(f"{name} must be an array [P, N, d] or a list of [N, d] arrays, not {type(feats).__name__}")
    mats = []
    for i, a in enumerate(items):
        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
        if not (
            t.dtype.is_floating_point or t.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)
        ):
            raise ValueError(f"{name} must be numeric, got dtype {t.dtype}")
        want = 3 if stacked else 2
        if t.ndim != want:
            where = name if stacked else f"{name}[{i}]"
            raise ValueError(
                f"{where} must be {want}-d ({'[P, N, d]' if stacked else '[N, d]'}), got shape {tuple(t.shape)}"
            )
        mats.append(t.to(device=device, dtype=dtype))
    if stacked:
        return mats[0]
    shapes = {tuple(m.shape) for m in mats}
    if len(shapes) != 1:
        raise ValueError(f"the matrices in {name} must all have the same shape, got {sorted(shapes)}")
    return torch.stack(mats)


def _check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be 1-d with {n} labels (one per row of the features), got shape {y.shape}")
    return y


def _minmax_scale(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """sklearn's MinMaxScaler per probe: ``scale = 1/range`` (range 0 -> scale 1) from the features'
    ``[P, d]`` minima ``lo`` (its ``data_min``) and maxima ``hi``."""
    rng = hi - lo
    rng = torch.where(rng < 10 * torch.finfo(lo.dtype).eps, torch.ones_like(rng), rng)
    return 1.0 / rng


_MAX_HALVINGS = 40
_BOUND = 0.5  # Boehning: diag(p) - p p^T <= (1/2) I


class _BatchedLBFGS:
    """Preconditioned L-BFGS for ``P`` independent multinomial logistic regressions (see above)."""

    def __init__(self, x: torch.Tensor, y1h: torch.Tensor, C: float, history: int, precond_rows: int) -> None:
        self.x, self.y1h, self.C, self.m = x, y1h.t().contiguous(), C, history  # y1h: [N, K] -> [K, N]
        self.yidx = y1h.argmax(dim=1)[None, None, :]  # [1, 1, N] class index of each row
        P, N, d = x.shape
        K = y1h.shape[1]
        step = max(1, N // precond_rows) if precond_rows > 0 else N + 1
        xs = x[:, ::step] if precond_rows > 0 else x[:, :0]
        gram = torch.bmm(xs.transpose(1, 2), xs) * (N / max(xs.shape[1], 1))
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        self.chol = torch.linalg.cholesky(eye + _BOUND * C * gram)
        self.bc = torch.full((P,), _BOUND * C * N, dtype=x.dtype, device=x.device)  # intercept block (centred x)
        self.P, self.N, self.d, self.K = P, N, d, K

    def fg(self, w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Objective and gradient, class-major: ``w: [P, K, d]``, ``b: [P, K]``, ``x: [P, N, d]``.

        The logits are kept as ``[P, K, N]`` (``W^T X^T``): with K = 10 classes, both products and
        the softmax over classes run about twice as fast on a CPU in this layout as in ``[P, N, K]``
        (``benchmarks/bench_probe.py``).
        """
        z = torch.baddbmm(b[:, :, None], w, x.transpose(1, 2))
        zmax = z.amax(dim=1, keepdim=True)
        e = torch.exp(z - zmax)
        s = e.sum(dim=1, keepdim=True)
        lse = zmax + torch.log(s)
        zy = z.gather(1, self.yidx.expand(len(z), 1, -1)).sum((1, 2))  # sum_i z_i[y_i] (torch.mv: 6x the round-off)
        f = self.C * (lse.sum((1, 2)) - zy) + 0.5 * (w * w).sum((1, 2))
        r = e.div_(s).sub_(self.y1h)
        gw = self.C * torch.bmm(r, x) + w
        gb = self.C * r.sum(2)
        return f, gw, gb

    def precond(
        self, gw: torch.Tensor, gb: torch.Tensor, chol: Tuple[torch.Tensor, torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.cholesky_solve(gw.transpose(1, 2), chol[0]).transpose(1, 2), gb / chol[1][:, None]

    def solve(self, tol: float, max_iter: int) -> Tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
        P, d, K, m = self.P, self.d, self.K, self.m
        x, chol = self.x, (self.chol, self.bc)
        dt, dev = x.dtype, x.device
        w = torch.zeros(P, K, d, dtype=dt, device=dev)
        b = torch.zeros(P, K, dtype=dt, device=dev)
        f, gw, gb = self.fg(w, b, x)
        n = (d + 1) * K
        S = torch.zeros(m, P, n, dtype=dt, device=dev)
        Y = torch.zeros(m, P, n, dtype=dt, device=dev)
        rho = torch.zeros(m, P, dtype=dt, device=dev)
        gamma = torch.ones(P, dtype=dt, device=dev)
        stalled = torch.zeros(P, dtype=torch.bool, device=dev)
        scale = 1.0 / (self.C * self.N)
        # ``idx``: which original probes the rows of the working tensors belong to.
        idx = torch.arange(P, device=dev)
        out_w, out_b = torch.zeros_like(w), torch.zeros_like(b)
        n_iter = torch.zeros(P, dtype=torch.long, device=dev)
        gmax_out = torch.zeros(P, dtype=dt, device=dev)
        k = 0
        while True:
            flat_g = torch.cat([gw.reshape(len(idx), -1), gb], dim=1)
            gmax = flat_g.abs().amax(dim=1) * scale
            done = (gmax <= tol) | ~torch.isfinite(gmax) | (k >= max_iter) | stalled
            if bool(done.any()):
                di = idx[done]
                out_w[di], out_b[di], n_iter[di], gmax_out[di] = w[done], b[done], k, gmax[done]
                keep = ~done
                if not bool(keep.any()):
                    break
                idx, w, b, f, gw, gb, flat_g = idx[keep], w[keep], b[keep], f[keep], gw[keep], gb[keep], flat_g[keep]
                S, Y, rho, gamma, stalled = S[:, keep], Y[:, keep], rho[:, keep], gamma[keep], stalled[keep]
                x, chol = x[keep], (chol[0][keep], chol[1][keep])
            Pa = len(idx)
            # two-loop recursion, newest pair first; slots with rho = 0 are empty
            q = flat_g.clone()
            order = [(k - 1 - j) % m for j in range(min(k, m))]
            alpha = {}
            for j in order:
                alpha[j] = rho[j] * (S[j] * q).sum(1)
                q -= alpha[j][:, None] * Y[j]
            qw, qb = self.precond(q[:, : d * K].reshape(Pa, K, d), q[:, d * K :], chol)
            r = gamma[:, None] * torch.cat([qw.reshape(Pa, -1), qb], dim=1)
            for j in reversed(order):
                beta = rho[j] * (Y[j] * r).sum(1)
                r += (alpha[j] - beta)[:, None] * S[j]
            direction = -r
            slope = (direction * flat_g).sum(1)
            bad = ~(slope < 0)
            if bool(bad.any()):  # not a descent direction: restart that probe from the preconditioned gradient
                pw, pb = self.precond(gw, gb, chol)
                sd = -torch.cat([pw.reshape(Pa, -1), pb], dim=1)
                direction = torch.where(bad[:, None], sd, direction)
                slope = (direction * flat_g).sum(1)
                rho[:, bad] = 0
                gamma[bad] = 1
            # Armijo backtracking, per probe
            t = torch.ones(Pa, dtype=dt, device=dev)
            dw, db = direction[:, : d * K].reshape(Pa, K, d), direction[:, d * K :]
            f_new, gw_new, gb_new = self.fg(w + dw, b + db, x)
            slack = 10 * torch.finfo(dt).eps * f.abs()  # round-off in f near the optimum
            for _ in range(_MAX_HALVINGS + 1):
                fail = ~(f_new <= f + 1e-4 * t * slope + slack)
                if not bool(fail.any()) or _ == _MAX_HALVINGS:
                    break
                t = torch.where(fail, 0.5 * t, t)
                fi = fail.nonzero().squeeze(1)
                tf = t[fi]
                f2, gw2, gb2 = self.fg(w[fi] + tf[:, None, None] * dw[fi], b[fi] + tf[:, None] * db[fi], x[fi])
                f_new[fi], gw_new[fi], gb_new[fi] = f2, gw2, gb2
            stalled = fail  # no acceptable step: the probe stops where it is (reported as not converged)
            t = torch.where(stalled, torch.zeros_like(t), t)
            f_new = torch.where(stalled, f, f_new)
            gw_new = torch.where(stalled[:, None, None], gw, gw_new)
            gb_new = torch.where(stalled[:, None], gb, gb_new)
            s = t[:, None] * direction
            w_new, b_new = w + s[:, : d * K].reshape(Pa, K, d), b + s[:, d * K :]
            yv = torch.cat([gw_new.reshape(Pa, -1), gb_new], dim=1) - flat_g
            sy = (s * yv).sum(1)
            ok = sy > 1e-10 * s.norm(dim=1) * yv.norm(dim=1)
            slot = k % m
            S[slot], Y[slot] = s, yv
            rho[slot] = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
            hyw, hyb = self.precond(yv[:, : d * K].reshape(Pa, K, d), yv[:, d * K :], chol)
            yhy = (yv * torch.cat([hyw.reshape(Pa, -1), hyb], dim=1)).sum(1)
            gamma = torch.where(ok & (yhy > 0), sy / torch.where(yhy > 0, yhy, torch.ones_like(yhy)), gamma)
            w, b, f, gw, gb = w_new, b_new, f_new, gw_new, gb_new
            k += 1
        return out_w.transpose(1, 2), out_b, n_iter.cpu().numpy(), gmax_out.cpu().numpy()


def _default_max_batch(n: int, d: int, itemsize: int) -> int:
    """Probes per chunk: keep the chunk's features, logits and solver state near 1 GB."""
    per_probe = itemsize * (2 * n * d + d * d + 4 * n * 10 + 25 * (d + 1) * 10)
    return max(1, int(1e9 // per_probe))


def _fit_chunk(
    x: torch.Tensor, y1h: torch.Tensor, C: float, tol: float, max_iter: int, history: int, precond_rows: int
) -> Dict[str, torch.Tensor | np.ndarray]:
    # amin/amax propagate NaN and keep +-inf, so one pass finds both the scaler and the bad probes
    lo, hi = x.amin(dim=1), x.amax(dim=1)
    finite = torch.isfinite(lo).all(dim=1) & torch.isfinite(hi).all(dim=1)
    if not bool(finite.all()):
        x = torch.where(finite[:, None, None], x, torch.zeros_like(x))
        lo, hi = x.amin(dim=1), x.amax(dim=1)
    scale = _minmax_scale(lo, hi)
    # centred scaled features (x - lo) * scale - mu, with mu their mean, in two passes over x
    xbar = x.mean(dim=1)
    mu = (xbar - lo) * scale
    xc = (x - xbar[:, None, :]).mul_(scale[:, None, :])
    solver = _BatchedLBFGS(xc, y1h, C, history, precond_rows)
    w, b, n_iter, gmax = solver.solve(tol, max_iter)
    intercept = b - torch.einsum("pd,pdk->pk", mu, w)
    intercept = intercept - intercept.mean(dim=1, keepdim=True)
    return {"w": w, "intercept": intercept, "lo": lo, "scale": scale, "finite": finite, "n_iter": n_iter, "gmax": gmax}


def _validate(C: float, tol: float, max_iter: int, history: int, precond_rows: int) -> None:
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive finite number, got {C!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter!r}")
    if int(history) < 1:
        raise ValueError(f"history must be at least 1, got {history!r}")
    if int(precond_rows) < 0:
        raise ValueError(f"precond_rows must be >= 0 (0: no preconditioner), got {precond_rows!r}")


def _run_probes(
    train_feats: FeatureStack,
    y_train: np.ndarray,
    test_feats: Optional[FeatureStack],
    y_test: Optional[np.ndarray],
    C: float,
    tol: float,
    max_iter: int,
    history: int,
    precond_rows: int,
    device: Optional[Union[str, torch.device]],
    dtype: torch.dtype,
    max_batch: Optional[int],
) -> Tuple[ProbeFit, Optional[np.ndarray]]:
    _validate(C, tol, max_iter, history, precond_rows)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cpu = torch.device("cpu")
    # Keep the stacks where they are (CPU unless given on the device); chunks move to ``dev``.
    xtr_all = _as_stack(train_feats, "train_feats", dtype=dtype, device=_where(train_feats, cpu))
    P, N, d = xtr_all.shape
    y_train = _check_labels(y_train, N, "y_train")
    classes, y_idx = np.unique(y_train, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y_train needs at least two classes, got {classes.tolist()}")
    xte_all = None
    if test_feats is not None:
        xte_all = _as_stack(test_feats, "test_feats", dtype=dtype, device=_where(test_feats, cpu))
        if xte_all.shape[0] != P or xte_all.shape[2] != d:
            raise ValueError(
                f"test_feats has shape {tuple(xte_all.shape)}; expected [{P}, M, {d}] to match train_feats"
            )
        if y_test is None:
            raise ValueError("y_test is required with test_feats")
        y_test = _check_labels(y_test, xte_all.shape[1], "y_test")
    K = len(classes)
    y1h = torch.zeros(N, K, dtype=dtype, device=dev)
    y1h[torch.arange(N, device=dev), torch.as_tensor(y_idx, device=dev)] = 1
    if max_batch is None:
        max_batch = _default_max_batch(N, d, torch.finfo(dtype).bits // 8)
    if int(max_batch) < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch!r}")
    parts: Dict[str, list] = {k: [] for k in ("coef", "intercept", "lo", "scale", "n_iter", "gmax", "ok", "acc")}
    for start in range(0, P, int(max_batch)):
        sl = slice(start, min(P, start + int(max_batch)))
        r = _fit_chunk(xtr_all[sl].to(dev), y1h, float(C), float(tol), int(max_iter), int(history), int(precond_rows))
        w, intercept, lo, scale, finite = r["w"], r["intercept"], r["lo"], r["scale"], r["finite"]
        assert isinstance(w, torch.Tensor) and isinstance(intercept, torch.Tensor)
        assert isinstance(lo, torch.Tensor) and isinstance(scale, torch.Tensor) and isinstance(finite, torch.Tensor)
        if xte_all is not None:
            xte = xte_all[sl].to(dev)
            ok = finite & torch.isfinite(xte).all(dim=2).all(dim=1)
            xte_s = (torch.where(ok[:, None, None], xte, torch.zeros_like(xte)) - lo[:, None, :]) * scale[:, None, :]
            pred = torch.baddbmm(intercept[:, None, :], xte_s, w).argmax(dim=2).cpu().numpy()
            acc = (classes[pred] == np.asarray(y_test)[None, :]).mean(axis=1)
            parts["acc"].append(np.where(ok.cpu().numpy(), acc, np.nan))
        parts["coef"].append(w.transpose(1, 2).double().cpu().numpy())
        parts["intercept"].append(intercept.double().cpu().numpy())
        parts["lo"].append(lo.double().cpu().numpy())
        parts["scale"].append(scale.double().cpu().numpy())
        parts["n_iter"].append(r["n_iter"])
        parts["gmax"].append(np.asarray(r["gmax"], dtype=np.float64))
        parts["ok"].append(finite.cpu().numpy())
    ok_all = np.concatenate(parts["ok"])
    nan_where = ~ok_all

    def cat(key: str) -> np.ndarray:
        a = np.concatenate(parts[key]).astype(np.float64)
        a[nan_where] = np.nan
        return a

    gmax = cat("gmax")
    fit = ProbeFit(
        coef=cat("coef"),
        intercept=cat("intercept"),
        data_min=cat("lo"),
        scale=cat("scale"),
        classes=classes,
        n_iter=np.concatenate(parts["n_iter"]),
        converged=ok_all & (gmax <= tol),
        grad_max=gmax,
    )
    n_bad = int((ok_all & ~fit.converged).sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} of {P} probes did not reach tol={tol} in max_iter={max_iter} iterations "
            f"(largest scaled gradient {np.nanmax(gmax):.2e}); raise max_iter",
            ConvergenceWarning,
            stacklevel=3,
        )
    return fit, (np.concatenate(parts["acc"]) if xte_all is not None else None)


def _where(feats: FeatureStack, default: torch.device) -> torch.device:
    if isinstance(feats, torch.Tensor):
        return feats.device
    return default


def fit_probes(
    train_feats: FeatureStack,
    y_train: np.ndarray,
    C: float = 10.0,
    tol: float = 1e-4,
    max_iter: int = 1000,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float64,
    max_batch: Optional[int] = None,
    history: int = 10,
    precond_rows: int = 2048,
) -> ProbeFit:
    """Fit ``P`` multinomial L2 logistic regressions at once, sklearn's objective on MinMax features.

    ``train_feats``: ``[P, N, d]`` (numpy or torch) or a list of ``P`` matrices ``[N, d]``;
    ``y_train: [N]`` shared by all probes. Each probe minimises
    ``C * sum_i log_loss_i + 0.5 * ||W||^2`` (intercept unpenalised) on its own MinMax-scaled
    features, until ``max |gradient| / (C N) <= tol`` (sklearn lbfgs's ``tol``) or ``max_iter``.
    Deterministic; runs on ``device`` in chunks of ``max_batch`` probes (default: about 1 GB a
    chunk). ``history``: L-BFGS pairs kept; ``precond_rows``: about how many (strided) rows
    estimate the preconditioner's ``X^T X`` (0: no preconditioner).
    """
    fit, _ = _run_probes(
        train_feats, y_train, None, None, C, tol, max_iter, history, precond_rows, device, dtype, max_batch
    )
    return fit


def probe_accuracies(
    train_feats: FeatureStack,
    y_train: np.ndarray,
    test_feats: FeatureStack,
    y_test: np.ndarray,
    C: float = 10.0,
    tol: float = 1e-4,
    max_iter: int = 1000,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
    max_batch: Optional[int] = None,
    history: int = 10,
    precond_rows: int = 2048,
) -> np.ndarray:
    """Test accuracies ``[P]`` of ``P`` probes fitted together (see :func:`fit_probes`).

    ``test_feats``: ``[P, M, d]`` or a list of ``[M, d]``, scaled with each probe's train scaler;
    ``y_test: [M]``. A probe whose train or test features are not finite scores NaN.
    """
    _, acc = _run_probes(
        train_feats, y_train, test_feats, y_test, C, tol, max_iter, history, precond_rows, device, dtype, max_batch
    )
    assert acc is not None
    return acc
