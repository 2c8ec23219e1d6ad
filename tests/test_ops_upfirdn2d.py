"""upfirdn2d and its wrappers against a direct NumPy definition; filter setup; gradients."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from torch_utils.ops import upfirdn2d as U


@pytest.fixture(autouse=True)
def _one_thread():
    """These shapes are tiny: one thread avoids OpenMP overhead on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def slow_upfirdn2d(x, f, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip_filter=False, gain=1.0):
    """Textbook definition with explicit arrays and loops (float64 NumPy).

    x: [N, C, H, W]; f: 1-D (separable) or 2-D taps; up/down: (x, y); pad: (px0, px1, py0, py1).
    """
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f2 = np.outer(f, f) * gain
    else:
        f2 = f * gain
    ux, uy = up
    dx, dy = down
    px0, px1, py0, py1 = pad
    N, C, H, W = x.shape
    # 1. zero insertion
    z = np.zeros((N, C, H * uy, W * ux))
    z[:, :, ::uy, ::ux] = x
    # 2. pad / crop: element (i, j) of z lands at (i + py0, j + px0)
    Hp, Wp = H * uy + py0 + py1, W * ux + px0 + px1
    zp = np.zeros((N, C, Hp, Wp))
    for i in range(H * uy):
        for j in range(W * ux):
            ti, tj = i + py0, j + px0
            if 0 <= ti < Hp and 0 <= tj < Wp:
                zp[:, :, ti, tj] = z[:, :, i, j]
    # 3. true convolution with f == correlation with the flipped filter
    g = f2 if flip_filter else f2[::-1, ::-1]
    fh, fw = g.shape
    out = np.zeros((N, C, Hp - fh + 1, Wp - fw + 1))
    for a in range(fh):
        for b in range(fw):
            out += g[a, b] * zp[:, :, a : a + out.shape[2], b : b + out.shape[3]]
    # 4. keep every down-th sample
    return out[:, :, ::dy, ::dx]


FILTERS = {
    "sep4": lambda: U.setup_filter([1, 3, 3, 1], separable=True),
    "2d4": lambda: U.setup_filter([1, 3, 3, 1]),
    "2d_asym": lambda: U.setup_filter(torch.arange(1.0, 13.0).reshape(3, 4) ** 0.5, normalize=False),
    "sep5": lambda: U.setup_filter([0.5, -1.0, 2.0, 3.0, 1.0], separable=True, normalize=False),
}


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("fname", sorted(FILTERS))
def test_matches_direct_definition(impl, fname):
    f = FILTERS[fname]()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    cases = itertools.product([(1, 1), (2, 2), (3, 1)], [(1, 1), (2, 2), (1, 3)], [(0, 0, 0, 0), (2, 1, 1, 2), (-1, 2, 3, -1)], [False, True])
    checked = 0
    for up, down, pad, flip in cases:
        w_out = (6 * up[0] + pad[0] + pad[1] - U.get_filter_size(f)[0]) // down[0] + 1
        h_out = (5 * up[1] + pad[2] + pad[3] - U.get_filter_size(f)[1]) // down[1] + 1
        if w_out < 1 or h_out < 1:
            continue
        got = U.upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip, gain=1.5, impl=impl)
        want = slow_upfirdn2d(x.numpy(), f.numpy(), up, down, pad, flip, gain=1.5)
        assert got.shape == want.shape, (up, down, pad)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6, err_msg=f"{up} {down} {pad} {flip}")
        checked += 1
    assert checked >= 40


