"""StyleGAN2 G and D: parameter counts of the official configs, the interface, truncation, noise,
conditioning, second-order gradients (R1, path length), fast vs reference ops, precision modes."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from dnnlib.util import UserError, construct_class_by_name
from torch_utils.ops.conv2d_resample import conv2d_resample
from training import networks_stylegan2 as N


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks: one thread avoids OpenMP overhead on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_G(res=16, c_dim=0, img_channels=3, **synthesis_kwargs):
    kw = dict(channel_base=16 * res, channel_max=16)
    kw.update(synthesis_kwargs)
    return N.Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=img_channels,
                       mapping_kwargs=dict(num_layers=2), synthesis_kwargs=kw)


def tiny_D(res=16, c_dim=0, img_channels=3, **kwargs):
    kw = dict(channel_base=16 * res, channel_max=16, epilogue_kwargs=dict(mbstd_group_size=2))
    kw.update(kwargs)
    return N.Discriminator(c_dim=c_dim, img_resolution=res, img_channels=img_channels, **kw)


def _with_noise(G):
    """Give every noise input a visible strength (it starts at 0)."""
    for m in G.modules():
        if isinstance(m, N.SynthesisLayer):
            m.noise_strength.data.fill_(0.5)
    return G


# ------------------------------------------------------------------------------------------------
# Parameter counts (figures measured from NVIDIA's implementation).


def test_parameter_counts_cifar_config():
    G = N.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
                    synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
    D = N.Discriminator(c_dim=0, img_resolution=32, img_channels=3, architecture="orig", channel_base=32768, channel_max=512,
                        num_fp16_res=4, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=32))
    assert N.count_parameters(G) == 19_947_539
    assert N.count_parameters(D) == 20_720_641
    assert G.num_ws == 8


def test_parameter_counts_narrow_config():
    # res 32, channel_base 4096, channel_max 128, 2 mapping layers, resnet D, RGB (3 channels).
    G = N.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
                    synthesis_kwargs=dict(channel_base=4096, channel_max=128))
    D = N.Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=4096, channel_max=128)
    assert N.count_parameters(G) == 2_284_307
    assert N.count_parameters(D) == 1_346_305


def test_num_ws_and_freeze_layers():
    assert N.SynthesisNetwork(w_dim=8, img_resolution=256, img_channels=3, channel_base=256, channel_max=4).num_ws == 14
    D = tiny_D(res=16)
    Dfrozen = tiny_D(res=16, block_kwargs=dict(freeze_layers=2))
    # The first two layers (b16.fromrgb, b16.conv0) become buffers.
    frozen = sum(p.numel() for m in (D.b16.fromrgb, D.b16.conv0) for p in m.parameters())
    assert N.count_parameters(D) - N.count_parameters(Dfrozen) == frozen
    assert not any(n.startswith("b16.fromrgb") or n.startswith("b16.conv0") for n, _ in Dfrozen.named_parameters())


def test_summary_cli(repo_root):
    cmd = [sys.executable, "-m", "training.networks_stylegan2", "--summary", "--cfg=cifar", "--res=32", "--channels=3"]
    out = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["G parameters: 19947539", "D parameters: 20720641"]
    bad = subprocess.run(cmd[:4] + ["--res=48"], cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------------
# Interface and forward/backward.


@pytest.mark.parametrize("res", [16, 32])
def test_forward_backward(res):
    G, D = tiny_G(res), tiny_D(res)
    z = torch.randn(4, G.z_dim)
    img = G(z, None)
    assert img.shape == (4, 3, res, res) and img.dtype == torch.float32 and torch.isfinite(img).all()
    assert 0.05 < img.std().item() < 5
    logits = D(img, None)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    F.softplus(-logits).mean().backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # Every weight receives signal (noise strengths start at 0 but still get gradients).
    assert all(p.grad.abs().sum() > 0 for n, p in G.named_parameters() if n.endswith("weight")), "dead G weight"
    for attr in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws"):
        assert hasattr(G, attr)
    assert G.mapping(z, None).shape == (4, G.num_ws, G.w_dim)


def test_truncation():
    G = _with_noise(tiny_G()).eval()
    G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    z1, z2 = torch.randn(2, G.z_dim), torch.randn(2, G.z_dim)
    a = G(z1, None, truncation_psi=0, noise_mode="const")
    b = G(z2, None, truncation_psi=0, noise_mode="const")
    w_avg_img = G.synthesis(G.mapping.w_avg.reshape(1, 1, -1).repeat(2, G.num_ws, 1), noise_mode="const")
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, w_avg_img, atol=1e-6)
    ws = G.mapping(z1, None)
    half = G.mapping(z1, None, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.allclose(half[:, :3], G.mapping.w_avg + 0.5 * (ws[:, :3] - G.mapping.w_avg), atol=1e-6)
    assert torch.equal(half[:, 3:], ws[:, 3:])


def test_noise_modes():
    G = _with_noise(tiny_G()).eval()
    z = torch.randn(2, G.z_dim)
    c1, c2 = G(z, None, noise_mode="const"), G(z, None, noise_mode="const")
    assert torch.equal(c1, c2)
    r1, r2 = G(z, None, noise_mode="random"), G(z, None, noise_mode="random")
    assert not torch.allclose(r1, r2)
    n1 = G(z, None, noise_mode="none")
    assert torch.equal(n1, G(z, None, noise_mode="none")) and not torch.allclose(n1, c1)
    with pytest.raises(ValueError):
        G(z, None, noise_mode="bogus")


def test_w_avg_tracking():
    G = tiny_G()
    z = torch.randn(8, G.z_dim)
    before = G.mapping.w_avg.clone()
    G.mapping(z, None)
    assert torch.equal(G.mapping.w_avg, before)  # only with update_emas=True
    w = G.mapping(z, None, update_emas=True)[:, 0]
    assert torch.allclose(G.mapping.w_avg, w.mean(0) * (1 - 0.995) + before * 0.995, atol=1e-7)


def test_conditional_networks():
    G, D = tiny_G(c_dim=5), tiny_D(c_dim=5)
    z = torch.randn(4, G.z_dim).repeat(2, 1)
    c = torch.eye(5)[[0, 1, 2, 3, 4, 4, 3, 2]]
    img = G(z, c, noise_mode="const")
    assert not torch.allclose(img[:4], img[4:])  # same z, different class
    logits = D(img, c)
    assert logits.shape == (8, 1)
    logits.sum().backward()
    assert D.mapping.fc0.weight.grad.abs().sum() > 0 and G.mapping.embed.weight.grad.abs().sum() > 0
    # D's conditional output is sum(x * cmap) / sqrt(cmap_dim): changing c changes it.
    assert not torch.allclose(D(img, c), D(img, c.flip(0)))


def test_r1_penalty_second_order():
    D = tiny_D(res=16)
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    logits = D(real, None)
    (g,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = g.square().sum(dim=[1, 2, 3])
    (logits * 0 + penalty * 0.5).mean().backward()
    grads = {n: p.grad for n, p in D.named_parameters()}
    assert all(v is not None and torch.isfinite(v).all() for v in grads.values())
    assert grads["b16.conv0.weight"].abs().sum() > 0 and grads["b4.fc.weight"].abs().sum() > 0


def test_path_length_second_order():
    G = tiny_G()
    ws = G.mapping(torch.randn(2, G.z_dim), None)
    img = G.synthesis(ws, noise_mode="const")
    (g,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    lengths = g.square().sum(2).mean(1).sqrt()
    (lengths - 1).square().mean().backward()
    assert G.synthesis.b16.conv1.weight.grad.abs().sum() > 0
    assert G.mapping.fc0.weight.grad.abs().sum() > 0


def test_fast_ops_equal_reference_ops():
    """Whole networks: values, first and second-order gradients of the fast path equal the reference."""
    torch.manual_seed(3)
    G, D = _with_noise(tiny_G(res=16, architecture="resnet")), tiny_D(res=16)
    Gr, Dr = N.set_ops_impl(copy.deepcopy(G), "ref"), N.set_ops_impl(copy.deepcopy(D), "ref")
    z = torch.randn(4, G.z_dim)
    outs = []
    for g, d in ((G, D), (Gr, Dr)):
        img = g(z, None, noise_mode="const")
        x = img.detach().requires_grad_(True)
        logits = d(x, None)
        (r1,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        loss = logits.mean() + r1.square().sum() + img.square().mean()
        params = list(g.parameters()) + list(d.parameters())
        outs.append([img, logits, r1] + list(torch.autograd.grad(loss, params, allow_unused=True)))
    for a, b in zip(*outs):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, b.abs().max().item()))


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv2d_matches_per_sample_weights(up):
    torch.manual_seed(up)
    x = torch.randn(3, 5, 6, 6)
    weight = torch.randn(4, 5, 3, 3)
    styles = torch.randn(3, 5)
    noise = torch.randn(3, 1, 6 * up, 6 * up)
    from torch_utils.ops.upfirdn2d import setup_filter

    f = setup_filter([1, 3, 3, 1], separable=True)
    want = []
    for n in range(3):  # explicit per-sample modulated, demodulated weights
        w = weight * styles[n].reshape(1, -1, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        want.append(conv2d_resample(x[n : n + 1], w, f, up=up, padding=1, impl="ref") + noise[n])
    want = torch.cat(want) * 1.3
    for fused in (False, True):
        for impl in ("fast", "ref"):
            got = N.modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f,
                                     fused_modconv=fused, gain=1.3, impl=impl)
            assert torch.allclose(got, want, atol=1e-4), (fused, impl)


def test_minibatch_std_hand_case():
    layer = N.MinibatchStdLayer(group_size=2, num_channels=1)
    x = torch.zeros(4, 2, 1, 1)
    x[:, 0, 0, 0] = torch.tensor([1.0, 5.0, 3.0, 5.0])  # groups: samples {0, 2} and {1, 3}
    x[:, 1, 0, 0] = torch.tensor([2.0, 0.0, 2.0, 4.0])
    y = layer(x)
    # group {0,2}: channel stds (|1-3|/2, 0) -> mean 0.5; group {1,3}: (0, |0-4|/2) -> mean 1.
    expect = torch.tensor([0.5, 1.0, 0.5, 1.0])
    assert y.shape == (4, 3, 1, 1) and torch.allclose(y[:, 2, 0, 0], expect, atol=1e-4)
    assert torch.equal(y[:, :2], x)
    assert N.MinibatchStdLayer(group_size=4)(torch.randn(6, 2, 2, 2)).shape == (6, 3, 2, 2)  # 6 % 4 != 0


def test_equalized_lr_fully_connected():
    fc = N.FullyConnectedLayer(8, 3, lr_multiplier=0.01, bias_init=1)
    assert torch.allclose(fc.weight.std(), torch.tensor(100.0), rtol=0.5)  # N(0, 1/lr^2) storage
    x = torch.randn(5, 8)
    want = x @ (fc.weight * 0.01 / math.sqrt(8)).t() + fc.bias * 0.01
    assert torch.allclose(fc(x), want, atol=1e-5)


def test_init_kwargs_rebuild_the_same_network():
    for net, cls in ((tiny_G(c_dim=2), "training.networks_stylegan2.Generator"), (tiny_D(c_dim=2), "training.networks_stylegan2.Discriminator")):
        json.dumps(net.init_kwargs)
        twin = construct_class_by_name(class_name=cls, **net.init_kwargs)
        assert [(n, p.shape) for n, p in twin.state_dict().items()] == [(n, p.shape) for n, p in net.state_dict().items()]
        twin.load_state_dict(net.state_dict())


def test_precision_modes_on_cpu():
    torch.manual_seed(5)
    G = tiny_G(num_fp16_res=2, conv_clamp=256)
    D = tiny_D(num_fp16_res=2, conv_clamp=256)
    z = torch.randn(2, G.z_dim)
    # fp16 blocks are requested, but on CPU the networks run in float32 automatically.
    img = G(z, None, noise_mode="const")
    assert img.dtype == torch.float32 and torch.equal(img, G(z, None, noise_mode="const", force_fp32=True))
    assert D(img, None).dtype == torch.float32
    # bfloat16 autocast: float32 output close to the float32 result.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img16 = G(z, None, noise_mode="const")
        logits16 = D(img16, None)
    assert img16.dtype == torch.float32 and logits16.dtype == torch.float32
    rel = (img16 - img).norm() / img.norm()
    assert rel < 0.1, rel


def test_bad_inputs():
    G = tiny_G()
    with pytest.raises(ValueError):
        G.synthesis(torch.randn(2, G.num_ws + 1, G.w_dim))
    with pytest.raises(ValueError):
        G(torch.randn(2, G.z_dim + 1), None)
    with pytest.raises(ValueError):
        tiny_D()(torch.randn(2, 3, 8, 8), None)
    with pytest.raises(UserError):
        tiny_G(res=24)
