"""Every bound against a slow double-loop reimplementation, plus the properties the book relies on."""

import math

import pytest
import torch

from mi_lib import bounds as B
from mi_lib.critics import GaussianOptimalCritic
from mi_lib.data import mi_to_rho, sample_correlated_gaussian
from mi_lib.registry import available_bounds, get_bound


# ----------------------------------------------------------------- slow references (python loops)
def ref_tuba(S, b):
    K = len(S)
    joint = sum(S[i][i] - b[i] for i in range(K)) / K
    marg = sum(math.exp(S[i][j] - b[j]) for i in range(K) for j in range(K) if i != j) / (K * (K - 1))
    return 1 + joint - marg


def ref_dv(S):
    K = len(S)
    return sum(S[i][i] for i in range(K)) / K - math.log(
        sum(math.exp(S[i][j]) for i in range(K) for j in range(K) if i != j) / (K * (K - 1))
    )


def ref_infonce(S):
    K = len(S)
    return sum(S[i][i] - math.log(sum(math.exp(S[i][j]) for j in range(K))) for i in range(K)) / K + math.log(K)


def ref_interpolated(S, b, alpha):
    """Poole et al. Eq. 11 written out: for positive j and each left-out x_i; for negatives the own x_j left out."""
    K = len(S)

    def m(j, leave):  # mean over x_k, k != leave, of exp f(x_k, y_j)
        return sum(math.exp(S[k][j]) for k in range(K) if k != leave) / (K - 1)

    def denom(j, leave):
        return alpha * m(j, leave) + (1 - alpha) * math.exp(b[j])

    joint = sum(S[j][j] - math.log(denom(j, i)) for j in range(K) for i in range(K) if i != j) / (K * (K - 1))
    marg = sum(math.exp(S[i][j]) / denom(j, j) for i in range(K) for j in range(K) if i != j) / (K * (K - 1))
    return 1 + joint - marg


def ref_js_fgan(S):
    K = len(S)
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    return -sum(sp(-S[i][i]) for i in range(K)) / K - sum(sp(S[i][j]) for i in range(K) for j in range(K) if i != j) / (
        K * (K - 1)
    )


def ref_loo_upper(L):
    K = len(L)
    return sum(L[i][i] - math.log(sum(math.exp(L[j][i]) for j in range(K) if j != i) / (K - 1)) for i in range(K)) / K


CASES = [(k, dt) for k in (2, 3, 7) for dt in (torch.float32, torch.float64)]


def _rand(k, dtype, seed=0, scale=1.5):
    g = torch.Generator().manual_seed(seed + 10 * k)
    return (scale * torch.randn(k, k, generator=g, dtype=torch.float64)).to(dtype)


def _tol(dtype):
    return dict(rel_tol=1e-4, abs_tol=1e-4) if dtype == torch.float32 else dict(rel_tol=1e-10, abs_tol=1e-10)


@pytest.mark.parametrize("k,dtype", CASES)
def test_bounds_match_double_loops(k, dtype):
    S = _rand(k, dtype)
    b = _rand(k, dtype, seed=1)[0]
    Sl, bl = S.double().tolist(), b.double().tolist()
    t = _tol(dtype)
    assert math.isclose(B.tuba_lower_bound(S, b).item(), ref_tuba(Sl, bl), **t)
    assert math.isclose(B.nwj_lower_bound(S).item(), ref_tuba(Sl, [1.0] * k), **t)
    assert math.isclose(B.dv_lower_bound(S).item(), ref_dv(Sl), **t)
    assert math.isclose(B.infonce_lower_bound(S).item(), ref_infonce(Sl), **t)
    assert math.isclose(B.js_fgan_objective(S).item(), ref_js_fgan(Sl), **t)
    assert math.isclose(B.js_lower_bound(S).item(), ref_tuba([[v + 1 for v in r] for r in Sl], [1.0] * k), **t)
    for alpha_logit in (-3.0, 0.0, 2.5):
        alpha = 1 / (1 + math.exp(-alpha_logit))
        assert math.isclose(B.interpolated_lower_bound(S, b, alpha_logit).item(), ref_interpolated(Sl, bl, alpha), **t)
    assert math.isclose(B.mine_lower_bound(S)[0].item(), ref_dv(Sl), **t)
    clipped = [[max(-0.5, min(0.5, v)) for v in r] for r in Sl]
    smile = sum(Sl[i][i] for i in range(k)) / k - (sum(clipped[i][i] for i in range(k)) / k - ref_dv(clipped))
    assert math.isclose(B.smile_lower_bound(S, clip=0.5).item(), smile, **t)
    assert math.isclose(B.loo_upper_bound(S).item(), ref_loo_upper(Sl), **t)
    for r, out in ((B.tuba_lower_bound(S, b), None), (B.interpolated_lower_bound(S, b, 0.0), None)):
        assert r.dtype == dtype and r.dim() == 0


