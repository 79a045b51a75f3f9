"""estimate_mi on a user's samples: accuracy on known cases, float64 preprocessing, reproducibility, every
error, the diagnostics and their warnings, the plot."""

import math
import time
import warnings

import numpy as np
import pytest
import torch

from mi_lib import estimate_mi
from mi_lib.data import rho_to_mi
from mi_lib.estimate import PREPROCESS, min_samples

FAST = dict(max_steps=150, eval_every=50, batch_size=64, hidden_dim=32, embed_dim=16, warn=False)


def _pairs(n=6000, rho=0.75, seed=0, d=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))


def test_one_d_gaussian_within_a_tenth_of_a_nat():
    x, y = _pairs()
    res = estimate_mi(x, y, max_steps=1500)
    assert abs(res.estimate - rho_to_mi(0.75, 1)) < 0.1
    assert 0 < res.stderr < 0.1
    s = res.settings
    assert s["n_test"] == 1800 and s["n_val"] == 600 and s["n_test_blocks"] >= 2
    assert len(res.history) == s["steps_run"] <= 1500
    assert res.diagnostics.converged and res.diagnostics.trustworthy


def test_high_mi_five_dim_gaussian_within_15_percent_in_under_a_minute():
    rng = np.random.default_rng(5)
    d, mi = 5, 8.0
    rho = math.sqrt(-math.expm1(-2 * mi / d))
    x = rng.standard_normal((6000, d))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((6000, d))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # close to log N_test: the diagnostics say the truth may be higher
        res = estimate_mi(x, y)
    assert time.perf_counter() - t0 < 60
    assert abs(res.estimate - mi) < 0.15 * mi, res


def test_independent_data_gives_about_zero_and_torch_input_works():
    rng = np.random.default_rng(1)
    x, y = torch.tensor(rng.standard_normal((3000, 2))), torch.tensor(rng.standard_normal(3000))
    res = estimate_mi(x, y, max_steps=300, warn=False)
    assert abs(res.estimate) < 0.1


def test_seeds_are_bit_reproducible_and_matter():
    x, y = _pairs(2000)
    a = estimate_mi(x, y, seed=3, **FAST)
    b = estimate_mi(x, y, seed=3, **FAST)
    c = estimate_mi(x, y, seed=4, **FAST)
    assert a.estimate == b.estimate and a.stderr == b.stderr and np.array_equal(a.history, b.history)
    assert np.array_equal(a.val_history, b.val_history)
    assert a.estimate != c.estimate


@pytest.mark.parametrize("preprocess", ["rank", "standardize"])
def test_a_large_offset_changes_nothing(preprocess):
    x, y = _pairs(3000)
    a = estimate_mi(x, y, preprocess=preprocess, **FAST)
    b = estimate_mi(x + 1e8, y - 3e7, preprocess=preprocess, **FAST)
    assert abs(a.estimate - b.estimate) < 0.02
    assert abs(a.estimate - rho_to_mi(0.75, 1)) < 0.2  # and it is not the 0.000 of a float32 cast


def test_preprocessing_is_float64_so_integer_ids_near_2_31_stay_distinct():
    ids = (2**31 - 4000 + np.arange(4000)).astype(np.int64)
    for prep in PREPROCESS.values():
        (z,) = prep(ids[:, None].astype(np.float64))
        assert len(np.unique(z.astype(np.float32))) == 4000


def test_rank_preprocessing_makes_monotone_maps_irrelevant():
    x, y = _pairs(1500)
    a = estimate_mi(x, y, seed=1, **FAST)
    b = estimate_mi(np.sinh(3 * x), np.exp(2 * y) + 5, seed=1, **FAST)  # strictly increasing maps
    assert a.estimate == b.estimate
    c = estimate_mi(np.sinh(3 * x), np.exp(2 * y) + 5, seed=1, preprocess="standardize", **FAST)
    assert c.estimate != a.estimate


