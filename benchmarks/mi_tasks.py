r"""Tasks with known mutual information, written from closed forms, for ``bench_estimate.py``.

Every task draws ``(x, y)`` from a distribution whose MI is known: in closed form (Gaussians; Student-t,
Arellano-Valle et al. 2013; additive uniform noise), or by invariance (MI does not change under an
injective map of x or of y: monotone maps of a coordinate, rotations, the spiral and the Swiss roll), or,
for mixtures and the outlier task, by integrating the known densities: 2-D quadrature on a fine grid (two
grid sizes agree to 1e-6 nats) or Monte Carlo of :math:`\log p(x,y) - \log p(x) - \log p(y)` with 400,000
draws (standard error printed by ``python benchmarks/mi_tasks.py``, which also checks the Student-t and
uniform-noise closed forms by Monte Carlo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np
from scipy import special, stats

Sampler = Callable[[int, np.random.Generator], Tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Task:
    """One benchmark task: a sampler and its true MI in nats, with how the truth was obtained."""

    name: str
    kind: str  # gaussian-dense, gaussian-sparse, student-t, monotone, embedding, uniform-noise, mixture, outliers
    true_mi: float
    how: str
    sample: Sampler
    legacy: bool = False  # one of the five data sets of the first defaults benchmark


# ------------------------------------------------------------------------------------------- Gaussians
def rho_for(mi_per_pair: float) -> float:
    """The correlation of one coordinate pair carrying ``mi_per_pair`` nats: I = -log(1 - rho^2) / 2."""
    return math.sqrt(-math.expm1(-2.0 * mi_per_pair))


def _pairs(n: int, d: int, k: int, mi: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, I_d); the first k coordinates of y are correlated with x's, mi / k nats each; the rest noise."""
    rho = rho_for(mi / k)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d))
    y[:, :k] = rho * x[:, :k] + math.sqrt(1 - rho * rho) * y[:, :k]
    return x, y


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def dense(d: int, mi: float) -> Sampler:
    """Every coordinate pair carries mi / d nats, then x and y are each rotated at random (MI unchanged)."""

    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        x, y = _pairs(n, d, d, mi, rng)
        return x @ _rotation(d, rng).T, y @ _rotation(d, rng).T

    return sample


def sparse(d: int, k: int, mi: float) -> Sampler:
    """Only k of d coordinate pairs are dependent; the other d - k coordinates of x and of y are noise."""
    return lambda n, rng: _pairs(n, d, k, mi, rng)


def legacy_gaussian(d: int, mi: float) -> Sampler:
    """The first benchmark's Gaussians: one rho for every coordinate, no rotation."""
    return lambda n, rng: _pairs(n, d, d, mi, rng)


def mapped(
    base: Sampler, fx: Callable[[np.ndarray], np.ndarray], fy: Callable[[np.ndarray], np.ndarray] = lambda v: v
) -> Sampler:
    """``base`` seen through injective maps of x and y (the MI is unchanged)."""

    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        x, y = base(n, rng)
        return fx(x), fy(y)

    return sample


def cubic(d: int, mi: float) -> Sampler:
    """The first benchmark's cubic task: y observed as (W y)^3 with a random W."""

    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        x, y = _pairs(n, d, d, mi, rng)
        w = rng.standard_normal((d, d)) / math.sqrt(d)
        return x, (y @ w.T) ** 3

    return sample


def half_cube(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.abs(v) ** 1.5


def wiggly(v: np.ndarray) -> np.ndarray:
    """Strictly increasing (derivative 1 + 0.8 cos 3v > 0) but far from linear."""
    return v + 0.8 / 3.0 * np.sin(3.0 * v)


# ------------------------------------------------------------------------------------------- Student-t
def student_t_mi(nu: float, d1: int, d2: int, rho: float = 0.0, k: int = 0) -> float:
    r"""MI of a multivariate Student-t with ``nu`` degrees of freedom and a scale matrix whose first ``k``
    coordinate pairs have correlation ``rho``: the Gaussian term plus the shared-scale term (Arellano-Valle,
    Contreras-Reyes and Genton 2013, Eq. 20)."""

    def g(a: float) -> float:
        return special.gammaln(a / 2) - a / 2 * special.digamma(a / 2)

    shared = g(nu) + g(nu + d1 + d2) - g(nu + d1) - g(nu + d2)
    return -0.5 * k * math.log1p(-rho * rho) + shared


def student_t(nu: float, d: int, rho: float, k: int) -> Sampler:
    """x and y share one chi-square scale: (x, y) = (z_x, z_y) / sqrt(w / nu), z Gaussian with k correlated pairs."""

    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, d))
        y = rng.standard_normal((n, d))
        y[:, :k] = rho * x[:, :k] + math.sqrt(1 - rho * rho) * y[:, :k]
        s = np.sqrt(rng.chisquare(nu, (n, 1)) / nu)
        return x / s, y / s

    return sample


