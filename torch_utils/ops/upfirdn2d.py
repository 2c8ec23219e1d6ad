"""FIR resampling of 2-D images: upsample by zero insertion, pad, filter, downsample.

For an image ``x`` [N, C, H, W], ``upfirdn2d(x, f, up, down, padding, flip_filter, gain)`` is, per
channel and in this order:

1. **upsample**: insert ``up - 1`` zeros after every pixel along each axis,
   ``z[i * up] = x[i]`` (size ``H * up``, ``W * up``);
2. **pad**: add ``padding = [px0, px1, py0, py1]`` zero pixels on the left/right/top/bottom;
   negative values crop instead;
3. **filter**: true 2-D convolution with ``f`` scaled by ``gain`` (``f`` is flipped before the
   correlation unless ``flip_filter=True``), keeping only the fully overlapping ("valid") outputs;
4. **downsample**: keep every ``down``-th pixel, starting with the first.

Output size along x: ``(W * up_x + px0 + px1 - fw) // down_x + 1`` (same for y).

A filter is either 2-D ``[fh, fw]`` or 1-D ``[k]`` meaning the separable filter ``f[y] * f[x]``
(then the gain is applied as ``sqrt(gain)`` per axis, so the total gain is the same). ``None`` is
the 1x1 identity filter. `setup_filter` prepares filters (normalise to unit sum, flip, gain).

Two implementations compute the same function and are differentiable to any order:

- ``impl='ref'``: the textbook sequence above (zero insertion with reshape + pad, ``F.pad``, a
  depthwise ``conv2d`` of the whole padded image, strided slicing), kept as the baseline the fast
  path is tested and benchmarked against.
- ``impl='fast'`` (default): one padding step folded into the convolution where possible,
  upsampling as a depthwise transposed convolution with ``stride=up`` (no explicit zeros),
  downsampling as a strided depthwise convolution (no discarded outputs), separable filters as two
  1-D passes, and the input's memory format (e.g. channels_last) kept. It is one autograd node
  whose gradient is again an upfirdn2d (the adjoint), so second derivatives cost two more FIR
  passes instead of PyTorch's per-channel double backward of depthwise convolutions.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d", "parse_padding", "get_filter_size"]

IntOrPair = Union[int, Sequence[int]]
Padding = Union[int, Sequence[int]]


# ------------------------------------------------------------------------------------------------
# Argument parsing.


def _parse_scaling(scaling: IntOrPair) -> tuple[int, int]:
    """``s`` or ``[sx, sy]`` -> ``(sx, sy)``, each an integer >= 1."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"up/down factors must be >= 1, got {list(scaling)}")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """``p``, ``[px, py]`` or ``[px0, px1, py0, py1]`` -> ``(px0, px1, py0, py1)``."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return padding[0], padding[1], padding[2], padding[3]
    raise ValueError(f"padding must be an int, [px, py] or [px0, px1, py0, py1], got {padding}")


