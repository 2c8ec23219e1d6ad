"""Precision/recall with k-NN radii: hand-checked 1-d cases and limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.precision_recall import manifold_radii, precision_recall


def test_radii_are_the_kth_neighbour_distances_excluding_the_point():
    pts = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(manifold_radii(pts, k=1).numpy(), [1, 1, 2, 4])
    np.testing.assert_allclose(manifold_radii(pts, k=2).numpy(), [3, 2, 3, 6])
    # Blocked computation gives the same.
    np.testing.assert_allclose(manifold_radii(pts, k=2, row_batch=3, col_batch=2).numpy(), [3, 2, 3, 6])


def test_hand_checked_precision_and_recall():
    real = np.array([[0.0], [1.0], [2.2], [3.0]])  # k=1 radii: 1, 1, 0.8, 0.8
    gen = np.array([[3.5], [5.0], [10.0], [11.0]])  # k=1 radii: 1.5, 1.5, 1, 1
    p, r = precision_recall(real, gen, k=1, row_batch=3, col_batch=3)
    assert p == pytest.approx(0.25)  # only 3.5 lies within a real radius (0.5 from 3.0 <= 0.8)
    assert r == pytest.approx(0.5)  # 2.2 (1.3 from 3.5) and 3.0 (0.5) lie within a generated radius


def test_identical_and_far_apart_sets():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)