# ------------------------------------------------------------------------------------------- embeddings
def spiral(v: np.ndarray) -> np.ndarray:
    """Rotate each 2-D point by an angle that grows with its squared radius: a diffeomorphism of the plane."""
    r2 = (v**2).sum(1)
    a = 1.5 * r2
    c, s = np.cos(a), np.sin(a)
    return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], 1)


def swiss_roll(v: np.ndarray) -> np.ndarray:
    """2-D latent -> a Swiss roll in 3-D: t = 1.5 pi (1 + 2 Phi(v_0)), (t cos t, v_1, t sin t) / 5; injective."""
    t = 1.5 * math.pi * (1 + 2 * special.ndtr(v[:, 0]))
    return np.stack([t * np.cos(t), v[:, 1] * 2, t * np.sin(t)], 1) / 5


# ------------------------------------------------------------------------------------------- uniform noise
def uniform_noise_mi(a: float) -> float:
    r"""X ~ U(0, 1), Y = X + N with N ~ U(0, a): I = h(Y) - log a; Y's density is a trapezoid, so
    :math:`I = a/2 - \log a` for a <= 1 and :math:`1/(2a)` for a >= 1."""
    return a / 2 - math.log(a) if a <= 1 else 1 / (2 * a)


def uniform_noise(a: float) -> Sampler:
    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(0, 1, (n, 1))
        return x, x + rng.uniform(0, a, (n, 1))

    return sample


# ------------------------------------------------------------------------------------------- mixtures
Mixture = List[Tuple[float, Tuple[float, float], Tuple[float, float], float]]  # weight, mean, (sx, sy), corr


def mixture_sample(comps: Mixture) -> Sampler:
    """A 2-D Gaussian mixture; x is the first coordinate, y the second."""
    w = np.array([c[0] for c in comps])

    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        which = rng.choice(len(comps), size=n, p=w / w.sum())
        out = np.empty((n, 2))
        for i, (_, mu, (sx, sy), r) in enumerate(comps):
            m = which == i
            cov = [[sx * sx, r * sx * sy], [r * sx * sy, sy * sy]]
            out[m] = rng.multivariate_normal(mu, cov, size=int(m.sum()))
        return out[:, :1], out[:, 1:]

    return sample


def mixture_mi(comps: Mixture, grid: int = 2001, half_width: float = 12.0) -> float:
    """The MI of a 2-D Gaussian mixture by quadrature of p log p/(p_x p_y) on a grid (the trapezoid rule)."""
    w = np.array([c[0] for c in comps])
    w = w / w.sum()
    centre = np.average([c[1] for c in comps], axis=0, weights=w)
    gx = np.linspace(centre[0] - half_width, centre[0] + half_width, grid)
    gy = np.linspace(centre[1] - half_width, centre[1] + half_width, grid)
    xx, yy = np.meshgrid(gx, gy, indexing="ij")
    p = np.zeros_like(xx)
    for wi, (_, mu, (sx, sy), r) in zip(w, comps):
        cov = [[sx * sx, r * sx * sy], [r * sx * sy, sy * sy]]
        p += wi * stats.multivariate_normal(mu, cov).pdf(np.stack([xx, yy], -1))
    px = np.trapezoid(p, gy, axis=1)
    py = np.trapezoid(p, gx, axis=0)
    integrand = np.where(
        p > 1e-300, p * (np.log(np.maximum(p, 1e-300)) - np.log(px[:, None] * py[None, :] + 1e-300)), 0
    )
    return float(np.trapezoid(np.trapezoid(integrand, gy, axis=1), gx))


X_MIX: Mixture = [(0.5, (0.0, 0.0), (1.0, 1.0), 0.9), (0.5, (0.0, 0.0), (1.0, 1.0), -0.9)]  # an X shape
CLUSTERS: Mixture = [
    (0.3, (-3.0, -2.0), (1.0, 0.5), 0.0),
    (0.4, (0.0, 2.0), (0.7, 1.0), 0.6),
    (0.3, (3.0, -1.0), (1.2, 0.8), -0.5),
]


# ------------------------------------------------------------------------------------------- outliers
OUTLIER_RATE, OUTLIER_SCALE = 0.05, 5.0