def test_setup_filter_rules():
    f = U.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.allclose(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    # 8 taps or more default to separable 1-D; the 1-D taps are normalised to sum 1.
    f8 = U.setup_filter(list(range(1, 9)))
    assert f8.shape == (8,) and math.isclose(f8.sum().item(), 1.0, rel_tol=1e-6)
    fs = U.setup_filter([1, 3, 3, 1], separable=True)
    assert torch.allclose(torch.outer(fs, fs), f)
    # flip and gain: gain multiplies a 2-D filter once and a 1-D filter by sqrt(gain).
    g = U.setup_filter([1, 2], flip_filter=True, gain=4, separable=True)
    assert torch.allclose(g, torch.tensor([2.0, 1.0]) / 3 * 2)
    g2 = U.setup_filter([[1.0, 2.0], [3.0, 4.0]], normalize=False, flip_filter=True, gain=2)
    assert torch.allclose(g2, torch.tensor([[8.0, 6.0], [4.0, 2.0]]))
    assert U.setup_filter(None).tolist() == [[1.0]]
    with pytest.raises(ValueError):
        U.setup_filter([[1.0, 2.0]], separable=True)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_wrappers_sizes_and_constant_images(impl):
    f = U.setup_filter([1, 3, 3, 1])
    x = torch.full([1, 2, 8, 8], 3.0)
    up = U.upsample2d(x, f, impl=impl)
    down = U.downsample2d(x, f, impl=impl)
    same = U.filter2d(x, f, impl=impl)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4) and same.shape == (1, 2, 8, 8)
    # Away from the zero-padded border a constant image keeps its value (unit DC gain).
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.tensor(3.0))
    assert torch.allclose(down[:, :, 1:-1, 1:-1], torch.tensor(3.0))
    assert torch.allclose(same[:, :, 2:-2, 2:-2], torch.tensor(3.0))
    # Odd filter widths and extra padding.
    f3 = U.setup_filter([1, 2, 1])
    assert U.filter2d(x, f3, padding=1, impl=impl).shape == (1, 2, 10, 10)
    assert U.upsample2d(x, f3, up=3, impl=impl).shape == (1, 2, 24, 24)


def test_wrappers_match_definition():
    f = U.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    # upsample2d: padding ((fw + up - 1) // 2, (fw - up) // 2) and gain up^2
    want = slow_upfirdn2d(x.numpy(), f.numpy(), (2, 2), (1, 1), (2, 1, 2, 1), gain=4.0)
    np.testing.assert_allclose(U.upsample2d(x, f).numpy(), want, atol=1e-12)
    want = slow_upfirdn2d(x.numpy(), f.numpy(), (1, 1), (2, 2), (1, 1, 1, 1))
    np.testing.assert_allclose(U.downsample2d(x, f).numpy(), want, atol=1e-12)


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("fname", ["sep4", "2d_asym"])
def test_gradcheck_twice(impl, fname):
    f = FILTERS[fname]().double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    for kw in (dict(up=2, padding=[2, 1, 1, 2]), dict(down=2, padding=1), dict(up=2, down=2, padding=[1, 2, 2, 1])):
        fn = lambda t: U.upfirdn2d(t, f.float(), impl=impl, **kw)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
        assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_fast_keeps_channels_last_and_dtype():
    f = U.setup_filter([1, 3, 3, 1], separable=True)
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    y = U.upfirdn2d(x, f, padding=1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert U.downsample2d(x.bfloat16(), f).dtype == torch.bfloat16


def test_bad_arguments():
    f = U.setup_filter([1, 3, 3, 1])
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError):
        U.upfirdn2d(x, f, padding=-3)  # empty output
    with pytest.raises(ValueError):
        U.upfirdn2d(x, f, padding=[1, 2, 3])
    with pytest.raises(ValueError):
        U.upfirdn2d(x[0], f)
    with pytest.raises(ValueError):
        U.upfirdn2d(x, f, impl="cuda")
    with pytest.raises(ValueError):
        U.upfirdn2d(x, f.double())


@pytest.mark.parametrize("fname", ["sep4", "2d_asym", "sep5"])
def test_fast_gradients_equal_reference_to_second_order(fname):
    """The fast path's backward is a hand-derived adjoint upfirdn2d; compare it with autograd
    through the reference ops, for first and second derivatives, on many configurations."""
    f = FILTERS[fname]()
    torch.manual_seed(2)
    configs = [((2, 2), (1, 1), (2, 1, 2, 1)), ((1, 1), (2, 2), (1, 1, 1, 1)), ((3, 1), (1, 2), (0, 2, -1, 3)),
               ((2, 2), (2, 2), (1, 2, 2, 1)), ((1, 1), (1, 1), (-1, 0, 2, 2))]
    for (up, down, pad), flip in itertools.product(configs, (False, True)):
        results = []
        for impl in ("ref", "fast"):
            x = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7)).requires_grad_(True)
            y = U.upfirdn2d(x, f, up=list(up), down=list(down), padding=list(pad), flip_filter=flip, gain=1.7, impl=impl)
            g = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(8)).requires_grad_(True)
            (gx,) = torch.autograd.grad((y * g).sum(), x, create_graph=True)
            # The op is linear, so its second derivative shows as the derivative of gx w.r.t. g.
            (gg,) = torch.autograd.grad((gx.square() * torch.arange(gx.numel()).reshape(gx.shape)).sum(), g)
            results.append((y, gx, gg))
        for a, b in zip(*results):
            assert a.shape == b.shape
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-9), (up, down, pad, flip)
