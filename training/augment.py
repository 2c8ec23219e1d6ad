"""Adaptive discriminator augmentation (ADA): the augmentation pipe and the p controller.

`AugmentPipe` maps a batch of NCHW float images (about [-1, 1]) to augmented images. Every
augmentation is applied to each sample independently with probability ``p * multiplier`` (``p`` is
the module's buffer, set by the training loop; the multipliers are the constructor's flags), and
the whole pipe is differentiable twice in the images, so an R1 penalty can be taken through it.

Augmentations, in the order they run, with their default strengths (those of StyleGAN2-ADA):

geometric (all composed into one 3x3 matrix per sample, then applied once):
- ``xflip``: mirror left-right with probability 1/2.
- ``rotate90``: rotate by k * 90 degrees, k uniform in {0, 1, 2, 3}.
- ``xint``: integer translation by round(t * size) pixels, t ~ U(-xint_max, xint_max), xint_max 0.125.
- ``scale``: isotropic scale 2^(N(0, scale_std)), scale_std 0.2.
- ``rotate``: rotation by U(-pi, pi) * rotate_max (rotate_max 1 = the full circle), done twice
  (before and after the anisotropic scale), each with probability 1 - sqrt(1 - rotate * p), so
  that at least one of the two happens with probability rotate * p.
- ``aniso``: anisotropic scale (s, 1/s), s = 2^(N(0, aniso_std)), aniso_std 0.2.
- ``xfrac``: fractional translation by N(0, xfrac_std) * size, xfrac_std 0.125.

colour (composed into one 4x4 matrix per sample acting on (r, g, b, 1)):
- ``brightness``: add N(0, brightness_std), brightness_std 0.2.
- ``contrast``: multiply by 2^(N(0, contrast_std)), contrast_std 0.5.
- ``lumaflip``: with probability 1/2, reflect through the plane orthogonal to the luma axis
  v = (1, 1, 1) / sqrt(3): I - 2 v v^T.
- ``hue``: rotate about v by U(-pi, pi) * hue_max, hue_max 1.
- ``saturation``: scale the part orthogonal to v by 2^(N(0, saturation_std)), saturation_std 1.

image-space:
- ``imgfilter``: per band b of a 4-band filter bank (low to high frequencies), with probability
  p * imgfilter * imgfilter_bands[b], multiply that band by 2^(N(0, imgfilter_std)) (std 1) and
  renormalise the gains so that the expected power (assumed spectrum 10:1:1:1) is unchanged.
- ``noise``: add per-pixel N(0, sigma^2) with sigma = |N(0, noise_std^2)|, noise_std 0.1.
- ``cutout``: zero a square of side cutout_size * image size (0.5) at a uniform random centre.

How the geometric matrices are applied (in one batched pass over the samples that drew a
transform; the others pass through untouched): reflect-pad the images as much as the transformed
output needs (at most size - 1 per side), upsample 2x, sample bilinearly on the per-sample affine
grid (`torch_utils.ops.bilinear_sample.FixedGridSampler`; zeros outside the padding), and
downsample 2x. For fixed matrices the four steps form one linear operator A on the images;
`GeometricResampling` applies A and its exact transpose A^T without autograd history and
`LinearOp` makes A^T the backward of A and A the backward of A^T, so the pipe differentiates to
any order (R1 through the augmentation) at the cost of one A or A^T pass per derivative.

The 2x filters (``geom_filter``, see `GEOM_FILTERS`):
- ``'cdf97'`` (default): the CDF 9/7 biorthogonal wavelet pair of JPEG 2000, upsampling with the
  7-tap synthesis low-pass and downsampling with the 9-tap analysis low-pass. Both are symmetric
  and the pair is perfect-reconstruction, so the identity, xflip, rotate90 and integer translations
  reproduce the input exactly (up to float rounding): the 'blit' group really is a blit.
- ``'sym6'``: StyleGAN2-ADA's choice, the orthonormal 12-tap least-asymmetric Daubechies wavelet
  (upsample by convolution with 2h, downsample by correlation with h; aligned with centre tap 5.0,
  as in the official alignment). Also perfect-reconstruction for the identity and integer shifts,
  but sym6 is not symmetric, so flips and 90-degree rotations come out slightly blurred (max error
  about 0.1 on a smooth 32x32 image in [-1, 1]; checked in tests/test_augment.py).
Rotations and fractional shifts blur both about equally (bilinear interpolation at 2x).

Coefficients are published values, re-checked in `tests/test_augment.py`: sym6 by its defining
properties (sum sqrt(2), unit norm, orthogonality to even shifts, 6 vanishing moments of the
matching high-pass); CDF 9/7 by symmetry, DC gains 1 and 2, biorthogonality
``sum_k a[k] s[k - 1 + 2i] = delta_i`` and 4 zeros at Nyquist for each filter. The filter bank for
``imgfilter`` is built from sym2 (= db2, closed form ((1 - sqrt3), (3 - sqrt3), (3 + sqrt3),
(1 + sqrt3)) / (4 sqrt2)).

Grayscale (C = 1): the colour matrix is applied to (g, g, g, 1) and the three outputs are averaged,
so brightness, contrast and lumaflip act on the gray value while hue and saturation (rotations and
scalings orthogonal to the gray axis) leave it unchanged. Colour ops on other channel counts raise
`UserError`; the other augmentations work for any C.

The ADA controller is `ada_update` (see its docstring for how the training loop calls it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dnnlib.util import UserError
from torch_utils.ops.bilinear_sample import FixedGridSampler, LinearOp

__all__ = [
    "AUGPIPE_SPECS",
    "AugmentPipe",
    "CDF97_ANALYSIS",
    "CDF97_SYNTHESIS",
    "GEOM_FILTERS",
    "GeomFilters",
    "GeometricResampling",
    "IMGFILTER_EXPECTED_POWER",
    "RandomDraws",
    "ada_update",
    "apply_color",
    "augpipe_kwargs",
    "imgfilter_bank",
    "SYM6",
    "SYM2",
]

# --------------------------------------------------------------------------------------------
# Filters.

#: sym6 scaling (low-pass) filter, 12 taps, sum sqrt(2), unit L2 norm (orthonormal wavelet).
SYM6: tuple[float, ...] = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)

#: sym2 (= db2) scaling filter from its closed form ((1-r3), (3-r3), (3+r3), (1+r3)) / (4 r2).
SYM2: tuple[float, ...] = tuple(
    v / (4.0 * math.sqrt(2.0)) for v in (1 - math.sqrt(3), 3 - math.sqrt(3), 3 + math.sqrt(3), 1 + math.sqrt(3))
)

#: CDF 9/7 biorthogonal pair (JPEG 2000), whole-sample symmetric. Analysis low-pass (9 taps, sum 1)
#: and synthesis low-pass (7 taps, sum 2); biorthogonal: sum_k a[k] s[k - 1 + 2i] = delta_i.
CDF97_ANALYSIS: tuple[float, ...] = (
    0.02674875741080976, -0.01686411844287495, -0.07822326652898785, 0.2668641184428723,
    0.6029490182363579,
    0.2668641184428723, -0.07822326652898785, -0.01686411844287495, 0.02674875741080976,
)
CDF97_SYNTHESIS: tuple[float, ...] = (
    -0.09127176311424948, -0.05754352622849957, 0.5912717631142470,
    1.115087052456994,
    0.5912717631142470, -0.05754352622849957, -0.09127176311424948,
)


@dataclass(frozen=True)
class GeomFilters:
    """The filter pair of the geometric resampling: 2x upsampling then 2x downsampling.

    ``up`` includes the interpolation gain 2 (sums to 2); ``down`` sums to 1. ``*_centre`` is the
    tap index treated as each filter's centre (the middle tap for symmetric filters; 5.0 for the
    12-tap sym6, whose DC group delay is 5.098). The pair is perfect-reconstruction:
    ``sum_k down[k] up[k + 2i + up_centre - down_centre] = delta_i``.
    """

    up: tuple[float, ...]
    down: tuple[float, ...]
    up_centre: float
    down_centre: float


def _sym6_filters() -> GeomFilters:
    h = np.asarray(SYM6, dtype=np.float64) / math.sqrt(2)  # sum 1
    centre = 5.0  # the official alignment; lower flip error on detailed images than the DC delay 5.098
    # Upsample by convolution with 2h, downsample by correlation with h (= convolution with h reversed).
    return GeomFilters(up=tuple(2 * h), down=tuple(h), up_centre=centre, down_centre=centre)


#: Choices of ``AugmentPipe(geom_filter=...)``.
GEOM_FILTERS: dict[str, GeomFilters] = {
    "sym6": _sym6_filters(),
    "cdf97": GeomFilters(up=CDF97_SYNTHESIS, down=CDF97_ANALYSIS, up_centre=3.0, down_centre=4.0),
}

#: Assumed relative power of the 4 imgfilter bands (lowest first): a 1/f-like image spectrum.
IMGFILTER_EXPECTED_POWER: tuple[float, ...] = (10 / 13, 1 / 13, 1 / 13, 1 / 13)


def imgfilter_bank(num_bands: int = 4) -> np.ndarray:
    """The ``imgfilter`` bank: ``num_bands`` symmetric 1-D filters (lowest band first) summing to delta.

    With ``lo2 = (h * h~) / 2`` and ``hi2 = (g * g~) / 2`` (h = sym2, g[n] = (-1)^n h[n], ``~`` time
    reversal), lo2 + hi2 = delta (power complementarity of an orthonormal QMF pair). Starting from
    the single band [delta], each level stretches every existing band by 2 (zero insertion) and
    convolves it with lo2, then appends hi2 as the new highest band. After ``num_bands - 1`` levels
    band 0 covers [0, pi/8], band 1 [pi/8, pi/4], band 2 [pi/4, pi/2] and band 3 [pi/2, pi] (for 4
    bands); every row has the same odd length (43 for 4 bands) and the rows sum to a centred delta.
    """
    h = np.asarray(SYM2, dtype=np.float64)
    g = h * (-1.0) ** np.arange(h.size)
    lo2 = np.convolve(h, h[::-1]) / 2
    hi2 = np.convolve(g, g[::-1]) / 2
    bands = [np.ones(1)]
    for _ in range(num_bands - 1):
        stretched = []
        for band in bands:
            up = np.zeros(2 * band.size - 1)
            up[::2] = band
            stretched.append(np.convolve(up, lo2))
        length = stretched[0].size
        new = np.zeros(length)
        start = (length - hi2.size) // 2
        new[start:start + hi2.size] = hi2
        bands = stretched + [new]
    return np.stack(bands)


def _reflect_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices of a reflect ('mirror without repeating the edge') padding of a length-n axis.

    Works for any pad size (the pattern repeats with period 2(n - 1)); n = 1 repeats the pixel.
    """
    i = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def _reflect_pad2d(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflect-pad the last two axes by index selection (any pad size; differentiable to any order)."""
    if left == right == top == bottom == 0:
        return x
    H, W = x.shape[-2:]
    x = x.index_select(-1, _reflect_index(W, left, right, x.device))
    return x.index_select(-2, _reflect_index(H, top, bottom, x.device))


def _fir_up_axis(t: torch.Tensor, f: Sequence[float], dim: int, offset: int, out_len: int) -> torch.Tensor:
    """Zero-insertion 2x upsampling along ``dim`` (2 or 3) of a 4-D tensor, in polyphase form.

    ``y[2j + r] = sum_k t[j - k] f[2k + r + offset]`` for output positions ``0 <= 2j + r < out_len``
    (t is zero outside its range): input sample m contributes ``f[k]`` to output ``2m + k - offset``.
    Computed as sums of shifted copies per phase r = 0, 1, which skips the multiplications by the
    inserted zeros (about twice as fast as ``conv_transpose2d`` on CPU for single-channel filters).
    """
    L = len(f)
    n = t.shape[dim]
    half = (out_len + 1) // 2
    phases = [{k: float(f[2 * k + r + offset]) for k in range(-L, L) if 0 <= 2 * k + r + offset < L} for r in (0, 1)]
    k_lo = min(min(taps) for taps in phases)
    k_hi = max(max(taps) for taps in phases)
    before = max(k_hi, 0)
    after = max(0, half - 1 - k_lo - (n - 1))
    pad = [0, 0, before, after] if dim == 2 else [before, after, 0, 0]  # F.pad lists the last axis first
    padded = F.pad(t, pad)
    outputs = []
    for taps in phases:
        acc = None
        for k, weight in taps.items():
            term = padded.narrow(dim, before - k, half) * weight
            acc = term if acc is None else acc + term
        outputs.append(acc)
    shape = list(t.shape)
    shape[dim] = 2 * half
    return torch.stack(outputs, dim=dim + 1).reshape(shape).narrow(dim, 0, out_len)


def _fir_down_axis(t: torch.Tensor, f: Sequence[float], dim: int, before: int = 0, after: int = 0) -> torch.Tensor:
    """Strided correlation along ``dim`` (2 or 3): ``y[m] = sum_k f[k] t_pad[2m + k]``.

    ``t_pad`` is t with ``before``/``after`` zeros; the output has ``(n + before + after - L) // 2 + 1``
    samples. Computed as a sum of strided shifted views (faster on CPU than a single-channel
    strided ``conv2d`` on large images, and differentiable to any order).
    """
    L = len(f)
    if before or after:
        t = F.pad(t, [0, 0, before, after] if dim == 2 else [before, after, 0, 0])
    count = (t.shape[dim] - L) // 2 + 1
    acc = None
    for k, weight in enumerate(f):
        view = t.narrow(dim, k, 2 * count - 1)
        view = view[:, :, ::2] if dim == 2 else view[:, :, :, ::2]
        term = view * float(weight)
        acc = term if acc is None else acc + term
    return acc


def _upsample2x(x: torch.Tensor, f: Sequence[float]) -> torch.Tensor:
    """2x upsampling of both image axes: input m -> output ``2m + k - (L - 1) // 2`` with weight f[k]."""
    offset = (len(f) - 1) // 2
    x = _fir_up_axis(x, f, 3, offset, 2 * x.shape[3])
    return _fir_up_axis(x, f, 2, offset, 2 * x.shape[2])


def _downsample2x(x: torch.Tensor, f: Sequence[float]) -> torch.Tensor:
    """2x downsampling of both axes, no padding: ``y[m] = sum_k f[k] x[2m + k]`` (2S + L - 2 -> S)."""
    return _fir_down_axis(_fir_down_axis(x, f, 3), f, 2)


class GeometricResampling:
    """The geometric augmentation of one batch as an explicit linear operator on the images.

    For images [N, C, H, W] and matrices G [N, 3, 3] (output -> input, centred pixel coordinates:
    pixel (j, i) at ``(j - (W-1)/2, i - (H-1)/2)``), `forward_op` computes ``out(y) = in(G y)``
    as: reflect pad (as much as the transformed output needs, at most size - 1 per side), 2x
    upsampling with ``filters.up``, bilinear sampling at the transformed grid (zeros beyond the
    padding), 2x downsampling with ``filters.down``. All four steps are linear in the images, so
    `adjoint_op` applies their transposes in reverse order (index-add, strided correlation,
    scatter-add, polyphase upsampling). `apply` wraps the pair with `LinearOp`, giving derivatives
    of any order w.r.t. the images at the cost of one forward or adjoint pass each.
    """

    def __init__(self, shape: Sequence[int], G: torch.Tensor, filters: GeomFilters, dtype: torch.dtype) -> None:
        N, C, H, W = shape
        device = G.device
        self.shape = (N, C, H, W)
        self.filters = filters
        Lu, Ld = len(filters.up), len(filters.down)
        cu, cd = filters.up_centre, filters.down_centre
        self.up_offset = (Lu - 1) // 2  # padded sample m sits at upsampled position 2m + cu - up_offset
        Gd = G.detach().to(dtype=torch.float64)

        # The sampled grid has 2*size + Ld - 2 pixels per axis (what the downsampler needs for `size`
        # outputs); sampled pixel s <-> output pixel index (s - cd) / 2.
        Sx, Sy = 2 * W + Ld - 2, 2 * H + Ld - 2
        lo_x, hi_x = -cd / 2 - (W - 1) / 2, (Sx - 1 - cd) / 2 - (W - 1) / 2
        lo_y, hi_y = -cd / 2 - (H - 1) / 2, (Sy - 1 - cd) / 2 - (H - 1) / 2
        corners = torch.tensor([[lo_x, hi_x, hi_x, lo_x], [lo_y, lo_y, hi_y, hi_y], [1, 1, 1, 1]],
                               dtype=torch.float64, device=device)
        src = Gd @ corners  # [N, 3, 4]
        # Padding so that both bilinear neighbours of every read are upsampled pixels fully determined
        # by padded samples: the source's padded index must lie in [(Lu-1-cu)/2, W_pad - (3+cu)/2].
        bounds = torch.stack([src[:, 0].min(), src[:, 0].max(), src[:, 1].min(), src[:, 1].max()]).tolist()
        need = (
            ((Lu - 1 - cu) / 2 - bounds[0] - (W - 1) / 2, W),
            (bounds[1] - (W - 1) / 2 + (1 + cu) / 2, W),
            ((Lu - 1 - cu) / 2 - bounds[2] - (H - 1) / 2, H),
            (bounds[3] - (H - 1) / 2 + (1 + cu) / 2, H),
        )
        self.pads = tuple(min(max(int(math.ceil(v - 1e-6)), 0), size - 1) for v, size in need)
        left, right, top, bottom = self.pads
        self.pad_index_x = _reflect_index(W, left, right, device)
        self.pad_index_y = _reflect_index(H, top, bottom, device)
        self.padded_size = (H + top + bottom, W + left + right)
        self.sampled_size = (Sy, Sx)

        # Affine map: sampled pixel -> output centred coords -> input centred coords -> upsampled pixel.
        shift = cu - self.up_offset
        to_centred = torch.tensor([[0.5, 0, -cd / 2 - (W - 1) / 2], [0, 0.5, -cd / 2 - (H - 1) / 2], [0, 0, 1]],
                                  dtype=torch.float64, device=device)
        to_upsampled = torch.tensor([[2, 0, 2 * ((W - 1) / 2 + left) + shift],
                                     [0, 2, 2 * ((H - 1) / 2 + top) + shift], [0, 0, 1]],
                                    dtype=torch.float64, device=device)
        A = (to_upsampled @ Gd @ to_centred).to(dtype)  # [N, 3, 3]
        sx = torch.arange(Sx, dtype=dtype, device=device).view(1, 1, Sx)
        sy = torch.arange(Sy, dtype=dtype, device=device).view(1, Sy, 1)
        #: Sampling positions [N, Sy, Sx] in upsampled-image pixels.
        self.ix = A[:, 0, 0].view(N, 1, 1) * sx + A[:, 0, 1].view(N, 1, 1) * sy + A[:, 0, 2].view(N, 1, 1)
        self.iy = A[:, 1, 0].view(N, 1, 1) * sx + A[:, 1, 1].view(N, 1, 1) * sy + A[:, 1, 2].view(N, 1, 1)
        Hp, Wp = self.padded_size
        self.sampler = FixedGridSampler(self.ix.reshape(N, -1), self.iy.reshape(N, -1), 2 * Hp, 2 * Wp)

    def upsampled(self, images: torch.Tensor) -> torch.Tensor:
        """The padded, 2x-upsampled images [N, C, 2 H_pad, 2 W_pad] that the sampler reads."""
        x = images.index_select(3, self.pad_index_x).index_select(2, self.pad_index_y)
        return _upsample2x(x, self.filters.up)

    def forward_op(self, images: torch.Tensor) -> torch.Tensor:
        N, C = images.shape[:2]
        with torch.no_grad():
            x = self.sampler.forward_op(self.upsampled(images)).view(N, C, *self.sampled_size)
            return _downsample2x(x, self.filters.down)

    def adjoint_op(self, grad: torch.Tensor) -> torch.Tensor:
        N, C, H, W = self.shape
        Hp, Wp = self.padded_size
        Sy, Sx = self.sampled_size
        down, up, offset = self.filters.down, self.filters.up, self.up_offset
        with torch.no_grad():
            g = _fir_up_axis(_fir_up_axis(grad, down, 2, 0, Sy), down, 3, 0, Sx)  # transpose of the downsampling
            g = self.sampler.adjoint_op(g.reshape(N, C, Sy * Sx))
            after = len(up) - 2 - offset  # transpose of the upsampling: strided correlation
            g = _fir_down_axis(_fir_down_axis(g, up, 2, offset, after), up, 3, offset, after)
            out = g.new_zeros(N, C, H, Wp).index_add_(2, self.pad_index_y, g)  # transpose of the padding
            return g.new_zeros(N, C, H, W).index_add_(3, self.pad_index_x, out)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """`forward_op` with derivatives of any order w.r.t. ``images``."""
        return LinearOp.apply(images, self.forward_op, self.adjoint_op)


# --------------------------------------------------------------------------------------------
# Batched homogeneous matrices (no gradients needed: they only depend on random draws).


def _affine2d(a, b, c, d, tx, ty) -> torch.Tensor:
    """[N, 3, 3] matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from [N] tensors."""
    zero = torch.zeros_like(a)
    one = torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=-1).reshape(-1, 3, 3)


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    one, zero = torch.ones_like(tx), torch.zeros_like(tx)
    return _affine2d(one, zero, zero, one, tx, ty)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(sx)
    return _affine2d(sx, zero, zero, sy, zero, zero)


