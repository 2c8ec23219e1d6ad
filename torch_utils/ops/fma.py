"""Fused multiply-add with broadcasting: ``fma(a, b, c) = a * b + c``.

The forward is one ``torch.addcmul`` (one output tensor instead of two). The backward returns
``dL/da = sum(g * b)``, ``dL/db = sum(g * a)`` and ``dL/dc = sum(g)``, each summed over the axes
along which that operand was broadcast so it has the operand's own shape, and it is written with
differentiable ops, so second derivatives work (R1 and path-length penalties differentiate the
StyleGAN2 synthesis twice).
"""

from __future__ import annotations

import torch

__all__ = ["fma"]


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` with broadcasting (see the module docstring)."""
    return _FusedMultiplyAdd.apply(a, b, c)


def _unbroadcast(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``g`` down to ``shape`` (the inverse of broadcasting a tensor of that shape)."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(list(range(extra)))
    dims = [i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1]
    if dims:
        g = g.sum(dims, keepdim=True)
    return g.reshape(shape)


class _FusedMultiplyAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, c):
        out = torch.addcmul(c, a, b)
        ctx.save_for_backward(a, b)
        ctx.c_shape = c.shape
        return out

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        da = db = dc = None
        if ctx.needs_input_grad[0]:
            da = _unbroadcast(dout * b, a.shape)
        if ctx.needs_input_grad[1]:
            db = _unbroadcast(dout * a, b.shape)
        if ctx.needs_input_grad[2]:
            dc = _unbroadcast(dout, ctx.c_shape)
        return da, db, dc