def test_log_loo_mean_matches_loop_and_is_stable():
    S = _rand(6, torch.float64)
    loo = B.log_loo_mean(S)
    for i in range(6):
        for j in range(6):
            ref = math.log(sum(math.exp(S[k, j].item()) for k in range(6) if k != i) / 5)
            assert math.isclose(loo[i, j].item(), ref, rel_tol=1e-12, abs_tol=1e-12)
    # one dominant entry per column: the naive log(total - max) would lose everything
    big = S.clone()
    big[2, :] += 60.0
    loo_big = B.log_loo_mean(big)
    assert torch.allclose(loo_big[2], B.log_loo_mean(S)[2], atol=1e-9)  # leaving the dominant row out


def test_infonce_capped_and_row_shift_invariant():
    g = torch.Generator().manual_seed(3)
    for k in (2, 8, 64):
        S = 20 * torch.randn(k, k, generator=g, dtype=torch.float64)
        S += 200 * torch.eye(k, dtype=torch.float64)
        assert B.infonce_lower_bound(S).item() <= math.log(k) + 1e-12
        c = torch.randn(k, 1, generator=g, dtype=torch.float64) * 50
        assert math.isclose(B.infonce_lower_bound(S + c).item(), B.infonce_lower_bound(S).item(), abs_tol=1e-9)


def test_interpolated_tends_to_tuba_and_capped():
    S = _rand(16, torch.float64)
    b = _rand(16, torch.float64, seed=4)[0]
    assert math.isclose(B.interpolated_lower_bound(S, b, -40.0).item(), B.tuba_lower_bound(S, b).item(), abs_tol=1e-12)
    # cap: with a perfect separation and alpha small, value stays below 1 + log(K / alpha)
    S = 1e3 * torch.eye(16, dtype=torch.float64)
    for alpha_logit in (-5.0, 0.0, 5.0):
        alpha = 1 / (1 + math.exp(-alpha_logit))
        v = B.interpolated_lower_bound(S, torch.full((16,), 300.0, dtype=torch.float64), alpha_logit).item()
        assert v <= 1 + math.log(16 / alpha) + 1e-9


def test_js_value_and_gradient():
    S = _rand(9, torch.float64).requires_grad_(True)
    val = B.js_lower_bound(S)
    assert math.isclose(val.item(), B.nwj_lower_bound(S.detach() + 1).item(), abs_tol=1e-12)
    (g_js,) = torch.autograd.grad(val, S)
    (g_fgan,) = torch.autograd.grad(B.js_fgan_objective(S), S)
    assert torch.allclose(g_js, g_fgan)
    (g_nwj,) = torch.autograd.grad(B.nwj_lower_bound(S + 1), S)
    assert not torch.allclose(g_js, g_nwj)  # the gradient really is a different objective's


def test_mine_gradient_uses_ema_and_state_is_explicit():
    S = _rand(8, torch.float64).requires_grad_(True)
    log_ema = torch.tensor(0.7, dtype=torch.float64)
    val, new = B.mine_lower_bound(S, log_ema, momentum=0.9)
    log_z = B.logmeanexp_nodiag(S.detach())
    assert math.isclose(new.item(), math.log(0.9 * math.exp(0.7) + 0.1 * math.exp(log_z.item())), rel_tol=1e-12)
    (g,) = torch.autograd.grad(val, S)
    surrogate = torch.diagonal(S).mean() - torch.exp(B.logmeanexp_nodiag(S)) / math.exp(new.item())
    (g_ref,) = torch.autograd.grad(surrogate, S)
    assert torch.allclose(g, g_ref)
    assert math.isclose(val.item(), B.dv_lower_bound(S.detach()).item(), abs_tol=1e-12)
    assert log_ema.item() == 0.7


