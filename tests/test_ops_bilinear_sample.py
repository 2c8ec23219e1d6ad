"""Tests for torch_utils/ops/bilinear_sample.py: grid_sample equality and derivatives to 2nd order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops.bilinear_sample import FixedGridSampler, bilinear_sample, bilinear_sample_pixels, sample_fixed


def _grid_sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _random_affine_grid(n: int, c: int, ho: int, wo: int, spread: float, dtype=torch.float64) -> torch.Tensor:
    """An affine grid that reaches a little outside [-1, 1] (exercising the zero padding)."""
    theta = torch.eye(2, 3, dtype=dtype).repeat(n, 1, 1) * 1.1 + spread * torch.randn(n, 2, 3, dtype=dtype)
    return F.affine_grid(theta, [n, c, ho, wo], align_corners=False)


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (3, 1, 16, 12)])
def test_forward_matches_grid_sample(shape):
    n, c, h, w = shape
    x = torch.randn(shape, dtype=torch.float64)
    grid = _random_affine_grid(n, c, 11, 13, spread=0.4)
    ref = _grid_sample(x, grid)
    out = bilinear_sample(x, grid)
    assert out.shape == ref.shape and out.dtype == torch.float64
    assert (out - ref).abs().max().item() < 1e-6
    # Points exactly on pixel centres return the pixel itself (a check independent of grid_sample).
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    centres = torch.stack([(2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1], dim=-1).expand(n, h, w, 2)
    assert torch.allclose(bilinear_sample(x, centres), x, atol=1e-12)


def test_far_outside_reads_zero_and_edges_match():
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    pts = torch.tensor([[-7.0, 0.0], [3.0, 0.2], [0.1, -1.5], [-1.0, -1.0], [1.0, 1.0], [-1.05, 0.3], [0.999, 0.999]],
                       dtype=torch.float64).reshape(1, 1, 7, 2)
    out = bilinear_sample(x, pts)
    ref = _grid_sample(x, pts)
    assert torch.allclose(out, ref, atol=1e-12)
    assert out[0, :, 0, :3].abs().max().item() == 0.0  # the three far-away points


def test_float32_matches_grid_sample():
    x = torch.randn(4, 3, 20, 20)
    grid = _random_affine_grid(4, 3, 24, 24, spread=0.3, dtype=torch.float32)
    assert (bilinear_sample(x, grid) - _grid_sample(x, grid)).abs().max().item() < 1e-4


def test_first_order_gradients_match_grid_sample():
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    grid = _random_affine_grid(2, 2, 5, 5, spread=0.3).requires_grad_(True)
    w = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    gx, gg = torch.autograd.grad((bilinear_sample(x, grid) * w).sum(), [x, grid])
    rx, rg = torch.autograd.grad((_grid_sample(x, grid) * w).sum(), [x, grid])
    assert torch.allclose(gx, rx, atol=1e-10)
    assert torch.allclose(gg, rg, atol=1e-8)


def test_gradcheck_and_gradgradcheck_input_and_grid():
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    grid = _random_affine_grid(2, 2, 3, 4, spread=0.3).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(bilinear_sample, (x, grid), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(bilinear_sample, (x, grid), eps=1e-6, atol=1e-5)


def test_gradgradcheck_input_only_fixed_grid():
    """The augmentation case: a constant grid, derivatives w.r.t. the image only."""
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    grid = _random_affine_grid(1, 3, 5, 5, spread=0.5)
    fn = lambda inp: bilinear_sample(inp, grid) ** 2  # noqa: E731 - nonlinear so 2nd order is not trivially 0
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_r1_style_double_backward_reaches_the_weights():
    """grad of D(sample(x)) w.r.t. x with create_graph, then backward (the R1 pattern)."""
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    grid = _random_affine_grid(2, 1, 8, 8, spread=0.2, dtype=torch.float32)
    conv = torch.nn.Conv2d(1, 1, 3)
    (g,) = torch.autograd.grad(conv(bilinear_sample(x, grid)).sum(), x, create_graph=True)
    g.square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum().item() > 0


def test_pixel_api_rejects_bad_shapes():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError):
        bilinear_sample_pixels(x, torch.zeros(2, 5), torch.zeros(2, 6))
    with pytest.raises(ValueError):
        bilinear_sample(x, torch.zeros(2, 4, 4, 3))


def test_fixed_grid_sampler_matches_and_its_adjoint_is_the_transpose():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    ix = torch.rand(2, 11, dtype=torch.float64) * 10 - 2  # some points outside the image
    iy = torch.rand(2, 11, dtype=torch.float64) * 8 - 2
    sampler = FixedGridSampler(ix, iy, 5, 7)
    assert torch.allclose(sampler.forward_op(x), bilinear_sample_pixels(x, ix, iy), atol=1e-12)
    g = torch.randn(2, 3, 11, dtype=torch.float64)
    assert abs((sampler.forward_op(x) * g).sum() - (x * sampler.adjoint_op(g)).sum()).item() < 1e-12


def test_sample_fixed_differentiates_to_third_order():
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    ix = torch.rand(1, 6, dtype=torch.float64) * 6 - 1
    iy = torch.rand(1, 6, dtype=torch.float64) * 5 - 1
    sampler = FixedGridSampler(ix, iy, 4, 5)
    fn = lambda inp: sample_fixed(inp, sampler) ** 3  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-5)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x, create_graph=True)
    gg.sum().backward()  # third order
    assert torch.isfinite(x.grad).all()
