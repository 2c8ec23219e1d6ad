"""Feature collection: dataset stats and their cache, generator sampling/conversion, image files.

A tiny pixel-based detector stands in for the Inception here (it satisfies the same detector
contract), so these tests check the plumbing in seconds; test_metrics_inception.py checks the
real network.
"""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dnnlib.util import UserError
from metrics import pipeline
from metrics.pipeline import MetricOptions


class PixelDetector:
    """Features = 4x4 average-pooled RGB values (48-d), as float32."""

    name = "pixels"
    identity = "pixels-v1"
    feature_dim = 48
    has_head = False

    def __init__(self):
        self.calls = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        self.calls += 1
        return F.adaptive_avg_pool2d(images.float(), 4).flatten(1)


class TinyG(nn.Module):
    """G(z, c): a fixed linear map to images in about [-1, 1]."""

    def __init__(self, z_dim=8, c_dim=0, img_resolution=8, img_channels=3):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, c_dim, img_resolution, img_channels
        self.fc = nn.Linear(z_dim + c_dim, img_channels * img_resolution ** 2)
        self.last_c = None

    def forward(self, z, c, **kwargs):
        self.last_c = c
        x = self.fc(torch.cat([z, c], dim=1)) if self.c_dim else self.fc(z)
        return torch.tanh(x).reshape(-1, self.img_channels, self.img_resolution, self.img_resolution) * 1.2


def make_dataset(folder, n=12, res=8, channels=3, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n):
        arr = rng.integers(0, 256, size=(res, res, channels), dtype=np.uint8)
        name = f"00000/img{i:08d}.png"
        (folder / "00000").mkdir(exist_ok=True)
        PIL.Image.fromarray(arr[:, :, 0] if channels == 1 else arr).save(folder / name)
        entries.append([name, i % 3])
    (folder / "dataset.json").write_text(json.dumps({"labels": entries if labels else None}))
    return dict(class_name="training.dataset.ImageFolderDataset", path=str(folder), use_labels=False,
                max_size=None, xflip=False, resolution=None, random_seed=0)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RENYI_GAN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_to_uint8_is_the_official_truncating_conversion():
    x = torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.5, 0.996, 1.0, 3.0]).reshape(1, 1, 1, 8)
    out = pipeline.to_uint8(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 8)  # grayscale -> 3 channels
    # (x * 127.5 + 128) clamped to [0, 255], then truncated: -0.999 -> 0.127 -> 0; 0.5 -> 191.75 -> 191.
    assert out[0, 0, 0].tolist() == [0, 0, 0, 128, 191, 254, 255, 255]
    assert torch.equal(out[0, 0], out[0, 2])


def test_dataset_stats_match_direct_computation_and_grayscale_is_repeated(tmp_path, cache_dir):
    kwargs = make_dataset(tmp_path / "ds", n=10, channels=1)
    det = PixelDetector()
    opts = MetricOptions(dataset_kwargs=kwargs, progress=False, batch_size=4)
    stats = pipeline.compute_feature_stats_for_dataset(opts, det, max_items=7, capture_all=True)
    imgs = [np.asarray(PIL.Image.open(tmp_path / "ds" / f"00000/img{i:08d}.png")) for i in range(7)]
    direct = det.features(torch.from_numpy(np.stack(imgs))[:, None].repeat(1, 3, 1, 1))
    np.testing.assert_allclose(stats.get_all(), direct.numpy(), rtol=0, atol=0)


def test_cache_hit_decodes_no_image_and_settings_miss(tmp_path, cache_dir, monkeypatch):
    kwargs = make_dataset(tmp_path / "ds", n=9)
    det = PixelDetector()
    opts = MetricOptions(dataset_kwargs=kwargs, progress=False, batch_size=4)
    first = pipeline.compute_feature_stats_for_dataset(opts, det, capture_mean_cov=True)
    files = list(cache_dir.glob("gan-metrics/ds-pixels-*.npz"))
    assert len(files) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded on a cache hit")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    calls = det.calls
    again = pipeline.compute_feature_stats_for_dataset(opts, det, capture_mean_cov=True)
    assert det.calls == calls
    for a, b in zip(first.get_mean_cov(), again.get_mean_cov()):
        np.testing.assert_array_equal(a, b)
    # A setting that changes the features (mirroring) is a miss: it needs decoding.
    opts_flip = MetricOptions(dataset_kwargs=dict(kwargs, xflip=True), progress=False)
    with pytest.raises(AssertionError, match="decoded"):
        pipeline.compute_feature_stats_for_dataset(opts_flip, det, capture_mean_cov=True)


