"""Training: the sweep engine equals the one-run loop, runs reproduce, a short NWJ run learns 2 nats."""

import dataclasses

import numpy as np
import pytest
import torch

from mi_lib.data import GaussianTask
from mi_lib.train import RunConfig, group_by_architecture, train_run, train_sweep

SMALL = dict(mi_levels=(2.0, 4.0), steps_per_level=12, hidden_dim=16, embed_dim=8, baseline_hidden=16, batch_size=8)


def _runs(critic):
    cubic = GaussianTask(dim=3, cubic=True, w_seed=5)
    gauss = GaussianTask(dim=3)
    return [
        RunConfig(bound="nwj", critic=critic, task=gauss, seed=0, **SMALL),
        RunConfig(bound="infonce", critic=critic, task=cubic, seed=1, **SMALL),
        RunConfig(bound="tuba", critic=critic, task=gauss, seed=2, **SMALL),
        RunConfig(bound="interpolated", alpha_logit=-2.0, critic=critic, task=gauss, seed=0, **SMALL),
        RunConfig(bound="interpolated", alpha_logit=3.0, critic=critic, task=cubic, seed=3, **SMALL),
        RunConfig(bound="js", critic=critic, task=gauss, seed=4, **SMALL),
        RunConfig(bound="mine", critic=critic, task=gauss, seed=5, **SMALL),
        RunConfig(bound="smile", critic=critic, task=cubic, seed=6, **SMALL),
        RunConfig(bound="dv", critic=critic, task=gauss, seed=7, **SMALL),
    ]


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_sweep_equals_runs_trained_alone(critic):
    runs = _runs(critic)
    (group,) = group_by_architecture(runs)  # bounds with and without a baseline stack together
    sweep = train_sweep(group, device="cpu", dtype=torch.float64, progress=False)
    for r, cfg in enumerate(group):
        alone = train_run(cfg, device="cpu", dtype=torch.float64, progress=False)["estimates"]
        np.testing.assert_allclose(sweep.estimates[r], alone, rtol=1e-9, atol=1e-9, err_msg=cfg.bound)


def test_sweep_chunks_give_the_same_histories():
    runs = _runs("separable")
    whole = train_sweep(runs, device="cpu", dtype=torch.float64, progress=False)
    chunked = train_sweep(runs, device="cpu", dtype=torch.float64, progress=False, memory_budget_mb=1e-3)
    assert chunked.chunks == len(runs) and whole.chunks == 1
    np.testing.assert_allclose(whole.estimates, chunked.estimates, rtol=1e-9, atol=1e-9)


def test_runs_are_seeded_and_differ_across_seeds():
    cfg = _runs("separable")[0]
    a = train_run(cfg, device="cpu", progress=False)["estimates"]
    b = train_run(cfg, device="cpu", progress=False)["estimates"]
    c = train_run(dataclasses.replace(cfg, seed=99), device="cpu", progress=False)["estimates"]
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_sweep_rejects_mixed_architectures_and_bad_configs():
    runs = _runs("separable")[:1] + _runs("concat")[:1]
    with pytest.raises(ValueError, match="share the architecture"):
        train_sweep(runs, device="cpu", progress=False)
    with pytest.raises(ValueError, match="valid bounds"):
        RunConfig(bound="nce2")
    with pytest.raises(ValueError, match="valid critics"):
        RunConfig(critic="bilinear")  # a critic the stacked engine does not have
    # the papers' names are aliases of the registry's one name: configs store the one name
    assert RunConfig(bound="nce", critic="joint") == RunConfig(bound="infonce", critic="concat")
    with pytest.raises(ValueError, match="alpha_logit"):
        RunConfig(bound="interpolated")
    with pytest.raises(ValueError, match="at least one"):
        train_sweep([], device="cpu")


