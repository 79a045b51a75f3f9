"""Coupling flows: exact inverses and log-determinants checked against autograd Jacobians."""

import math

import pytest
import torch

from mi_lib.flows import FlowEncoder


@pytest.mark.parametrize("kind", ["additive", "affine"])
def test_inverse_recovers_input(kind):
    torch.manual_seed(0)
    flow = FlowEncoder(10, n_couplings=4, hidden=(16,), kind=kind, seed=1, init_scale=1.0).double()
    x = torch.randn(32, 10, dtype=torch.float64)
    z = flow(x)
    assert (z - x).abs().max() > 1e-2  # non-trivial map at init_scale=1
    torch.testing.assert_close(flow.inverse(z), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(flow(flow.inverse(x)), x, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["additive", "affine"])
@pytest.mark.parametrize("dim", [5, 6])
def test_log_det_matches_autograd_jacobian(kind, dim):
    torch.manual_seed(1)
    flow = FlowEncoder(dim, n_couplings=3, hidden=(8, 8), kind=kind, seed=2, init_scale=1.0).double()
    x = torch.randn(4, dim, dtype=torch.float64)
    log_det = flow.log_det(x)
    for n in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0], x[n])  # [dim, dim]
        expected = torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(log_det[n], expected, atol=1e-9, rtol=0)
    if kind == "additive":
        torch.testing.assert_close(log_det, torch.zeros(4, dtype=torch.float64))


def test_near_identity_initialisation_is_a_permutation_plus_small_change():
    flow = FlowEncoder(8, n_couplings=3, hidden=(16,), seed=0, init_scale=1e-3)
    x = torch.randn(16, 8)
    z = flow(x)
    perm = torch.arange(8)
    for i in range(3):
        perm = perm[getattr(flow, f"perm{i}")]
    assert (z - x[:, perm]).abs().max() < 0.05


def test_fixed_seed_gives_same_permutations_and_rejects_bad_kind():
    a, b = FlowEncoder(6, 2, (4,), seed=3), FlowEncoder(6, 2, (4,), seed=3)
    assert torch.equal(a.perm0, b.perm0) and torch.equal(a.perm1, b.perm1)
    with pytest.raises(ValueError):
        FlowEncoder(6, 2, (4,), kind="spline")


def test_softplus_scale_coupling_inverse_log_det_and_start():
    """Tschannen et al.'s affine RealNVP: scale 1e-7 + softplus(s); with 1e-4 kernels s ~ 0, scale ~ log 2."""
    torch.manual_seed(2)
    flow = FlowEncoder(6, n_couplings=3, hidden=(8,), kind="affine", seed=4, kernel_std=1.0, scale="softplus").double()
    x = torch.randn(5, 6, dtype=torch.float64)
    torch.testing.assert_close(flow.inverse(flow(x)), x, atol=1e-10, rtol=0)
    for n in range(2):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0], x[n])
        torch.testing.assert_close(flow.log_det(x)[n], torch.linalg.slogdet(jac).logabsdet, atol=1e-9, rtol=0)
    small = FlowEncoder(6, n_couplings=1, hidden=(8,), kind="affine", seed=0, kernel_std=1e-4, scale="softplus")
    lins = [m for m in small.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.abs().max() <= 2e-4 and not m.bias.any() for m in lins)
    y = small(x.float())
    perm = small.perm0
    expected = torch.cat([x.float()[:, :3], x.float()[:, 3:] * (1e-7 + math.log(2))], 1)[:, perm]
    torch.testing.assert_close(y, expected, atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        FlowEncoder(6, 1, (4,), kind="affine", scale="exp")
