"""Fréchet distance: analytic values, singular and near-singular covariances, agreement with sqrtm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from metrics.feature_stats import FeatureStats
from metrics.frechet import frechet_distance, trace_sqrt_product


def _fd_sqrtm(mu1, s1, mu2, s2):
    """Textbook formula with scipy's general matrix square root (reference for regular cases)."""
    root = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real)


def test_mean_shift_in_2d_is_2():
    assert frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)) == pytest.approx(2.0, abs=1e-12)


def test_correlated_vs_identity_is_4_minus_2_sqrt3():
    s = np.array([[2.0, 1.0], [1.0, 2.0]])
    fd = frechet_distance(np.zeros(2), s, np.zeros(2), np.eye(2))
    assert fd == pytest.approx(4 - 2 * math.sqrt(3), abs=1e-12)
    # Symmetric in its arguments.
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), s) == pytest.approx(fd, abs=1e-12)


def test_biased_covariance_as_official():
    """X = {0, 2}, Y = {0, 0} in 1-d: means 1 vs 0, biased variances 1 vs 0 -> FID 1 + 1 = 2 (np.cov would give 3)."""
    sx = FeatureStats(capture_mean_cov=True)
    sx.append(np.array([[0.0], [2.0]]))
    sy = FeatureStats(capture_mean_cov=True)
    sy.append(np.array([[0.0], [0.0]]))
    mx, cx = sx.get_mean_cov()
    my, cy = sy.get_mean_cov()
    assert cx[0, 0] == 1.0 and cy[0, 0] == 0.0
    assert frechet_distance(mx, cx, my, cy) == pytest.approx(2.0, abs=1e-12)


def test_identical_statistics_give_exactly_zero_never_negative():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 64))  # fewer samples than dimensions: singular covariance
    mu, cov = x.mean(0), np.cov(x, rowvar=False, bias=True)
    fd = frechet_distance(mu, cov, mu, cov)
    assert fd >= 0.0
    assert fd < 1e-9 * np.trace(cov)


def test_singular_covariances_match_the_exact_value():
    """Rank-deficient covariances built from known factors: the trace term has a closed form."""
    rng = np.random.default_rng(1)
    d, r = 40, 5
    a = rng.standard_normal((d, r))
    s1 = a @ a.T  # rank 5
    s2 = 4.0 * s1  # sqrt(S1 S2) = 2 S1 exactly
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = float(np.sum((mu1 - mu2) ** 2)) + np.trace(s1) + 4 * np.trace(s1) - 2 * 2 * np.trace(s1)
    fd = frechet_distance(mu1, s1, mu2, s2)
    assert fd == pytest.approx(expected, rel=1e-9)


def test_agrees_with_sqrtm_on_regular_covariances():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 30)) @ rng.standard_normal((30, 30))
    y = rng.standard_normal((400, 30)) * 1.5 + 0.3
    args = (x.mean(0), np.cov(x, rowvar=False, bias=True), y.mean(0), np.cov(y, rowvar=False, bias=True))
    assert frechet_distance(*args) == pytest.approx(_fd_sqrtm(*args), rel=1e-9)


def test_near_singular_product_is_real_and_finite():
    """Tiny negative eigenvalues from round-off (where sqrtm returns complex parts) are clipped."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((100, 3))
    s1 = a @ a.T - 1e-14 * np.eye(100)  # slightly indefinite
    s2 = s1 * (1 + 1e-12)
    t = trace_sqrt_product(s1, s2)
    assert isinstance(t, float) and math.isfinite(t)
    fd = frechet_distance(np.zeros(100), s1, np.zeros(100), s2)
    assert math.isfinite(fd) and 0.0 <= fd < 1e-6 * np.trace(a @ a.T)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_covariance_factors_give_the_same_distance():
    """Fewer samples than dimensions: the factored trace term equals the eigendecomposition one."""
    rng = np.random.default_rng(4)
    d = 60
    x = rng.standard_normal((25, d)) @ rng.standard_normal((d, d)) * 0.3
    y = rng.standard_normal((40, d)) + 0.2
    sx, sy = FeatureStats(capture_mean_cov=True), FeatureStats(capture_mean_cov=True)
    sx.append(x)
    sy.append(y)
    (mx, cx), (my, cy) = sx.get_mean_cov(), sy.get_mean_cov()
    fx, fy = sx.get_cov_factor(), sy.get_cov_factor()
    assert fx.shape == (d, 25)
    np.testing.assert_allclose(fx @ fx.T, cx, atol=1e-5)  # float32 inputs, float64 arithmetic
    plain = frechet_distance(mx, cx, my, cy)
    assert frechet_distance(mx, cx, my, cy, fx, None) == pytest.approx(plain, rel=1e-8)
    assert frechet_distance(mx, cx, my, cy, None, fy) == pytest.approx(plain, rel=1e-8)
    assert frechet_distance(mx, cx, my, cy, fx, fy) == pytest.approx(plain, rel=1e-8)
    # More samples than dimensions: no factor is kept.
    big = FeatureStats(capture_mean_cov=True)
    big.append(rng.standard_normal((d + 1, d)))
    assert big.get_cov_factor() is None
