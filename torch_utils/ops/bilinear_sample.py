"""Bilinear resampling of images at arbitrary points, differentiable to any order.

This is a drop-in replacement for ``torch.nn.functional.grid_sample(input, grid, mode='bilinear',
padding_mode='zeros', align_corners=False)`` written only with indexing (``gather``) and
arithmetic. Every operation it uses has a derivative that is itself differentiable, so it supports
double backward with respect to both ``input`` and ``grid`` on any device. (PyTorch's own
``grid_sample`` has no double backward for ``input``, which breaks an R1 penalty taken through a
geometric augmentation.)

Maths. For an image ``x`` of size ``H x W`` and a sampling point ``(u, v)`` given in the normalised
coordinates of ``grid_sample`` (``-1`` and ``+1`` are the outer edges of the border pixels), the
pixel-space position is

    i_x = ((u + 1) * W - 1) / 2,      i_y = ((v + 1) * H - 1) / 2

(pixel centres at integers). With ``x0 = floor(i_x)``, ``y0 = floor(i_y)``, ``a = i_x - x0`` and
``b = i_y - y0`` the result is

    out = (1-a)(1-b) x[y0, x0] + a(1-b) x[y0, x0+1] + (1-a) b x[y0+1, x0] + a b x[y0+1, x0+1]

where any pixel outside the image counts as 0 (zeros padding).

Implementation: the image is zero-padded by one pixel on the left/top and two on the right/bottom
and the positions are clamped to ``[-1, W]`` x ``[-1, H]``. Every corner then has a valid index into
the padded image, points far outside land in the zero border (value 0, zero gradient, as for
``grid_sample``) and no per-corner validity masks are needed. The four corners are read with a
single ``gather`` whose indices are shared by all channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bilinear_sample", "bilinear_sample_pixels", "FixedGridSampler", "LinearOp", "sample_fixed"]


def bilinear_sample_pixels(input: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """Sample ``input`` [N, C, H, W] bilinearly at pixel positions ``(ix, iy)``, each [N, P].

    Pixel ``(j, i)`` (column j, row i) has its centre at ``ix = j, iy = i``. Positions outside the
    image read zeros. Returns [N, C, P]. Differentiable to any order in ``input``, ``ix`` and ``iy``
    (``ix``/``iy`` almost everywhere: the result is piecewise bilinear in them).
    """
    if input.ndim != 4:
        raise ValueError(f"bilinear_sample_pixels: input must be [N, C, H, W], got {list(input.shape)}")
    if ix.shape != iy.shape or ix.ndim != 2 or ix.shape[0] != input.shape[0]:
        raise ValueError(
            f"bilinear_sample_pixels: ix and iy must both be [N, P] with N={input.shape[0]}, "
            f"got {list(ix.shape)} and {list(iy.shape)}"
        )
    N, C, H, W = input.shape
    P = ix.shape[1]
    Wp = W + 3
    padded = F.pad(input, (1, 2, 1, 2)).reshape(N, C, (H + 3) * Wp)

    # Positions in the padded image; the clamp keeps both corners of a far-away point in the zero border.
    px = ix.clamp(-1.0, float(W)) + 1.0
    py = iy.clamp(-1.0, float(H)) + 1.0
    x0 = px.detach().floor()
    y0 = py.detach().floor()
    a = (px - x0).unsqueeze(1)  # [N, 1, P]
    b = (py - y0).unsqueeze(1)

    top_left = (y0 * Wp + x0).long()
    index = torch.cat([top_left, top_left + 1, top_left + Wp, top_left + (Wp + 1)], dim=1)  # [N, 4P]
    corners = padded.gather(2, index.unsqueeze(1).expand(N, C, 4 * P))
    v00, v01, v10, v11 = corners.split(P, dim=2)
    top = v00 + (v01 - v00) * a
    bottom = v10 + (v11 - v10) * a
    return top + (bottom - top) * b


def bilinear_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``grid_sample(input, grid, 'bilinear', 'zeros', align_corners=False)``, twice differentiable.

    ``input`` is [N, C, H_in, W_in]; ``grid`` is [N, H_out, W_out, 2] holding normalised (x, y)
    positions in [-1, 1] (values outside read zeros). Returns [N, C, H_out, W_out] with
    ``input``'s dtype; ``grid`` must have the same dtype and device.
    """
    if input.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(
            f"bilinear_sample: expected input [N, C, H, W] and grid [N, H_out, W_out, 2], got "
            f"{list(input.shape)} and {list(grid.shape)}"
        )
    N, C, H, W = input.shape
    Ho, Wo = grid.shape[1], grid.shape[2]
    g = grid.reshape(N, Ho * Wo, 2)
    ix = ((g[..., 0] + 1) * W - 1) * 0.5
    iy = ((g[..., 1] + 1) * H - 1) * 0.5
    return bilinear_sample_pixels(input, ix, iy).reshape(N, C, Ho, Wo)