def outliers(d: int, k: int, mi: float) -> Sampler:
    """The sparse Gaussian, each pair replaced with probability 5% by independent N(0, 5^2 I) draws of x and y."""

    def sample(n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        x, y = _pairs(n, d, k, mi, rng)
        bad = rng.random(n) < OUTLIER_RATE
        x[bad] = OUTLIER_SCALE * rng.standard_normal((int(bad.sum()), d))
        y[bad] = OUTLIER_SCALE * rng.standard_normal((int(bad.sum()), d))
        return x, y

    return sample


def outliers_mi_mc(d: int, k: int, mi: float, n: int = 400_000, seed: int = 123) -> Tuple[float, float]:
    """Monte Carlo of E[log p(x,y) - log p(x) - log p(y)] with the mixture's exact densities; (mean, stderr)."""
    rng = np.random.default_rng(seed)
    x, y = outliers(d, k, mi)(n, rng)
    rho = rho_for(mi / k)
    # clean joint: independent pairs (x_i, y_i), correlated for i < k
    lj = stats.norm.logpdf(x).sum(1) + stats.norm.logpdf(y[:, k:]).sum(1)
    lj += stats.norm.logpdf(y[:, :k], rho * x[:, :k], math.sqrt(1 - rho * rho)).sum(1)
    lo = stats.norm.logpdf(x, 0, OUTLIER_SCALE).sum(1) + stats.norm.logpdf(y, 0, OUTLIER_SCALE).sum(1)
    a, b = math.log1p(-OUTLIER_RATE), math.log(OUTLIER_RATE)
    log_joint = np.logaddexp(a + lj, b + lo)

    def log_marg(v: np.ndarray) -> np.ndarray:
        return np.logaddexp(a + stats.norm.logpdf(v).sum(1), b + stats.norm.logpdf(v, 0, OUTLIER_SCALE).sum(1))

    terms = log_joint - log_marg(x) - log_marg(y)
    return float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(n))


OUTLIER_MI = 2.0835  # outliers_mi_mc(5, 2, 2.0) (standard error 0.0021); `python benchmarks/mi_tasks.py` recomputes it


# ------------------------------------------------------------------------------------------- the task list
def tasks() -> List[Task]:
    """The benchmark, the five data sets of the first defaults benchmark first."""
    from mi_lib.data import rho_to_mi

    g = "Gaussian, -k/2 log(1 - rho^2)"
    inv = "invariance under injective maps; Gaussian closed form"
    r41 = rho_to_mi(0.75, 1)
    t3 = student_t_mi(3, 1, 1, 0.6, 1)
    t2 = student_t_mi(2, 2, 2)
    t1 = student_t_mi(1, 1, 1, 0.5, 1)
    return [
        Task("gauss-1d-0.41", "gaussian-dense", r41, g, legacy_gaussian(1, r41), True),
        Task("gauss-10d-2", "gaussian-dense", 2.0, g, legacy_gaussian(10, 2.0), True),
        Task("cubic-5d-2", "monotone", 2.0, inv, cubic(5, 2.0), True),
        Task(
            "sinh-exp-3d-1",
            "monotone",
            1.0,
            inv,
            mapped(legacy_gaussian(3, 1.0), lambda v: np.sinh(3 * v), lambda v: np.exp(2 * v)),
            True,
        ),
        Task("gauss-2d-3", "gaussian-dense", 3.0, g, legacy_gaussian(2, 3.0), True),
        Task("dense-1d-0.1", "gaussian-dense", 0.1, g, dense(1, 0.1)),
        Task("dense-3d-1", "gaussian-dense", 1.0, g + "; rotated", dense(3, 1.0)),
        Task("dense-5d-5", "gaussian-dense", 5.0, g + "; rotated", dense(5, 5.0)),
        Task("dense-5d-8", "gaussian-dense", 8.0, g + "; rotated", dense(5, 8.0)),
        Task("dense-10d-10", "gaussian-dense", 10.0, g + "; rotated", dense(10, 10.0)),
        Task("dense-25d-2", "gaussian-dense", 2.0, g + "; rotated", dense(25, 2.0)),
        Task("dense-50d-2", "gaussian-dense", 2.0, g + "; rotated", dense(50, 2.0)),
        Task("sparse-5d-2", "gaussian-sparse", 2.0, g + "; 2 of 5 pairs", sparse(5, 2, 2.0)),
        Task("sparse-5d-6", "gaussian-sparse", 6.0, g + "; 2 of 5 pairs", sparse(5, 2, 6.0)),
        Task("sparse-5d-10", "gaussian-sparse", 10.0, g + "; 2 of 5 pairs", sparse(5, 2, 10.0)),
        Task("sparse-25d-2", "gaussian-sparse", 2.0, g + "; 2 of 25 pairs", sparse(25, 2, 2.0)),
        Task("halfcube-sparse-25d-2", "monotone", 2.0, inv, mapped(sparse(25, 2, 2.0), half_cube, half_cube)),
        Task("student-t-1d-df3", "student-t", t3, "Arellano-Valle et al. 2013, rho 0.6", student_t(3, 1, 0.6, 1)),
        Task(
            "student-t-2d-df2",
            "student-t",
            t2,
            "Arellano-Valle et al. 2013, shared scale only",
            student_t(2, 2, 0.0, 0),
        ),
        Task(
            "asinh-student-t-1d-df1",
            "monotone",
            t1,
            "Arellano-Valle et al. 2013, rho 0.5; asinh",
            mapped(student_t(1, 1, 0.5, 1), np.arcsinh, np.arcsinh),
        ),
        Task("ncdf-dense-2d-1", "monotone", 1.0, inv, mapped(dense(2, 1.0), special.ndtr, special.ndtr)),
        Task("wiggly-1d-1", "monotone", 1.0, inv, mapped(dense(1, 1.0), wiggly, wiggly)),
        Task("spiral-2d-1", "embedding", 1.0, inv, mapped(sparse(2, 2, 1.0), spiral)),
        Task("swissroll-2d-1", "embedding", 1.0, inv, mapped(sparse(2, 2, 1.0), swiss_roll)),
        Task("uniform-noise-0.1", "uniform-noise", uniform_noise_mi(0.1), "a/2 - log a", uniform_noise(0.1)),
        Task("uniform-noise-0.5", "uniform-noise", uniform_noise_mi(0.5), "a/2 - log a", uniform_noise(0.5)),
        Task("uniform-noise-2", "uniform-noise", uniform_noise_mi(2.0), "1/(2a)", uniform_noise(2.0)),
        Task("mixture-x-1d", "mixture", MIXTURE_MI["x"], "2-D quadrature", mixture_sample(X_MIX)),
        Task("mixture-clusters-1d", "mixture", MIXTURE_MI["clusters"], "2-D quadrature", mixture_sample(CLUSTERS)),
        Task("outliers-sparse-5d-2", "outliers", OUTLIER_MI, "Monte Carlo, 400,000 draws", outliers(5, 2, 2.0)),
    ]


