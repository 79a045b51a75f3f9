"""Critics keep the one layout; the data have the MI they claim."""

import math

import numpy as np
import pytest
import torch

from mi_lib.critics import BaselineMLP, BilinearCritic, ConcatCritic, GaussianOptimalCritic, SeparableCritic
from mi_lib.data import GaussianTask, cubic_matrix, mi_schedule, mi_to_rho, rho_to_mi, sample_correlated_gaussian

CRITICS = [
    lambda: SeparableCritic(3, 4, 16, 2, 5),
    lambda: ConcatCritic(3, 4, 16, 2),
    lambda: ConcatCritic(3, 4, 8, 1),
    lambda: BilinearCritic(3, 4),
]


@pytest.mark.parametrize("make", CRITICS)
def test_layout_rows_are_x_columns_are_y(make):
    torch.manual_seed(0)
    critic = make()
    x, y = torch.randn(6, 3), torch.randn(6, 4)
    s = critic(x, y)
    assert s.shape == (6, 6)
    # entry (i, j) is f(x_i, y_j): recompute it from a single pair
    for i, j in ((0, 3), (5, 1), (2, 2)):
        pair = critic(x[[i, i]], y[[j, j]])
        assert torch.allclose(s[i, j], pair[0, 0], atol=1e-5)
    p, q = torch.randperm(6), torch.randperm(6)
    assert torch.allclose(critic(x[p], y), s[p], atol=1e-5)
    assert torch.allclose(critic(x, y[q]), s[:, q], atol=1e-5)


def test_concat_split_first_layer_equals_concatenation():
    torch.manual_seed(1)
    c = ConcatCritic(3, 4, 16, 2)
    x, y = torch.randn(5, 3), torch.randn(5, 4)
    pairs = torch.cat([x[:, None, :].expand(5, 5, 3), y[None, :, :].expand(5, 5, 4)], -1)  # [K, K, dx + dy]
    direct = c.rest(torch.relu(c.first(pairs))).squeeze(-1)
    assert torch.allclose(c(x, y), direct, atol=1e-5)


def test_critic_bad_input():
    c = SeparableCritic(3, 4)
    with pytest.raises(ValueError, match="same number"):
        c(torch.randn(5, 3), torch.randn(4, 4))
    with pytest.raises(ValueError, match="x_dim=3"):
        c(torch.randn(5, 2), torch.randn(5, 4))
    with pytest.raises(ValueError, match="2-D"):
        c(torch.randn(5), torch.randn(5, 4))
    assert BaselineMLP(4, 8)(torch.randn(7, 4)).shape == (7,)


def test_mi_rho_round_trip_and_errors():
    for m in (0.0, 0.5, 2.0, 10.0):
        assert math.isclose(rho_to_mi(mi_to_rho(m, 20), 20), m, abs_tol=1e-12)
    assert math.isclose(rho_to_mi(0.75, 1), 0.5 * math.log(1 / (1 - 0.5625)))
    with pytest.raises(ValueError):
        mi_to_rho(-1.0, 20)
    with pytest.raises(ValueError):
        rho_to_mi(1.0, 20)
    assert list(mi_schedule((2, 4), 3)) == [2, 2, 2, 4, 4, 4]


def test_samples_have_the_claimed_correlation():
    g = torch.Generator().manual_seed(0)
    rho = mi_to_rho(4.0, 20)
    x, y = sample_correlated_gaussian(rho, 20, 20000, g, dtype=torch.float64)
    corr = ((x * y).mean(0) / (x.std(0) * y.std(0))).numpy()
    assert np.all(np.abs(corr - rho) < 0.03)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sample_correlated_gaussian(rho, 20, 8, g1)[1], sample_correlated_gaussian(rho, 20, 8, g2)[1])


def test_cubic_task_keeps_the_optimal_critic():
    w = cubic_matrix(5, seed=3)
    assert torch.linalg.matrix_rank(w) == 5
    rho = mi_to_rho(2.0, 5)
    g = torch.Generator().manual_seed(1)
    x, y = sample_correlated_gaussian(rho, 5, 32, g, dtype=torch.float64)
    y_cubic = (y @ w.double().T) ** 3
    plain = GaussianOptimalCritic(rho, 5)(x, y)
    cubic = GaussianOptimalCritic(rho, 5, cubic_W=w)(x, y_cubic)
    assert torch.allclose(plain, cubic, atol=1e-6)
    assert GaussianTask(dim=5, cubic=True, w_seed=3).cubic_W().equal(w)


def test_the_papers_cubic_w_has_unit_entries():
    """Poole et al.'s caption: W_ij ~ N(0, 1) (the paper profile); the default scales the same draw by 1/sqrt(d)."""
    import math

    from mi_lib.experiments.gaussian import CONFIGS

    unit = GaussianTask(dim=20, cubic=True, w_seed=1, w_std=1.0).cubic_W()
    torch.testing.assert_close(unit / math.sqrt(20), cubic_matrix(20, seed=1))
    assert 0.9 < float(unit.std()) < 1.1
    assert CONFIGS["paper"].run.task.w_std == 1.0 and CONFIGS["quick"].run.task.w_std == 0.1  # quick: see mi_lib.data
    with pytest.raises(ValueError, match="std"):
        cubic_matrix(3, seed=0, std=0.0)


def test_optimal_critic_is_the_density_ratio():
    rho, d = 0.6, 2
    crit = GaussianOptimalCritic(rho, d)
    x, y = torch.randn(4, d, dtype=torch.float64), torch.randn(4, d, dtype=torch.float64)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    joint = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)
    std = torch.distributions.Normal(0.0, 1.0)
    for i, j in ((0, 0), (1, 3)):
        ref = sum(
            joint.log_prob(torch.stack([x[i, k], y[j, k]])) - std.log_prob(x[i, k]) - std.log_prob(y[j, k])
            for k in range(d)
        )
        assert math.isclose(crit(x, y)[i, j].item(), ref.item(), rel_tol=1e-10)
    # its expectation under the joint is the MI
    g = torch.Generator().manual_seed(2)
    x, y = sample_correlated_gaussian(rho, d, 40000, g, dtype=torch.float64)
    diag = crit.log_conditional(x[:2000], y[:2000]).diagonal() + 0.5 * (y[:2000] ** 2).sum(-1) + math.log(2 * math.pi)
    assert abs(diag.mean().item() - rho_to_mi(rho, d)) < 0.05
