"""Improved precision and recall (Kynkäänniemi et al. 2019), as the official StyleGAN2-ADA metric.

Each point of a manifold (a feature set) gets the radius r_i = distance to its k-th nearest
neighbour in the same set (the point itself excluded). Then

    precision = fraction of generated points within r_i of at least one real point i,
    recall    = fraction of real points within r_j of at least one generated point j.

Distances are Euclidean (float32, in row/column blocks to bound memory); the official code uses
float16 on the GPU, which can flip points lying almost exactly on a radius.
"""

from __future__ import annotations

import numpy as np
import torch


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.unsqueeze(0), b.unsqueeze(0), compute_mode="use_mm_for_euclid_dist_if_necessary")[0]


def manifold_radii(features: torch.Tensor, k: int, row_batch: int = 10000, col_batch: int = 10000) -> torch.Tensor:
    """Distance of every point to its k-th nearest other point of the same set `[N]`."""
    n = features.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} points to compute neighbourhood radii, got {n}")
    radii = torch.empty(n, dtype=features.dtype)
    for r0 in range(0, n, row_batch):
        rows = features[r0:r0 + row_batch]
        dist = torch.cat([_distances(rows, features[c0:c0 + col_batch]) for c0 in range(0, n, col_batch)], dim=1)
        radii[r0:r0 + row_batch] = dist.kthvalue(k + 1, dim=1).values  # the k+1-th includes the point itself
    return radii


def fraction_covered(probe: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor,
                     row_batch: int = 10000, col_batch: int = 10000) -> float:
    """Fraction of `probe` points that lie within the radius of at least one `manifold` point."""
    inside = torch.zeros(probe.shape[0], dtype=torch.bool)
    for r0 in range(0, probe.shape[0], row_batch):
        rows = probe[r0:r0 + row_batch]
        hit = torch.zeros(rows.shape[0], dtype=torch.bool)
        for c0 in range(0, manifold.shape[0], col_batch):
            dist = _distances(rows, manifold[c0:c0 + col_batch])
            hit |= (dist <= radii[c0:c0 + col_batch].unsqueeze(0)).any(dim=1)
        inside[r0:r0 + row_batch] = hit
    return float(inside.float().mean())


def precision_recall(real_features: np.ndarray, gen_features: np.ndarray, k: int = 3,
                     row_batch: int = 10000, col_batch: int = 10000) -> tuple[float, float]:
    """(precision, recall) of generated vs real feature sets `[N, d]` (module docstring)."""
    real = torch.as_tensor(np.asarray(real_features, dtype=np.float32))
    gen = torch.as_tensor(np.asarray(gen_features, dtype=np.float32))
    precision = fraction_covered(gen, real, manifold_radii(real, k, row_batch, col_batch), row_batch, col_batch)
    recall = fraction_covered(real, gen, manifold_radii(gen, k, row_batch, col_batch), row_batch, col_batch)
    return precision, recall


def compute_pr(opts, max_real: int | None, num_gen: int, nhood_size: int, row_batch_size: int = 10000,
               col_batch_size: int = 10000) -> tuple[float, float, str]:
    """(precision, recall, feature name) of `num_gen` generated images against the dataset; the
    features are VGG16's when a VGG16 file is given, else the Inception pool features."""
    from metrics import pipeline

    pipeline.require_real_data(opts)
    det = pipeline.get_pr_detector(opts)
    real = pipeline.compute_feature_stats_for_dataset(opts, det, max_items=max_real, capture_all=True)
    gen = pipeline.compute_feature_stats_for_generator(opts, det.features, num_gen, capture_all=True)
    if opts.rank != 0:
        return float("nan"), float("nan"), det.name
    p, r = precision_recall(real.get_all(), gen.get_all(), nhood_size, row_batch_size, col_batch_size)
    return p, r, det.name