def test_cache_miss_after_the_dataset_content_changes(tmp_path, cache_dir):
    kwargs = make_dataset(tmp_path / "ds", n=6)
    det = PixelDetector()
    opts = MetricOptions(dataset_kwargs=kwargs, progress=False)
    m1, _ = pipeline.compute_feature_stats_for_dataset(opts, det, capture_mean_cov=True).get_mean_cov()
    PIL.Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ds" / "00000/img00000000.png")
    m2, _ = pipeline.compute_feature_stats_for_dataset(opts, det, capture_mean_cov=True).get_mean_cov()
    assert not np.allclose(m1, m2)
    assert len(list(cache_dir.glob("gan-metrics/*.npz"))) == 2


def test_generator_sampling_is_seeded_and_uses_dataset_labels(tmp_path, cache_dir):
    kwargs = make_dataset(tmp_path / "ds", n=6, labels=True)
    G = TinyG(c_dim=3)
    det = PixelDetector()
    opts = MetricOptions(G=G, dataset_kwargs=kwargs, progress=False, batch_size=8)
    a = pipeline.compute_feature_stats_for_generator(opts, det.features, 13, capture_all=True).get_all()
    b = pipeline.compute_feature_stats_for_generator(opts, det.features, 13, capture_all=True).get_all()
    assert a.shape == (13, 48)
    np.testing.assert_array_equal(a, b)
    other = pipeline.compute_feature_stats_for_generator(
        MetricOptions(G=G, dataset_kwargs=kwargs, progress=False, batch_size=8, seed=1), det.features, 13,
        capture_all=True).get_all()
    assert not np.allclose(a, other)
    # The labels passed to G are one-hot rows drawn from the dataset (copies of G are used, so
    # check through a fresh sampler).
    sampler = pipeline._label_sampler(opts, G)
    c = sampler(50)
    assert c.shape == (50, 3) and torch.all(c.sum(1) == 1) and len(set(c.argmax(1).tolist())) == 3


def test_conditional_generator_without_data_is_a_user_error():
    opts = MetricOptions(G=TinyG(c_dim=2), progress=False)
    with pytest.raises(UserError, match="--data"):
        pipeline.compute_feature_stats_for_generator(opts, PixelDetector().features, 4, capture_all=True)


def test_image_files_give_the_same_features_as_the_generator(tmp_path):
    G = TinyG()
    det = PixelDetector()
    opts = MetricOptions(G=G, progress=False, batch_size=8)
    from_g = pipeline.compute_feature_stats_for_generator(opts, det.features, 10, capture_all=True).get_all()
    # Write the same images as PNG (lossless), zero-padded so sorting keeps the order.
    gen = torch.Generator().manual_seed(0)
    out = tmp_path / "samples"
    out.mkdir()
    k = 0
    with torch.no_grad():
        while k < 10:
            z = torch.randn([8, G.z_dim], generator=gen)
            imgs = pipeline.to_uint8(G(z=z, c=torch.zeros([8, 0])))
            for img in imgs:
                PIL.Image.fromarray(img.permute(1, 2, 0).numpy()).save(out / f"{k:04d}.png")
                k += 1
    files = pipeline.compute_feature_stats_for_files(MetricOptions(images=str(out), progress=False, batch_size=3),
                                                     det.features, 10, capture_all=True).get_all()
    np.testing.assert_array_equal(files, from_g)
    with pytest.raises(UserError, match="holds 16 images but the metric needs 20"):
        pipeline.compute_feature_stats_for_files(MetricOptions(images=str(out), progress=False), det.features, 20)


def test_image_files_accept_mixed_sizes_and_modes(tmp_path):
    out = tmp_path / "mixed"
    out.mkdir()
    PIL.Image.fromarray(np.full((8, 8), 7, np.uint8)).save(out / "a.png")  # grayscale
    PIL.Image.fromarray(np.full((5, 6, 4), 9, np.uint8)).save(out / "b.png")  # RGBA, other size
    (out / "notes.txt").write_text("not an image")
    det = PixelDetector()
    feats = pipeline.compute_feature_stats_for_files(MetricOptions(images=str(out), progress=False), det.features, 2,
                                                     capture_all=True).get_all()
    np.testing.assert_allclose(feats[0], 7.0)
    np.testing.assert_allclose(feats[1], 9.0)
