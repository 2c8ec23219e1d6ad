"""The Fréchet distance between two Gaussians, robustly, in float64.

    FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1^(1/2) S2 S1^(1/2))^(1/2) )

The last trace equals tr(sqrtm(S1 S2)) of the usual formula (S1 S2 is similar to the symmetric
positive semi-definite S1^(1/2) S2 S1^(1/2)), but it is computed from two *symmetric*
eigendecompositions instead of a general matrix square root:

1. S1 = V diag(l) V^T, S1^(1/2) = V diag(sqrt l) V^T;
2. M = S1^(1/2) S2 S1^(1/2), symmetrised;
3. tr(M^(1/2)) = sum_i sqrt(eig_i(M)).

In steps 1 and 3 eigenvalues below the round-off level `d * eps * max(eig)` (numpy's
`matrix_rank` tolerance) are set to 0: they are zeros of a singular matrix blurred by rounding,
and their square roots (about sqrt(eps) each, times up to d of them) would otherwise bias the
trace.

When the features of a side are at hand and fewer than the dimension (e.g. 1,000 generated
images, 2,048-d features), its covariance is S = F F^T with F = (X - mean) / sqrt(N) (d x N), and
the trace term comes from the N x N matrix F^T S_other F instead (see `trace_sqrt_product`).

This is exact for singular covariances (fewer samples than dimensions), never produces complex
numbers or NaN, needs no scipy option that changed between versions (`disp=`), and is several
times faster than `scipy.linalg.sqrtm`. The result is clipped at 0 (round-off can otherwise make
the distance of identical statistics a tiny negative number). No epsilon is added to the
diagonals (unlike pytorch-fid), as in the official StyleGAN2-ADA metric.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _symmetric(a: np.ndarray) -> np.ndarray:
    return (a + a.T) / 2


def _clip_roundoff(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD matrix with negatives and round-off-sized ones set to 0."""
    top = float(np.max(np.abs(eigenvalues))) if eigenvalues.size else 0.0
    tol = top * eigenvalues.size * np.finfo(np.float64).eps
    return np.where(eigenvalues > tol, eigenvalues, 0.0)


def _factored_trace(factor: np.ndarray, sigma: np.ndarray) -> float:
    """tr sqrt(F^T S F) with S1 = F F^T: the trace term from the d x n factor of a rank-n S1."""
    f = np.asarray(factor, dtype=np.float64)
    m = _symmetric(f.T @ np.asarray(sigma, dtype=np.float64) @ f)
    return float(np.sqrt(_clip_roundoff(np.linalg.eigvalsh(m))).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, factor1: Optional[np.ndarray] = None,
                       factor2: Optional[np.ndarray] = None) -> float:
    """tr((S1^(1/2) S2 S1^(1/2))^(1/2)) = tr(sqrtm(S1 S2)) for symmetric PSD S1, S2 (float64).

    `factor1` / `factor2`, when given, are d x n matrices F with S = F F^T (for a biased sample
    covariance: the centred samples / sqrt(N)). For n < d this is cheaper and more exact: the
    non-zero eigenvalues of S1^(1/2) S2 S1^(1/2) are those of the n x n matrix F1^T S2 F1, and
    with both factors the trace is the sum of the singular values of F2^T F1.
    """
    if factor1 is not None and factor2 is not None:
        cross = np.asarray(factor2, dtype=np.float64).T @ np.asarray(factor1, dtype=np.float64)
        return float(np.linalg.svd(cross, compute_uv=False).sum())
    if factor1 is not None:
        return _factored_trace(factor1, sigma2)
    if factor2 is not None:
        return _factored_trace(factor2, sigma1)
    s1 = _symmetric(np.asarray(sigma1, dtype=np.float64))
    s2 = _symmetric(np.asarray(sigma2, dtype=np.float64))
    lam, vec = np.linalg.eigh(s1)
    root1 = (vec * np.sqrt(_clip_roundoff(lam))) @ vec.T
    m = _symmetric(root1 @ s2 @ root1)
    return float(np.sqrt(_clip_roundoff(np.linalg.eigvalsh(m))).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     factor1: Optional[np.ndarray] = None, factor2: Optional[np.ndarray] = None) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (module docstring), >= 0.
    Optional covariance factors: see `trace_sqrt_product`."""
    mu1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    mu2 = np.asarray(mu2, dtype=np.float64).reshape(-1)
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2)) and np.all(np.isfinite(sigma1)) and np.all(np.isfinite(sigma2))):
        return float("nan")
    diff = mu1 - mu2
    trace = trace_sqrt_product(sigma1, sigma2, factor1, factor2)
    fd = float(diff @ diff) + float(np.trace(sigma1)) + float(np.trace(sigma2)) - 2.0 * trace
    return max(fd, 0.0)


def compute_fid(opts, max_real: int | None, num_gen: int) -> float:
    """FID between the dataset (first `max_real` items; None: all) and `num_gen` generated images.
    `opts` is a `metrics.pipeline.MetricOptions`; ranks other than 0 return NaN."""
    from metrics import pipeline

    pipeline.require_real_data(opts)
    det = pipeline.get_inception(opts)
    real = pipeline.compute_feature_stats_for_dataset(opts, det, max_items=max_real, capture_mean_cov=True)
    gen = pipeline.compute_feature_stats_for_generator(opts, det.features, num_gen, capture_mean_cov=True)
    if opts.rank != 0:
        return float("nan")
    mu_real, sigma_real = real.get_mean_cov()
    mu_gen, sigma_gen = gen.get_mean_cov()
    return frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real, gen.get_cov_factor(), real.get_cov_factor())
