"""Inception Score (Salimans et al. 2016), as the official StyleGAN2-ADA metric.

With p(y|x) the 1008-way softmax of the Inception logits computed *without* the output bias
(OpenAI's original implementation), the generated set split into `num_splits` equal parts, and
p(y) the mean of p(y|x) over a part:

    IS_part = exp( mean_x sum_y p(y|x) (log p(y|x) - log p(y)) ),

reported as the mean and standard deviation of IS_part over the parts.
"""

from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the per-split scores of class probabilities `[N, classes]` (float64)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < num_splits:
        raise ValueError(f"need [N, classes] probabilities with N >= {num_splits}, got {p.shape}")
    n = p.shape[0]
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits: (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts, num_gen: int, num_splits: int) -> tuple[float, float]:
    """(mean, std) Inception Score of `num_gen` generated images; needs weights with the head."""
    from metrics import pipeline

    det = pipeline.get_inception(opts, need_head=True)
    probs = pipeline.compute_feature_stats_for_generator(
        opts, lambda images: det.features_and_probabilities(images)[1], num_gen, capture_all=True)
    if opts.rank != 0:
        return float("nan"), float("nan")
    return inception_score(probs.get_all().astype(np.float64), num_splits)