def get_filter_size(f: Optional[torch.Tensor]) -> tuple[int, int]:
    """Filter width and height ``(fw, fh)``; a 1-D (separable) filter is square."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return int(f.shape[0]), int(f.shape[0])
    if f.ndim == 2:
        return int(f.shape[1]), int(f.shape[0])
    raise ValueError(f"a filter must be 1-D or 2-D, got shape {list(f.shape)}")


# ------------------------------------------------------------------------------------------------
# Filter preparation.


def setup_filter(
    f: Union[None, float, Sequence, torch.Tensor],
    device: Union[str, torch.device] = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: Optional[bool] = None,
) -> torch.Tensor:
    """Turn a list of taps into a float32 filter tensor for `upfirdn2d`.

    - ``None`` -> ``[1]``; a scalar -> a 1-tap filter.
    - 1-D taps stay 1-D (separable) when ``separable`` is True, or when it is None and there are
      at least 8 taps; otherwise the 2-D filter ``outer(f, f)`` is formed.
    - ``normalize``: divide by the sum of all taps (the 2-D sum), so a constant image is kept.
    - ``flip_filter``: flip along every axis.
    - The result is multiplied by ``gain ** (ndim / 2)``: a 2-D filter by ``gain``, a 1-D one by
      ``sqrt(gain)`` (it is applied twice, once per axis).
    """
    if f is None:
        f = 1.0
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty scalar, 1-D or 2-D array, got shape {list(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("a 2-D filter cannot be made separable; pass 1-D taps or separable=False")
    if normalize:
        f = f / f.sum()  # for 1-D taps this makes outer(f, f) sum to 1 as well
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


# ------------------------------------------------------------------------------------------------
# Public entry points.


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str = "fast",
) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample ``x`` [N, C, H, W] (see the module docstring)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be a 4-D [N, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2) or f.dtype != torch.float32:
        raise ValueError(f"upfirdn2d: f must be a float32 1-D or 2-D tensor (use setup_filter), got {f.dtype} {list(f.shape)}")
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    N, C, H, W = x.shape
    out_w = (W * upx + px0 + px1 - fw) // downx + 1
    out_h = (H * upy + py0 + py1 - fh) // downy + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: the output would be empty ({out_h}x{out_w}) for input {H}x{W}, filter {fh}x{fw}, padding {[px0, px1, py0, py1]}")
    if impl == "ref":
        return _upfirdn2d_ref(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
    if impl == "fast":
        return _upfirdn2d_fast(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
    raise ValueError(f"upfirdn2d: impl must be 'ref' or 'fast', got {impl!r}")


def filter2d(
    x: torch.Tensor, f: Optional[torch.Tensor], padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, impl: str = "fast"
) -> torch.Tensor:
    """Filter ``x`` with ``f`` keeping its size (extra ``padding`` grows or crops it)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor, f: Optional[torch.Tensor], up: IntOrPair = 2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, impl: str = "fast"
) -> torch.Tensor:
    """Upsample ``x`` by ``up`` with FIR filter ``f`` (output ``H*up x W*up`` at zero padding).

    The filter gain is multiplied by ``up_x * up_y`` so a constant image keeps its value.
    """
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: torch.Tensor, f: Optional[torch.Tensor], down: IntOrPair = 2, padding: Padding = 0, flip_filter: bool = False, gain: float = 1.0, impl: str = "fast"
) -> torch.Tensor:
    """Downsample ``x`` by ``down`` after FIR filtering with ``f`` (output ``H/down x W/down``)."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


# ------------------------------------------------------------------------------------------------
# Implementations.


def _pad_or_crop(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """Zero-pad (positive) or crop (negative) the last two axes."""
    if max(px0, px1, py0, py1) > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    if min(px0, px1, py0, py1) < 0:
        x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    return x


def _conv_taps(f: torch.Tensor, flip_filter: bool, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """Filter taps as used by a correlation (``F.conv2d``): flipped unless ``flip_filter``."""
    f = f * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f.to(dtype)


def _upfirdn2d_ref(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain):
    N, C, H, W = x.shape
    # 1. Zero insertion: [N, C, H, 1, W, 1] padded to [N, C, H, upy, W, upx].
    x = x.reshape(N, C, H, 1, W, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(N, C, H * upy, W * upx)
    # 2. Pad / crop.
    x = _pad_or_crop(x, px0, px1, py0, py1)
    # 3. Depthwise correlation with the flipped filter (i.e. a true convolution with f).
    taps = _conv_taps(f, flip_filter, gain, x.dtype)
    if taps.ndim == 2:
        x = F.conv2d(x, taps[None, None].repeat(C, 1, 1, 1), groups=C)
    else:
        x = F.conv2d(x, taps[None, None, None, :].repeat(C, 1, 1, 1), groups=C)
        x = F.conv2d(x, taps[None, None, :, None].repeat(C, 1, 1, 1), groups=C)
    # 4. Keep every down-th pixel.
    return x[:, :, ::downy, ::downx]


def _fir_axis_padding(p0: int, p1: int) -> tuple[int, list[int]]:
    """Split per-axis padding into a symmetric part the conv does itself and the remainder."""
    sym = max(min(p0, p1), 0)
    return sym, [p0 - sym, p1 - sym]


def _upfirdn2d_fast(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain):
    params = (upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
    if f.requires_grad:  # a learned filter: let autograd differentiate the convolutions
        return _upfirdn2d_depthwise(x, f, *params)
    return _UpFirDn2d.apply(x, f, params)


class _UpFirDn2d(torch.autograd.Function):
    """upfirdn2d as one autograd node whose backward is again an upfirdn2d (its adjoint).

    For the 1-D case ``y[o] = sum_i x[i] g[i*up + p0 - o*down]``, the adjoint is the same kind of
    operation on ``dy`` with up and down swapped, the filter flipped (``flip_filter`` toggled),
    ``p0' = K - 1 - p0`` and ``p1' = L_in*up - L_out*down + p0 - up + 1``. Any order of derivative
    therefore runs only forward FIR passes; PyTorch's generic double backward of a depthwise
    convolution would instead loop over the channels (hundreds of tiny convolutions).
    """

    @staticmethod
    def forward(ctx, x, f, params):
        ctx.save_for_backward(f)
        ctx.params = params
        ctx.in_hw = (x.shape[2], x.shape[3])
        y = _upfirdn2d_depthwise(x, f, *params)
        if y._base is not None:  # a crop/stride view: autograd functions must return fresh tensors
            cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            y = y.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)
            if y._base is not None:
                y = y.clone()
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain = ctx.params
        fw, fh = get_filter_size(f)
        H, W = ctx.in_hw
        oh, ow = dy.shape[2], dy.shape[3]
        adjoint = (
            downx, downy, upx, upy,
            fw - px0 - 1, W * upx - ow * downx + px0 - upx + 1,
            fh - py0 - 1, H * upy - oh * downy + py0 - upy + 1,
            not flip_filter, gain,
        )
        return _UpFirDn2d.apply(dy, f, adjoint), None, None


def _upfirdn2d_depthwise(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain):
    N, C, H, W = x.shape
    taps = _conv_taps(f, flip_filter, gain, x.dtype)
    if taps.ndim == 2:
        kernels = [(taps[None, None].repeat(C, 1, 1, 1), upx, upy, downx, downy, (px0, px1, py0, py1))]
    else:
        kx = taps[None, None, None, :].repeat(C, 1, 1, 1)
        ky = taps[None, None, :, None].repeat(C, 1, 1, 1)
        kernels = []
        if kx.shape[-1] > 1 or upx > 1 or downx > 1 or px0 or px1:
            kernels.append((kx, upx, 1, downx, 1, (px0, px1, 0, 0)))
        if ky.shape[-2] > 1 or upy > 1 or downy > 1 or py0 or py1:
            kernels.append((ky, 1, upy, 1, downy, (0, 0, py0, py1)))
        if not kernels:  # a 1-tap filter and nothing else: just the gain
            return x * (taps[0] * taps[0])
    for k, ux, uy, dx, dy, (a0, a1, b0, b1) in kernels:
        x = _depthwise_updown(x, k, ux, uy, dx, dy, a0, a1, b0, b1)
    return x


def _depthwise_updown(x, k, upx, upy, downx, downy, px0, px1, py0, py1):
    """One depthwise pass: upsample, pad, correlate with ``k`` [C, 1, kh, kw], downsample."""
    C = x.shape[1]
    kh, kw = k.shape[2], k.shape[3]
    if upx == 1 and upy == 1:
        sx, (rx0, rx1) = _fir_axis_padding(px0, px1)
        sy, (ry0, ry1) = _fir_axis_padding(py0, py1)
        x = _pad_or_crop(x, rx0, rx1, ry0, ry1)
        return F.conv2d(x, k, stride=(downy, downx), padding=(sy, sx), groups=C)
    # Upsampling: a transposed convolution with stride `up` computes
    #   t[m] = sum_i x[i] * h[m - i*up],   m in [0, (L-1)*up + K),
    # with h the kernel as given to conv_transpose2d. Zero insertion + padding p0 + correlation
    # with k gives y[t] = sum_i x[i] * k[i*up + p0 - t], i.e. t[t + K-1-p0] with h = flip(k).
    H, W = x.shape[2], x.shape[3]
    h = k.flip([2, 3])
    x = F.conv_transpose2d(x, h, stride=(upy, upx), groups=C)
    out_w = W * upx + px0 + px1 - kw + 1
    out_h = H * upy + py0 + py1 - kh + 1
    sx0, sy0 = kw - 1 - px0, kh - 1 - py0  # start of the wanted window inside t
    x = _pad_or_crop(x, -sx0, (sx0 + out_w) - x.shape[3], -sy0, (sy0 + out_h) - x.shape[2])
    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x
