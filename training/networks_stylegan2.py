"""StyleGAN2 generator and discriminator (the networks of StyleGAN2-ADA), in plain PyTorch.

Written from the published description (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN", and the StyleGAN2-ADA paper); the module names, constructor arguments and
parameter counts follow NVIDIA's implementation so configurations carry over.

Generator ``G(z, c) = G.synthesis(G.mapping(z, c))``

- Mapping: ``x = norm(z)`` (``norm(v) = v / sqrt(mean(v**2) + 1e-8)``), concatenated with
  ``norm(embed(c))`` for conditional nets, then ``num_layers`` fully connected lrelu layers with
  learning-rate multiplier 0.01. Output ``w`` is broadcast to ``num_ws`` copies. ``w_avg`` tracks
  ``w_avg <- lerp(mean_batch(w), w_avg, 0.995)`` when called with ``update_emas=True``; truncation
  is ``w <- lerp(w_avg, w, psi)`` for the first ``truncation_cutoff`` copies (all when None).
- Synthesis: blocks at 4, 8, ..., img_resolution px with ``min(channel_base // res, channel_max)``
  channels. The 4x4 block starts from a learned constant; the others upsample 2x in their first
  conv (FIR filter [1,3,3,1]). Each conv is a *modulated convolution*: ``s = affine(w)`` (bias
  initialised to 1), weights ``w'_oi = w_oi * s_i`` and, with demodulation,
  ``w''_oi = w'_oi / sqrt(sum_i,k w'_oik**2 + 1e-8)``; then noise (per-pixel N(0,1) times a learned
  scalar, or the fixed ``noise_const`` buffer), bias, lrelu * sqrt(2), optional clamp. ToRGB is a
  1x1 modulated conv without demodulation (styles scaled by 1/sqrt(C_in)); with the 'skip'
  architecture the RGB outputs of all blocks are upsampled and summed.
- ``num_ws = 2 * log2(res) - 2`` (block k's ToRGB shares its w with block k+1's first conv).

Discriminator ``D(img, c) -> [N, 1]``

- Blocks from img_resolution down to 8 px: ('resnet') conv 3x3, conv 3x3 with 2x FIR
  downsampling, plus a 1x1 downsampling skip without bias, both branches scaled by sqrt(0.5);
  ('orig') the two convs only; ('skip') FromRGB at every block. FromRGB (1x1) at the top block.
- Epilogue at 4x4: minibatch standard deviation (groups of ``min(mbstd_group_size, N)``) adds
  ``mbstd_num_channels`` channels, conv 3x3, fully connected, output layer. Conditional nets map
  ``c`` to ``cmap`` (a mapping network) and output ``sum(x * cmap) / sqrt(cmap_dim)``.

All layers use the equalised learning rate: weights are N(0, 1) and scaled at run time by
``lr_multiplier / sqrt(fan_in)`` (biases by ``lr_multiplier``).

Precision and speed
- ``num_fp16_res`` top resolutions run in float16 only on CUDA (never on CPU/MPS, where the
  blocks stay float32 automatically); ``force_fp32=True`` disables it on CUDA as well.
  ``conv_clamp`` clamps pre-activations to +-conv_clamp (times the layer gain) whatever the dtype.
- Under ``torch.autocast`` (e.g. bfloat16 on CPU) the blocks do not force float32; the
  demodulation coefficients and 2nd-moment normalisation are computed in float32.
- Modulated convolutions scale the activations instead of the weights (``conv(x * s, w) * d``),
  which is exactly equal to the per-sample weight form and runs as one batched convolution with a
  shared weight; demodulation uses ``d = rsqrt(s**2 @ sum_k(w**2).T + 1e-8)`` ([N, O]) instead of
  forming [N, O, I, k, k] weights. ``fused_modconv=True`` selects the grouped-convolution form.
- Convolutions of the fast ops always run in channels_last, so the ``channels_last`` /
  ``fp16_channels_last`` constructor arguments are accepted for configuration compatibility only.
- Second derivatives (R1, path length) go through custom autograd functions for convolutions and
  FIR filters (see torch_utils.ops), not PyTorch's slow generic double backward.
- Each layer has an ``impl`` attribute ('fast' default, or 'ref'): 'ref' runs the reference ops
  (NCHW, zero-insertion upfirdn2d, plain bias_act, 5-D demodulation) and serves as the baseline of
  ``bench/stylegan2_speed.py``; `set_ops_impl(module, impl)` switches a whole network.

Command line: ``python -m training.networks_stylegan2 --summary --cfg=cifar --res=32
[--channels=3] [--cbase=N --cmax=N]`` prints ``G parameters: <n>`` and ``D parameters: <n>`` for
the unconditional networks of a ``train.py --cfg``.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Optional, Sequence

import click
import numpy as np
import torch

from dnnlib.util import UserError, cli_main
from torch_utils.ops import upfirdn2d
from torch_utils.ops.bias_act import ACTIVATIONS, bias_act
from torch_utils.ops.conv2d_resample import conv2d_resample
from torch_utils.ops.fma import fma

__all__ = [
    "normalize_2nd_moment",
    "modulated_conv2d",
    "FullyConnectedLayer",
    "Conv2dLayer",
    "MappingNetwork",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "DiscriminatorBlock",
    "MinibatchStdLayer",
    "DiscriminatorEpilogue",
    "Discriminator",
    "set_ops_impl",
    "count_parameters",
]

RESAMPLE_FILTER = (1, 3, 3, 1)
NOISE_MODES = ("random", "const", "none")


# ------------------------------------------------------------------------------------------------
# Helpers.


def _plain(obj: Any) -> Any:
    """Deep copy of a kwargs structure as plain dicts/lists (JSON-able, no EasyDict)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