def test_at_least_two_held_out_blocks_or_an_error_naming_the_minimum_n():
    need = min_samples(batch_size=64)
    x, y = _pairs(need)
    res = estimate_mi(x, y, **FAST)
    assert res.settings["n_test_blocks"] >= 2 and math.isfinite(res.stderr)
    with pytest.raises(ValueError, match=f"N={need - 1} samples are too few.*N >= {need}"):
        estimate_mi(x[:-1], y[:-1], **FAST)
    # the defaults: one training batch, two blocks in each held-out split; N = 427-853 once gave one block
    assert min_samples() == 315
    assert all(estimate_mi(*_pairs(n), **FAST).settings["n_test_blocks"] >= 2 for n in (427, 600, 853))


BAD = [
    (dict(bound="kl"), "valid bounds"),
    (dict(train_bound="kl"), "valid bounds"),
    (dict(bound="tuba", train_bound="js"), "needs a learned baseline"),
    (dict(critic="deep"), "valid critics"),
    (dict(max_steps=2.5), "max_steps must be an integer"),
    (dict(max_steps=0), "max_steps must be an integer >= 1"),
    (dict(batch_size=1), "batch_size must be an integer >= 2"),
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(eval_batch_size=4), "eval_batch_size must be an integer >= 16"),
    (dict(hidden_dim=0), "hidden_dim must be an integer >= 1"),
    (dict(layers=0), "layers must be an integer >= 1"),
    (dict(embed_dim=-1), "embed_dim must be an integer >= 1"),
    (dict(eval_every=0), "eval_every must be"),
    (dict(patience=0), "patience must be"),
    (dict(seed=None), "seed must be an integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(lr=0.0), r"lr must be in \(0.0, inf\)"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(lr="fast"), "lr must be a finite number"),
    (dict(min_delta=-1.0), "min_delta must be in"),
    (dict(test_fraction=1.0), "test_fraction must be in"),
    (dict(val_fraction=0.0), "val_fraction must be in"),
    (dict(test_fraction=0.6, val_fraction=0.5), "must be below 1"),
    (dict(preprocess="whiten"), "unknown preprocess"),
    (dict(device=0), "device must be a string"),
    (dict(device="tpu"), "unknown device"),
    (dict(progress="yes"), "progress must be True or False"),
    (dict(warn=1), "warn must be True or False"),
    (dict(alpha_logit=float("inf")), "alpha_logit must be a finite number"),
]


@pytest.mark.parametrize(
    "kwargs, message", BAD, ids=[next(iter(k)) + "=" + repr(next(iter(k.values()))) for k, _ in BAD]
)
def test_every_bad_argument_is_a_clear_value_error(kwargs, message):
    x, y = _pairs(1000)
    with pytest.raises(ValueError, match=message):
        estimate_mi(x, y, **kwargs)


def test_bad_data_are_clear_value_errors():
    x, y = _pairs(1000)
    with pytest.raises(ValueError, match="same number of samples"):
        estimate_mi(x, y[:-1])
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        estimate_mi(bad, y)
    with pytest.raises(ValueError, match=r"\[N\] or \[N, d\]"):
        estimate_mi(np.zeros((10, 2, 2)), y[:10])
    with pytest.raises(ValueError, match="no columns"):
        estimate_mi(np.zeros((1000, 0)), y)
    with pytest.raises(ValueError, match="real numbers"):
        estimate_mi(np.array(["a"] * 1000), y)
    with pytest.raises(ValueError, match="must be real"):
        estimate_mi(x + 1j, y)


def test_x_identical_to_y_warns_that_the_number_is_meaningless():
    x, _ = _pairs(2000)
    with pytest.warns(UserWarning, match="infinite"):
        res = estimate_mi(x, x, **{**FAST, "warn": True})
    assert res.diagnostics.identical and not res.diagnostics.trustworthy
    with pytest.warns(UserWarning, match="infinite"):
        estimate_mi(x, -3 * x + 1, **{**FAST, "warn": True})  # a decreasing copy too


