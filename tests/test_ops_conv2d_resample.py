"""conv2d_resample (both implementations) against a direct NumPy definition; gradients twice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from test_ops_upfirdn2d import slow_upfirdn2d
from torch_utils.ops import upfirdn2d as U
from torch_utils.ops.conv2d_resample import conv2d_resample


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP overhead on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def slow_conv2d(x, w, groups=1):
    """'Valid' cross-correlation with explicit loops over taps, channels and groups (NumPy)."""
    N, C, H, W = x.shape
    O, Ig, kh, kw = w.shape
    Og = O // groups
    out = np.zeros((N, O, H - kh + 1, W - kw + 1))
    for g in range(groups):
        for o in range(g * Og, (g + 1) * Og):
            for i in range(Ig):
                for a in range(kh):
                    for b in range(kw):
                        out[:, o] += w[o, i, a, b] * x[:, g * Ig + i, a : a + out.shape[2], b : b + out.shape[3]]
    return out


def slow_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """The definition: upsample+pad (with f, gain up^2), conv (flipped when not flip_weight), filter+downsample."""
    fw = f.shape[-1]
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
    py0, py1 = px0, px1
    ident = np.ones((1, 1))
    t = slow_upfirdn2d(x, f if up > 1 else ident, (up, up), (1, 1), (px0, px1, py0, py1), flip_filter, gain=up * up)
    t = slow_conv2d(t, w if flip_weight else w[:, :, ::-1, ::-1], groups)
    if down > 1:
        t = slow_upfirdn2d(t, f, (1, 1), (down, down), (0, 0, 0, 0), flip_filter)
    return t


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_matches_direct_definition(impl, k):
    torch.manual_seed(k)
    f = U.setup_filter([1, 3, 3, 1])
    fs = U.setup_filter([1, 3, 3, 1], separable=True)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    for up, down, groups, flip_w, flip_f, padding in itertools.product([1, 2], [1, 2], [1, 2], [True, False], [False, True], [0, 1]):
        w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
        filt = fs if (up + down) % 2 else f  # both filter forms
        got = conv2d_resample(x, w, filt, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_w, flip_filter=flip_f, impl=impl)
        want = slow_conv2d_resample(x.numpy(), w.numpy(), f.numpy(), up, down, padding, groups, flip_w, flip_f)
        assert tuple(got.shape) == want.shape, (up, down, padding)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6, err_msg=f"up={up} down={down} groups={groups}")


def test_stylegan_shapes():
    f = U.setup_filter([1, 3, 3, 1], separable=True)
    x = torch.randn(2, 3, 8, 8)
    w3 = torch.randn(5, 3, 3, 3)
    w1 = torch.randn(5, 3, 1, 1)
    assert conv2d_resample(x, w3, f, up=2, padding=1).shape == (2, 5, 16, 16)
    assert conv2d_resample(x, w3, f, down=2, padding=1).shape == (2, 5, 4, 4)
    assert conv2d_resample(x, w1, f, down=2).shape == (2, 5, 4, 4)
    assert conv2d_resample(x, w1, f, up=2).shape == (2, 5, 16, 16)
    assert conv2d_resample(x, w3, padding=1).shape == (2, 5, 8, 8)
    assert conv2d_resample(x, w3, padding=1).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("up,down,k", [(2, 1, 3), (1, 2, 3), (1, 2, 1), (2, 1, 1), (1, 1, 3)])
def test_gradcheck_twice(impl, up, down, k):
    f = U.setup_filter([1, 3, 3, 1], separable=True)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, k, k, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, w), fast_mode=True)


def test_bad_arguments():
    x = torch.randn(1, 2, 4, 4)
    w = torch.randn(3, 2, 3, 3)
    with pytest.raises(ValueError):
        conv2d_resample(x, w, None, up=2)  # resampling needs a filter
    with pytest.raises(ValueError):
        conv2d_resample(x, torch.randn(3, 3, 3, 3))
    with pytest.raises(ValueError):
        conv2d_resample(x, w.double())
    with pytest.raises(ValueError):
        conv2d_resample(x, w, impl="cuda")


@pytest.mark.parametrize("up,down,k,groups", [(1, 1, 3, 1), (2, 1, 3, 1), (1, 2, 3, 1), (1, 2, 1, 1), (2, 1, 1, 1), (2, 1, 3, 2), (1, 2, 3, 2), (2, 2, 3, 1)])
def test_fast_gradients_equal_reference_to_second_order(up, down, k, groups):
    """The fast path's convolutions are custom autograd functions (conv, input-grad, weight-grad
    calling each other); compare values, first and second derivatives with autograd through the
    reference ops, as an R1 / path-length penalty would use them."""
    f = U.setup_filter([1, 3, 3, 1], separable=True)
    results = []
    for impl in ("ref", "fast"):
        gen = torch.Generator().manual_seed(11)
        x = torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=gen).requires_grad_(True)
        w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64, generator=gen).requires_grad_(True)
        y = conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, groups=groups, flip_weight=(up == 1), impl=impl)
        g = torch.randn(y.shape, dtype=torch.float64, generator=gen)
        gx, gw = torch.autograd.grad((y * g).sum(), [x, w], create_graph=True)
        penalty = gx.square().sum() + (gw * gw.detach().sign()).sum() * 0.1
        ggx, ggw = torch.autograd.grad(penalty, [x, w])
        results.append((y, gx, gw, ggx, ggw))
    for a, b in zip(*results):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9)


def test_fast_path_under_bfloat16_autocast():
    f = U.setup_filter([1, 3, 3, 1], separable=True)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv2d_resample(x, w, f, up=2, padding=1)
    assert y.dtype == torch.bfloat16
    want = conv2d_resample(x, w, f, up=2, padding=1, impl="ref")
    assert (y.float() - want).norm() / want.norm() < 0.02
    gx, gw = torch.autograd.grad(y.float().square().sum(), [x, w])
    assert gx.dtype == torch.float32 and gw.dtype == torch.float32 and torch.isfinite(gw).all()
