"""GANLoss (training/loss.py): exact round accumulation, R1, path length, D-loss choice, NaN detection."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from renyi.losses import lk_discriminator_loss, renyi_generator_loss
from training.loss import GANLoss, NonFiniteError
from training.networks_dcgan import Discriminator, Generator


@pytest.fixture(autouse=True)
def _one_thread():
    # These networks are tiny: one thread is faster and less disturbed by other jobs.
    torch.set_num_threads(1)
    yield


def _nets():
    torch.manual_seed(1)
    G = Generator(z_dim=8, img_resolution=16, img_channels=1, width=4).eval()  # eval: BN uses running stats
    D = Discriminator(img_resolution=16, img_channels=1, width=4, dropout=0.0, init_std=0.2)
    return G, D


def _grads(module):
    return [p.grad.detach().clone() for p in module.parameters()]


def _run(loss, phase, module, n_rounds, z, real, gain=1.0):
    module.requires_grad_(True)
    for p in module.parameters():
        p.grad = None
    c = torch.zeros([z.shape[0], 0])
    chunks = lambda t: list(t.chunk(n_rounds))  # noqa: E731
    values = loss.accumulate_gradients(phase, chunks(real), chunks(c), chunks(z), chunks(c), gain, list(module.parameters()))
    module.requires_grad_(False)
    return values, _grads(module)


@pytest.mark.parametrize("name,kwargs", [("renyi", dict(alpha=3.0, l1=False)), ("renyi", dict(alpha=0.5, l1=True)),
                                         ("ns", {}), ("lk", dict(k=3.0, gamma=1.0))])
def test_generator_rounds_give_the_full_batch_gradient(name, kwargs):
    G, D = _nets()
    loss = GANLoss(torch.device("cpu"), G, D, generator_loss=name, generator_loss_kwargs=kwargs, r1_gamma=0)
    z, real = torch.randn(12, 8), torch.rand(12, 1, 16, 16) * 2 - 1
    v1, g1 = _run(loss, "Gmain", G, 1, z, real)
    v3, g3 = _run(loss, "Gmain", G, 3, z, real)
    assert v1["G_loss"] == pytest.approx(v3["G_loss"], rel=1e-5, abs=1e-7)
    for a, b in zip(g1, g3):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)
    # The value is the registered loss of the whole batch.
    with torch.no_grad():
        logits = D(G(z, None), None)
    if name == "renyi":
        assert v1["G_loss"] == pytest.approx(float(renyi_generator_loss(logits, **kwargs)), rel=1e-5)
    elif name == "ns":
        assert v1["G_loss"] == pytest.approx(float(F.softplus(-logits).mean()), rel=1e-5)


def test_gain_scales_gradients():
    G, D = _nets()
    loss = GANLoss(torch.device("cpu"), G, D, generator_loss="renyi", generator_loss_kwargs=dict(alpha=2.0), r1_gamma=0)
    z, real = torch.randn(6, 8), torch.zeros(6, 1, 16, 16)
    _, g1 = _run(loss, "Gmain", G, 2, z, real, gain=1.0)
    _, g4 = _run(loss, "Gmain", G, 2, z, real, gain=4.0)
    for a, b in zip(g1, g4):
        torch.testing.assert_close(4 * a, b)


def test_discriminator_bce_and_r1_match_manual():
    G, D = _nets()
    gamma = 3.0
    loss = GANLoss(torch.device("cpu"), G, D, r1_gamma=gamma)
    z, real = torch.randn(6, 8), torch.rand(6, 1, 16, 16) * 2 - 1
    values, grads = _run(loss, "Dboth", D, 2, z, real)
    # Manual full-batch D loss + R1.
    D.requires_grad_(True)
    for p in D.parameters():
        p.grad = None
    with torch.no_grad():
        fake = G(z, None)
    x = real.clone().requires_grad_(True)
    real_logits = D(x, None)
    (g,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
    r1 = g.square().sum([1, 2, 3]).mean() * gamma / 2
    d_loss = F.softplus(D(fake, None)).mean() + F.softplus(-real_logits).mean()
    (d_loss + r1).backward()
    assert values["D_loss"] == pytest.approx(float(d_loss.detach()), rel=1e-5)
    assert values["D_r1"] == pytest.approx(float(r1.detach()), rel=1e-5)
    for a, p in zip(grads, D.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-8)


def test_lk_uses_its_discriminator_fn():
    G, D = _nets()
    loss = GANLoss(torch.device("cpu"), G, D, generator_loss="lk", generator_loss_kwargs=dict(k=2.0, gamma=1.0), r1_gamma=0)
    z, real = torch.randn(4, 8), torch.rand(4, 1, 16, 16)
    values, _ = _run(loss, "Dmain", D, 1, z, real)
    with torch.no_grad():
        expected = lk_discriminator_loss(D(real, None), D(G(z, None), None))
    assert values["D_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_nan_logits_raise_nonfinite_error():
    G, D = _nets()
    D.register_forward_hook(lambda m, i, o: o * float("nan"))
    loss = GANLoss(torch.device("cpu"), G, D, generator_loss="ns", r1_gamma=0)
    with pytest.raises(NonFiniteError) as info:
        _run(loss, "Gmain", G, 1, torch.randn(2, 8), torch.zeros(2, 1, 16, 16))
    assert info.value.phase == "Gmain" and "2 NaN" in str(info.value.value)


def test_bad_parameters_are_user_errors():
    G, D = _nets()
    from dnnlib.util import UserError

    with pytest.raises(UserError, match="takes"):
        GANLoss(torch.device("cpu"), G, D, generator_loss="ns", generator_loss_kwargs=dict(alpha=2.0))
    with pytest.raises(UserError, match="unknown generator loss"):
        GANLoss(torch.device("cpu"), G, D, generator_loss="nope")


class _TinyMappingG(torch.nn.Module):
    """A generator with the StyleGAN2 mapping/synthesis interface, small enough to reason about."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = 4, 0, 4, 3
        self.img_resolution, self.img_channels = 8, 1
        self.map = torch.nn.Linear(4, 4)
        self.syn = torch.nn.Linear(12, 64)
        self.mapping_calls = 0

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        self.mapping_calls += 1
        return self.map(z)[:, None, :].repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const", update_emas=False):
        return torch.tanh(self.syn(ws.flatten(1))).view(-1, 1, 8, 8)


