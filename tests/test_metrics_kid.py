"""KID: the unbiased cubic-kernel MMD estimate, averaged over subsets, never clamped."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.kid import kernel_inception_distance


def _mmd2_unbiased(x, y):
    """Direct double-loop-free textbook formula of the unbiased MMD^2 with k(a,b) = (a.b/d + 1)^3."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = x.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_single_full_subset_equals_the_unbiased_mmd():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    y = rng.standard_normal((40, 6)) + 0.5
    # One subset containing every vector: the permutation does not change the value.
    kid = kernel_inception_distance(x, y, num_subsets=1, max_subset_size=40)
    assert kid == pytest.approx(_mmd2_unbiased(x, y), rel=1e-12)
    assert kid > 0


def test_kid_of_a_set_with_itself_is_about_zero_and_not_clamped():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 16))
    scale = kernel_inception_distance(x, x + 1.0, num_subsets=10, max_subset_size=50)
    values = [kernel_inception_distance(x, x, num_subsets=10, max_subset_size=50, seed=s) for s in range(10)]
    assert abs(np.mean(values)) < 0.05 * scale
    # Subsets drawn from one set overlap, which biases the estimate slightly below 0: it is
    # reported as it is, not clamped at 0.
    assert max(values) < 0


def test_kid_of_two_samples_of_one_distribution_scatters_around_zero():
    rng = np.random.default_rng(5)
    values = [kernel_inception_distance(rng.standard_normal((50, 8)), rng.standard_normal((50, 8)), num_subsets=1,
                                        max_subset_size=50) for _ in range(30)]
    scale = kernel_inception_distance(rng.standard_normal((50, 8)), rng.standard_normal((50, 8)) + 1.0,
                                      num_subsets=1, max_subset_size=50)
    assert min(values) < 0 < max(values)
    assert abs(np.mean(values)) < 0.1 * scale


def test_kid_is_seeded_and_uses_at_most_the_smaller_set():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((80, 4))
    a = kernel_inception_distance(x, y, num_subsets=5, max_subset_size=1000, seed=3)
    assert a == kernel_inception_distance(x, y, num_subsets=5, max_subset_size=1000, seed=3)
    assert a != kernel_inception_distance(x, y, num_subsets=5, max_subset_size=1000, seed=4)
    with pytest.raises(ValueError):
        kernel_inception_distance(x[:1], y)
