"""DCGAN networks: the paper's layer sizes, other resolutions/channels, conditioning, init, rebuild."""

from __future__ import annotations

import pytest
import torch

from dnnlib.util import UserError, construct_class_by_name
from training.networks_dcgan import Discriminator, Generator


def test_paper_layout_at_32px():
    G = Generator(z_dim=784, img_resolution=32, img_channels=1)
    D = Discriminator(img_resolution=32, img_channels=1)
    # G: z 784 -> dense 8*8*256 -> 5x5 t-conv 128 (stride 1) -> 64 (stride 2) -> 1 (stride 2) -> tanh.
    assert G.fc.in_features == 784 and G.fc.out_features == 8 * 8 * 256
    assert (G.conv0.in_channels, G.conv0.out_channels, G.conv0.stride) == (256, 128, (1, 1))
    assert [(m.in_channels, m.out_channels, m.stride) for m in G.ups] == [(128, 64, (2, 2))]
    assert (G.to_img.out_channels, G.to_img.kernel_size) == (1, (5, 5))
    # D: 5x5 conv 64 stride 2 -> 128 stride 2 -> dense 1.
    assert [(m.out_channels, m.kernel_size, m.stride) for m in D.convs] == [(64, (5, 5), (2, 2)), (128, (5, 5), (2, 2))]
    assert D.fc.in_features == 128 * 8 * 8 and D.dropout == 0.3


@pytest.mark.parametrize("res", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_ranges(res, channels):
    G = Generator(z_dim=16, img_resolution=res, img_channels=channels, width=4)
    D = Discriminator(img_resolution=res, img_channels=channels, width=4)
    with torch.no_grad():
        img = G(torch.randn(3, 16), None)
    assert img.shape == (3, channels, res, res) and img.dtype == torch.float32
    assert float(img.abs().max()) < 1
    assert D(img, None).shape == (3, 1)
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels, G.num_ws, G.w_dim) == (16, 0, res, channels, 0, 0)


def test_conditioning_changes_outputs():
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=10, img_resolution=16, img_channels=1, width=4, init_std=0.2).eval()
    D = Discriminator(c_dim=10, img_resolution=16, img_channels=1, width=4, init_std=0.2).eval()
    z = torch.randn(1, 8).repeat(2, 1)
    c = torch.eye(10)[[3, 7]]
    img = G(z, c)
    assert not torch.allclose(img[0], img[1])
    same = img[:1].repeat(2, 1, 1, 1)
    logits = D(same, c)
    assert not torch.allclose(logits[0], logits[1])
    with pytest.raises(ValueError):
        G(z, None)


def test_init_is_normal_001_and_rebuild_from_init_kwargs():
    torch.manual_seed(0)
    G = Generator(z_dim=784, img_resolution=32, img_channels=1)
    assert abs(float(G.fc.weight.detach().std()) - 0.01) < 5e-4 and abs(float(G.fc.weight.detach().mean())) < 1e-4
    D = Discriminator(img_resolution=32, img_channels=3, width=8, dropout=0.1)
    rebuilt = construct_class_by_name(class_name="training.networks_dcgan.Discriminator", **D.init_kwargs)
    assert rebuilt.init_kwargs == D.init_kwargs
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in D.state_dict().items()}


def test_dropout_only_in_training_mode():
    D = Discriminator(img_resolution=16, img_channels=1, width=4, init_std=0.2)
    x = torch.randn(4, 1, 16, 16)
    D.eval()
    torch.testing.assert_close(D(x, None), D(x, None))
    D.train()
    assert not torch.allclose(D(x, None), D(x, None))


@pytest.mark.parametrize("kwargs", [dict(img_resolution=24), dict(img_resolution=256), dict(img_channels=2), dict(width=0)])
def test_bad_settings_are_user_errors(kwargs):
    base = dict(img_resolution=32, img_channels=1)
    base.update(kwargs)
    with pytest.raises(UserError):
        Generator(**base)
    with pytest.raises(UserError):
        Discriminator(**base)
