"""training.configs: the StyleGAN2 preset table, the DCGAN protocol and option checks."""

from __future__ import annotations

import pytest

from dnnlib.util import UserError
from training.configs import build_config, cfg_spec


@pytest.mark.parametrize("res,batch,gamma", [(32, 32, 0.0064), (64, 32, 0.0256), (256, 16, 0.8192), (1024, 4, 52.4288)])
def test_auto_matches_the_published_examples(res, batch, gamma):
    spec = cfg_spec("auto", res, 1)
    assert spec.mb == batch and spec.gamma == pytest.approx(gamma)


def test_presets():
    c = build_config("paper256", resolution=256, img_channels=3, num_gpus=1)
    assert c.batch_size == 64 and c.batch_gpu == 8 and c.loss_kwargs.r1_gamma == 1 and c.ema_kimg == 20
    assert c.G_kwargs.synthesis_kwargs.channel_base == 16384 and c.G_kwargs.mapping_kwargs.num_layers == 8
    assert c.G_opt_kwargs.betas == [0, 0.99] and (c.G_reg_interval, c.D_reg_interval) == (4, 16)
    assert c.G_kwargs.synthesis_kwargs.num_fp16_res == 0  # no fp16 off CUDA
    cif = build_config("cifar", resolution=32, img_channels=3, device_type="cuda")
    assert cif.D_kwargs.architecture == "orig" and cif.loss_kwargs.pl_weight == 0 and cif.ema_rampup == 0.05
    assert cif.G_kwargs.synthesis_kwargs.num_fp16_res == 4 and cif.D_kwargs.epilogue_kwargs.mbstd_group_size == 32


def test_dcgan_protocol():
    c = build_config("dcgan", resolution=32, img_channels=1)
    assert c.batch_size == 100 and c.batch_gpu == 100 and c.G_kwargs.z_dim == 784
    assert c.G_opt_kwargs == dict(class_name="torch.optim.Adam", lr=2e-4, betas=[0.5, 0.999], eps=1e-7)
    assert c.ema_kimg == 0 and c.loss_kwargs.r1_gamma == 0 and c.G_reg_interval is None and c.default_aug == "noaug"
    assert build_config("dcgan", resolution=64, img_channels=3, gamma=10).loss_kwargs.r1_gamma == 10


@pytest.mark.parametrize("kwargs", [dict(batch=10, batch_gpu=3), dict(kimg=0), dict(glr=-1), dict(gamma=-1), dict(cbase=0)])
def test_bad_overrides(kwargs):
    with pytest.raises(UserError):
        build_config("dcgan", resolution=32, img_channels=1, **kwargs)
    with pytest.raises(UserError):
        build_config("dcgan", resolution=48, img_channels=1)