def test_path_length_regulariser_and_pl_mean():
    torch.manual_seed(0)
    G = _TinyMappingG()
    D = Discriminator(img_resolution=16, img_channels=1, width=4)  # unused by Greg
    loss = GANLoss(torch.device("cpu"), G, D, generator_loss="ns", pl_weight=2.0, style_mixing_prob=0.0, r1_gamma=0)
    assert loss.phase_does_work("Greg") and not loss.phase_does_work("Dreg")
    z = torch.randn(8, 4)
    torch.manual_seed(5)
    values, grads = _run(loss, "Greg", G, 1, z, torch.zeros(8, 1, 8, 8))
    # Manual: first 4 samples (batch shrink 2), same noise draw.
    torch.manual_seed(5)
    G.requires_grad_(True)
    ws = G.mapping(z[:4], None)
    img = G.synthesis(ws)
    noise = torch.randn_like(img) / math.sqrt(64)
    (g,) = torch.autograd.grad((img * noise).sum(), ws)
    lengths = g.square().sum(2).mean(1).sqrt()
    assert float(loss.pl_mean) == pytest.approx(0.01 * float(lengths.mean()), rel=1e-5)
    expected = ((lengths - 0.01 * lengths.mean()) ** 2 * 2.0).mean()
    assert values["G_pl"] == pytest.approx(float(expected), rel=1e-5)
    assert any(float(gr.abs().sum()) > 0 for gr in grads)


def test_style_mixing_calls_mapping_twice_when_it_mixes():
    torch.manual_seed(0)
    G = _TinyMappingG()
    D = Discriminator(img_resolution=8 * 2, img_channels=1, width=4)
    loss = GANLoss(torch.device("cpu"), G, D, style_mixing_prob=1.0)
    G.mapping_calls = 0
    loss.run_G(torch.randn(2, 4), torch.zeros(2, 0))
    assert G.mapping_calls == 2
    loss = GANLoss(torch.device("cpu"), G, D, style_mixing_prob=0.0)
    G.mapping_calls = 0
    loss.run_G(torch.randn(2, 4), torch.zeros(2, 0))
    assert G.mapping_calls == 1
    # DCGAN generators have no mapping: no mixing, no path length.
    dg = Generator(z_dim=8, img_resolution=16, img_channels=1, width=4)
    dloss = GANLoss(torch.device("cpu"), dg, D, style_mixing_prob=0.9, pl_weight=2.0)
    assert dloss.style_mixing_prob == 0 and not dloss.phase_does_work("Greg")


class _LinearD(torch.nn.Module):
    """D(x) = <w, x> + b: its input gradient is w for every sample, so R1 = gamma/2 * |w|^2 by hand."""

    def __init__(self, numel: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, numel))
        self.b = torch.nn.Parameter(torch.tensor(0.25))

    def forward(self, img, c):
        return (img.flatten(1) * self.w).sum(1, keepdim=True) + self.b


def test_r1_of_a_linear_discriminator_is_gamma_half_w_squared():
    G, _ = _nets()
    D = _LinearD(16 * 16)
    gamma = 10.0
    loss = GANLoss(torch.device("cpu"), G, D, r1_gamma=gamma)
    values, grads = _run(loss, "Dreg", D, 2, torch.randn(4, 8), torch.rand(4, 1, 16, 16))
    w2 = float(torch.linspace(-1.0, 1.0, 256).square().sum())  # sum of ((2i - 255)/255)^2 = n(n+1) / (3(n-1))
    assert w2 == pytest.approx(256 * 257 / (3 * 255), rel=1e-6)
    assert values["D_r1"] == pytest.approx(gamma / 2 * w2, rel=1e-5)
    # d/dw of gamma/2 |w|^2 is gamma * w; the bias does not enter the penalty.
    torch.testing.assert_close(grads[0], gamma * torch.linspace(-1.0, 1.0, 256), rtol=1e-5, atol=1e-6)
    assert float(grads[1].abs()) == 0.0
