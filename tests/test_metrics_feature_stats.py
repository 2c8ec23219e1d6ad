"""FeatureStats (float64 sums, biased covariance, truncation, serialisation) and the cache key."""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest

from dnnlib.util import UserError
from metrics.feature_stats import (FeatureStats, dataset_content_digest, stats_cache_key, stats_cache_path)


def test_mean_and_biased_covariance_match_numpy_in_float64():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((300, 7)) * [1, 2, 3, 4, 5, 6, 7] + 1000.0).astype(np.float32)
    s = FeatureStats(capture_mean_cov=True)
    for chunk in np.array_split(x, 7):  # uneven batches
        s.append(chunk)
    mean, cov = s.get_mean_cov()
    x64 = x.astype(np.float64)
    assert mean.dtype == np.float64 and cov.dtype == np.float64
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-13)
    # Large offset (1000) vs unit variances: float32 accumulation would lose the variance here.
    np.testing.assert_allclose(cov, np.cov(x64, rowvar=False, bias=True), rtol=1e-7, atol=1e-7)
    assert not np.allclose(cov, np.cov(x64, rowvar=False, bias=False), rtol=1e-4)


def test_max_items_truncates_and_capture_all_keeps_order():
    s = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=5)
    s.append(np.arange(6, dtype=np.float32).reshape(3, 2))
    assert not s.is_full()
    s.append(np.arange(6, 14, dtype=np.float32).reshape(4, 2))
    assert s.is_full() and s.num_items == 5
    np.testing.assert_array_equal(s.get_all(), np.arange(10, dtype=np.float32).reshape(5, 2))
    mean, _ = s.get_mean_cov()
    np.testing.assert_allclose(mean, [4.0, 5.0])


def test_serialisation_round_trip_is_exact():
    rng = np.random.default_rng(1)
    s = FeatureStats(capture_all=True, capture_mean_cov=True, max_items=100)
    s.append(rng.standard_normal((40, 5)))
    t = FeatureStats.from_bytes(s.to_bytes())
    assert t.num_items == 40 and t.max_items == 100
    np.testing.assert_array_equal(t.get_all(), s.get_all())
    for a, b in zip(t.get_mean_cov(), s.get_mean_cov()):
        np.testing.assert_array_equal(a, b)


def test_empty_stats_raise_user_error():
    with pytest.raises(UserError):
        FeatureStats(capture_mean_cov=True).get_mean_cov()


def _make_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_zip_digest_follows_content_not_location(tmp_path):
    a = tmp_path / "a.zip"
    _make_zip(a, {"x/1.png": b"one", "x/2.png": b"two"})
    d = dataset_content_digest(a)
    moved = tmp_path / "sub" / "renamed.zip"
    moved.parent.mkdir()
    shutil.copy(a, moved)
    os.utime(moved, (1, 1))
    assert dataset_content_digest(moved) == d
    b = tmp_path / "b.zip"
    _make_zip(b, {"x/1.png": b"one", "x/2.png": b"twO"})  # one byte differs -> CRC differs
    assert dataset_content_digest(b) != d


def test_folder_digest_changes_when_a_file_changes(tmp_path):
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "1.png"
    f.write_bytes(b"abc")
    d1 = dataset_content_digest(tmp_path / "d")
    f.write_bytes(b"abcd")
    assert dataset_content_digest(tmp_path / "d") != d1
    with pytest.raises(UserError):
        dataset_content_digest(tmp_path / "missing")


def test_cache_key_covers_every_setting(tmp_path):
    z = tmp_path / "ds.zip"
    _make_zip(z, {"1.png": b"x"})
    base = dict(class_name="training.dataset.ImageFolderDataset", path=str(z), resolution=32, xflip=False,
                max_size=None, use_labels=False)
    det = "inception-abc-fp32"
    key = stats_cache_key(base, det, max_items=None, capture_mean_cov=True)
    paths = {stats_cache_path(base, "inception", key)}
    variants = [
        (dict(base, xflip=True), det, {}),
        (dict(base, resolution=64), det, {}),
        (dict(base, max_size=10), det, {}),
        (base, "inception-abc-bf16", {}),
        (base, det, dict(max_items=1000)),
        (base, det, dict(capture_all=True)),
    ]
    for kwargs, identity, extra in variants:
        stats_kwargs = dict(dict(max_items=None, capture_mean_cov=True), **extra)
        paths.add(stats_cache_path(kwargs, "inception", stats_cache_key(kwargs, identity, **stats_kwargs)))
    assert len(paths) == 1 + len(variants)
    # Labels do not change the features, so they share the cache.
    same = stats_cache_path(dict(base, use_labels=True), "inception",
                            stats_cache_key(dict(base, use_labels=True), det, max_items=None, capture_mean_cov=True))
    assert same == stats_cache_path(base, "inception", key)
    assert same.name.startswith("ds-inception-")
