"""Base configurations for `train.py --cfg`: networks, optimisers, batch, EMA, R1, run length.

StyleGAN2 presets (the ADA `cfg_specs` table, res = dataset resolution, gpus = process count):

| cfg       | ref_gpus | kimg   | batch | mbstd | fmaps | lr     | gamma          | ema kimg  | rampup | map |
| auto      | gpus     | 25000  | (1)   | (2)   | (3)   | (4)    | 0.0002 res²/mb | mb*10/32  | 0.05   | 2   |
| stylegan2 | 8        | 25000  | 32    | 4     | 1     | 0.002  | 10             | 10        | None   | 8   |
| paper256  | 8        | 25000  | 64    | 8     | 0.5   | 0.0025 | 1              | 20        | None   | 8   |
| paper512  | 8        | 25000  | 64    | 8     | 1     | 0.0025 | 0.5            | 20        | None   | 8   |
| paper1024 | 8        | 25000  | 32    | 4     | 1     | 0.002  | 2              | 10        | None   | 8   |
| cifar     | 2        | 100000 | 64    | 32    | 1     | 0.0025 | 0.01           | 500       | 0.05   | 2   |

(1) max(min(gpus * min(4096 // res, 32), 64), gpus)   (2) min(mb // gpus, 4)
(3) 1 if res >= 512 else 0.5                            (4) 0.002 if res >= 1024 else 0.0025

Shared: channel_base = fmaps * 32768, channel_max = 512, z_dim = w_dim = 512, num_fp16_res = 4
and conv_clamp = 256 (fp16 only on CUDA; `fp32=True` or a non-CUDA device gives num_fp16_res = 0,
conv_clamp = None), Adam(lr, betas=(0, 0.99), eps=1e-8), lazy regularisation G every 4 and D
every 16 minibatches, batch_gpu = mb // ref_gpus, style mixing 0.9, path length weight 2
(`cifar`: no mixing, no path length, D architecture 'orig'), ticks of 4 kimg, ADA by default.

`dcgan` (the Rényi-GAN paper's MNIST protocol, `training.networks_dcgan`): batch 100 in one round,
Adam(2e-4, betas=(0.5, 0.999), eps=1e-7) for both networks, no EMA (G_ema follows G), R1 off
(gamma 0) and applied every step when enabled (no lazy regularisation), no style mixing or path
length, no augmentation by default, 15000 kimg (250 epochs of MNIST), ticks of 1 kimg,
z_dim 784 for 1-channel data (the paper) and 128 otherwise, width 64, channel_max 512.
"""

from __future__ import annotations

import math

from typing import Optional

from dnnlib.util import EasyDict, UserError

STYLEGAN2_CFGS = ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar")
ALL_CFGS = ("dcgan",) + STYLEGAN2_CFGS

_SPECS = {
    "stylegan2": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10, ramp=None, map=8),
    "paper256": dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8),
    "paper512": dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8),
    "paper1024": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None, map=8),
    "cifar": dict(ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2),
}

GAN_LOSS_CLASS = "training.loss.GANLoss"