def test_smile_value_and_gradient():
    S = (3 * _rand(8, torch.float64)).requires_grad_(True)
    assert math.isclose(B.smile_lower_bound(S).item(), B.dv_lower_bound(S.detach()).item(), abs_tol=1e-12)
    (g,) = torch.autograd.grad(B.smile_lower_bound(S, clip=1.0), S)
    (g_ref,) = torch.autograd.grad(B.js_fgan_objective(S), S)
    assert torch.allclose(g, g_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_scores_stay_finite(dtype):
    S = torch.full((8, 8), -1e4, dtype=dtype)
    S.fill_diagonal_(1e4)
    assert torch.isfinite(B.infonce_lower_bound(S))
    assert torch.isfinite(B.dv_lower_bound(S))
    S2 = torch.full((8, 8), 1e4, dtype=dtype)
    assert torch.isfinite(B.infonce_lower_bound(S2)) and torch.isfinite(B.dv_lower_bound(S2))
    assert torch.isfinite(B.interpolated_lower_bound(S, torch.zeros(8, dtype=dtype), 0.0))


def test_no_input_modified():
    S = _rand(5, torch.float64)
    b = _rand(5, torch.float64, seed=2)[0]
    S0, b0 = S.clone(), b.clone()
    for fn in (
        lambda: B.tuba_lower_bound(S, b),
        lambda: B.nwj_lower_bound(S),
        lambda: B.dv_lower_bound(S),
        lambda: B.infonce_lower_bound(S),
        lambda: B.js_lower_bound(S),
        lambda: B.interpolated_lower_bound(S, b, 0.3),
        lambda: B.mine_lower_bound(S, b[0]),
        lambda: B.smile_lower_bound(S, 1.0),
        lambda: B.log_loo_mean(S),
        lambda: B.loo_upper_bound(S),
    ):
        fn()
        assert torch.equal(S, S0) and torch.equal(b, b0)


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.zeros(3), "2-D"),
        (torch.zeros(3, 4), "square"),
        (torch.zeros(1, 1), "K >= 2"),
        (torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), "NaN or inf"),
        (torch.tensor([[0.0, float("inf")], [0.0, 0.0]]), "NaN or inf"),
        (torch.zeros(3, 3, dtype=torch.long), "floating"),
        ([[0.0, 1.0], [1.0, 0.0]], "torch.Tensor"),
    ],
)
def test_bad_scores_raise(bad, match):
    for fn in (B.nwj_lower_bound, B.infonce_lower_bound, B.dv_lower_bound, B.js_lower_bound, B.smile_lower_bound):
        with pytest.raises(ValueError, match=match):
            fn(bad)