def test_unconverged_training_warns():
    x, y = _pairs(3000)
    with pytest.warns(UserWarning, match="had not converged.*raise max_steps"):
        res = estimate_mi(x, y, max_steps=40, eval_every=50)
    assert not res.diagnostics.converged


def test_an_estimate_at_the_cap_warns():
    x, y = _pairs(3000, rho=0.999, d=3)  # about 9.4 nats, far above InfoNCE's log 16
    with pytest.warns(UserWarning, match="of the bound's cap"):
        res = estimate_mi(x, y, bound="infonce", train_bound=None, eval_batch_size=16, max_steps=300, lr=2e-3)
    d = res.diagnostics
    assert d.cap == pytest.approx(math.log(16)) and d.cap_fraction > 0.9


def test_independent_data_are_trusted_without_warnings():
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = estimate_mi(rng.standard_normal((3000, 2)), rng.standard_normal((3000, 2)))
    assert res.diagnostics.trustworthy and "not trustworthy" not in str(res)
    # a critic that does not beat a constant on the validation split is replaced by it: 0, never below
    assert res.estimate >= 0.0 and (res.estimate > 0.0 or res.settings["constant_critic"])


def test_plot_draws_history_estimate_band_and_cap():
    import matplotlib

    matplotlib.use("Agg")
    x, y = _pairs(2000)
    res = estimate_mi(x, y, bound="infonce", train_bound=None, **FAST)
    ax = res.plot()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("held-out estimate" in s for s in labels) and any("cap" in s for s in labels)
    assert any("validation" in s for s in labels)


def test_all_pairs_bound_and_its_jackknife_match_a_brute_force_computation():
    from mi_lib.estimate_gauss import pair_values

    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(40, 40, generator=g, dtype=torch.float64) * 2 for _ in range(2)]
    for b in blocks:
        b.diagonal().add_(3.0)
    groups = 4

    def brute(bound, keep, shift):
        d = torch.cat([b.diagonal()[k] for b, k in zip(blocks, keep)])
        off = torch.cat([b[k][:, k][~torch.eye(int(k.sum()), dtype=torch.bool)] for b, k in zip(blocks, keep)])
        lme = float(torch.logsumexp(off, 0) - math.log(len(off)))
        return float(d.mean()) - lme if bound == "dv" else float(d.mean()) + shift - math.exp(shift - 1 + lme)

    for bound in ("dv", "nwj"):
        v, se, shift = pair_values(bound, blocks, None, 1.0, groups)
        everything = [torch.ones(40, dtype=torch.bool)] * 2
        assert v == pytest.approx(brute(bound, everything, shift), abs=1e-10)
        th = np.array([brute(bound, [torch.arange(40) % groups != k] * 2, shift) for k in range(groups)])
        assert se == pytest.approx(math.sqrt((groups - 1) / groups * ((th - th.mean()) ** 2).sum()), abs=1e-10)


def test_the_closed_form_quadratic_critic_is_the_gaussian_log_density_ratio():
    from mi_lib.critics import GaussianOptimalCritic
    from mi_lib.estimate_gauss import QuadraticResidualCritic, fit_quadratic

    x, y = _pairs(200_000, rho=0.9, d=3, seed=7)
    f = QuadraticResidualCritic(3, 3)
    f.set_quadratic(fit_quadratic(x, y))
    xs, ys = torch.tensor(x[:50]), torch.tensor(y[:50])
    with torch.no_grad():
        got = f(xs, ys)
        want = GaussianOptimalCritic(0.9, 3)(xs, ys).double()
    diff = got - want  # equal up to the additive constant, which the validation split sets
    c = float(diff.diagonal().mean())
    assert float(((diff - c).abs() / (1 + want.abs())).max()) < 0.1  # 200,000 samples: sampling error only
    assert float((diff - c).diagonal().abs().max()) < 0.05  # the joint pairs, where the bound is decided
    assert got.dtype == torch.float64
