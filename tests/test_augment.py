"""Tests for training/augment.py: filters, every augmentation, exact identities, R1, the ADA rule."""

from __future__ import annotations

import gzip
import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnnlib.util import UserError, construct_class_by_name
from training.augment import (
    AUGPIPE_SPECS,
    CDF97_ANALYSIS,
    CDF97_SYNTHESIS,
    GEOM_FILTERS,
    SYM2,
    SYM6,
    AugmentPipe,
    RandomDraws,
    ada_update,
    apply_color,
    augpipe_kwargs,
    imgfilter_bank,
)

FLAGS = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
         "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"]
GEOMETRIC = FLAGS[:7]


# ------------------------------------------------------------------------------------------------
# Images.

def smooth_images(n: int, c: int, size: int, cells: int = 4, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """Band-limited random images in about [-1, 1]: bicubic upsampling of a coarse random field."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, size // cells + 3, size // cells + 3, generator=g, dtype=dtype) * 1.6 - 0.8
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


@pytest.fixture(scope="module")
def mnist_digits() -> torch.Tensor:
    """16 real MNIST test digits from the repository's embedded copy, padded to 32x32, in [-1, 1]."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as f:
        header = f.read(16)
        assert int.from_bytes(header[:4], "big") == 2051
        raw = f.read(16 * 28 * 28)
    digits = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).reshape(16, 1, 28, 28).copy())
    return F.pad(digits.float() / 127.5 - 1, (2, 2, 2, 2), value=-1.0)


