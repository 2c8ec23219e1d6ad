"""Inception Score from class probabilities: analytic extremes and the split statistics."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.inception_score import inception_score


def test_confident_and_uniformly_spread_predictions_score_the_number_of_classes():
    classes = 8
    probs = np.eye(classes)[np.arange(80) % classes]  # each split holds every class equally often
    mean, std = inception_score(probs, num_splits=10)
    assert mean == pytest.approx(classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_identical_predictions_score_one():
    probs = np.tile(np.array([[0.7, 0.2, 0.1]]), (50, 1))
    mean, _ = inception_score(probs, num_splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)


def test_split_scores_follow_the_formula():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(probs, 4):
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(p * np.log(p / py)) for p in part])))
    mean, std = inception_score(probs, num_splits=4)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-10)
    with pytest.raises(ValueError):
        inception_score(probs[:3], num_splits=4)
