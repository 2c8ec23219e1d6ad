"""Tests for renyi/losses.py: every formula of shared/spec/renyi-loss.md, checked numerically."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renyi.losses import (
    SERIES_THRESHOLD,
    alpha_generator_loss,
    discriminator_loss,
    lk_discriminator_loss,
    lk_generator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
    renyi_generator_loss,
)

INF = float("inf")
LOG2 = math.log(2.0)


def _logits(n: int = 32, scale: float = 2.0, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g, dtype=torch.float64) * scale).to(dtype)


def _grad(fn, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = logits.detach().clone().requires_grad_(True)
    value = fn(x)
    (g,) = torch.autograd.grad(value, x)
    return value.detach(), g


def _decimal_renyi(logits: torch.Tensor, alpha: float) -> float:
    """High-precision reference (60 digits): 1/(a-1) log mean exp((a-1) s), s = -log(1 + e^l).

    For |a-1| so small that even 60 digits cancel, the cumulant series (4 terms) is used.
    """
    getcontext().prec = 60
    a = Decimal(alpha) - 1
    s = [-(Decimal(1) + Decimal(float(v)).exp()).ln() for v in logits.tolist()]
    n = Decimal(len(s))
    mean = sum(s) / n
    if a == 0:
        return float(mean)
    if abs(a) < Decimal("1e-15"):
        d = [x - mean for x in s]
        k2 = sum(x**2 for x in d) / n
        k3 = sum(x**3 for x in d) / n
        k4 = sum(x**4 for x in d) / n - 3 * k2**2
        return float(mean + a * k2 / 2 + a**2 * k3 / 6 + a**3 * k4 / 24)
    total = sum((a * x).exp() for x in s) / n
    return float(total.ln() / a)


# ------------------------------------------------------------------------------------------------
# Special values and agreement with the defining formula.


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.999, 1.0, 1.001, 2.0, 3.0, 10.0, INF])
def test_half_discriminator_gives_minus_log2(alpha):
    zeros = torch.zeros(17, dtype=torch.float64)  # D = sigmoid(0) = 1/2 for every sample
    assert renyi_generator_loss(zeros, alpha).item() == pytest.approx(-LOG2, abs=1e-15)
    assert abs(renyi_generator_loss(zeros, alpha, l1=True).item()) < 1e-15
    zeros32 = torch.zeros(17, 1)  # [N, 1] float32
    assert renyi_generator_loss(zeros32, alpha).item() == pytest.approx(-LOG2, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 2.0, 3.0, 10.0])
def test_matches_naive_power_formula_float64(alpha):
    for seed in range(3):
        logits = _logits(seed=seed)
        d = torch.sigmoid(logits)
        naive = (1.0 / (alpha - 1.0)) * torch.log(((1.0 - d) ** (alpha - 1.0)).mean())
        got = renyi_generator_loss(logits, alpha)
        assert got.dtype == torch.float64
        assert abs(got.item() - naive.item()) <= 1e-12 * abs(naive.item())


@pytest.mark.parametrize(
    "alpha",
    [0.0, 0.5, 0.9, 0.999, 1 - 1e-6, 1 - 1e-9, 1 - 1e-13, 1 - 1e-19, 1 - 1e-21, 1.0,
     1 + 1e-21, 1 + 1e-19, 1 + 1e-13, 1 + 1e-9, 1 + 1e-6, 1.001, 1.5, 2.0, 10.0],
)
def test_matches_high_precision_reference_on_both_sides_of_one(alpha):
    # float64 can only represent 1 +- 1e-19 as 1.0; the a = alpha - 1 used is what python holds.
    logits = _logits(n=24, scale=3.0, seed=7)
    ref = _decimal_renyi(logits, alpha)
    got = renyi_generator_loss(logits, alpha).item()
    assert abs(got - ref) <= 1e-12 * abs(ref)


def test_series_branch_matches_exact_form_at_threshold():
    # The series (|a| < SERIES_THRESHOLD) and the expm1 form are used on either side; both
    # must agree with each other to float64 precision, in value and gradient.
    from renyi.losses import scaled_log_mean_exp

    v = -F.softplus(_logits(seed=3)).requires_grad_(True)
    for a_in, a_out in [(0.99 * SERIES_THRESHOLD, 1.01 * SERIES_THRESHOLD), (-0.99 * SERIES_THRESHOLD, -1.01 * SERIES_THRESHOLD)]:
        vin = scaled_log_mean_exp(v, a_in)
        (gin,) = torch.autograd.grad(vin, v)
        vout = scaled_log_mean_exp(v, a_out)
        (gout,) = torch.autograd.grad(vout, v)
        assert abs(vin.item() - vout.item()) <= 1e-15 * abs(vout.item())
        assert torch.allclose(gin, gout, rtol=0, atol=1e-17)


def test_alpha_two_is_log_one_minus_mean_d():
    logits = _logits(seed=4)
    expected = math.log(1.0 - torch.sigmoid(logits).mean().item())
    assert renyi_generator_loss(logits, 2.0).item() == pytest.approx(expected, rel=1e-13)


def test_alpha_zero_is_the_limit_from_above():
    logits = _logits(seed=5)
    d = torch.sigmoid(logits)
    limit = -math.log((1.0 / (1.0 - d)).mean().item())
    assert renyi_generator_loss(logits, 0.0).item() == pytest.approx(limit, rel=1e-13)
    for eps in (1e-4, 1e-6, 1e-8):  # alpha -> 0+ approaches it linearly in eps
        assert abs(renyi_generator_loss(logits, eps).item() - limit) < 100 * eps


def test_alpha_one_is_mean_log_one_minus_d_and_inf_is_max():
    logits = _logits(seed=6)
    s = torch.log1p(-torch.sigmoid(logits))
    assert renyi_generator_loss(logits, 1.0).item() == pytest.approx(s.mean().item(), rel=1e-13)
    assert renyi_generator_loss(logits, INF).item() == pytest.approx(s.max().item(), rel=1e-12)
    # Large finite alpha approaches the max from below.
    assert renyi_generator_loss(logits, 1e4).item() == pytest.approx(s.max().item(), abs=1e-3)
    assert renyi_generator_loss(logits, 1e4).item() <= renyi_generator_loss(logits, INF).item()


def test_l1_is_distance_from_equilibrium():
    logits = _logits(seed=8)
    for alpha in (0.5, 2.0):
        plain = renyi_generator_loss(logits, alpha).item()
        assert renyi_generator_loss(logits, alpha, l1=True).item() == pytest.approx(abs(plain + LOG2), rel=1e-14)
    # Overshoot (D above 1/2): the sign flips, so the L1 gradient is the opposite of the plain one.
    over = torch.full((5,), 3.0, dtype=torch.float64)
    _, g_plain = _grad(lambda x: renyi_generator_loss(x, 2.0), over)
    _, g_l1 = _grad(lambda x: renyi_generator_loss(x, 2.0, l1=True), over)
    assert torch.allclose(g_l1, -g_plain)
    under = torch.full((5,), -3.0, dtype=torch.float64)
    _, g_plain = _grad(lambda x: renyi_generator_loss(x, 2.0), under)
    _, g_l1 = _grad(lambda x: renyi_generator_loss(x, 2.0, l1=True), under)
    assert torch.allclose(g_l1, g_plain)


# ------------------------------------------------------------------------------------------------
# Continuity through alpha = 1 and the gradient formula.


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_continuous_through_alpha_one(dtype):
    for seed in range(4):
        logits = _logits(seed=seed, scale=1.5, dtype=dtype)
        v1, g1 = _grad(lambda x: renyi_generator_loss(x, 1.0), logits)
        half_var = 0.5 * (-F.softplus(logits.double())).var(unbiased=False).item()  # dL/dalpha at 1
        for eps in (1e-6, -1e-6, 1e-9, -1e-9, 1e-15, -1e-15):
            v, g = _grad(lambda x: renyi_generator_loss(x, 1.0 + eps), logits)
            assert abs(v.item() - v1.item()) < 1e-6
            assert (g - g1).abs().max().item() < 1e-6
            if dtype == torch.float64:  # the jump is exactly the first-order term, no more
                assert abs(v.item() - v1.item() - eps * half_var) < 1e-12


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0, 1.0 + 1e-7, 2.0, 5.0, 10.0])
def test_gradient_is_minus_weight_times_d(alpha):
    logits = _logits(seed=9, scale=3.0)
    _, g = _grad(lambda x: renyi_generator_loss(x, alpha), logits)
    s = -F.softplus(logits)
    w = torch.softmax((alpha - 1.0) * s, dim=0)
    assert torch.allclose(g, -w * torch.sigmoid(logits), rtol=1e-12, atol=1e-15)
    assert torch.allclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_gradient_at_inf_is_one_hot_on_first_maximum():
    logits = torch.tensor([0.5, -2.0, -2.0, 1.0, -2.0], dtype=torch.float64)  # max s at l = -2 (first: index 1)
    _, g = _grad(lambda x: renyi_generator_loss(x, INF), logits)
    expected = torch.zeros(5, dtype=torch.float64)
    expected[1] = -torch.sigmoid(torch.tensor(-2.0, dtype=torch.float64))
    assert torch.equal(g, expected)


# ------------------------------------------------------------------------------------------------
# The equilibrium theorem on discrete distributions.


def _renyi_div(p: np.ndarray, q: np.ndarray, a: float) -> float:
    if a == 1.0:
        return float(np.sum(p * np.log(p / q)))
    return float(np.log(np.sum(p**a * q ** (1.0 - a))) / (a - 1.0))


def _jensen_renyi(p: np.ndarray, q: np.ndarray, a: float) -> float:
    m = 0.5 * (p + q)
    return 0.5 * (_renyi_div(p, m, a) + _renyi_div(q, m, a))


def _objective_at_optimal_d(p_counts: list[int], q_counts: list[int], alpha: float) -> float:
    """``-H_a(p; D*) - H_a(q; 1 - D*)`` evaluated with the library function.

    A distribution with rational masses c_j / M is a batch in which outcome j appears c_j times,
    so the batch mean is the expectation. With ``D* = p/(p+q)`` the logit is ``log p - log q``;
    the generator term uses the fake logits under q, the data term ``1/(a-1) log E_p[D^(a-1)]``
    is the same function of the negated logits under p (``D = 1 - sigmoid(-l)``).
    """
    p = np.array(p_counts, dtype=np.float64) / sum(p_counts)
    q = np.array(q_counts, dtype=np.float64) / sum(q_counts)
    logit = torch.tensor(np.log(p) - np.log(q), dtype=torch.float64)
    fake = torch.repeat_interleave(logit, torch.tensor(q_counts))
    real = torch.repeat_interleave(-logit, torch.tensor(p_counts))
    return renyi_generator_loss(fake, alpha).item() + renyi_generator_loss(real, alpha).item()


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 2.0, 3.0, 10.0])
def test_equilibrium_theorem_on_discrete_distributions(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    for _ in range(5):
        p_counts = [int(c) for c in rng.integers(1, 20, size=6)]
        q_counts = [int(c) for c in rng.integers(1, 20, size=6)]
        p = np.array(p_counts, dtype=np.float64) / sum(p_counts)
        q = np.array(q_counts, dtype=np.float64) / sum(q_counts)
        value = _objective_at_optimal_d(p_counts, q_counts, alpha)
        assert value == pytest.approx(2.0 * _jensen_renyi(p, q, alpha) - 2.0 * LOG2, rel=1e-12, abs=1e-13)
        assert value >= -2.0 * LOG2 - 1e-13
        if not np.allclose(p, q):  # strict inequality when p != q
            assert value > -2.0 * LOG2 + 1e-6
    equal = [int(c) for c in rng.integers(1, 20, size=6)]
    assert _objective_at_optimal_d(equal, equal, alpha) == pytest.approx(-2.0 * LOG2, abs=1e-14)
    # Same distribution with different sample multiplicities is still p = q.
    doubled = [2 * c for c in equal]
    assert _objective_at_optimal_d(equal, doubled, alpha) == pytest.approx(-2.0 * LOG2, abs=1e-14)


# ------------------------------------------------------------------------------------------------
# Properties over alpha and logits.

_alphas = st.one_of(
    st.sampled_from([0.0, 1.0, INF, 1.0 + 1e-12, 1.0 - 1e-12]),
    st.floats(min_value=0.0, max_value=20.0, allow_nan=False, allow_infinity=False),
)
_logit_lists = st.lists(st.floats(min_value=-60.0, max_value=60.0, allow_nan=False), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alpha=_alphas, values=_logit_lists, l1=st.booleans())
def test_property_finite_value_and_gradient(alpha, values, l1):
    logits = torch.tensor(values, dtype=torch.float64)
    v, g = _grad(lambda x: renyi_generator_loss(x, alpha, l1=l1), logits)
    assert math.isfinite(v.item())
    assert torch.isfinite(g).all()
    s_max = (-F.softplus(logits)).max().item()
    if not l1:  # a power mean of log(1-D) lies between its min and max
        assert v.item() <= s_max + 1e-9 * (1 + abs(s_max))
        assert v.item() >= (-F.softplus(logits)).min().item() - 1e-9 * (1 + abs(s_max))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alpha=_alphas, values=_logit_lists, index=st.integers(min_value=0, max_value=11),
       delta=st.floats(min_value=1e-3, max_value=5.0))
def test_property_loss_decreases_as_a_fake_logit_increases(alpha, values, index, delta):
    logits = torch.tensor(values, dtype=torch.float64)
    index %= len(values)
    v, g = _grad(lambda x: renyi_generator_loss(x, alpha), logits)
    assert (g <= 0).all()
    bumped = logits.clone()
    bumped[index] += delta
    v2 = renyi_generator_loss(bumped, alpha).item()
    assert v2 <= v.item() + 1e-12 * (1 + abs(v.item()))


# ------------------------------------------------------------------------------------------------
# Saturation, dtypes and bad input.


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("alpha", [0.1, 10.0])
def test_saturated_logits_stay_finite(alpha, dtype):
    logits = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype)
    with np.errstate(all="ignore"):
        d = torch.sigmoid(logits.double())
        naive = (1.0 / (alpha - 1.0)) * torch.log(((1.0 - d) ** (alpha - 1.0)).mean())
    if alpha < 1:
        assert not torch.isfinite(naive)  # the naive power formula overflows here
    for l1 in (False, True):
        v, g = _grad(lambda x: renyi_generator_loss(x, alpha, l1=l1), logits)
        assert torch.isfinite(v) and torch.isfinite(g).all()
    v, g = _grad(lambda x: renyi_generator_loss(x, alpha), logits)
    s = -F.softplus(logits.double())
    w = torch.softmax((alpha - 1.0) * s, dim=0)
    assert torch.allclose(g.double(), -w * torch.sigmoid(logits.double()), atol=1e-6)
    if alpha == 0.1:  # dominated by the samples with D = 1: (1/-0.9) log(2/5 * e^{9000})
        assert v.item() == pytest.approx(-1e4 + math.log(2.5) / 0.9, rel=1e-6)


def test_dtypes_and_autocast():
    logits64 = _logits(seed=11)
    ref = renyi_generator_loss(logits64, 2.5).item()
    out32 = renyi_generator_loss(logits64.float(), 2.5)
    assert out32.dtype == torch.float32 and out32.item() == pytest.approx(ref, rel=1e-5)
    bf = logits64.to(torch.bfloat16)
    out_bf = renyi_generator_loss(bf, 2.5)
    assert out_bf.dtype == torch.float32
    assert out_bf.item() == pytest.approx(renyi_generator_loss(bf.double(), 2.5).item(), rel=1e-5)
    # Logits produced under bf16 autocast: loss reduced in float32, backward works.
    net = torch.nn.Linear(4, 1)
    x = torch.randn(32, 4)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = net(x)
        assert out.dtype == torch.bfloat16
        loss = renyi_generator_loss(out, 0.5, l1=True)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(net.weight.grad).all() and net.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [-0.1, -INF, float("nan"), True, "2", None, [2.0], torch.tensor(2.0)])
def test_bad_alpha_is_rejected(bad):
    with pytest.raises(ValueError, match=r"alpha.*>= 0"):
        renyi_generator_loss(torch.zeros(3), bad)


def test_bad_logits_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        renyi_generator_loss(torch.zeros(0), 2.0)
    with pytest.raises(ValueError, match="empty"):
        renyi_generator_loss(torch.zeros(0, 1), 2.0)
    for bad in (float("nan"), INF, -INF):
        with pytest.raises(ValueError, match="fake_logits.*finite"):
            renyi_generator_loss(torch.tensor([0.0, bad]), 2.0)
    with pytest.raises(ValueError, match=r"shape \[N\] or \[N, 1\]"):
        renyi_generator_loss(torch.zeros(4, 2), 2.0)
    with pytest.raises(ValueError, match="torch.Tensor"):
        renyi_generator_loss([0.0, 1.0], 2.0)
    with pytest.raises(ValueError, match="fake_logits"):
        nonsaturating_generator_loss(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="real_logits"):
        discriminator_loss(torch.zeros(0), torch.zeros(3))


# ------------------------------------------------------------------------------------------------
# Relatives, each reducing to its known special case.


def test_discriminator_loss_is_bce():
    real, fake = _logits(seed=12), _logits(seed=13, n=20)
    expected = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    assert discriminator_loss(real[:, None], fake).item() == pytest.approx(expected.item(), rel=1e-14)
    # Finite at saturation where log(sigmoid) would give -inf.
    assert math.isfinite(discriminator_loss(torch.tensor([-1e4]), torch.tensor([1e4])).item())


def test_nonsaturating_and_minimax():
    logits = _logits(seed=14)
    d = torch.sigmoid(logits)
    assert nonsaturating_generator_loss(logits).item() == pytest.approx(-torch.log(d).mean().item(), rel=1e-13)
    mm = minimax_generator_loss(logits).item()
    assert mm == pytest.approx(torch.log(1.0 - d).mean().item(), rel=1e-13)
    assert mm == pytest.approx(renyi_generator_loss(logits, 1.0).item(), rel=1e-15)
    _, g_mm = _grad(minimax_generator_loss, logits)
    _, g_r1 = _grad(lambda x: renyi_generator_loss(x, 1.0), logits)
    assert torch.allclose(g_mm, g_r1, rtol=1e-14, atol=0)


def test_lk_reduces_to_lsgan_at_k2():
    logits = _logits(seed=15)
    for gamma in (1.0, 0.0, -0.5):
        assert lk_generator_loss(logits, k=2.0, gamma=gamma).item() == pytest.approx(
            ((logits - gamma) ** 2).mean().item(), rel=1e-14
        )
        _, g = _grad(lambda x: lk_generator_loss(x, k=2.0, gamma=gamma), logits)
        assert torch.allclose(g, 2.0 * (logits - gamma) / logits.numel(), rtol=1e-13)
    assert lk_generator_loss(logits, k=1.0).item() == pytest.approx((logits - 1.0).abs().mean().item(), rel=1e-14)
    assert lk_generator_loss(logits, k=3.0, gamma=0.5).item() == pytest.approx(
        ((logits - 0.5).abs() ** 3).mean().item(), rel=1e-13
    )
    real = _logits(seed=16)
    expected = 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (logits**2).mean()
    assert lk_discriminator_loss(real, logits, k=3.0, gamma=1.0).item() == pytest.approx(expected.item(), rel=1e-14)
    for bad_k in (0.5, float("nan"), "2"):
        with pytest.raises(ValueError, match="k must be"):
            lk_generator_loss(logits, k=bad_k)
    with pytest.raises(ValueError, match="gamma"):
        lk_generator_loss(logits, gamma=INF)


def test_alpha_loss_reduces_to_original_gan_at_one():
    logits = _logits(seed=17)
    d = torch.sigmoid(logits)
    assert alpha_generator_loss(logits, 1.0).item() == pytest.approx(torch.log(1.0 - d).mean().item(), rel=1e-13)
    for a in (0.5, 2.0, 5.0):
        naive = a / (a - 1.0) * (((1.0 - d) ** ((a - 1.0) / a)).mean() - 1.0)
        assert alpha_generator_loss(logits, a).item() == pytest.approx(naive.item(), rel=1e-12)
    assert alpha_generator_loss(logits, INF).item() == pytest.approx(-d.mean().item(), rel=1e-13)
    v1, g1 = _grad(lambda x: alpha_generator_loss(x, 1.0), logits)
    for eps in (1e-7, -1e-7, 1e-25):
        v, g = _grad(lambda x: alpha_generator_loss(x, 1.0 + eps), logits)
        assert abs(v.item() - v1.item()) < 1e-6 and (g - g1).abs().max().item() < 1e-6
    with pytest.raises(ValueError, match=r"alpha.*> 0"):
        alpha_generator_loss(logits, 0.0)
    sat = torch.tensor([1e4, -1e4])
    for a in (0.1, 10.0):
        v, g = _grad(lambda x: alpha_generator_loss(x, a), sat)
        assert torch.isfinite(v) and torch.isfinite(g).all()
