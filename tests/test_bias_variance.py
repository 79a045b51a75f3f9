"""Figs. 3 and 4 (bias / variance with the optimal critic; gradient accuracy): closed forms,
second implementations and the properties the chapter claims, at small settings."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from mi_lib import bounds as B
from mi_lib.critics import GaussianOptimalCritic
from mi_lib.data import mi_to_rho, rho_to_mi
from mi_lib.experiments import bias_variance as bv
from mi_lib.experiments import gradients as gr
from mi_lib.figures import bias_variance as figs

SMALL = dataclasses.replace(bv.CONFIGS["smoke"], mi_levels=(2.0, 4.0, 10.0), batch_sizes=(64,), n_reps=400)


@pytest.fixture(scope="module")
def fig3():
    return bv.run(SMALL)


def _row(res, name):
    return list(res["estimators"]).index(name)


def test_batched_scores_match_the_critic_module():
    rho, d = mi_to_rho(3.0, 20), 20
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(2, 7, d, generator=g, dtype=torch.float64) for _ in range(2))
    critic = GaussianOptimalCritic(rho, d)
    for r in range(2):  # the [R, K, K] stack equals the [K, K] critic, rep by rep
        torch.testing.assert_close(bv.optimal_scores(x, y, rho)[r], critic(x[r], y[r]))
        torch.testing.assert_close(bv.log_conditional(x, y, rho)[r], critic.log_conditional(x[r], y[r]))


def test_stacked_estimates_equal_the_public_bounds():
    rho, d, k = mi_to_rho(5.0, 20), 20, 16
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, k, d, generator=g, dtype=torch.float64)
    y = rho * x + math.sqrt(1 - rho * rho) * torch.randn(3, k, d, generator=g, dtype=torch.float64)
    alphas = (0.01, 0.5)
    est = bv.evaluate_estimators(x, y, rho, alphas)
    for r in range(3):
        f = GaussianOptimalCritic(rho, d)(x[r], y[r])
        want = [
            B.nwj_lower_bound(f + 1.0),
            B.infonce_lower_bound(f),
            B.tnce_lower_bound(GaussianOptimalCritic(rho, d).log_conditional(x[r], y[r])),
        ]
        want += [B.interpolated_lower_bound(f, 0.0, math.log(a / (1 - a))) for a in alphas]
        torch.testing.assert_close(est[:, r], torch.stack(want))


def test_nwj_unbiased_within_monte_carlo_error_and_variance_grows(fig3):
    i = _row(fig3, "NWJ")
    for im in (0, 1):  # 2 and 4 nats: tails still light enough for the standard error to mean something
        assert abs(fig3["bias"][i, 0, im]) < 3 * fig3["stderr"][i, 0, im]
    var = fig3["variance"][i, 0]
    assert var[1] > 1.5 * var[0] and var[2] > var[1]


def test_infonce_capped_and_biased_at_high_mi(fig3):
    i, k = _row(fig3, "InfoNCE"), 64
    assert np.all(fig3["mean"][i, 0] <= math.log(k) + 1e-6)
    assert fig3["bias"][i, 0, -1] < -5.0  # 10 nats, K = 64: at least 10 - log 64 = 5.84 nats low
    # TNCE is the same estimate in distribution
    assert abs(fig3["mean"][_row(fig3, "TNCE"), 0, -1] - fig3["mean"][i, 0, -1]) < 0.05


def test_some_interpolated_bound_beats_nwj_and_infonce_at_high_mi(fig3):
    mse = fig3["mse"][:, 0, -1]
    best_alpha = min(mse[_row(fig3, n)] for n in fig3["estimators"] if n.startswith("I_alpha"))
    assert best_alpha < mse[_row(fig3, "NWJ")] and best_alpha < mse[_row(fig3, "InfoNCE")]


def test_true_gradient_closed_form():
    d, mi, h = 20, 3.0, 1e-6
    rho = mi_to_rho(mi, d)
    numeric = (rho_to_mi(rho + h, d) - rho_to_mi(rho - h, d)) / (2 * h) / d  # one component
    assert gr.true_gradient(mi, d) == pytest.approx(numeric, rel=1e-6)


def test_gradient_estimates_match_finite_differences():
    d, k, rho0 = 20, 8, mi_to_rho(4.0, 20)
    g = torch.Generator().manual_seed(2)
    x, eps = (torch.randn(2, k, d, generator=g, dtype=torch.float64) for _ in range(2))
    grads = gr.gradient_estimates(x, eps, rho0, (0.0,))  # [3, 2, d]
    c, h = 5, 1e-6
    rho = torch.full((d,), rho0, dtype=torch.float64)

    def nwj(r):
        y = r * x + torch.sqrt(1 - r * r) * eps
        return B.tuba_core(bv.optimal_scores(x, y, rho0) + 1.0, torch.ones(k, dtype=torch.float64))

    e = torch.zeros(d, dtype=torch.float64)
    e[c] = h
    fd = (nwj(rho + e) - nwj(rho - e)) / (2 * h)
    torch.testing.assert_close(grads[0, :, c], fd, rtol=1e-5, atol=1e-7)


def test_gradient_mean_matches_closed_form_at_large_batch():
    """NWJ's gradient (fixed optimal critic, reparameterised samples) is unbiased; InfoNCE's is as K grows."""
    cfg = gr.GradientConfig(mi_levels=(2.0,), batch_sizes=(256,), alpha_logits=(), n_reps=64, num_threads=None)
    res = gr.run(cfg)
    truth = res["true_grad"][0]
    nwj, nce = res["grad_mean"][0, 0, 0], res["grad_mean"][1, 0, 0]
    se = math.sqrt(res["grad_var"][0, 0, 0] / (cfg.n_reps * cfg.dim))  # components ~ independent
    assert abs(nwj - truth) < max(4 * se, 0.02 * truth)
    assert abs(nce - truth) < 0.1 * truth  # consistent as K grows: 2 nats << log 256
    small_k = gr.run(dataclasses.replace(cfg, batch_sizes=(8,), mi_levels=(4.0,)))
    assert small_k["grad_mean"][1, 0, 0] < 0.5 * small_k["true_grad"][0]  # InfoNCE shrinks when I > log K


def test_best_alpha_table_and_figures_run_on_small_arrays(tmp_path):
    res = gr.run(gr.CONFIGS["smoke"])
    assert res["best_alpha"].shape == (2, 2)
    assert set(np.unique(res["best_alpha"])) <= set(res["alpha"])
    fig = figs.plot_gradient_accuracy(res)
    assert len(fig.axes) >= 3
    fig = figs.plot_gradient_accuracy(res, shared=True)
    small3 = bv.run(dataclasses.replace(bv.CONFIGS["smoke"], n_reps=8, mi_levels=(0.0, 2.0), batch_sizes=(8,)))
    fig3 = figs.plot_bias_variance(small3)
    assert len(fig3.axes) == 3
    from mi_lib.figures import save_figure

    paths = save_figure(fig3, tmp_path, "fig3", figs.fig3_numbers(small3))
    assert paths["png"].stat().st_size > 0
    save_figure(fig, tmp_path, "fig4", figs.fig4_numbers(res))


def test_runs_are_reproducible():
    cfg = dataclasses.replace(bv.CONFIGS["smoke"], n_reps=8, mi_levels=(3.0,), batch_sizes=(8,))
    a, b = bv.run(cfg), bv.run(cfg)
    np.testing.assert_array_equal(a["mean"], b["mean"])
