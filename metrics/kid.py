"""Kernel Inception Distance (Bińkowski et al. 2018), as the official StyleGAN2-ADA metric.

With d = feature dimension, the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3, and
m = min(N_real, N_gen, max_subset_size): for each of `num_subsets` subsets, draw m generated
vectors x and m real vectors y without replacement and add

    t += [sum_{i != j} (K_xx + K_yy)_ij] / (m - 1) - 2 sum_ij (K_xy)_ij / m ;

KID = t / num_subsets / m, the unbiased MMD^2 estimate averaged over subsets. It is *not*
clamped: for two samples of one distribution it scatters around 0, including below.
"""

from __future__ import annotations

import numpy as np


def kernel_inception_distance(gen_features: np.ndarray, real_features: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID of two feature sets `[N, d]` (module docstring); subsets drawn from RandomState(seed)."""
    gen = np.asarray(gen_features, dtype=np.float64)
    real = np.asarray(real_features, dtype=np.float64)
    if gen.ndim != 2 or real.ndim != 2 or gen.shape[1] != real.shape[1]:
        raise ValueError(f"features must be [N, d] with equal d, got {gen.shape} and {real.shape}")
    n = gen.shape[1]
    m = min(gen.shape[0], real.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 vectors in each set")
    rng = np.random.RandomState(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(t / num_subsets / m)


def compute_kid(opts, max_real: int | None, num_gen: int, num_subsets: int, max_subset_size: int) -> float:
    """KID between the dataset (first `max_real` items) and `num_gen` generated images."""
    from metrics import pipeline

    pipeline.require_real_data(opts)
    det = pipeline.get_inception(opts)
    real = pipeline.compute_feature_stats_for_dataset(opts, det, max_items=max_real, capture_all=True)
    gen = pipeline.compute_feature_stats_for_generator(opts, det.features, num_gen, capture_all=True)
    if opts.rank != 0:
        return float("nan")
    return kernel_inception_distance(gen.get_all(), real.get_all(), num_subsets, max_subset_size, seed=opts.seed)
