"""Bias, activation, gain and clamp in one call.

``bias_act(x, b, dim, act, alpha, gain, clamp)`` computes, in this order,

    y = act(x + b) * gain,   then   y = clamp(y, -clamp, +clamp)   (when clamp is not None)

where ``b`` [C] is broadcast along axis ``dim`` of ``x``. Activations (``act``) with their default
``alpha`` and ``gain``:

============  =====================================  =========  ==========
name          function                               alpha      gain
============  =====================================  =========  ==========
linear        x                                      -          1
relu          max(x, 0)                              -          sqrt(2)
lrelu         x if x >= 0 else alpha * x             0.2        sqrt(2)
tanh          tanh(x)                                -          1
sigmoid       1 / (1 + exp(-x))                      -          1
elu           x if x >= 0 else exp(x) - 1            -          1
selu          SELU (Klambauer et al. constants)      -          1
softplus      log(1 + exp(x))                        -          1
swish         x * sigmoid(x)                         -          sqrt(2)
============  =====================================  =========  ==========

Two implementations give the same values and are differentiable to any order:

- ``impl='ref'``: plain composition of PyTorch ops, differentiated by autograd.
- ``impl='fast'`` (default): for linear, relu and lrelu with a positive gain (the activations the
  StyleGAN2 layers use) a custom autograd function that does the work in place on one new tensor
  and stores only its output; the backward is ``dx = dy * act'(y)`` with ``act'`` read from the
  sign of ``y`` (one fused ``leaky_relu_backward`` pass; zero where the clamp is active), itself a
  custom function whose derivative is the same map, so second derivatives (R1, path length) work.
  A linear call without bias and clamp is just ``x * gain`` (or ``x``). Other activations use the
  reference path.

The bias is cast to ``x.dtype`` so half/bfloat16 activations stay in their dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

__all__ = ["bias_act", "ActivationSpec", "ACTIVATIONS"]


@dataclass(frozen=True)
class ActivationSpec:
    """One activation: its function ``func(x, alpha)``, default alpha and default gain."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, ActivationSpec] = {
    "linear": ActivationSpec(lambda x, alpha: x, 0.0, 1.0),
    "relu": ActivationSpec(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": ActivationSpec(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": ActivationSpec(lambda x, alpha: torch.tanh(x), 0.0, 1.0),
    "sigmoid": ActivationSpec(lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
    "elu": ActivationSpec(lambda x, alpha: F.elu(x), 0.0, 1.0),
    "selu": ActivationSpec(lambda x, alpha: F.selu(x), 0.0, 1.0),
    "softplus": ActivationSpec(lambda x, alpha: F.softplus(x), 0.0, 1.0),
    "swish": ActivationSpec(lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    impl: str = "fast",
) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``; see the module docstring."""
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = None if clamp is None else float(clamp)
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None, got {clamp}")
    dim = dim % x.ndim if x.ndim else 0
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: bias of shape {list(b.shape)} does not match axis {dim} of x {list(x.shape)}")
        b = b.to(x.dtype)
    if impl == "fast" and act == "linear" and b is None and clamp is None:
        return x * gain if gain != 1.0 else x
    if impl == "fast" and act in ("linear", "relu", "lrelu") and gain > 0:
        if act == "relu":
            alpha = 0.0
        elif act == "linear":
            alpha = 1.0
        return _BiasLeakyReLU.apply(x, b, dim, alpha, gain, clamp)
    if impl not in ("fast", "ref"):
        raise ValueError(f"bias_act: impl must be 'ref' or 'fast', got {impl!r}")
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


def _bias_shape(x: torch.Tensor, dim: int) -> list[int]:
    return [-1 if i == dim else 1 for i in range(x.ndim)]


def _add_bias(x: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """``x + b`` along ``dim``; for channels_last images the add runs on the NHWC view, where the
    bias is the innermost axis (about 3x faster on CPU than broadcasting [1, C, 1, 1])."""
    if x.ndim == 4 and dim == 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.add(x.permute(0, 2, 3, 1), b).permute(0, 3, 1, 2)
    return torch.add(x, b.reshape(_bias_shape(x, dim)))


def _bias_act_ref(x, b, dim, spec: ActivationSpec, alpha, gain, clamp):
    if b is not None:
        x = x + b.reshape(_bias_shape(x, dim))
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class _BiasLeakyReLU(torch.autograd.Function):
    """``y = clamp(lrelu_alpha(x + b) * gain)`` for gain > 0 (alpha 0 = relu, 1 = linear).

    Because gain > 0, ``lrelu(z) * gain == lrelu(z * gain)`` and the sign of ``y`` is the sign of
    ``z``, so the derivative ``dy/dz = gain * (1 if y > 0 else alpha)`` (times ``|y| < clamp``)
    can be read from the output alone.
    """

    @staticmethod
    def forward(ctx, x, b, dim, alpha, gain, clamp):
        if b is not None:
            y = _add_bias(x, b, dim)
        else:
            y = x.clone(memory_format=torch.preserve_format)
        if alpha != 1.0:
            if alpha == 0.0:
                y.relu_()
            else:
                F.leaky_relu_(y, alpha)
        if gain != 1.0:
            y.mul_(gain)
        if clamp is not None:
            y.clamp_(-clamp, clamp)
        ctx.linear = alpha == 1.0 and clamp is None  # then the derivative is the constant `gain`
        ctx.save_for_backward(*([] if ctx.linear else [y]))
        ctx.dim, ctx.alpha, ctx.gain, ctx.clamp = dim, alpha, gain, clamp
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        if ctx.linear:
            dx = dy * ctx.gain if ctx.gain != 1.0 else dy
        else:
            (y,) = ctx.saved_tensors
            dx = _BiasLeakyReLUGrad.apply(dy, y, ctx.alpha, ctx.gain, ctx.clamp)
        db = None
        if ctx.has_bias and ctx.needs_input_grad[1]:
            dims = [i for i in range(dx.ndim) if i != ctx.dim]
            db = dx.sum(dims) if dims else dx
        return dx, db, None, None, None, None


def _lrelu_grad(dy: torch.Tensor, y: torch.Tensor, alpha: float, gain: float, clamp: Optional[float]) -> torch.Tensor:
    """``dy * gain * (1 if y > 0 else alpha) * (|y| < clamp)`` (one fused pass without clamp/gain)."""
    dx = torch.ops.aten.leaky_relu_backward(dy, y, alpha, True)
    if gain != 1.0:
        dx = dx * gain
    if clamp is not None:
        dx = dx.masked_fill(y.abs() >= clamp, 0)
    return dx


class _BiasLeakyReLUGrad(torch.autograd.Function):
    """``dx = _lrelu_grad(dy, y)``: linear in ``dy``; its derivative with respect to ``y`` is
    zero almost everywhere (the slope is piecewise constant), which the backward states."""

    @staticmethod
    def forward(ctx, dy, y, alpha, gain, clamp):
        ctx.save_for_backward(y)
        ctx.alpha, ctx.gain, ctx.clamp = alpha, gain, clamp
        return _lrelu_grad(dy, y, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, ddx):
        (y,) = ctx.saved_tensors
        return _BiasLeakyReLUGrad.apply(ddx, y, ctx.alpha, ctx.gain, ctx.clamp), None, None, None, None