def cfg_spec(cfg: str, resolution: int, num_gpus: int) -> EasyDict:
    """The table row of a StyleGAN2 preset (with the `auto` formulas evaluated)."""
    if cfg == "auto":
        res, gpus = resolution, num_gpus
        mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
        return EasyDict(
            ref_gpus=gpus, kimg=25000, mb=mb, mbstd=min(mb // gpus, 4), fmaps=1 if res >= 512 else 0.5,
            lrate=0.002 if res >= 1024 else 0.0025, gamma=0.0002 * res**2 / mb, ema=mb * 10 / 32, ramp=0.05, map=2,
        )
    if cfg not in _SPECS:
        raise UserError(f"--cfg: unknown config '{cfg}'; choose one of {', '.join(ALL_CFGS)}")
    return EasyDict(_SPECS[cfg])


def _batch(batch: Optional[int], batch_gpu: Optional[int], default_mb: int, default_batch_gpu: int, num_gpus: int):
    if batch is not None:
        if batch < 1 or batch % num_gpus != 0:
            raise UserError(f"--batch={batch} must be a positive multiple of --gpus={num_gpus}")
        mb, bg = batch, batch // num_gpus
    else:
        mb, bg = default_mb, default_batch_gpu
    if batch_gpu is not None:
        bg = batch_gpu
    if bg < 1 or (mb // num_gpus) % bg != 0 or mb % num_gpus != 0:
        raise UserError(
            f"--batch-gpu={bg} must divide the per-GPU batch {mb}/{num_gpus}; "
            "choose a divisor of --batch divided by --gpus"
        )
    return mb, bg


def build_config(
    cfg: str,
    *,
    resolution: int,
    img_channels: int,
    num_gpus: int = 1,
    device_type: str = "cpu",
    gamma: Optional[float] = None,
    kimg: Optional[float] = None,
    batch: Optional[int] = None,
    batch_gpu: Optional[int] = None,
    cbase: Optional[int] = None,
    cmax: Optional[int] = None,
    map_depth: Optional[int] = None,
    mbstd_group: Optional[int] = None,
    glr: Optional[float] = None,
    dlr: Optional[float] = None,
    fp32: bool = False,
    freezed: int = 0,
    tick: Optional[float] = None,
    z_dim: Optional[int] = None,
) -> EasyDict:
    """Training-loop kwargs for a preset, with the explicit overrides applied.

    Returns an EasyDict with G_kwargs, D_kwargs (class_name + constructor kwargs, without the
    dataset-dependent c_dim/img_resolution/img_channels that the loop adds), G_opt_kwargs,
    D_opt_kwargs, loss_kwargs (class_name, r1_gamma, style_mixing_prob, pl_weight), total_kimg,
    batch_size, batch_gpu, ema_kimg, ema_rampup, G_reg_interval, D_reg_interval, kimg_per_tick
    and default_aug ('noaug' or 'ada').
    """
    if cfg not in ALL_CFGS:
        raise UserError(f"--cfg: unknown config '{cfg}'; choose one of {', '.join(ALL_CFGS)}")
    for name, value in (("--cbase", cbase), ("--cmax", cmax), ("--mbstd-group", mbstd_group), ("--z-dim", z_dim)):
        if value is not None and value < 1:
            raise UserError(f"{name}={value} must be >= 1")
    if map_depth is not None and map_depth < 1:
        raise UserError(f"--map-depth={map_depth} must be >= 1")
    for name, value in (("--glr", glr), ("--dlr", dlr)):
        if value is not None and not value > 0:
            raise UserError(f"{name}={value} must be > 0")
    if gamma is not None and not gamma >= 0:
        raise UserError(f"--gamma={gamma} must be >= 0")
    if kimg is not None and not (kimg > 0 and math.isfinite(kimg)):
        raise UserError(f"--kimg={kimg} must be a finite number > 0")
    if tick is not None and not tick > 0:
        raise UserError(f"--tick={tick} must be > 0 (kimg per tick)")

    c = EasyDict()
    if cfg == "dcgan":
        if resolution not in (16, 32, 64, 128):
            raise UserError(
                f"--cfg=dcgan needs a 16, 32, 64 or 128 px dataset, got {resolution} px; "
                "resize it with dataset_tool.py or choose a StyleGAN2 --cfg"
            )
        mb, bg = _batch(batch, batch_gpu, 100, 100 // num_gpus if 100 % num_gpus == 0 else 1, num_gpus)
        width, chmax = cbase or 64, cmax or 512
        c.G_kwargs = EasyDict(
            class_name="training.networks_dcgan.Generator",
            z_dim=z_dim or (784 if img_channels == 1 else 128), width=width, channel_max=chmax,
        )
        c.D_kwargs = EasyDict(class_name="training.networks_dcgan.Discriminator", width=width, channel_max=chmax)
        c.G_opt_kwargs = EasyDict(class_name="torch.optim.Adam", lr=glr or 2e-4, betas=[0.5, 0.999], eps=1e-7)
        c.D_opt_kwargs = EasyDict(class_name="torch.optim.Adam", lr=dlr or 2e-4, betas=[0.5, 0.999], eps=1e-7)
        c.loss_kwargs = EasyDict(class_name=GAN_LOSS_CLASS, r1_gamma=0.0 if gamma is None else gamma,
                                 style_mixing_prob=0.0, pl_weight=0.0)
        c.total_kimg = kimg if kimg is not None else 15000
        c.batch_size, c.batch_gpu = mb, bg
        c.ema_kimg, c.ema_rampup = 0.0, None
        c.G_reg_interval, c.D_reg_interval = None, None
        c.kimg_per_tick = tick if tick is not None else 1
        c.default_aug = "noaug"
        if freezed:
            raise UserError("--freezed applies to the StyleGAN2 discriminator only; drop it with --cfg=dcgan")
        return c

    spec = cfg_spec(cfg, resolution, num_gpus)
    if resolution < 4 or resolution & (resolution - 1):
        raise UserError(f"StyleGAN2 needs a power-of-two resolution >= 4, got {resolution}")
    mb, bg = _batch(batch, batch_gpu, spec.mb, max(spec.mb // spec.ref_gpus, 1), num_gpus)
    fp16 = not fp32 and device_type == "cuda"
    channel_base = cbase if cbase is not None else int(spec.fmaps * 32768)
    channel_max = cmax if cmax is not None else 512
    c.G_kwargs = EasyDict(
        class_name="training.networks_stylegan2.Generator", z_dim=z_dim or 512, w_dim=512,
        mapping_kwargs=EasyDict(num_layers=map_depth or spec.map),
        synthesis_kwargs=EasyDict(channel_base=channel_base, channel_max=channel_max,
                                  num_fp16_res=4 if fp16 else 0, conv_clamp=256 if fp16 else None),
    )
    c.D_kwargs = EasyDict(
        class_name="training.networks_stylegan2.Discriminator",
        architecture="orig" if cfg == "cifar" else "resnet",
        channel_base=channel_base, channel_max=channel_max,
        num_fp16_res=4 if fp16 else 0, conv_clamp=256 if fp16 else None,
        block_kwargs=EasyDict(freeze_layers=int(freezed)), mapping_kwargs=EasyDict(),
        epilogue_kwargs=EasyDict(mbstd_group_size=mbstd_group or spec.mbstd),
    )
    c.G_opt_kwargs = EasyDict(class_name="torch.optim.Adam", lr=glr or spec.lrate, betas=[0, 0.99], eps=1e-8)
    c.D_opt_kwargs = EasyDict(class_name="torch.optim.Adam", lr=dlr or spec.lrate, betas=[0, 0.99], eps=1e-8)
    c.loss_kwargs = EasyDict(
        class_name=GAN_LOSS_CLASS, r1_gamma=spec.gamma if gamma is None else gamma,
        style_mixing_prob=0.0 if cfg == "cifar" else 0.9, pl_weight=0.0 if cfg == "cifar" else 2.0,
    )
    c.total_kimg = kimg if kimg is not None else spec.kimg
    c.batch_size, c.batch_gpu = mb, bg
    c.ema_kimg, c.ema_rampup = spec.ema, spec.ramp
    c.G_reg_interval, c.D_reg_interval = 4, 16
    c.kimg_per_tick = tick if tick is not None else 4
    c.default_aug = "ada"
    return c