def _rotate2d(theta: torch.Tensor) -> torch.Tensor:
    """Rotation of content by theta (x right, y down); its inverse is _rotate2d(-theta)."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(theta)
    return _affine2d(cos, -sin, sin, cos, zero, zero)


def _color_matrix(linear: torch.Tensor, offset: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[N, 4, 4] homogeneous colour matrices from [N, 3, 3] linear parts and [N, 3] offsets."""
    N = linear.shape[0]
    m = torch.zeros(N, 4, 4, dtype=linear.dtype, device=linear.device)
    m[:, :3, :3] = linear
    if offset is not None:
        m[:, :3, 3] = offset
    m[:, 3, 3] = 1
    return m


# --------------------------------------------------------------------------------------------
# Pipe specifications and the ADA controller.

_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
_FILTER = dict(imgfilter=1)
_NOISE = dict(noise=1)
_CUTOUT = dict(cutout=1)

#: ``train.py --augpipe`` choices -> AugmentPipe flag kwargs (as in StyleGAN2-ADA).
AUGPIPE_SPECS: dict[str, dict[str, float]] = {
    "blit": dict(_BLIT),
    "geom": dict(_GEOM),
    "color": dict(_COLOR),
    "filter": dict(_FILTER),
    "noise": dict(_NOISE),
    "cutout": dict(_CUTOUT),
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, **_FILTER},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT},
}