# quadrature on a 2001^2 grid over +-12; `python benchmarks/mi_tasks.py` recomputes both at two grid sizes
MIXTURE_MI: Dict[str, float] = {"x": 0.408443, "clusters": 0.720451}


def _check() -> None:
    """Recompute the numerical truths and check the closed forms by Monte Carlo."""
    for key, comps in (("x", X_MIX), ("clusters", CLUSTERS)):
        print(f"mixture {key}: grid 2001 {mixture_mi(comps):.6f}  grid 3001 {mixture_mi(comps, 3001):.6f}")
    print("outliers MC (mean, se):", outliers_mi_mc(5, 2, 2.0))
    rng = np.random.default_rng(1)
    nu, rho, m = 3.0, 0.6, 400_000
    x, y = student_t(nu, 1, rho, 1)(m, rng)
    joint = stats.multivariate_t(np.zeros(2), [[1, rho], [rho, 1]], df=nu).logpdf(np.hstack([x, y]))
    terms = joint - stats.t(nu).logpdf(x[:, 0]) - stats.t(nu).logpdf(y[:, 0])
    print(
        f"student-t 1d df3 rho .6: closed {student_t_mi(nu, 1, 1, rho, 1):.4f}  MC {terms.mean():.4f} "
        f"± {terms.std() / math.sqrt(m):.4f}"
    )
    x, y = student_t(2.0, 2, 0.0, 0)(m, rng)
    joint = stats.multivariate_t(np.zeros(4), np.eye(4), df=2.0).logpdf(np.hstack([x, y]))
    marg = stats.multivariate_t(np.zeros(2), np.eye(2), df=2.0)
    terms = joint - marg.logpdf(x) - marg.logpdf(y)
    print(
        f"student-t 2d df2: closed {student_t_mi(2.0, 2, 2):.4f}  MC {terms.mean():.4f} "
        f"± {terms.std() / math.sqrt(m):.4f}"
    )
    for a in (0.1, 0.5, 2.0):
        x, y = uniform_noise(a)(m, rng)
        # p(y|x) = 1/a on [x, x+a]; p(y) = trapezoid
        py = np.clip(np.minimum(np.minimum(y, 1 + a - y), min(1.0, a)), 0, None) / a
        terms = -math.log(a) - np.log(py)
        print(f"uniform noise a={a}: closed {uniform_noise_mi(a):.4f}  MC {terms.mean():.4f}")


if __name__ == "__main__":
    _check()