def cifar_images(shared_data, count: int = 8) -> torch.Tensor:
    from PIL import Image

    with zipfile.ZipFile(shared_data / "cifar10" / "cifar10_test_jpg_q75.zip") as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".jpg"))[:count]
        arrays = [np.asarray(Image.open(io.BytesIO(zf.read(n))).convert("RGB")) for n in names]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def rotation(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def pipe_with(flag: str, p: float = 1.0, **kw) -> AugmentPipe:
    pipe = AugmentPipe(**{flag: 1}, **kw)
    pipe.p.fill_(p)
    return pipe


# ------------------------------------------------------------------------------------------------
# Filters (the coefficients are published values; check their defining properties).

def test_sym6_is_orthonormal_with_six_vanishing_moments():
    h = np.asarray(SYM6)
    assert h.size == 12
    assert abs(h.sum() - math.sqrt(2)) < 1e-10
    for shift in range(6):
        assert abs(np.dot(h[: 12 - 2 * shift], h[2 * shift:]) - (1.0 if shift == 0 else 0.0)) < 1e-8
    n = np.arange(12)
    g = (-1.0) ** n * h[::-1]  # the matching high-pass
    for m in range(6):
        assert abs(np.sum(g * n ** m)) < 1e-7 * 12 ** m
    assert abs(np.sum(g * n ** 6)) > 1.0  # exactly 6, not more


def test_cdf97_pair_is_symmetric_biorthogonal_lowpass():
    a, s = np.asarray(CDF97_ANALYSIS), np.asarray(CDF97_SYNTHESIS)
    assert np.allclose(a, a[::-1]) and np.allclose(s, s[::-1])
    assert abs(a.sum() - 1) < 1e-12 and abs(s.sum() - 2) < 1e-12
    for i in range(-4, 5):
        total = sum(a[k] * s[k - 1 + 2 * i] for k in range(9) if 0 <= k - 1 + 2 * i < 7)
        assert abs(total - (1.0 if i == 0 else 0.0)) < 1e-12
    for f in (a, s):
        n = np.arange(f.size)
        for m in range(4):  # 4 zeros at Nyquist
            assert abs(np.sum(f * (-1.0) ** n * n ** m)) < 1e-10


def test_sym2_closed_form_and_filter_bank():
    h = np.asarray(SYM2)
    assert abs(h.sum() - math.sqrt(2)) < 1e-12 and abs(np.dot(h, h) - 1) < 1e-12
    assert abs(np.dot(h[:2], h[2:])) < 1e-12
    bank = imgfilter_bank(4)
    assert bank.shape == (4, 43)
    delta = np.zeros(43)
    delta[21] = 1
    assert np.allclose(bank.sum(axis=0), delta, atol=1e-12)
    assert np.allclose(bank, bank[:, ::-1])  # symmetric (zero phase)
    # Band b's gain peaks inside its octave: [0, pi/8], [pi/8, pi/4], [pi/4, pi/2], [pi/2, pi].
    omega = np.linspace(0, np.pi, 801)
    response = np.abs(bank @ np.exp(-1j * np.outer(np.arange(43), omega)))
    peaks = omega[response.argmax(axis=1)]
    edges = [0, np.pi / 8, np.pi / 4, np.pi / 2, np.pi]
    for b in range(4):
        assert edges[b] - 1e-9 <= peaks[b] <= edges[b + 1] + 1e-9


# ------------------------------------------------------------------------------------------------
# Specs, construction, state.

def test_augpipe_specs_are_the_official_groups():
    blit = {"xflip", "rotate90", "xint"}
    geom = {"scale", "rotate", "aniso", "xfrac"}
    color = {"brightness", "contrast", "lumaflip", "hue", "saturation"}
    expected = {
        "blit": blit, "geom": geom, "color": color, "filter": {"imgfilter"}, "noise": {"noise"},
        "cutout": {"cutout"}, "bg": blit | geom, "bgc": blit | geom | color,
        "bgcf": blit | geom | color | {"imgfilter"}, "bgcfn": blit | geom | color | {"imgfilter", "noise"},
        "bgcfnc": blit | geom | color | {"imgfilter", "noise", "cutout"},
    }
    assert set(AUGPIPE_SPECS) == set(expected)
    for name, flags in expected.items():
        assert AUGPIPE_SPECS[name] == {f: 1 for f in flags}
    assert augpipe_kwargs("bgc") == AUGPIPE_SPECS["bgc"] and augpipe_kwargs("bgc") is not AUGPIPE_SPECS["bgc"]
    with pytest.raises(UserError, match="bgcfnc"):
        augpipe_kwargs("bgcx")


def test_default_strengths_are_the_official_ones():
    pipe = AugmentPipe()
    assert (pipe.xint_max, pipe.scale_std, pipe.rotate_max, pipe.aniso_std, pipe.xfrac_std) == (0.125, 0.2, 1, 0.2, 0.125)
    assert (pipe.brightness_std, pipe.contrast_std, pipe.hue_max, pipe.saturation_std) == (0.2, 0.5, 1, 1)
    assert (pipe.imgfilter_bands, pipe.imgfilter_std, pipe.noise_std, pipe.cutout_size) == ([1, 1, 1, 1], 1, 0.1, 0.5)
    assert all(getattr(pipe, f) == 0 for f in FLAGS)


def test_construct_by_name_init_kwargs_and_state_dict_round_trip():
    pipe = construct_class_by_name(class_name="training.augment.AugmentPipe", **AUGPIPE_SPECS["bgc"])
    assert pipe.rotate == 1 and pipe.imgfilter == 0
    json.dumps(pipe.init_kwargs)  # JSON-able
    pipe.p.fill_(0.37)
    state = pipe.state_dict()
    assert list(state) == ["p"]
    clone = AugmentPipe(**pipe.init_kwargs)
    clone.load_state_dict(state)
    assert clone.p.item() == pytest.approx(0.37) and clone.init_kwargs == pipe.init_kwargs


def test_bad_arguments_raise_user_error():
    with pytest.raises(UserError):
        AugmentPipe(xflip=-1)
    with pytest.raises(UserError):
        AugmentPipe(imgfilter_bands=[1, 1, 1])
    with pytest.raises(UserError):
        AugmentPipe(geom_filter="lanczos")
    with pytest.raises(UserError, match="channels"):
        pipe_with("hue")(torch.zeros(2, 2, 8, 8))
    with pytest.raises(UserError):
        pipe_with("xflip")(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------------
# p = 0 and each augmentation alone.

@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_exactly_the_identity(channels):
    pipe = AugmentPipe(**AUGPIPE_SPECS["bgcfnc"])
    pipe.p.zero_()
    x = torch.rand(6, channels, 16, 16) * 2 - 1
    y = pipe(x)
    assert torch.equal(y, x)


@pytest.mark.parametrize("flag", FLAGS)
def test_each_augmentation_alone_keeps_shape_dtype_range_and_changes_image(flag):
    x = smooth_images(8, 3, 32, dtype=torch.float32)
    y = pipe_with(flag)(x, generator=torch.Generator().manual_seed(3))
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    changed = (y - x).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.any(), f"{flag} at p=1 changed no sample"
    if flag not in ("xflip", "lumaflip", "rotate90"):  # those leave a sample as is with chance 1/2, 1/2, 1/4
        assert changed.sum() >= 7, f"{flag} at p=1 changed only {int(changed.sum())}/8 samples"
    # Value range: geometry and cutout only move/zero pixels (plus small filter overshoot); colour,
    # filter and noise change values by their documented random amounts.
    bound = {"brightness": 2.0, "contrast": 4.0, "saturation": 4.0, "hue": 2.0, "imgfilter": 8.0, "noise": 2.0}
    assert y.abs().max().item() <= bound.get(flag, x.abs().max().item() * 1.15 + 0.02)


def test_geometric_augmentations_keep_real_digits_in_range(mnist_digits):
    for flag in GEOMETRIC:
        y = pipe_with(flag)(mnist_digits, generator=torch.Generator().manual_seed(1))
        assert y.shape == mnist_digits.shape
        assert -1.4 <= y.min().item() and y.max().item() <= 1.4, flag  # interpolation overshoot at edges only
        assert (y - mnist_digits).abs().max().item() > 0.5, flag


def test_colour_augmentations_on_real_rgb_images(shared_data):
    x = cifar_images(shared_data)
    for flag in ("brightness", "contrast", "lumaflip", "hue", "saturation"):
        y = pipe_with(flag)(x, generator=torch.Generator().manual_seed(2))
        assert torch.isfinite(y).all() and y.shape == x.shape
        assert y.abs().max().item() < 5, flag
    # hue rotation keeps the luma and the distance from the gray axis of every pixel
    y = pipe_with("hue")(x, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(y.mean(dim=1), x.mean(dim=1), atol=1e-5)
    chroma = lambda t: (t - t.mean(dim=1, keepdim=True)).norm(dim=1)  # noqa: E731
    assert torch.allclose(chroma(y), chroma(x), atol=1e-5)


def test_blit_augmentations_are_exact_permutations_of_pixels():
    x = torch.randn(8, 2, 16, 16, dtype=torch.float64)  # white noise: any blur would show
    g = torch.Generator().manual_seed(5)
    flipped = pipe_with("xflip")(x, generator=g)
    for a, b in zip(flipped, x):
        assert min((a - b).abs().max(), (a - b.flip(-1)).abs().max()) < 1e-10
    rotated = pipe_with("rotate90")(x, generator=g)
    for a, b in zip(rotated, x):
        assert min((a - torch.rot90(b, k, dims=(1, 2))).abs().max() for k in range(4)) < 1e-10
    shifted = pipe_with("xint")(x, generator=g)
    for a, b in zip(shifted, x):  # interior equals an integer shift with |shift| <= 0.125 * 16 = 2
        errs = [(a - torch.roll(b, (dy, dx), dims=(1, 2)))[:, 2:-2, 2:-2].abs().max()
                for dy in range(-2, 3) for dx in range(-2, 3)]
        assert min(errs) < 1e-10


def test_grayscale_colour_ops():
    x = smooth_images(4, 1, 16, dtype=torch.float32)
    for flag in ("hue", "saturation"):  # rotations/scalings orthogonal to the gray axis: no effect
        assert torch.allclose(pipe_with(flag)(x), x, atol=1e-6)
    y = pipe_with("brightness")(x)
    offsets = (y - x).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-6) and offsets.abs().max() > 1e-3
    y = pipe_with("lumaflip")(x, generator=torch.Generator().manual_seed(0))
    for a, b in zip(y, x):
        assert torch.allclose(a, b, atol=1e-6) or torch.allclose(a, -b, atol=1e-6)


def test_rgb_colour_matrix_semantics():
    gray = torch.rand(6, 1, 8, 8).expand(6, 3, 8, 8).contiguous()
    assert torch.allclose(pipe_with("hue")(gray), gray, atol=1e-6)
    assert torch.allclose(pipe_with("saturation")(gray), gray, atol=1e-6)
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    y = pipe_with("lumaflip")(x, generator=torch.Generator().manual_seed(1))
    for a, b in zip(y, x):  # I - 2vv^T: chroma kept, luma negated (or untouched)
        chroma_kept = torch.allclose(a - a.mean(0), b - b.mean(0), atol=1e-5)
        assert chroma_kept and (torch.allclose(a.mean(0), -b.mean(0), atol=1e-5) or torch.allclose(a, b, atol=1e-6))
    y = pipe_with("saturation")(x)
    ratio = (y - y.mean(1, keepdim=True)).flatten(1).norm(dim=1) / (x - x.mean(1, keepdim=True)).flatten(1).norm(dim=1)
    assert torch.allclose(y.mean(1), x.mean(1), atol=1e-5) and (ratio - 1).abs().max() > 0.05


def test_noise_and_cutout():
    x = smooth_images(8, 3, 32, dtype=torch.float32)
    y = pipe_with("noise")(x)
    residual_std = (y - x).flatten(1).std(dim=1)
    assert residual_std.max() < 0.5 and residual_std.min() > 0  # sigma = |N(0, 0.1)|
    y = pipe_with("cutout")(x, generator=torch.Generator().manual_seed(4))
    for a, b in zip(y, x):
        zeroed = (a == 0) & (b != 0)
        rows = zeroed.any(dim=(0, 2)).nonzero().flatten()
        cols = zeroed.any(dim=(0, 1)).nonzero().flatten()
        assert rows.numel() > 0 and rows.numel() <= 16 and cols.numel() <= 16  # side 0.5 * 32
        assert zeroed[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one solid square
        assert torch.equal(a[~zeroed], b[~zeroed])


def test_imgfilter_keeps_smooth_images_near_power():
    x = smooth_images(8, 3, 32, dtype=torch.float64)
    y = pipe_with("imgfilter")(x)
    ratio = y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    # Per-band gains 2^N(0,1), renormalised for a 10:1:1:1 band power: single samples can move a lot,
    # the typical one stays near the original power.
    assert (ratio > 0.05).all() and (ratio < 5).all() and 0.5 < ratio.median() < 2
    assert (ratio - 1).abs().max() > 1e-3


def test_generator_makes_draws_reproducible():
    pipe = AugmentPipe(**AUGPIPE_SPECS["bgcfnc"])
    x = smooth_images(4, 3, 16, dtype=torch.float32)
    a = pipe(x, generator=torch.Generator().manual_seed(9))
    b = pipe(x, generator=torch.Generator().manual_seed(9))
    c = pipe(x, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_forward_is_draw_then_apply():
    """forward = apply_geometry(draw_geometry) then apply_color(draw_color), with the same draws."""
    pipe = AugmentPipe(**AUGPIPE_SPECS["bgc"])
    x = smooth_images(4, 3, 16, dtype=torch.float32)
    out = pipe(x, generator=torch.Generator().manual_seed(11))
    rng = RandomDraws(4, x.dtype, x.device, torch.Generator().manual_seed(11))
    G = pipe.draw_geometry(rng, 16, 16)
    M = pipe.draw_color(rng, 3)
    assert G.shape == (4, 3, 3) and M.shape == (4, 4, 4)
    assert torch.allclose(out, apply_color(pipe.apply_geometry(x, G), M), atol=1e-6)


def test_probability_scales_with_p():
    pipe = pipe_with("xfrac", p=0.25)
    x = smooth_images(400, 1, 8, dtype=torch.float32)
    y = pipe(x, generator=torch.Generator().manual_seed(0))
    frac = ((y - x).flatten(1).abs().amax(dim=1) > 1e-4).float().mean().item()
    assert 0.17 < frac < 0.33  # binomial(400, 0.25): mean 0.25, sd 0.022


# ------------------------------------------------------------------------------------------------
# Geometry: known matrices.

@pytest.mark.parametrize("geom_filter", sorted(GEOM_FILTERS))
def test_identity_and_integer_translation_are_exact(geom_filter):
    pipe = AugmentPipe(geom_filter=geom_filter)
    x = torch.randn(2, 3, 16, 20, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    assert (pipe.apply_geometry(x, eye) - x).abs().max() < 1e-9
    T = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    T[:, 0, 2], T[:, 1, 2] = 3, -2  # out(y) = in(y + t): content moves by (-3, +2)
    y = pipe.apply_geometry(x, T)
    assert (y - torch.roll(x, (2, -3), dims=(2, 3)))[..., 3:-3, 4:-4].abs().max() < 1e-9


def test_flips_are_exact_with_cdf97_and_slightly_blurred_with_sym6():
    x = smooth_images(4, 1, 32)
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)).expand(4, 3, 3)
    err = {name: (AugmentPipe(geom_filter=name).apply_geometry(x, flip) - x.flip(3)).abs().max().item()
           for name in ("cdf97", "sym6")}
    assert err["cdf97"] < 1e-10
    assert 1e-3 < err["sym6"] < 0.2


@pytest.mark.parametrize("geom_filter", sorted(GEOM_FILTERS))
def test_geometric_adjoint_is_the_transpose(geom_filter):
    """<A x, y> = <x, A^T y> for the resampling operator (the backward pass relies on it)."""
    x = torch.randn(3, 2, 12, 10, dtype=torch.float64)
    G = torch.stack([rotation(0.4), rotation(2.0) @ torch.diag(torch.tensor([1.3, 0.7, 1.0], dtype=torch.float64)),
                     torch.eye(3, dtype=torch.float64)])
    G[1, :2, 2] = torch.tensor([0.6, -1.3], dtype=torch.float64)
    plan = AugmentPipe(geom_filter=geom_filter).geometry_plan(x, G)
    y = torch.randn(3, 2, 12, 10, dtype=torch.float64)
    lhs = (plan.forward_op(x) * y).sum()
    rhs = (x * plan.adjoint_op(y)).sum()
    assert abs(lhs - rhs).item() < 1e-10 * abs(lhs).item() + 1e-10


def test_known_rotation_matches_the_analytic_image():
    """Sample a smooth analytic image f, rotate it by 30 degrees, compare with f(G y) pixel by pixel."""
    size = 32
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")

    def image(x, y):
        return torch.sin(0.21 * x + 0.1 * y) * torch.cos(0.13 * y - 0.05 * x)

    theta = math.radians(30)
    G = rotation(theta)
    src_x = G[0, 0] * xx + G[0, 1] * yy
    src_y = G[1, 0] * xx + G[1, 1] * yy
    expected = image(src_x, src_y)
    y = AugmentPipe().apply_geometry(image(xx, yy)[None, None], G[None])[0, 0]
    inner = (slice(6, -6), slice(6, -6))  # away from the reflect-padded corners
    assert (y - expected)[inner].abs().max() < 0.02


@pytest.mark.parametrize("geom_filter", sorted(GEOM_FILTERS))
def test_transform_then_inverse_returns_smooth_image(geom_filter):
    x = smooth_images(3, 3, 32, cells=8)
    S = torch.tensor([[1.2, 0.1, 1.7], [-0.15, 0.9, -0.6], [0, 0, 1]], dtype=torch.float64)
    M = rotation(0.7) @ S
    pipe = AugmentPipe(geom_filter=geom_filter)
    there = pipe.apply_geometry(x, M.expand(3, 3, 3))
    back = pipe.apply_geometry(there, torch.linalg.inv(M).expand(3, 3, 3))
    err = (back - x)[..., 8:-8, 8:-8].abs()
    assert (there - x).abs().max() > 0.2  # it did move
    assert err.max() < 0.05 and err.mean() < 0.01


# ------------------------------------------------------------------------------------------------
# Differentiability: R1 through the full pipe.

def test_r1_through_full_bgcfnc_pipe_on_cpu():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.LeakyReLU(0.2),
                            torch.nn.Conv2d(8, 8, 3, stride=2), torch.nn.LeakyReLU(0.2),
                            torch.nn.Flatten(), torch.nn.LazyLinear(1))
    pipe = AugmentPipe(**AUGPIPE_SPECS["bgcfnc"])
    real = smooth_images(4, 3, 32, dtype=torch.float32).requires_grad_(True)
    logits = D(pipe(real))
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = grad.square().sum(dim=(1, 2, 3)).mean()
    penalty.backward()
    assert torch.isfinite(penalty) and penalty.item() > 0
    for name, param in D.named_parameters():
        if name.endswith("weight"):
            assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_gradgradcheck_through_the_pipe():
    pipe = AugmentPipe(**AUGPIPE_SPECS["bgcfnc"])
    x = smooth_images(1, 1, 8).requires_grad_(True)

    def fn(inp):  # a fixed draw each call, so the function is deterministic; squared so 2nd order != 0
        return pipe(inp, generator=torch.Generator().manual_seed(7)).square()

    assert not torch.equal(fn(x.detach()), x.detach().square())
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


# ------------------------------------------------------------------------------------------------
# ADA controller.

def test_ada_update_rate_direction_and_clamp():
    batch, interval, ada_kimg = 64, 4, 500
    step = batch * interval / (ada_kimg * 1000)  # 0.000512
    assert ada_update(0.2, 0.9, 0.6, batch, interval, ada_kimg) == pytest.approx(0.2 + step, abs=1e-15)  # overfits
    assert ada_update(0.2, 0.1, 0.6, batch, interval, ada_kimg) == pytest.approx(0.2 - step, abs=1e-15)
    assert ada_update(0.2, 0.6, 0.6, batch, interval, ada_kimg) == 0.2  # at the target: no move
    assert ada_update(0.0001, -1.0, 0.6, batch, interval, ada_kimg) == 0.0  # clamped at 0
    assert ada_update(1.0, 1.0, 0.6, batch, interval, ada_kimg) == pytest.approx(1.0 + step)  # no upper clamp
    assert ada_update(0.3, float("nan"), 0.6, batch, interval, ada_kimg) == 0.3
    # Simulated run: p climbs linearly while D overfits, then falls back.
    p = 0.0
    for _ in range(100):
        p = ada_update(p, 0.8, 0.6, 32, 4, 100)
    assert p == pytest.approx(100 * 32 * 4 / 100_000)
    for _ in range(40):
        p = ada_update(p, 0.3, 0.6, 32, 4, 100)
    assert p == pytest.approx(60 * 32 * 4 / 100_000)
    with pytest.raises(UserError):
        ada_update(0.1, 0.5, 0.6, 0, 4, 500)


def test_p_above_one_saturates():
    pipe = pipe_with("xfrac", p=3.0)
    x = smooth_images(16, 1, 8, dtype=torch.float32)
    moved = ((pipe(x) - x).flatten(1).abs().amax(dim=1) > 1e-5)
    assert moved.all()


def test_only_transformed_samples_are_resampled_and_gradients_flow():
    """With p < 1 some samples draw no geometry: they pass through exactly, the rest are resampled."""
    pipe = AugmentPipe(**AUGPIPE_SPECS["geom"])
    pipe.p.fill_(0.15)
    x = smooth_images(2, 1, 6)
    for seed in range(200):  # the first seed where exactly one of the two samples moves
        rng = RandomDraws(2, x.dtype, x.device, torch.Generator().manual_seed(seed))
        G = pipe.draw_geometry(rng, 6, 6)
        if G is not None and int((G != torch.eye(3, dtype=G.dtype)).flatten(1).any(1).sum()) == 1:
            break
    else:
        pytest.fail("no seed with exactly one transformed sample")
    moved = (G != torch.eye(3, dtype=G.dtype)).flatten(1).any(1)

    def fn(inp):
        return pipe(inp, generator=torch.Generator().manual_seed(seed)).square()

    out = pipe(x, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(out[~moved], x[~moved])
    assert torch.allclose(out[moved], pipe.apply_geometry(x[moved], G[moved]), atol=1e-12)
    xg = x.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(fn, (xg,), eps=1e-6, atol=1e-5, fast_mode=True)