def _autocast_on(t: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(t.device.type)


class _fp32_math:
    """Context that turns autocast off, so the maths inside runs in the inputs' dtype (float32)."""

    def __init__(self, device_type: str) -> None:
        self.ctx = torch.autocast(device_type=device_type, enabled=False) if torch.is_autocast_enabled(device_type) else None

    def __enter__(self):
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            return self.ctx.__exit__(*exc)
        return False


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x**2, dim) + eps)``, computed in float32."""
    x = x.float()
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _resample_filter(module: torch.nn.Module) -> torch.Tensor:
    """The layer's 1-D separable FIR filter, or its 2-D outer product for the reference ops."""
    f = module.resample_filter
    if module.impl == "ref":
        f = torch.outer(f, f)
    return f


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor, impl: str = "fast") -> torch.Tensor:
    """``d[n, o] = 1 / sqrt(sum_{i,k} (weight[o, i, k] * styles[n, i])**2 + 1e-8)`` in float32.

    'fast' contracts ``styles**2 @ sum_k(weight**2).T`` ([N, O]); 'ref' forms the [N, O, I, kh, kw]
    modulated weights first.
    """
    with _fp32_math(weight.device.type):
        w = weight.float()
        s = styles.float()
        if impl == "ref":
            wm = w.unsqueeze(0) * s.reshape(s.shape[0], 1, -1, 1, 1)
            return (wm.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        return (s.square() @ w.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = False,
    gain: float = 1.0,
    impl: str = "fast",
) -> torch.Tensor:
    """Modulated (and optionally demodulated) convolution plus noise, times ``gain``.

    ``y[n] = gain * (conv(x[n], weight * styles[n][None, :, None, None]) * d[n] + noise)`` with
    ``d`` from `demodulation_coefficients` (1 when ``demodulate=False``). ``x`` [N, I, H, W],
    ``weight`` [O, I, kh, kw], ``styles`` [N, I], ``noise`` broadcastable to the output. The gain is
    folded into ``d`` and ``noise`` (small tensors), so it costs no pass over the output.
    """
    N = x.shape[0]
    O, I, kh, kw = weight.shape
    if styles.shape != (N, I):
        raise ValueError(f"modulated_conv2d: styles must be [{N}, {I}], got {list(styles.shape)}")
    # In float16 the inputs are pre-scaled (the demodulation undoes it) to avoid overflow.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(I * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = demodulation_coefficients(weight, styles, impl=impl) if demodulate else None
    if gain != 1.0:
        if demodulate:
            dcoefs = dcoefs * gain
        else:
            styles = styles * gain
        if noise is not None:
            noise = noise * gain
    wdtype = weight.dtype if _autocast_on(x) else x.dtype

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(N, -1, 1, 1)
        x = conv2d_resample(x, weight.to(wdtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight, impl=impl)
        if demodulate and noise is not None:
            return fma(x, dcoefs.to(x.dtype).reshape(N, -1, 1, 1), noise.to(x.dtype))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(N, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    # Grouped form: one [O, I, kh, kw] weight per sample.
    w = weight.unsqueeze(0) * styles.to(weight.dtype).reshape(N, 1, -1, 1, 1)
    if demodulate:
        w = w * dcoefs.to(w.dtype).reshape(N, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, I, kh, kw).to(wdtype)
    x = conv2d_resample(x, w, f=resample_filter, up=up, down=down, padding=padding, groups=N, flip_weight=flip_weight, impl=impl)
    x = x.reshape(N, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def set_ops_impl(module: torch.nn.Module, impl: str) -> torch.nn.Module:
    """Make every layer of ``module`` use the 'fast' or 'ref' ops (returns ``module``)."""
    if impl not in ("fast", "ref"):
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    for m in module.modules():
        if hasattr(m, "impl"):
            m.impl = impl
    return module


def count_parameters(module: torch.nn.Module) -> int:
    """Number of scalar parameters (trainable or frozen-as-parameter) of ``module``."""
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------
# Basic layers.


class FullyConnectedLayer(torch.nn.Module):
    """``act(x @ (W * lr_multiplier / sqrt(in)).T + b * lr_multiplier)`` with W ~ N(0, 1/lr_multiplier^2)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.activation = activation
        self.impl = "fast"
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.weight.dtype if _autocast_on(x) else x.dtype
        w = (self.weight * self.weight_gain).to(dtype)
        b = self.bias
        if b is not None:
            b = (b * self.bias_gain if self.bias_gain != 1 else b).to(dtype)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Equalised-lr conv with optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = RESAMPLE_FILTER,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.impl = "fast"
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter, separable=True))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].def_gain
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_t)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        dtype = self.weight.dtype if _autocast_on(x) else x.dtype
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # Fast ops: lrelu(z) * g == lrelu(z * g) for g > 0, so the gain goes into the (small)
        # weight and bias instead of costing a pass over the output.
        fold = self.impl == "fast" and self.activation in ("linear", "relu", "lrelu") and act_gain > 0
        w = (self.weight * (self.weight_gain * act_gain if fold else self.weight_gain)).to(dtype)
        b = self.bias * act_gain if (fold and self.bias is not None) else self.bias
        flip_weight = self.up == 1  # slightly faster for the transposed convolution
        x = conv2d_resample(
            x, w, f=_resample_filter(self), up=self.up, down=self.down, padding=self.padding, flip_weight=flip_weight, impl=self.impl
        )
        return bias_act(x, b, act=self.activation, gain=1.0 if fold else act_gain, clamp=act_clamp, impl=self.impl)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
            f"up={self.up}, down={self.down}"
        )


# ------------------------------------------------------------------------------------------------
# Mapping network.


class MappingNetwork(torch.nn.Module):
    """z (and c) -> w broadcast to [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None)."""

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: Optional[int],
        num_layers: int = 8,
        embed_features: Optional[int] = None,
        layer_features: Optional[int] = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = 0.995,
    ) -> None:
        super().__init__()
        self.init_kwargs = _plain(dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=num_ws, num_layers=num_layers, embed_features=embed_features,
            layer_features=layer_features, activation=activation, lr_multiplier=lr_multiplier, w_avg_beta=w_avg_beta,
        ))
        if num_layers < 1:
            raise UserError(f"the mapping network needs at least 1 layer (got num_layers={num_layers}); fix --map-depth")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"mapping: z must be [N, {self.z_dim}], got {None if z is None else list(z.shape)}")
            x = normalize_2nd_moment(z)
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"mapping: c must be [N, {self.c_dim}], got {None if c is None else list(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.float()

        if update_emas and self.num_ws is not None and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, which this mapping network does not track")
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                cut = int(truncation_cutoff)
                x = torch.cat([self.w_avg.lerp(x[:, :cut], truncation_psi), x[:, cut:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


# ------------------------------------------------------------------------------------------------
# Synthesis network.


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally 2x up), noise, bias, lrelu * sqrt(2), clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = RESAMPLE_FILTER,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up = resolution, up
        self.use_noise, self.activation, self.conv_clamp = use_noise, activation, conv_clamp
        self.impl = "fast"
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter, separable=True))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = False, gain: float = 1.0) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # Fast ops fold the activation gain into the demodulation coefficients, noise and bias.
        fold = self.impl == "fast" and self.activation in ("linear", "relu", "lrelu") and act_gain > 0
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding, resample_filter=_resample_filter(self),
            flip_weight=(self.up == 1), fused_modconv=fused_modconv, gain=act_gain if fold else 1.0, impl=self.impl,
        )
        b = self.bias * act_gain if fold else self.bias
        return bias_act(x, b, act=self.activation, gain=1.0 if fold else act_gain, clamp=act_clamp, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(torch.nn.Module):
    """1x1 modulated conv without demodulation (styles scaled by 1/sqrt(C_in)), bias, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1, conv_clamp: Optional[float] = None, channels_last: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv_clamp = conv_clamp
        self.impl = "fast"
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = False) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, padding=self.padding, demodulate=False, fused_modconv=fused_modconv, impl=self.impl)
        return bias_act(x, self.bias, clamp=self.conv_clamp, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}"


def _block_dtype(use_fp16: bool, force_fp32: bool, x_ref: torch.Tensor) -> Optional[torch.dtype]:
    """float16 for fp16 blocks on CUDA; None (keep the autocast dtype) under autocast; else float32."""
    if use_fp16 and not force_fp32 and x_ref.device.type == "cuda" and not _autocast_on(x_ref):
        return torch.float16
    if _autocast_on(x_ref):
        return None
    return torch.float32


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const | 2x up conv0), conv1, ToRGB."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = RESAMPLE_FILTER,
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise UserError(f"synthesis architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.is_last, self.architecture, self.use_fp16 = is_last, architecture, use_fp16
        self.impl = "fast"
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter, separable=True))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2, resample_filter=resample_filter)

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: Optional[bool] = None,
        noise_mode: str = "random",
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        w_iter = iter(ws.unbind(dim=1))
        dtype = _block_dtype(self.use_fp16, force_fp32, ws)
        if fused_modconv is None:
            # Grouped convs pay off only on GPUs at inference; on CPU the shared-weight form is faster.
            fused_modconv = (not self.training) and ws.device.type == "cuda" and (dtype == torch.float32 or ws.shape[0] == 1)
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            if dtype is not None:
                x = x.to(dtype)
        elif dtype is not None:
            x = x.to(dtype)
        layer_kw = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), **layer_kw)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), **layer_kw)
            x = self.conv1(x, next(w_iter), gain=math.sqrt(0.5), **layer_kw)
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), **layer_kw)
            x = self.conv1(x, next(w_iter), **layer_kw)

        if img is not None:
            with _fp32_math(img.device.type):  # the RGB skip sum stays float32 under autocast
                img = upfirdn2d.upsample2d(img.float(), _resample_filter(self), impl=self.impl)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).float()
            img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution] (float32)."""

    def __init__(
        self,
        *,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        self.init_kwargs = _plain(dict(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                       channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res, **block_kwargs))
        _check_resolution(img_resolution)
        if channel_base < 1 or channel_max < 1:
            raise UserError(f"channel_base and channel_max must be >= 1 (got {channel_base}, {channel_max}); fix --cbase/--cmax")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: max(min(channel_base // res, channel_max), 1) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res, img_channels=img_channels,
                                   is_last=is_last, use_fp16=(res >= fp16_resolution), **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False, update_emas: bool = False, fused_modconv: Optional[bool] = None) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"synthesis: ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        ws = ws.float()
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv, noise_mode=noise_mode)
        return img.contiguous()

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"


class Generator(torch.nn.Module):
    """StyleGAN2 generator: ``G(z, c) = synthesis(mapping(z, c))``."""

    def __init__(
        self,
        *,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: Optional[dict] = None,
        synthesis_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = _plain(dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                       img_channels=img_channels, mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs))
        if img_channels < 1:
            raise UserError(f"img_channels must be >= 1, got {img_channels}")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


# ------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of D: (FromRGB), conv0 3x3, conv1 3x3 with 2x down, (resnet skip)."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = RESAMPLE_FILTER,
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ) -> None:
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise UserError(f"discriminator architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.first_layer_idx, self.architecture, self.use_fp16 = first_layer_idx, architecture, use_fp16
        self.impl = "fast"
        self.register_buffer("resample_filter", upfirdn2d.setup_filter(resample_filter, separable=True))
        self.num_layers = 0

        def trainable_next() -> bool:
            idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable_next(), conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable_next(), conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable_next(), resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable_next(), resample_filter=resample_filter)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        ref = img if img is not None else x
        dtype = _block_dtype(self.use_fp16, force_fp32, ref)
        if x is not None and dtype is not None:
            x = x.to(dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img.to(dtype) if dtype is not None else img)
            x = x + y if x is not None else y
            if self.architecture == "skip":
                with _fp32_math(img.device.type):
                    img = upfirdn2d.downsample2d(img.float(), _resample_filter(self), impl=self.impl)
            else:
                img = None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class MinibatchStdLayer(torch.nn.Module):
    """Append the mean standard deviation over sample groups as ``num_channels`` extra channels.

    Samples ``n`` and ``n + k * N/G`` (k = 0..G-1) form a group of size ``G = min(group_size, N)``
    (reduced to the largest divisor of N not above it). Per group and per channel slice
    ``f`` of ``C / num_channels`` channels: ``sqrt(var_group(x) + 1e-8)`` averaged over the slice's
    channels and all pixels.
    """

    def __init__(self, group_size: Optional[int], num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = N if self.group_size is None else min(int(self.group_size), N)
        while N % G:
            G -= 1
        Fn = self.num_channels
        c = C // Fn
        y = x.reshape(G, -1, Fn, c, H, W)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, Fn, 1, 1)
        y = y.repeat(G, 1, H, W)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4 head: (FromRGB), minibatch-stddev, conv 3x3, fc, output (or cmap projection)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: Optional[int] = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor], force_fp32: bool = False) -> torch.Tensor:
        if not _autocast_on(x):
            x = x.float()
        if self.architecture == "skip":
            x = x + self.fromrgb(img.float() if not _autocast_on(img) else img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x.float() * cmap.float()).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x.float()

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator: ``D(img, c) -> logits [N, 1]``."""

    def __init__(
        self,
        *,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: Optional[float] = None,
        cmap_dim: Optional[int] = None,
        block_kwargs: Optional[dict] = None,
        mapping_kwargs: Optional[dict] = None,
        epilogue_kwargs: Optional[dict] = None,
    ) -> None:
        super().__init__()
        block_kwargs = dict(block_kwargs or {})
        mapping_kwargs = dict(mapping_kwargs or {})
        epilogue_kwargs = dict(epilogue_kwargs or {})
        self.init_kwargs = _plain(dict(
            c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels, architecture=architecture,
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
            cmap_dim=cmap_dim, block_kwargs=block_kwargs, mapping_kwargs=mapping_kwargs, epilogue_kwargs=epilogue_kwargs,
        ))
        _check_resolution(img_resolution)
        if channel_base < 1 or channel_max < 1:
            raise UserError(f"channel_base and channel_max must be >= 1 (got {channel_base}, {channel_max}); fix --cbase/--cmax")
        if img_channels < 1:
            raise UserError(f"img_channels must be >= 1, got {img_channels}")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: max(min(channel_base // res, channel_max), 1) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], resolution=res, first_layer_idx=layer_idx,
                                       use_fp16=(res >= fp16_resolution), **block_kwargs, **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor], update_emas: bool = False, force_fp32: bool = False) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(
                f"D: img must be [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], got {list(img.shape)}"
            )
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap, force_fp32=force_fp32)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"