def test_bad_baseline_alpha_clip_raise():
    S = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="shape"):
        B.tuba_lower_bound(S, torch.zeros(3))
    with pytest.raises(ValueError, match="log_baseline"):
        B.tuba_lower_bound(S, "zero")
    with pytest.raises(ValueError, match="alpha_logit"):
        B.interpolated_lower_bound(S, 0.0, "high")
    with pytest.raises(ValueError, match="alpha_logit"):
        B.interpolated_lower_bound(S, 0.0, torch.zeros(2))
    with pytest.raises(ValueError, match="alpha_logit"):
        B.interpolated_lower_bound(S, 0.0, float("nan"))
    with pytest.raises(ValueError, match="clip"):
        B.smile_lower_bound(S, clip="5")
    with pytest.raises(ValueError, match="clip must be positive"):
        B.smile_lower_bound(S, clip=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        B.mine_lower_bound(S, momentum=1.0)


def test_registry():
    names = available_bounds()
    for n in ("nwj", "tuba", "dv", "mine", "infonce", "js", "interpolated", "smile"):
        assert n in names
    with pytest.raises(ValueError, match="valid bounds: nwj"):
        get_bound("nce2")
    assert get_bound("nce") is get_bound("InfoNCE") is get_bound("infonce")  # the papers' names are aliases
    S = _rand(6, torch.float64)
    b = torch.zeros(6, dtype=torch.float64)
    for n in names:  # the uniform training signature agrees with the public function
        spec = get_bound(n)
        v, _ = spec.train_value(S, b, torch.tensor(0.0, dtype=torch.float64), None)
        if spec.needs_alpha:
            ref = spec.fn(S, b, 0.0)
        elif spec.needs_baseline:
            ref = spec.fn(S, b)
        elif n == "smile":
            ref = spec.fn(S, spec.extra["clip"])
        elif n == "mine":
            ref = spec.fn(S)[0]
        else:
            ref = spec.fn(S)
        assert math.isclose(v.item(), ref.item(), abs_tol=1e-12), n


# ----------------------------------------------------------------- with the analytic optimal critic
def _optimal_scores(mi, k, reps, seed, dim=20):
    rho = mi_to_rho(mi, dim)
    critic = GaussianOptimalCritic(rho, dim)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(reps):
        x, y = sample_correlated_gaussian(rho, dim, k, g, dtype=torch.float64)
        out.append(critic(x, y))
    return out


@pytest.mark.parametrize("mi", [2.0, 4.0])
def test_nwj_unbiased_with_optimal_critic(mi):
    vals = torch.stack([B.nwj_lower_bound(s + 1) for s in _optimal_scores(mi, 64, 400, seed=int(mi))])
    se = vals.std() / math.sqrt(len(vals))
    assert abs(vals.mean().item() - mi) < 3 * se.item() + 1e-3


def test_infonce_near_cap_at_high_mi():
    vals = torch.stack([B.infonce_lower_bound(s) for s in _optimal_scores(10.0, 64, 50, seed=7)])
    assert (vals <= math.log(64) + 1e-9).all()
    assert vals.mean().item() > math.log(64) - 0.3


def test_js_erratum_one_over_e():
    scores = _optimal_scores(6.0, 128, 300, seed=11)
    js = torch.stack([B.js_lower_bound(s) for s in scores])
    ref_style = torch.stack([B.nwj_lower_bound(s) for s in scores])
    assert abs(js.mean().item() - 6.0) < 3 * js.std().item() / math.sqrt(len(js)) + 0.02
    diff = js - ref_style  # per batch: 1 - (1 - 1/e) * mean_{i!=j} e^{f*}, whose expectation is 1/e
    assert abs(diff.mean().item() - 1 / math.e) < 3 * diff.std().item() / math.sqrt(len(diff)) + 1e-3
    assert ref_style.mean().item() < 6.0 - 0.2  # the reference-style value is visibly low


def test_tnce_normalises_over_x_and_ignores_y_factors():
    L = _rand(6, torch.float64)
    Ll = L.tolist()
    ref = sum(Ll[i][i] - math.log(sum(math.exp(Ll[j][i]) for j in range(6)) / 6) for i in range(6)) / 6
    assert math.isclose(B.tnce_lower_bound(L).item(), ref, rel_tol=1e-12)
    col = torch.randn(1, 6, dtype=torch.float64) * 10  # log |Jacobian(y_j)| or log p(y_j): a column offset
    assert math.isclose(B.tnce_lower_bound(L + col).item(), ref, rel_tol=1e-10)
    assert B.tnce_lower_bound(L).item() <= math.log(6)


def test_upper_and_lower_bounds_sandwich_true_mi():
    from mi_lib.critics import GaussianOptimalCritic

    mi, dim, k = 3.0, 4, 256
    rho = mi_to_rho(mi, dim)
    crit = GaussianOptimalCritic(rho, dim)
    g = torch.Generator().manual_seed(0)
    lows, ups = [], []
    for _ in range(30):
        x, y = sample_correlated_gaussian(rho, dim, k, g, dtype=torch.float64)
        L = crit.log_conditional(x, y)
        lows.append(B.tnce_lower_bound(L).item())
        ups.append(B.loo_upper_bound(L).item())
        log_q = -0.5 * (y**2).sum(-1) - 0.5 * dim * math.log(2 * math.pi)  # q(y) = p(y): tight
        assert math.isclose(
            B.variational_upper_bound(torch.diagonal(L), log_q).item(), (torch.diagonal(L) - log_q).mean().item()
        )
    assert sum(lows) / 30 < mi < sum(ups) / 30
