"""estimate_mi on a user's samples: accuracy on a known case, reproducibility, clear errors."""
import math

import numpy as np
import pytest
import torch

from mi_lib import estimate_mi
from mi_lib.data import rho_to_mi


def _pairs(n=6000, rho=0.75, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    return x, rho * x + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, 1))


def test_one_d_gaussian_within_a_tenth_of_a_nat():
    x, y = _pairs()
    res = estimate_mi(x, y)
    assert abs(res.estimate - rho_to_mi(0.75, 1)) < 0.1
    assert 0 < res.stderr < 0.1
    assert res.settings["n_test"] == 1800 and len(res.history) == res.settings["steps"]


def test_independent_data_gives_about_zero_and_torch_input_works():
    rng = np.random.default_rng(1)
    x, y = torch.tensor(rng.standard_normal((3000, 2))), torch.tensor(rng.standard_normal(3000))
    res = estimate_mi(x, y, steps=300)
    assert abs(res.estimate) < 0.1


def test_seeded_runs_reproduce():
    x, y = _pairs(2000)
    a = estimate_mi(x, y, steps=50, seed=3)
    b = estimate_mi(x, y, steps=50, seed=3)
    assert a.estimate == b.estimate and np.array_equal(a.history, b.history)


def test_errors():
    x, y = _pairs(1000)
    with pytest.raises(ValueError, match="same number of samples"):
        estimate_mi(x, y[:-1])
    with pytest.raises(ValueError, match="too few"):
        estimate_mi(x[:100], y[:100], batch_size=128)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        estimate_mi(bad, y)
    with pytest.raises(ValueError, match="valid bounds"):
        estimate_mi(x, y, bound="kl")
    with pytest.raises(ValueError, match="valid critics"):
        estimate_mi(x, y, critic="deep")
    with pytest.raises(ValueError, match=r"\[N\] or \[N, d\]"):
        estimate_mi(np.zeros((10, 2, 2)), y[:10])


def test_rank_preprocessing_makes_monotone_maps_irrelevant():
    x, y = _pairs(1500)
    a = estimate_mi(x, y, steps=30, seed=1)
    b = estimate_mi(np.sinh(3 * x), np.exp(2 * y) + 5, steps=30, seed=1)  # strictly increasing maps
    assert a.estimate == b.estimate
    c = estimate_mi(np.sinh(3 * x), np.exp(2 * y) + 5, steps=30, seed=1, preprocess="standardize")
    assert c.estimate != a.estimate
    with pytest.raises(ValueError, match="unknown preprocess"):
        estimate_mi(x, y, preprocess="whiten")
