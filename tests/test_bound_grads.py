"""The written-out values and gradients of the training bounds equal autograd through mi_lib.bounds."""

import pytest
import torch

from mi_lib.bound_grads import autograd_value_and_grad, value_and_grad_of
from mi_lib.registry import available_bounds, get_bound

# every registered bound's written-out value and gradient (the sweep's bound stage uses these)
CLOSED_FORMS = {n: get_bound(n).value_and_grad for n in available_bounds() if get_bound(n).value_and_grad}

R, K = 3, 6


def _inputs(scale: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(R, K, K, generator=gen, dtype=torch.float64)
    scores += scale * torch.eye(K, dtype=torch.float64)  # positives score higher, as after training
    log_b = torch.randn(R, K, generator=gen, dtype=torch.float64)
    alpha = torch.tensor([-5.0, 0.0, 5.0], dtype=torch.float64)
    return scores, log_b, alpha


def _reference(name, scores, log_b, alpha, state):
    """Autograd through the registry's train_value, one run at a time (the per-run loop's path)."""
    spec = get_bound(name)
    values, g_s, g_b, states = [], [], [], []
    for r in range(R):
        s = scores[r].clone().requires_grad_(True)
        b = log_b[r].clone().requires_grad_(True) if spec.needs_baseline else None
        st = None if state is None else state[r]
        v, new = spec.train_value(s, b, alpha[r], st)
        grads = torch.autograd.grad(v, [s] if b is None else [s, b])
        values.append(v.detach())
        g_s.append(grads[0])
        g_b.append(None if b is None else grads[1])
        states.append(new)
    stack = lambda xs: None if xs[0] is None else torch.stack([x.detach() for x in xs])  # noqa: E731
    return stack(values), stack(g_s), stack(g_b), stack(states)


def test_every_paper_bound_has_a_closed_form():
    assert set(CLOSED_FORMS) == {"nwj", "tuba", "infonce", "js", "interpolated", "dv", "mine", "smile"}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
def test_closed_forms_match_autograd(name, scale):
    scores, log_b, alpha = _inputs(scale)
    spec = get_bound(name)
    state = None
    for _ in range(2):  # twice: MINE's second call uses the state of the first
        ref = _reference(name, scores, log_b, alpha, state)
        got = CLOSED_FORMS[name](scores, log_b if spec.needs_baseline else None, alpha, state)
        for label, a, b in zip(("value", "d/d scores", "d/d log_baseline", "state"), got, ref):
            assert (a is None) == (b is None), (name, label)
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"{name} {label}")
        state = got[3]
        scores = scores.flip(-1)  # a different batch for the second call
    assert spec.stateful == (state is not None)


def test_smile_clipping_is_active_in_the_check():
    scores, _, _ = _inputs(30.0)
    assert (scores.abs() > 5.0).any()  # the clip changes the value: the comparison above exercises it
    value_clipped = CLOSED_FORMS["smile"](scores, None, None, None)[0]
    value_dv = CLOSED_FORMS["dv"](scores, None, None, None)[0]
    assert not torch.allclose(value_clipped, value_dv)


@pytest.mark.parametrize("name", available_bounds())
def test_every_bound_has_a_value_and_gradient(name):
    """Closed form or autograd: the engine's entry for each bound gives the per-run gradients."""
    scores, log_b, alpha = _inputs(2.0, seed=1)
    spec = get_bound(name)
    fn = value_and_grad_of(name)
    got = fn(scores, log_b if spec.needs_baseline else None, alpha, None)
    ref = _reference(name, scores, log_b, alpha, None)
    for a, b in zip(got, ref):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_autograd_fallback_runs_without_grad_mode():
    scores, log_b, alpha = _inputs(1.0)
    with torch.no_grad():
        v, g_s, g_b, _ = autograd_value_and_grad(get_bound("interpolated").train_value)(scores, log_b, alpha, None)
    assert g_s.shape == scores.shape and g_b.shape == log_b.shape and not v.requires_grad


def test_closed_forms_do_not_modify_their_inputs():
    scores, log_b, alpha = _inputs(3.0)
    before = scores.clone(), log_b.clone()
    for name, fn in CLOSED_FORMS.items():
        fn(scores, log_b if get_bound(name).needs_baseline else None, alpha, None)
    assert torch.equal(scores, before[0]) and torch.equal(log_b, before[1])


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_large_scores_stay_finite_where_autograd_does(name):
    """At scores of +-1000 (a diverged run), I_alpha's leave-one-out terms are taken without
    overflow; the exponential bounds overflow exactly where autograd's do."""
    scores, log_b, alpha = _inputs(1000.0)
    spec = get_bound(name)
    got = CLOSED_FORMS[name](scores, log_b if spec.needs_baseline else None, alpha, None)
    ref = _reference(name, scores, log_b, alpha, None)
    for a, b in zip(got, ref):
        if b is not None:
            assert bool(torch.isfinite(a).all()) == bool(torch.isfinite(b).all())
            if torch.isfinite(b).all():
                torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    if name == "interpolated":
        assert all(bool(torch.isfinite(t).all()) for t in got[:3])