def augpipe_kwargs(name: str) -> dict[str, float]:
    """A copy of ``AUGPIPE_SPECS[name]``; unknown names raise UserError listing the choices."""
    if name not in AUGPIPE_SPECS:
        raise UserError(
            f"--augpipe: unknown augmentation pipe {name!r}; choose one of {', '.join(AUGPIPE_SPECS)}"
        )
    return dict(AUGPIPE_SPECS[name])


def ada_update(p: float, signs_mean: float, target: float, batch: int, interval: int, ada_kimg: float) -> float:
    """One ADA step: ``max(0, p + sign(signs_mean - target) * batch * interval / (ada_kimg * 1000))``.

    ``signs_mean`` is the mean of ``sign(D(real))`` over the last ``interval`` iterations (the
    overfitting heuristic r_t); ``batch`` is the total batch size, ``interval`` the number of
    iterations between updates (4 in StyleGAN2-ADA) and ``ada_kimg`` the number of thousands of
    real images over which p can move by 1 (500, or 100 when resuming). p is clamped at 0 only,
    never above (values above 1 are harmless: every per-sample probability saturates at 1).
    At exactly the target p does not move. The training loop calls, every ``interval`` iterations::

        new_p = ada_update(float(pipe.p), signs_mean, ada_target, batch_size, ada_interval, ada_kimg)
        pipe.p.copy_(torch.as_tensor(new_p))
    """
    for name, value in (("batch", batch), ("interval", interval), ("ada_kimg", ada_kimg)):
        if not value > 0:
            raise UserError(f"ada_update: {name} must be positive, got {value}")
    if not math.isfinite(signs_mean):
        return max(float(p), 0.0)
    step = batch * interval / (ada_kimg * 1000)
    direction = float(np.sign(signs_mean - target))
    return max(float(p) + direction * step, 0.0)