def test_nwj_learns_two_nats():
    cfg = RunConfig(
        bound="nwj",
        critic="concat",
        task=GaussianTask(dim=4),
        mi_levels=(2.0,),
        steps_per_level=400,
        hidden_dim=64,
        batch_size=64,
        lr=1e-3,
        seed=0,
    )
    est = train_run(cfg, device="cpu", progress=False)["estimates"]
    assert abs(np.mean(est[:50]) - 2.0) > 1.0  # it starts far off ...
    assert abs(np.mean(est[-100:]) - 2.0) < 0.5  # ... and ends within half a nat


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_stacked_joint_critic_matches_autograd_through_the_modules(layers):
    """PairMLP's hand-written backward against autograd through R ordinary ConcatCritics (float64)."""
    from mi_lib.critics import ConcatCritic
    from mi_lib.stacked import StackedConcat

    torch.manual_seed(0)
    mods = [ConcatCritic(3, 2, 8, layers).double() for _ in range(3)]
    stacked = StackedConcat(mods, "cpu", torch.float64)
    x, y = torch.randn(3, 5, 3, dtype=torch.float64), torch.randn(3, 5, 2, dtype=torch.float64)
    weight = torch.randn(3, 5, 5, dtype=torch.float64)  # a loss whose gradient differs per entry
    scores = stacked(x, y)
    (scores * weight).sum().backward()
    for r, m in enumerate(mods):
        s = m(x[r], y[r])
        np.testing.assert_allclose(scores[r].detach().numpy(), s.detach().numpy(), rtol=1e-12, atol=1e-12)
        (s * weight[r]).sum().backward()
        lins = [m.first] + [lin for lin in m.rest.modules() if isinstance(lin, torch.nn.Linear)]
        expected = [lins[0].weight.grad.T[:3], lins[0].weight.grad.T[3:], lins[0].bias.grad[None]]
        for lin in lins[1:]:
            expected += [lin.weight.grad.T, lin.bias.grad[None]]
        for got, want in zip(stacked.parameters(), expected):
            np.testing.assert_allclose(got.grad[r].numpy(), want.numpy(), rtol=1e-10, atol=1e-12)
    # and against finite differences, through the first layer's two halves
    from mi_lib.stacked import PairMLP

    hx = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    hy = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    params = []
    for _ in range(layers - 1):
        params += [
            torch.randn(2, 6, 6, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 1, 6, dtype=torch.float64, requires_grad=True),
        ]
    params += [
        torch.randn(2, 6, 1, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 1, 1, dtype=torch.float64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(lambda *a: PairMLP.apply(None, *a), (hx, hy, *params))
    # the same through a workspace (buffers reused across calls), and a second forward before backward raises
    from mi_lib.stacked import Workspace, pair_mlp

    inputs = (hx, hy, *params)

    def grads(ws):
        for t in inputs:
            t.grad = None
        (pair_mlp(hx, hy, params, ws) * torch.arange(16.0, dtype=torch.float64).view(4, 4)).sum().backward()
        return [t.grad.clone() for t in inputs]

    ws = Workspace()
    want = grads(None)
    for _ in range(2):
        for a, b in zip(grads(ws), want):
            assert torch.equal(a, b)
    pair_mlp(hx, hy, params, ws)
    with pytest.raises(RuntimeError, match="workspace in use"):
        pair_mlp(hx, hy, params, ws)
    idle = Workspace()
    with torch.no_grad():  # no graph, no backward: the workspace is not taken
        pair_mlp(hx, hy, params, idle), pair_mlp(hx, hy, params, idle)
    assert not idle.busy and not idle.buffers


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_bfloat16_compute_gives_float32_gradients_close_to_float32_ones(critic):
    """compute_dtype=bfloat16: the layers run in bfloat16 (the scores differ from float32 ones by
    bfloat16 rounding, not by zero), the gradients arrive in the float32 weights, close to float32's."""
    from mi_lib.critics import BaselineMLP, ConcatCritic, SeparableCritic
    from mi_lib.stacked import StackedBaseline, StackedConcat, StackedSeparable

    torch.manual_seed(0)
    make = (lambda: SeparableCritic(4, 4, 32, 2, 8)) if critic == "separable" else (lambda: ConcatCritic(4, 4, 32, 2))
    mods, bases = [make() for _ in range(3)], [BaselineMLP(4, 32, 2) for _ in range(3)]
    cls = StackedSeparable if critic == "separable" else StackedConcat
    x, y = torch.randn(3, 16, 4), torch.randn(3, 16, 4)
    weight = torch.randn(3, 16, 16)
    out = {}
    for name, cd in (("float32", None), ("bfloat16", torch.bfloat16)):
        stacked, base = cls(mods, "cpu", torch.float32, cd), StackedBaseline(bases, "cpu", torch.float32, cd)
        scores, log_b = stacked(x, y), base(y)
        assert scores.dtype == log_b.dtype == torch.float32
        ((scores * weight).sum() + log_b.sum()).backward()
        params = stacked.parameters() + base.parameters()
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params)
        out[name] = (scores.detach(), log_b.detach(), [p.grad for p in params])
    (s32, b32, g32), (s16, b16, g16) = out["float32"], out["bfloat16"]
    assert 0 < (s16 - s32).abs().max() < 0.05 * s32.abs().max()
    assert 0 < (b16 - b32).abs().max() < 0.05 * b32.abs().max()
    for a, b in zip(g16, g32):  # each parameter's gradient points the same way as float32's
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99


def test_compute_dtype_is_checked():
    runs = _runs("separable")[:1]
    for bad in (torch.int32, "bfloat16"):
        with pytest.raises(ValueError, match="compute_dtype"):
            train_sweep(runs, device="cpu", progress=False, compute_dtype=bad)


def test_the_first_steps_of_a_sweep_are_the_full_runs_first_steps():
    """train_sweep(steps=n) (what reproduce --verify recomputes) gives exactly the full run's first n steps."""
    runs = _runs("separable")[:4]
    full = train_sweep(runs, device="cpu", dtype=torch.float64, progress=False)
    head = train_sweep(runs, device="cpu", dtype=torch.float64, progress=False, steps=7)
    assert head.estimates.shape == (4, 7) and len(head.mi) == 7
    np.testing.assert_array_equal(head.estimates, full.estimates[:, :7])