class FixedGridSampler:
    """Bilinear sampling at fixed pixel positions, as an explicit linear operator on the image.

    With the positions fixed, ``x -> sample(x)`` is linear: ``out[n, c, q] = sum_j w[n, j, q]
    x[n, c, idx[n, j, q]]`` over the four corners j (the same weights and zero padding as
    `bilinear_sample_pixels`). `forward_op` applies it and `adjoint_op` its transpose (a
    scatter-add of ``w * g``); neither records autograd history. `sample_fixed` wraps the pair in
    autograd Functions whose backward is the other one, so derivatives of any order w.r.t. the image
    cost one gather or one scatter each, with no graph of elementwise ops to replay. No gradient
    flows to the positions (use `bilinear_sample` for that).
    """

    def __init__(self, ix: torch.Tensor, iy: torch.Tensor, height: int, width: int) -> None:
        if ix.shape != iy.shape or ix.ndim != 2:
            raise ValueError(f"FixedGridSampler: ix and iy must both be [N, P], got {list(ix.shape)} and {list(iy.shape)}")
        ix, iy = ix.detach(), iy.detach()
        self.height, self.width = height, width
        self.batch, self.points = ix.shape
        Wp = width + 3
        px = ix.clamp(-1.0, float(width)) + 1.0
        py = iy.clamp(-1.0, float(height)) + 1.0
        x0, y0 = px.floor(), py.floor()
        a, b = px - x0, py - y0
        top_left = (y0 * Wp + x0).long()
        self.index = torch.cat([top_left, top_left + 1, top_left + Wp, top_left + (Wp + 1)], dim=1)  # [N, 4P]
        self.weight = torch.stack([(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b], dim=1)  # [N, 4, P]

    def forward_op(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, P]: the samples (no autograd history)."""
        N, C = x.shape[:2]
        P = self.points
        with torch.no_grad():
            padded = F.pad(x, (1, 2, 1, 2)).reshape(N, C, -1)
            corners = padded.gather(2, self.index.unsqueeze(1).expand(N, C, 4 * P)).view(N, C, 4, P)
            return (corners * self.weight.to(x.dtype).unsqueeze(1)).sum(dim=2)

    def adjoint_op(self, g: torch.Tensor) -> torch.Tensor:
        """[N, C, P] -> [N, C, H, W]: the transpose of `forward_op` (no autograd history)."""
        N, C = g.shape[:2]
        P, H, W = self.points, self.height, self.width
        with torch.no_grad():
            spread = (g.unsqueeze(2) * self.weight.to(g.dtype).unsqueeze(1)).reshape(N, C, 4 * P)
            padded = g.new_zeros(N, C, (H + 3) * (W + 3))
            padded.scatter_add_(2, self.index.unsqueeze(1).expand(N, C, 4 * P), spread)
            return padded.view(N, C, H + 3, W + 3)[:, :, 1:H + 1, 1:W + 1]


class LinearOp(torch.autograd.Function):
    """Apply a linear operator given as ``(forward, adjoint)`` callables, differentiable to any order.

    ``LinearOp.apply(x, forward, adjoint)``: the backward of a linear map A is ``g -> A^T g``, itself
    linear with backward ``A``; each is computed by the callables without autograd history.
    """

    @staticmethod
    def forward(ctx, x, forward, adjoint):  # type: ignore[override]
        ctx.ops = (forward, adjoint)
        return forward(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        forward, adjoint = ctx.ops
        return LinearOp.apply(grad, adjoint, forward), None, None


def sample_fixed(x: torch.Tensor, sampler: FixedGridSampler) -> torch.Tensor:
    """``sampler.forward_op(x)`` with derivatives of any order w.r.t. ``x`` (see `FixedGridSampler`)."""
    return LinearOp.apply(x, sampler.forward_op, sampler.adjoint_op)