# --------------------------------------------------------------------------------------------
# The pipe.


class RandomDraws:
    """Per-batch random draws on one device/dtype, from ``generator`` or torch's global generator."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device, generator: Optional[torch.Generator] = None):
        self.n, self.dtype, self.device, self.generator = n, dtype, device, generator

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, dtype=self.dtype, device=self.device, generator=self.generator)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, dtype=self.dtype, device=self.device, generator=self.generator)

    def gate(self, prob: torch.Tensor | float, value: torch.Tensor, neutral: float) -> torch.Tensor:
        """Per sample: ``value`` where a U(0, 1) draw is below ``prob``, else ``neutral`` (value [N, ...])."""
        chosen = self.rand(self.n) < prob
        chosen = chosen.view(self.n, *([1] * (value.ndim - 1)))
        return torch.where(chosen, value, torch.full_like(value, neutral))


def apply_color(images: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Apply per-sample colour matrices M [N, 4, 4] to images [N, C, H, W] with C = 3 or 1.

    RGB: ``out = M[:3, :3] @ rgb + M[:3, 3]`` per pixel. Gray (C = 1): the pixel is taken as
    (g, g, g) and the mean of the three outputs is kept:
    ``out = g * mean_i(sum_j M[i, j]) + mean_i(M[i, 3])`` (i, j < 3).
    """
    N, C, H, W = images.shape
    M = M.to(images.dtype)
    flat = images.reshape(N, C, H * W)
    if C == 3:
        flat = M[:, :3, :3] @ flat + M[:, :3, 3:]
    elif C == 1:
        row = M[:, :3, :].mean(dim=1, keepdim=True)  # [N, 1, 4]
        flat = flat * row[:, :, :3].sum(dim=2, keepdim=True) + row[:, :, 3:]
    else:
        raise UserError(f"AugmentPipe: colour augmentations need 1 or 3 channels, got {C}; disable them")
    return flat.reshape(N, C, H, W)


