"""The captions' claims of Figs. 3 and 4 (Poole et al. 2019), checked on the archived paper-profile numbers.

These read ``results/<notebook>/paper/cells/`` only (never compute): a claim whose cells are not
archived yet is skipped, and says which. Claims come from the paper's captions as ../shared/PAPER.md
gives them; the tolerances are in Monte Carlo standard errors of the archived 10,000 (Fig. 3)
minibatches a cell, or stated in nats.
"""

import math

import numpy as np
import pytest

from mi_lib import publish_grid as PG


def _archive(name):
    try:
        return PG.load(PG.figure(name), "paper").results
    except FileNotFoundError:
        pytest.skip(f"no {name} paper-profile cell archived yet (scripts/archive_grid.py {name})")


def _need(results, key, ik, mis):
    """Indices of the MI levels ``mis``; skip unless every (ik, mi) cell is archived."""
    levels = list(np.asarray(results["mi"]))
    idx = [levels.index(m) for m in mis]
    if np.isnan(np.asarray(results[key])[..., ik, idx]).any():
        pytest.skip(f"cells K={int(results['batch_sizes'][ik])}, MI={[float(m) for m in mis]} not archived yet")
    return idx


@pytest.fixture(scope="module")
def fig3():
    return _archive("fig3")


@pytest.fixture(scope="module")
def fig4():
    return _archive("fig4")


def _est(results, name):
    return list(results["estimators"]).index(name)


@pytest.mark.parametrize("ik", [0, 1, 2])
def test_fig3_nwj_is_unbiased_up_to_4_nats(fig3, ik):
    """NWJ with the optimal critic is unbiased: within 4 standard errors of the truth (MI <= 4 nats)."""
    mis = [m for m in fig3["mi"] if m <= 4.0]
    idx = _need(fig3, "bias", ik, mis)
    e = _est(fig3, "NWJ")
    bias, se = fig3["bias"][e, ik, idx], fig3["stderr"][e, ik, idx]
    assert np.all(np.abs(bias) <= 4 * se + 1e-6), (bias, se)


_NWJ_VAR_K512 = pytest.mark.xfail(
    strict=True,
    reason="finding at paper scale (book/bias_variance.md): at K = 512 NWJ's variance grows 90-fold from 2 to "
    "8 nats (0.0073 to 0.657 nats^2), short of this test's 100-fold (725 at K = 16, 515 at K = 64): at a large "
    "batch the joint term's variance dominates at 2 nats, and the e^{2I}/K^2 term takes over only at higher MI",
)


@pytest.mark.parametrize("ik", [0, 1, pytest.param(2, marks=_NWJ_VAR_K512)])
def test_fig3_nwj_variance_grows_fast_with_mi(fig3, ik):
    """Its variance grows fast with MI: at 8 nats at least 100 times that at 2 nats."""
    idx = _need(fig3, "variance", ik, [2.0, 8.0])
    var = fig3["variance"][_est(fig3, "NWJ"), ik, idx]
    assert var[1] >= 100 * var[0], var


_NCE_BIAS_K512 = pytest.mark.xfail(
    strict=True,
    reason="finding at paper scale (book/bias_variance.md): at K = 512 InfoNCE with the optimal critic is "
    "already 0.31 nat low at 4 nats (log K - 2.24; 0.20 at 3.5 nats): its bias grows well before the MI "
    "reaches log K, so 'nearly unbiased up to log K - 2' holds at K = 16 and 64 but not at 512",
)


@pytest.mark.parametrize("ik", [0, 1, pytest.param(2, marks=_NCE_BIAS_K512)])
def test_fig3_infonce_bias_grows_once_mi_passes_log_k(fig3, ik):
    """InfoNCE never exceeds log K; it is nearly unbiased well below log K (|bias| < 0.3 nat at
    MI <= log K - 2) and saturates above it (within 1 nat of log K at 10 nats: bias ~ log K - I)."""
    k = int(fig3["batch_sizes"][ik])
    e = _est(fig3, "InfoNCE")
    low = [m for m in fig3["mi"] if m <= math.log(k) - 2]
    idx = _need(fig3, "mean", ik, list(fig3["mi"]))
    mean = fig3["mean"][e, ik, idx]
    assert np.all(mean <= math.log(k) + 1e-4), mean
    il = [list(fig3["mi"]).index(m) for m in low]
    assert np.all(np.abs(fig3["bias"][e, ik, il]) < 0.3), fig3["bias"][e, ik, il]
    assert mean[-1] >= math.log(k) - 1.0 and fig3["mi"][-1] == 10.0


@pytest.mark.parametrize("ik", [0, 1, 2])
def test_fig3_i_alpha_trades_bias_for_variance(fig3, ik):
    """I_alpha lies between: at 8 and 10 nats, alpha = 0.01 has less bias and more variance than InfoNCE."""
    idx = _need(fig3, "bias", ik, [8.0, 10.0])
    nce, ia = _est(fig3, "InfoNCE"), _est(fig3, "I_alpha=0.01")
    assert np.all(fig3["bias"][ia, ik, idx] > fig3["bias"][nce, ik, idx])
    assert np.all(fig3["variance"][ia, ik, idx] > fig3["variance"][nce, ik, idx])


def test_fig4_small_mi_and_batch_favour_infonce_like_alpha(fig4):
    """At the smallest batch and MI the gradient-MSE-best alpha is InfoNCE-like (>= 0.5)."""
    _need(fig4, "grad_mse", 0, [float(fig4["mi"][0])])
    assert fig4["best_alpha"][0, 0] >= 0.5, fig4["best_estimator"][0, 0]


def test_fig4_large_mi_and_batch_favour_nwj_like_alpha(fig4):
    """At the largest batch and MI the best alpha is NWJ-like (<= 0.1)."""
    _need(fig4, "grad_mse", len(fig4["batch_sizes"]) - 1, [float(fig4["mi"][-1])])
    assert fig4["best_alpha"][-1, -1] <= 0.1, fig4["best_estimator"][-1, -1]


@pytest.mark.parametrize("ik", range(8))
def test_fig4_best_alpha_falls_with_mi(fig4, ik):
    """For every batch size the best alpha at the highest MI is at most the best alpha at the lowest."""
    if ik >= len(fig4["batch_sizes"]):
        pytest.skip("no such batch size")
    idx = _need(fig4, "grad_mse", ik, [float(fig4["mi"][0]), float(fig4["mi"][-1])])
    assert fig4["best_alpha"][ik, idx[1]] <= fig4["best_alpha"][ik, idx[0]]


@pytest.mark.parametrize("im", range(20))
def test_fig4_best_alpha_falls_with_batch_size(fig4, im):
    """At every MI level the best alpha at the largest batch is at most the best alpha at the smallest."""
    if im >= len(fig4["mi"]):
        pytest.skip("no such MI level")
    mi = float(fig4["mi"][im])
    last = len(fig4["batch_sizes"]) - 1
    _need(fig4, "grad_mse", 0, [mi])
    _need(fig4, "grad_mse", last, [mi])
    assert fig4["best_alpha"][last, im] <= fig4["best_alpha"][0, im], (mi, fig4["best_alpha"][:, im])