def _check_resolution(res: int) -> None:
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        raise UserError(f"StyleGAN2 needs a power-of-two image resolution >= 4, got {res}; resize the dataset with dataset_tool.py")


# ------------------------------------------------------------------------------------------------
# Command line: parameter counts of a train.py config.


def build_networks_for_cfg(cfg: str, res: int, channels: int = 3, cbase: Optional[int] = None, cmax: Optional[int] = None,
                           c_dim: int = 0) -> tuple[Generator, Discriminator]:
    """G and D exactly as ``train.py --cfg=<cfg>`` builds them for a ``res`` px dataset."""
    from training.configs import STYLEGAN2_CFGS, build_config

    if cfg not in STYLEGAN2_CFGS:
        raise UserError(f"--cfg={cfg} is not a StyleGAN2 config; choose one of {', '.join(STYLEGAN2_CFGS)}")
    if channels not in (1, 3):
        raise UserError(f"--channels must be 1 or 3, got {channels}")
    _check_resolution(res)
    conf = build_config(cfg, resolution=res, img_channels=channels, cbase=cbase, cmax=cmax)
    common = dict(c_dim=c_dim, img_resolution=res, img_channels=channels)
    G_kwargs = {k: v for k, v in conf.G_kwargs.items() if k != "class_name"}
    D_kwargs = {k: v for k, v in conf.D_kwargs.items() if k != "class_name"}
    return Generator(**G_kwargs, **common), Discriminator(**D_kwargs, **common)


@click.command()
@click.option("--summary", is_flag=True, help="Print the parameter counts of G and D.")
@click.option("--cfg", default="auto", show_default=True, help="train.py base config (auto, stylegan2, paper256, paper512, paper1024, cifar).")
@click.option("--res", type=int, required=True, help="Image resolution in pixels (power of two).")
@click.option("--channels", type=int, default=3, show_default=True, help="Image channels (1 or 3).")
@click.option("--cbase", type=int, default=None, help="Override channel_base.")
@click.option("--cmax", type=int, default=None, help="Override channel_max.")
@cli_main
def main(summary: bool, cfg: str, res: int, channels: int, cbase: Optional[int], cmax: Optional[int]) -> None:
    """Inspect the StyleGAN2 networks a train.py config builds (unconditional)."""
    if not summary:
        raise UserError("nothing to do; pass --summary to print the parameter counts")
    G, D = build_networks_for_cfg(cfg, res, channels, cbase, cmax)
    print(f"G parameters: {count_parameters(G)}")
    print(f"D parameters: {count_parameters(D)}")


if __name__ == "__main__":
    main()