_FLAGS = (
    "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
    "brightness", "contrast", "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout",
)

class AugmentPipe(torch.nn.Module):
    """The ADA augmentation pipe (see the module docstring for every augmentation and its maths).

    Flags (``xflip`` ... ``cutout``) are probability multipliers: 0 disables an augmentation, 1
    applies it with probability ``p``. ``p`` is a scalar buffer (initially 1; the training loop sets
    it, and it is saved with the module's state). ``self.init_kwargs`` records the constructor's
    keyword arguments so snapshots can rebuild the pipe.
    """

    def __init__(
        self,
        xflip: float = 0, rotate90: float = 0, xint: float = 0, xint_max: float = 0.125,
        scale: float = 0, rotate: float = 0, aniso: float = 0, xfrac: float = 0,
        scale_std: float = 0.2, rotate_max: float = 1, aniso_std: float = 0.2, xfrac_std: float = 0.125,
        brightness: float = 0, contrast: float = 0, lumaflip: float = 0, hue: float = 0, saturation: float = 0,
        brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1, saturation_std: float = 1,
        imgfilter: float = 0, imgfilter_bands: Sequence[float] = (1, 1, 1, 1), imgfilter_std: float = 1,
        noise: float = 0, cutout: float = 0, noise_std: float = 0.1, cutout_size: float = 0.5,
        geom_filter: str = "cdf97",
    ) -> None:
        super().__init__()
        values = dict(
            xflip=xflip, rotate90=rotate90, xint=xint, xint_max=xint_max, scale=scale, rotate=rotate,
            aniso=aniso, xfrac=xfrac, scale_std=scale_std, rotate_max=rotate_max, aniso_std=aniso_std,
            xfrac_std=xfrac_std, brightness=brightness, contrast=contrast, lumaflip=lumaflip, hue=hue,
            saturation=saturation, brightness_std=brightness_std, contrast_std=contrast_std,
            hue_max=hue_max, saturation_std=saturation_std, imgfilter=imgfilter,
            imgfilter_std=imgfilter_std, noise=noise, cutout=cutout, noise_std=noise_std,
            cutout_size=cutout_size,
        )
        for name, value in values.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise UserError(f"AugmentPipe: {name} must be a finite number >= 0, got {value!r}")
        bands = [float(b) for b in imgfilter_bands]
        if len(bands) != 4 or any(not math.isfinite(b) or b < 0 for b in bands):
            raise UserError(f"AugmentPipe: imgfilter_bands must be 4 numbers >= 0, got {list(imgfilter_bands)!r}")
        if geom_filter not in GEOM_FILTERS:
            raise UserError(f"AugmentPipe: geom_filter must be one of {', '.join(GEOM_FILTERS)}, got {geom_filter!r}")
        for name, value in values.items():
            setattr(self, name, float(value))
        self.imgfilter_bands = bands
        self.init_kwargs = {**{k: float(v) for k, v in values.items()}, "imgfilter_bands": list(bands),
                            "geom_filter": geom_filter}

        self.register_buffer("p", torch.ones([]))
        #: The filter pair of the geometric resampling (see `GeomFilters`).
        self.geom_filters = GEOM_FILTERS[geom_filter]
        #: The imgfilter bank [4, 43] (float64 numpy, not part of the state dict).
        self.imgfilter_bank = imgfilter_bank(4)

    def extra_repr(self) -> str:
        enabled = [f"{name}={getattr(self, name):g}" for name in _FLAGS if getattr(self, name) > 0]
        return ", ".join(enabled) if enabled else "no augmentations enabled"

    # ----------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Augment ``images`` [N, C, H, W] (float). Returns a tensor of the same shape and dtype.

        Random draws use ``generator`` when given (it must live on the images' device), else
        torch's global generator. Samples that draw no augmentation come out unchanged up to
        float rounding; when no sample draws anything (e.g. p = 0) the input is returned as is.
        """
        if images.ndim != 4 or not images.is_floating_point():
            raise UserError(f"AugmentPipe: expected float images [N, C, H, W], got {images.dtype} {list(images.shape)}")
        N, C, H, W = images.shape
        rng = RandomDraws(N, images.dtype, images.device, generator)

        G = self.draw_geometry(rng, H, W)
        if G is not None:
            moved = (G != torch.eye(3, dtype=G.dtype, device=G.device)).flatten(1).any(dim=1)
            if bool(moved.all()):
                images = self.apply_geometry(images, G)
            else:  # resample only the samples that drew a transform (saves time at small p)
                index = moved.nonzero().squeeze(1)
                images = images.index_copy(0, index, self.apply_geometry(images.index_select(0, index), G[index]))
        M = self.draw_color(rng, C)
        if M is not None:
            images = apply_color(images, M)
        if self.imgfilter > 0:
            images = self._imgfilter(images, rng)
        if self.noise > 0:
            sigma = rng.gate(self.noise * self._p(rng), rng.randn(N).abs() * self.noise_std, 0)
            if bool((sigma > 0).any()):
                images = images + rng.randn(N, C, H, W) * sigma.view(N, 1, 1, 1)
        if self.cutout > 0:
            images = self._cutout(images, rng)
        return images

    def _p(self, rng: "RandomDraws") -> torch.Tensor:
        return self.p.to(dtype=rng.dtype, device=rng.device)

    def draw_geometry(self, rng: "RandomDraws", H: int, W: int) -> Optional[torch.Tensor]:
        """Draw the per-sample geometric matrices G [N, 3, 3] (output -> input, centred pixel coords).

        Returns None when no geometric augmentation is enabled or none was drawn (all identity).
        """
        N, dtype, device, p = rng.n, rng.dtype, rng.device, self._p(rng)
        gate, rand, randn = rng.gate, rng.rand, rng.randn
        eye3 = torch.eye(3, dtype=dtype, device=device).expand(N, 3, 3)
        G = eye3
        if self.xflip > 0:
            flip = gate(self.xflip * p, torch.floor(rand(N) * 2), 0)
            G = G @ _scale2d(1 - 2 * flip, torch.ones_like(flip))
        if self.rotate90 > 0:
            k = gate(self.rotate90 * p, torch.floor(rand(N) * 4), 0).long()
            cos = torch.tensor([1, 0, -1, 0], dtype=dtype, device=device)[k]  # exact cos/sin of k * 90 deg
            sin = torch.tensor([0, 1, 0, -1], dtype=dtype, device=device)[k]
            G = G @ _affine2d(cos, sin, -sin, cos, torch.zeros_like(cos), torch.zeros_like(cos))  # rotate by -k * 90
        if self.xint > 0:
            t = gate(self.xint * p, (rand(N, 2) * 2 - 1) * self.xint_max, 0)
            G = G @ _translate2d(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H))
        if self.scale > 0:
            s = gate(self.scale * p, torch.exp2(randn(N) * self.scale_std), 1)
            G = G @ _scale2d(1 / s, 1 / s)
        rotate_prob = 1 - torch.sqrt((1 - self.rotate * p).clamp(min=0))
        if self.rotate > 0:
            theta = gate(rotate_prob, (rand(N) * 2 - 1) * math.pi * self.rotate_max, 0)
            G = G @ _rotate2d(-theta)
        if self.aniso > 0:
            s = gate(self.aniso * p, torch.exp2(randn(N) * self.aniso_std), 1)
            G = G @ _scale2d(1 / s, s)
        if self.rotate > 0:
            theta = gate(rotate_prob, (rand(N) * 2 - 1) * math.pi * self.rotate_max, 0)
            G = G @ _rotate2d(-theta)
        if self.xfrac > 0:
            t = gate(self.xfrac * p, randn(N, 2) * self.xfrac_std, 0)
            G = G @ _translate2d(-t[:, 0] * W, -t[:, 1] * H)
        if G is eye3 or torch.equal(G, eye3):
            return None
        return G

    def draw_color(self, rng: "RandomDraws", C: int) -> Optional[torch.Tensor]:
        """Draw the per-sample colour matrices M [N, 4, 4] acting on (r, g, b, 1), or None if identity."""
        if not any(getattr(self, name) > 0 for name in ("brightness", "contrast", "lumaflip", "hue", "saturation")):
            return None
        if C not in (1, 3):
            raise UserError(f"AugmentPipe: colour augmentations need 1 or 3 channels, got {C}; disable them")
        N, dtype, device, p = rng.n, rng.dtype, rng.device, self._p(rng)
        gate, rand, randn = rng.gate, rng.rand, rng.randn
        eye = torch.eye(3, dtype=dtype, device=device).expand(N, 3, 3)
        v = torch.full((3,), 1 / math.sqrt(3), dtype=dtype, device=device)
        vvT = torch.outer(v, v)
        M = torch.eye(4, dtype=dtype, device=device).expand(N, 4, 4)
        if self.brightness > 0:
            b = gate(self.brightness * p, randn(N) * self.brightness_std, 0)
            M = _color_matrix(eye, b[:, None].expand(N, 3)) @ M
        if self.contrast > 0:
            c = gate(self.contrast * p, torch.exp2(randn(N) * self.contrast_std), 1)
            M = _color_matrix(eye * c[:, None, None]) @ M
        if self.lumaflip > 0:
            flip = gate(self.lumaflip * p, torch.floor(rand(N) * 2), 0)
            M = _color_matrix(eye - 2 * vvT * flip[:, None, None]) @ M
        if self.hue > 0:
            theta = gate(self.hue * p, (rand(N) * 2 - 1) * math.pi * self.hue_max, 0)
            cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
            cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=dtype, device=device) / math.sqrt(3)
            rot = cos * eye + sin * cross + (1 - cos) * vvT  # Rodrigues' formula about v
            M = _color_matrix(rot) @ M
        if self.saturation > 0:
            s = gate(self.saturation * p, torch.exp2(randn(N) * self.saturation_std), 1)
            M = _color_matrix(vvT + (eye - vvT) * s[:, None, None]) @ M
        if torch.equal(M, torch.eye(4, dtype=dtype, device=device).expand(N, 4, 4)):
            return None
        return M

    def _imgfilter(self, images: torch.Tensor, rng: "RandomDraws") -> torch.Tensor:
        N, dtype, device, p = rng.n, rng.dtype, rng.device, self._p(rng)
        bank = torch.as_tensor(self.imgfilter_bank, dtype=dtype, device=device)
        power = torch.tensor(IMGFILTER_EXPECTED_POWER, dtype=dtype, device=device)
        gains = torch.ones(N, bank.shape[0], dtype=dtype, device=device)
        applied = torch.zeros(N, dtype=torch.bool, device=device)
        for band, strength in enumerate(self.imgfilter_bands):
            chosen = rng.rand(N) < self.imgfilter * strength * p
            t_band = torch.where(chosen, torch.exp2(rng.randn(N) * self.imgfilter_std), torch.ones(N, dtype=dtype, device=device))
            t = torch.ones_like(gains)
            t[:, band] = t_band
            gains = gains * t / (power * t.square()).sum(dim=1, keepdim=True).sqrt()
            applied |= chosen
        if bool(applied.any()):
            images = self._filter_per_sample(images, gains @ bank)
        return images

    def _cutout(self, images: torch.Tensor, rng: "RandomDraws") -> torch.Tensor:
        N, C, H, W = images.shape
        dtype, device, p = rng.dtype, rng.device, self._p(rng)
        size = rng.gate(self.cutout * p, torch.full((N,), self.cutout_size, dtype=dtype, device=device), 0)
        if bool((size > 0).any()):
            centre = rng.rand(N, 2)
            xs = (torch.arange(W, dtype=dtype, device=device) + 0.5) / W
            ys = (torch.arange(H, dtype=dtype, device=device) + 0.5) / H
            outside_x = (xs[None, :] - centre[:, :1]).abs() >= size[:, None] / 2  # [N, W]
            outside_y = (ys[None, :] - centre[:, 1:]).abs() >= size[:, None] / 2  # [N, H]
            keep = outside_x[:, None, None, :] | outside_y[:, None, :, None]
            images = images * keep.to(dtype)
        return images

    def apply_geometry(self, images: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        """Resample ``images`` [N, C, H, W] so that ``out(y) = in(G[n] y)`` in centred pixel coordinates.

        Coordinates: pixel (j, i) is at ``(j - (W-1)/2, i - (H-1)/2)``, x right, y down; ``G`` is
        [N, 3, 3] homogeneous (output -> input). See `GeometricResampling` for the steps.
        Differentiable to any order in ``images``; public so tests can apply a known matrix.
        """
        return self.geometry_plan(images, G).apply(images)

    def geometry_plan(self, images: torch.Tensor, G: torch.Tensor) -> GeometricResampling:
        """The `GeometricResampling` operator of `apply_geometry` for these images and matrices."""
        return GeometricResampling(images.shape, G.to(images.device), self.geom_filters, images.dtype)

    def _filter_per_sample(self, images: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        """Filter each sample separably (rows then columns) with its own symmetric 1-D filter [N, T]."""
        N, C, H, W = images.shape
        T = filters.shape[1]
        half = T // 2
        weights = filters.to(images.dtype).repeat_interleave(C, dim=0)  # [N*C, T]
        x = _reflect_pad2d(images.reshape(1, N * C, H, W), half, half, half, half)
        x = F.conv2d(x, weights.view(N * C, 1, 1, T), groups=N * C)
        x = F.conv2d(x, weights.view(N * C, 1, T, 1), groups=N * C)
        return x.reshape(N, C, H, W)
