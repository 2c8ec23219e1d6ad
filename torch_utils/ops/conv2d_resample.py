"""2-D convolution combined with FIR upsampling and/or downsampling.

``conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter)`` is *defined* as

    t = upfirdn2d(x, f if up > 1 else None, up=up, padding=P, gain=up**2)   # upsample + pad
    t = conv2d(t, w, groups=groups)           # 'valid' correlation; true convolution if not flip_weight
    y = upfirdn2d(t, f, down=down) if down > 1 else t                         # filter + downsample

where ``P`` is ``padding`` enlarged so that, with zero ``padding``, a k x k kernel and the filter
``f`` (e.g. the 4-tap [1,3,3,1] of StyleGAN2):

- ``up=2`` maps H x W to (2H + 2*pad - k + 1) x (...), i.e. 2H x 2W for k=3 and padding=1;
- ``down=2`` maps H x W to (H + 2*pad - k + 1) / 2 ..., i.e. H/2 x W/2 for k=3 and padding=1.

Precisely, with a filter of width ``fw``: ``px0 += (fw + up - 1) // 2`` and ``px1 += (fw - up) // 2``
when ``up > 1``, and ``px0 += (fw - down + 1) // 2``, ``px1 += (fw - down) // 2`` when ``down > 1``
(likewise for y).

``impl='ref'`` evaluates exactly that sequence. ``impl='fast'`` (default) computes the same values
with fewer operations, all convolution and filtering being linear and shift-invariant (so they
commute) -- padding applied once, inside the convolution where it is symmetric:

- no resampling: one ``conv2d`` with its own padding;
- 1x1 kernel with downsampling: filter + downsample first, then the 1x1 conv on the small image;
- 1x1 kernel with upsampling: the 1x1 conv first, then filter + upsample;
- downsampling: filter (with the padding), then a strided ``conv2d`` (no discarded outputs);
- upsampling: a strided ``conv_transpose2d`` (no explicit zeros), then the filter with the
  remaining padding, which also crops.

The fast path also runs the convolutions in channels_last memory format (2-3x faster on x86 CPUs
with oneDNN, and the layout cuDNN prefers for half precision); its output is channels_last. Its
convolutions are custom autograd functions whose derivatives are again regular convolutions,
transposed convolutions or weight gradients, so the second derivatives of R1 and path-length
penalties avoid PyTorch's slow generic convolution double backward (see `_Conv`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from torch_utils.ops import upfirdn2d as _fir

__all__ = ["conv2d_resample"]


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding=0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str = "fast",
) -> torch.Tensor:
    """Convolve ``x`` [N, C_in, H, W] with ``w`` [C_out, C_in/groups, kh, kw], resampling through
    the FIR filter ``f`` (see the module docstring for the exact definition)."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample: x and w must be 4-D, got {list(x.shape)} and {list(w.shape)}")
    if w.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"conv2d_resample: x is {x.dtype} but w is {w.dtype}")
    if f is not None and (f.ndim not in (1, 2) or f.dtype != torch.float32):
        raise ValueError("conv2d_resample: f must be a float32 1-D or 2-D filter from setup_filter")
    if not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        raise ValueError(f"conv2d_resample: up and down must be integers >= 1, got {up!r}, {down!r}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("conv2d_resample: resampling needs a filter f (e.g. setup_filter([1, 3, 3, 1]))")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"conv2d_resample: x has {x.shape[1]} channels but w expects {w.shape[1]} x {groups} groups")
    kh, kw = int(w.shape[2]), int(w.shape[3])
    fw, fh = _fir.get_filter_size(f)
    px0, px1, py0, py1 = _fir.parse_padding(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pad = (px0, px1, py0, py1)
    if impl == "ref":
        return _conv2d_resample_ref(x, w, f, up, down, pad, groups, flip_weight, flip_filter)
    if impl == "fast":
        return _conv2d_resample_fast(x, w, f, up, down, pad, groups, flip_weight, flip_filter, kh, kw)
    raise ValueError(f"conv2d_resample: impl must be 'ref' or 'fast', got {impl!r}")


def _conv2d_resample_ref(x, w, f, up, down, pad, groups, flip_weight, flip_filter):
    if not flip_weight:
        w = w.flip([2, 3])
    x = _fir.upfirdn2d(x, f if up > 1 else None, up=up, padding=list(pad), gain=up * up, flip_filter=flip_filter, impl="ref")
    x = F.conv2d(x, w.to(x.dtype), groups=groups)
    if down > 1:
        x = _fir.upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl="ref")
    return x


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------------
# Convolutions with cheap second derivatives.
#
# y = conv(x, w) is bilinear. Its gradients are gx = conv_transpose(dy, w) (linear in dy and w)
# and gw = weight_grad(dy, x) (bilinear), and the gradients of those are again one of the three
# maps: d<ggx, gx>/d(dy) = conv(ggx, w), d<ggx, gx>/dw = weight_grad(dy, ggx),
# d<ggw, gw>/d(dy) = conv(x, ggw), d<ggw, gw>/dx = conv_transpose(dy, ggw). Three autograd
# functions that call each other therefore give derivatives of any order while every product runs
# through PyTorch's regular convolution kernels. PyTorch's own double backward of a convolution
# computes the weight term as a convolution over batch-as-channels (with transposing copies),
# about 3x slower on CPU than the regular weight-gradient kernel. A transposed convolution is
# `_ConvInputGrad` of the corresponding convolution.


def _conv_output_padding(out_hw, dy_hw, w_hw, stride, padding):
    return [out_hw[i] - ((dy_hw[i] - 1) * stride[i] - 2 * padding[i] + w_hw[i]) for i in range(2)]


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, geom):
        stride, padding, groups = geom
        ctx.save_for_backward(x, w)
        ctx.geom = geom
        return F.conv2d(x, w, None, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        gx = _ConvInputGrad.apply(dy, w, ctx.geom, tuple(x.shape)) if ctx.needs_input_grad[0] else None
        gw = _ConvWeightGrad.apply(dy, x, ctx.geom, tuple(w.shape)) if ctx.needs_input_grad[1] else None
        return gx, gw, None


class _ConvInputGrad(torch.autograd.Function):
    """``conv_transpose2d(dy, w)`` sized to ``x_shape``: the gradient of `_Conv` w.r.t. ``x``."""

    @staticmethod
    def forward(ctx, dy, w, geom, x_shape):
        stride, padding, groups = geom
        ctx.save_for_backward(dy, w)
        ctx.geom, ctx.x_shape = geom, x_shape
        op = _conv_output_padding(x_shape[2:], dy.shape[2:], w.shape[2:], stride, padding)
        return F.conv_transpose2d(dy, w, None, stride, padding, op, groups)

    @staticmethod
    def backward(ctx, ggx):
        dy, w = ctx.saved_tensors
        g_dy = _Conv.apply(ggx, w, ctx.geom) if ctx.needs_input_grad[0] else None
        g_w = _ConvWeightGrad.apply(dy, ggx, ctx.geom, tuple(w.shape)) if ctx.needs_input_grad[1] else None
        return g_dy, g_w, None, None


class _ConvWeightGrad(torch.autograd.Function):
    """``sum_n corr(x[n], dy[n])``: the gradient of `_Conv` w.r.t. ``w`` (shape ``w_shape``)."""

    @staticmethod
    def forward(ctx, dy, x, geom, w_shape):
        stride, padding, groups = geom
        ctx.save_for_backward(dy, x)
        ctx.geom, ctx.w_shape = geom, w_shape
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else torch.contiguous_format
        w_like = torch.empty(w_shape, dtype=x.dtype, device=x.device, memory_format=fmt)  # only its shape is read
        return torch.ops.aten.convolution_backward(
            dy, x, w_like, None, list(stride), list(padding), [1, 1], False, [0, 0], groups, [False, True, False]
        )[1]

    @staticmethod
    def backward(ctx, ggw):
        dy, x = ctx.saved_tensors
        g_dy = _Conv.apply(x, ggw, ctx.geom) if ctx.needs_input_grad[0] else None
        g_x = _ConvInputGrad.apply(dy, ggw, ctx.geom, tuple(x.shape)) if ctx.needs_input_grad[1] else None
        return g_dy, g_x, None, None


def _autocast_inputs(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast to the autocast dtype up front (what F.conv2d would do) so the custom functions'
    backward passes, which run outside autocast, see consistent dtypes."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        return x.to(dtype), w.to(dtype)
    return x, w.to(x.dtype)


def _conv(x, w, stride=1, padding=(0, 0, 0, 0), groups=1, flip_weight=True, transpose=False):
    """conv2d / conv_transpose2d in channels_last, with arbitrary (px0, px1, py0, py1) padding.

    For conv2d the symmetric part of the padding is done by the convolution itself and the rest
    by one ``F.pad`` (negative = crop). For conv_transpose2d only symmetric cropping is allowed.
    """
    if not flip_weight:
        w = w.flip([2, 3])
    x, w = _autocast_inputs(x, w)
    x = _channels_last(x)
    w = _channels_last(w)
    px0, px1, py0, py1 = padding
    stride2 = (stride, stride) if isinstance(stride, int) else tuple(stride)
    if transpose:
        if px0 != px1 or py0 != py1 or px0 < 0 or py0 < 0:
            raise AssertionError("internal: conv_transpose2d padding must be symmetric crop")
        # conv_transpose2d(x, wt) is the input gradient of conv2d(., wt): a convT weight
        # [C_in, C_out/g, k, k] is read as the weight of a conv from C_out to C_in channels.
        kh, kw = w.shape[2], w.shape[3]
        if groups == 1:
            wt = w.transpose(0, 1)
        else:  # conv weight [G*O', I', k, k] -> convT weight [G*I', O', k, k]
            o, i = w.shape[0], w.shape[1]
            wt = w.reshape(groups, o // groups, i, kh, kw).transpose(1, 2).reshape(groups * i, o // groups, kh, kw)
        N, _, H, W = x.shape
        out_shape = (N, wt.shape[1] * groups, (H - 1) * stride2[0] - 2 * py0 + kh, (W - 1) * stride2[1] - 2 * px0 + kw)
        return _ConvInputGrad.apply(x, _channels_last(wt), (stride2, (py0, px0), groups), out_shape)
    sx = max(min(px0, px1), 0)
    sy = max(min(py0, py1), 0)
    rx0, rx1, ry0, ry1 = px0 - sx, px1 - sx, py0 - sy, py1 - sy
    if rx0 or rx1 or ry0 or ry1:
        x = _fir._pad_or_crop(x, rx0, rx1, ry0, ry1)
    return _Conv.apply(x, w, ((stride2[0], stride2[1]), (sy, sx), groups))


def _conv2d_resample_fast(x, w, f, up, down, pad, groups, flip_weight, flip_filter, kh, kw):
    px0, px1, py0, py1 = pad
    fir = dict(flip_filter=flip_filter, impl="fast")

    # 1x1 kernel, downsampling only: filter + downsample first, convolve the small image.
    if kh == 1 and kw == 1 and down > 1 and up == 1:
        x = _fir.upfirdn2d(_channels_last(x), f, down=down, padding=list(pad), **fir)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, upsampling only: convolve first, then filter + upsample.
    if kh == 1 and kw == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return _fir.upfirdn2d(x, f, up=up, padding=list(pad), gain=up * up, **fir)

    # Downsampling only: filter with all the padding, then a strided convolution.
    if down > 1 and up == 1:
        x = _fir.upfirdn2d(_channels_last(x), f, padding=list(pad), **fir)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling (and maybe downsampling): transposed strided convolution, then the filter.
    if up > 1:
        # conv_transpose2d gives the 'full' convolution of the zero-inserted input (length
        # (L-1)*up + k), which is offset by k-1 from the generic definition's first output and
        # is up-k shorter on the right; the filter's padding absorbs both.
        qx0, qx1 = px0 - (kw - 1), px1 - (kw - up)
        qy0, qy1 = py0 - (kh - 1), py1 - (kh - up)
        cx = max(min(-qx0, -qx1), 0)  # symmetric crop done by the transposed conv itself
        cy = max(min(-qy0, -qy1), 0)
        # conv_transpose2d with kernel h is a true convolution; the definition correlates with w
        # (flip_weight=True), i.e. convolves with flip(w): pass flip_weight inverted.
        x = _conv(x, w, stride=up, padding=(cx, cx, cy, cy), groups=groups, flip_weight=not flip_weight, transpose=True)
        x = _fir.upfirdn2d(x, f, padding=[qx0 + cx, qx1 + cx, qy0 + cy, qy1 + cy], gain=up * up, **fir)
        if down > 1:
            x = _fir.upfirdn2d(x, f, down=down, **fir)
        return x

    # No resampling.
    return _conv(x, w, padding=pad, groups=groups, flip_weight=flip_weight)
