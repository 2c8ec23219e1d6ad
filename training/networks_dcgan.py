"""DCGAN generator and discriminator: the Rényi-GAN paper's MNIST networks, generalised.

The paper's MNIST networks (28 px, from the authors' TensorFlow code):

- G: z (784) -> dense 7*7*256 -> BN, LReLU -> 5x5 transposed conv 128, stride 1 -> BN, LReLU
  -> 5x5 transposed conv 64, stride 2 -> BN, LReLU -> 5x5 transposed conv 1, stride 2 -> tanh.
- D: 5x5 conv 64, stride 2 -> LReLU -> dropout 0.3 -> 5x5 conv 128, stride 2 -> LReLU -> dropout
  0.3 -> dense 1 (the logit).
- All weights N(0, 0.01).

Generalisation to square power-of-two resolutions R in 16..128 and 1 or 3 channels: with
`ch(r) = min(width * (R/2) / r, channel_max)` channels at resolution r,

- G starts at `s = 4` for R = 16 and `s = 8` otherwise: dense -> `2*ch(s)` maps of s x s, a
  stride-1 5x5 transposed conv to `ch(s)`, then stride-2 5x5 transposed convs doubling the
  resolution (to `ch(2r)` channels) until R, the last one to `img_channels` followed by tanh.
  At R = 32, width 64 this is 8x8x256 -> 128 -> 64 (16 px) -> C (32 px): the paper's net shifted
  from 7 to 8 px.
- D halves the resolution with stride-2 5x5 convs (to `ch(r/2)` channels) until s, each followed
  by LReLU and dropout, then one dense layer to a logit.

Class conditioning (c_dim > 0): G concatenates the one-hot label to z; D concatenates it to the
input image as c_dim constant channels.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F

from dnnlib.util import UserError


def _check_common(img_resolution: int, img_channels: int, c_dim: int, width: int) -> None:
    if img_resolution not in (16, 32, 64, 128):
        raise UserError(
            f"DCGAN supports square resolutions 16, 32, 64 and 128, not {img_resolution}; "
            "resize the dataset with dataset_tool.py or use a StyleGAN2 --cfg"
        )
    if img_channels not in (1, 3):
        raise UserError(f"DCGAN supports 1 or 3 image channels, not {img_channels}")
    if c_dim < 0 or width < 1:
        raise UserError(f"DCGAN: c_dim must be >= 0 and width >= 1 (got c_dim={c_dim}, width={width})")


def _start_resolution(img_resolution: int) -> int:
    return 4 if img_resolution <= 16 else 8


def _channels(res: int, img_resolution: int, width: int, channel_max: int) -> int:
    return int(min(width * (img_resolution // 2) // res, channel_max))


def _init_weights(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """DCGAN generator `G(z, c) -> [N, img_channels, R, R]` in (-1, 1) (see the module docstring).

    Keyword-only arguments, all recorded in `self.init_kwargs`:
    z_dim (latent size, the paper uses 784), c_dim (label size, 0 = unconditional),
    img_resolution, img_channels, width (channels of the last hidden layer, 64 in the paper),
    channel_max (cap on channels), lrelu_slope (0.3, the Keras default), init_std (0.01),
    bn_momentum (PyTorch convention: weight of the new batch in the running statistics).
    """

    def __init__(
        self,
        *,
        z_dim: int = 784,
        c_dim: int = 0,
        img_resolution: int = 32,
        img_channels: int = 1,
        width: int = 64,
        channel_max: int = 512,
        lrelu_slope: float = 0.3,
        init_std: float = 0.01,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            z_dim=z_dim, c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, width=width,
            channel_max=channel_max, lrelu_slope=lrelu_slope, init_std=init_std, bn_momentum=bn_momentum,
        )
        _check_common(img_resolution, img_channels, c_dim, width)
        if z_dim < 1:
            raise UserError(f"DCGAN: z_dim must be >= 1, got {z_dim}")
        self.z_dim, self.c_dim = int(z_dim), int(c_dim)
        self.w_dim, self.num_ws = 0, 0  # no mapping network
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.lrelu_slope = float(lrelu_slope)

        s = _start_resolution(img_resolution)
        ch = lambda r: _channels(r, img_resolution, width, channel_max)  # noqa: E731
        self.start_res, self.start_ch = s, 2 * ch(s)
        self.fc = nn.Linear(z_dim + c_dim, s * s * self.start_ch, bias=False)
        self.bn0 = nn.BatchNorm2d(self.start_ch, momentum=bn_momentum)
        self.conv0 = nn.ConvTranspose2d(self.start_ch, ch(s), 5, stride=1, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(ch(s), momentum=bn_momentum)
        ups, bns = [], []
        res, in_ch = s, ch(s)
        while res * 2 < img_resolution:
            out_ch = ch(res * 2)
            ups.append(nn.ConvTranspose2d(in_ch, out_ch, 5, stride=2, padding=2, output_padding=1, bias=False))
            bns.append(nn.BatchNorm2d(out_ch, momentum=bn_momentum))
            res, in_ch = res * 2, out_ch
        self.ups, self.bns = nn.ModuleList(ups), nn.ModuleList(bns)
        self.to_img = nn.ConvTranspose2d(in_ch, img_channels, 5, stride=2, padding=2, output_padding=1, bias=True)
        _init_weights(self, init_std)

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        noise_mode: str = "const",
        **unused: Any,
    ) -> torch.Tensor:
        """Images for latents z [N, z_dim] (+ one-hot labels c [N, c_dim]).

        `truncation_psi`, `truncation_cutoff` and `noise_mode` exist for interface compatibility
        with the StyleGAN2 generator and have no effect (there is no W space and no noise input).
        """
        x = z.to(self.fc.weight.dtype)
        if self.c_dim > 0:
            if c is None or c.shape[-1] != self.c_dim:
                raise ValueError(f"conditional DCGAN generator needs c of shape [N, {self.c_dim}]")
            x = torch.cat([x, c.to(x.dtype)], dim=1)
        x = self.fc(x).view(-1, self.start_ch, self.start_res, self.start_res)
        x = F.leaky_relu(self.bn0(x), self.lrelu_slope)
        x = F.leaky_relu(self.bn1(self.conv0(x)), self.lrelu_slope)
        for up, bn in zip(self.ups, self.bns):
            x = F.leaky_relu(bn(up(x)), self.lrelu_slope)
        return torch.tanh(self.to_img(x)).float()


class Discriminator(nn.Module):
    """DCGAN discriminator `D(img, c) -> logits [N, 1]` (see the module docstring).

    Keyword-only arguments (recorded in `self.init_kwargs`): c_dim, img_resolution,
    img_channels, width (channels of the first conv, 64 in the paper), channel_max,
    lrelu_slope (0.3), dropout (0.3), init_std (0.01).
    """

    def __init__(
        self,
        *,
        c_dim: int = 0,
        img_resolution: int = 32,
        img_channels: int = 1,
        width: int = 64,
        channel_max: int = 512,
        lrelu_slope: float = 0.3,
        dropout: float = 0.3,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, width=width,
            channel_max=channel_max, lrelu_slope=lrelu_slope, dropout=dropout, init_std=init_std,
        )
        _check_common(img_resolution, img_channels, c_dim, width)
        if not 0 <= dropout < 1:
            raise UserError(f"DCGAN: dropout must be in [0, 1), got {dropout}")
        self.c_dim, self.img_resolution, self.img_channels = int(c_dim), int(img_resolution), int(img_channels)
        self.lrelu_slope, self.dropout = float(lrelu_slope), float(dropout)
        s = _start_resolution(img_resolution)
        convs = []
        res, in_ch = img_resolution, img_channels + c_dim
        while res > s:
            out_ch = _channels(res // 2, img_resolution, width, channel_max)
            convs.append(nn.Conv2d(in_ch, out_ch, 5, stride=2, padding=2, bias=True))
            res, in_ch = res // 2, out_ch
        self.convs = nn.ModuleList(convs)
        self.fc = nn.Linear(in_ch * s * s, 1)
        _init_weights(self, init_std)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None, **unused: Any) -> torch.Tensor:
        """Logits [N, 1] for images [N, img_channels, R, R] (+ one-hot labels c [N, c_dim])."""
        x = img.to(self.fc.weight.dtype)
        if self.c_dim > 0:
            if c is None or c.shape[-1] != self.c_dim:
                raise ValueError(f"conditional DCGAN discriminator needs c of shape [N, {self.c_dim}]")
            maps = c.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, maps], dim=1)
        for conv in self.convs:
            x = F.dropout(F.leaky_relu(conv(x), self.lrelu_slope), self.dropout, self.training)
        return self.fc(x.flatten(1)).float()


def num_stages(img_resolution: int) -> int:
    """Number of stride-2 layers in G (and D) for a resolution: log2(R / start)."""
    return int(math.log2(img_resolution // _start_resolution(img_resolution)))
