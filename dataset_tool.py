"""Convert images into a training dataset: a `.zip` or folder of PNGs plus `dataset.json`.

The output layout is the one StyleGAN2-ADA uses, so datasets made here load in the official code
and the other way round: image `k` (counting from 0) is stored as `NNNNN/imgNNNNNNNN.png`
(`NNNNNNNN` = k with 8 digits, `NNNNN` = its first 5 digits, i.e. 1000 images per folder), as an
uncompressed PNG (compress_level=0; zips are ZIP_STORED), and `dataset.json` holds
`{"labels": [[relpath, class_int], ...]}` when every image has a label, else `{"labels": null}`.

Sources (recognised from `--source`):
  - a folder of images (recursive) or a `.zip` of images; labels from its `dataset.json`, or, when
    there is none and every image sits in a `<class name>/<image>` subfolder (below any common top
    folder, e.g. `train/airplane/0001.jpg`), class indices from the sorted subfolder names;
  - MNIST IDX: `train-images-idx3-ubyte.gz` (or `t10k-...`, or uncompressed), with the labels
    file beside it; 28x28 padded with 2 black pixels per side to 32x32 unless `--no-mnist-pad`;
  - the CIFAR-10 python tarball `cifar-10-python.tar.gz` (the 5 training batches, 50,000 images).

Every image is converted to 8-bit grayscale (1 channel) or RGB (3 channels): palette images are
expanded, 16-bit images scaled (v -> round(v / 257)), alpha channels dropped with a warning.
Then, in this order: `--crop x,y,w,h`, the `--transform`, and a resize to `--resolution` with the
`--resize-filter` (box by default). All output images must share one square power-of-two size
and one channel count. `--workers N` decodes and encodes in N processes (same output).

`ensure_embedded_mnist()` builds `datasets/mnist32.zip` from the repo's `data/mnist` copy (its
SHA-256 checksums verified) and is what `train.py` uses when no `--data` is given.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import re
import struct
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import click
import numpy as np
import PIL.Image
from tqdm import tqdm

from dnnlib.util import UserError, atomic_path, cli_main
from training.dataset import LABELS_FILE, image_extensions, parse_labels_json

REPO_ROOT = Path(__file__).resolve().parent
EMBEDDED_MNIST_DIR = REPO_ROOT / "data" / "mnist"
DEFAULT_MNIST_ZIP = REPO_ROOT / "datasets" / "mnist32.zip"
MNIST_TRAIN_COUNT = 60000

DECODE_ERRORS = (OSError, PIL.UnidentifiedImageError, SyntaxError, ValueError, EOFError, PIL.Image.DecompressionBombError, zipfile.BadZipFile)


# ------------------------------------------------------------------------------------------------
# Options


@dataclass
class ConvertOptions:
    """What to do to every image. `resolution` is the square output side (None: keep the size);
    `height` is only used by center-crop-wide (height of the letterboxed content)."""

    max_images: Optional[int] = None
    resolution: Optional[int] = None
    height: Optional[int] = None
    transform: Optional[str] = None  # None | 'center-crop' | 'center-crop-wide'
    crop: Optional[tuple[int, int, int, int]] = None  # x, y, w, h
    resize_filter: str = "box"  # 'box' | 'lanczos'
    channels: Optional[int] = None  # None: from the first image; else 1 or 3
    labels: str = "auto"  # 'auto' | 'json' | 'folders' | 'none'
    mnist_pad: bool = True

    def validate(self) -> None:
        """Raise `UserError` for options that can never work (before anything is read)."""
        if self.resolution is not None and not is_power_of_two(self.resolution):
            raise UserError(
                f"--resolution {self.resolution} is not a power of two >= 4; pick e.g. "
                f"{max(4, 1 << max(2, int(self.resolution).bit_length() - 1))}"
            )
        if self.transform in ("center-crop", "center-crop-wide") and self.resolution is None:
            raise UserError(f"--transform {self.transform} needs --resolution (or --width/--height)")
        if self.transform == "center-crop-wide":
            if self.height is None:
                raise UserError("--transform center-crop-wide needs --height (the height of the wide content, <= width)")
            if not 1 <= self.height <= self.resolution:
                raise UserError(f"--height {self.height} must be between 1 and the width {self.resolution}")
        if self.crop is not None:
            x, y, w, h = self.crop
            if x < 0 or y < 0 or w < 1 or h < 1:
                raise UserError(f"--crop {x},{y},{w},{h}: x and y must be >= 0, w and h >= 1")
        if self.resize_filter not in ("box", "lanczos"):
            raise UserError(f"--resize-filter must be box or lanczos, not {self.resize_filter!r}")
        if self.channels not in (None, 1, 3):
            raise UserError(f"--channels must be 1 or 3, not {self.channels}")
        if self.labels not in ("auto", "json", "folders", "none"):
            raise UserError(f"--labels must be auto, json, folders or none, not {self.labels!r}")


def is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n >= 4 and (n & (n - 1)) == 0


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """'17,27,54,54' -> (17, 27, 54, 54)."""
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise UserError(f"--crop expects four integers X,Y,W,H (e.g. 17,27,54,54), got '{text}'")
    return values  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# Sources: each gives a sorted list of items that decode to a PIL image, with optional labels.


@dataclass
class Item:
    name: str  # the image's name in the source (for messages)
    load: Callable[[], PIL.Image.Image]
    label: Any = None  # int, list of floats, or None


@dataclass
class Source:
    items: list[Item]
    description: str
    skipped: list[str] = field(default_factory=list)  # non-image files
    labels_note: str = ""
    class_names: Optional[list[str]] = None
    close: Callable[[], None] = lambda: None


@functools.lru_cache(maxsize=None)
def _format_of_extension(ext: str) -> Optional[str]:
    PIL.Image.init()
    return PIL.Image.registered_extensions().get(ext)


def _decode_image(data: bytes, name: str) -> PIL.Image.Image:
    if len(data) == 0:
        raise UserError(f"'{name}' is an empty (0-byte) file; delete it or replace it with the real image")
    try:
        fmt = _format_of_extension(os.path.splitext(name)[1].lower())
        try:  # try the format the extension names first (skips probing every plugin)
            img = PIL.Image.open(io.BytesIO(data), formats=[fmt] if fmt else None)
        except PIL.UnidentifiedImageError:
            img = PIL.Image.open(io.BytesIO(data))
        img.load()
    except DECODE_ERRORS as err:
        raise UserError(f"cannot decode image '{name}' ({err}); the file is corrupt or truncated: fix or remove it") from None
    return img


def _unsafe_member(name: str) -> bool:
    n = name.replace("\\", "/")
    return n.startswith("/") or re.match(r"^[A-Za-z]:", n) is not None or ".." in n.split("/")


def _is_junk(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or base.startswith("._")


OFFICIAL_NAME_RE = re.compile(r"^\d{5}/img\d{8}\.png$")


def _class_folder_labels(names: list[str]) -> tuple[dict[str, int], list[str]] | None:
    """If every name is `<common top folders>/<class>/<file>` with >= 2 classes, return
    ({name: class index}, sorted class names), else None."""
    parents = [n.split("/")[:-1] for n in names]
    common = parents[0]
    for p in parents[1:]:
        k = 0
        while k < min(len(common), len(p)) and common[k] == p[k]:
            k += 1
        common = common[:k]
        if not common:
            break
    depth = len(common)
    if any(len(p) != depth + 1 for p in parents):
        return None
    classes = sorted({p[depth] for p in parents})
    if len(classes) < 2:
        return None
    if all(OFFICIAL_NAME_RE.match("/".join(n.split("/")[depth:])) for n in names):
        return None  # the dataset layout itself (NNNNN/imgNNNNNNNN.png), not classes
    index = {c: i for i, c in enumerate(classes)}
    return {n: index[p[depth]] for n, p in zip(names, parents)}, classes


def _open_file_tree(path: Path, opts: ConvertOptions) -> Source:
    """A folder (recursive) or a .zip of image files."""
    if path.is_dir():
        files = []
        for root, dirs, fnames in os.walk(path):
            dirs.sort()
            for f in fnames:
                files.append(os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/"))

        def read(name: str) -> bytes:
            with open(path / name, "rb") as f:
                return f.read()

        close: Callable[[], None] = lambda: None
        kind = "folder"
    else:
        try:
            zf = zipfile.ZipFile(path)
            infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"cannot open '{path}' as a zip file ({err}); is it complete?") from None
        for info in infos:
            if _unsafe_member(info.filename):
                zf.close()
                raise UserError(
                    f"'{path}' contains the unsafe entry '{info.filename}' (absolute path or '..'); "
                    "refusing to read this archive: repack it with relative names"
                )
        files = [i.filename for i in infos if not i.is_dir()]
        handles = {os.getpid(): zf}  # one handle per process: a forked worker opens its own

        def read(name: str) -> bytes:
            try:
                handle = handles.get(os.getpid())
                if handle is None:
                    handle = handles[os.getpid()] = zipfile.ZipFile(path)
                return handle.read(name)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise UserError(f"cannot read '{name}' from '{path}' ({err}); the zip is damaged") from None

        def close() -> None:
            handle = handles.pop(os.getpid(), None)
            if handle is not None:
                handle.close()

        kind = "zip"

    exts = image_extensions()
    images, skipped = [], []
    for f in sorted(files):
        if os.path.splitext(f)[1].lower() in exts and not _is_junk(f):
            images.append(f)
        elif f != LABELS_FILE:
            skipped.append(f)
    if not images:
        close()
        extra = f" ({len(skipped)} other files were ignored, e.g. '{skipped[0]}')" if skipped else ""
        raise UserError(f"no image files found in {kind} '{path}'{extra}; point --source at a folder or zip of images")

    labels: dict[str, Any] | None = None
    note, class_names = "", None
    has_json = LABELS_FILE in files
    if opts.labels in ("auto", "json") and has_json:
        labels = parse_labels_json(read(LABELS_FILE), f"'{LABELS_FILE}' in '{path}'")
        if labels is not None:
            image_set = set(images)
            missing = sorted(n for n in labels if n not in image_set)
            if missing:
                close()
                raise UserError(
                    f"'{LABELS_FILE}' in '{path}' names {len(missing)} file(s) that are not images there, e.g. "
                    f"'{missing[0]}'; fix its paths (relative to the source root, with '/')"
                )
        note = f"labels from {LABELS_FILE}" if labels is not None else f"{LABELS_FILE} says unlabelled"
    elif opts.labels == "json":
        close()
        raise UserError(f"--labels json: there is no '{LABELS_FILE}' at the root of '{path}'")
    elif opts.labels in ("auto", "folders"):
        found = _class_folder_labels(images)
        if found is not None:
            labels, class_names = found
            shown = ", ".join(f"{c}={i}" for i, c in enumerate(class_names[:12]))
            more = ", ..." if len(class_names) > 12 else ""
            note = f"labels: {len(class_names)} classes from folder names ({shown}{more})"
        elif opts.labels == "folders":
            close()
            raise UserError(
                f"--labels folders: the images in '{path}' are not laid out as <class>/<image> "
                "(one subfolder per class, at least two classes, no images elsewhere)"
            )
    items = [
        Item(name=f, load=functools.partial(lambda n: _decode_image(read(n), n), f), label=(labels or {}).get(f))
        for f in images
    ]
    return Source(items, f"{kind} '{path}'", skipped, note, class_names, close)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksums(folder: Path, names: Iterable[str], required: bool) -> None:
    """Check `names` against `<folder>/SHA256SUMS` (lines `<hex>  <name>`).

    With `required=False`, files not listed (or no SHA256SUMS at all) are accepted unchecked.
    """
    sums_file = folder / "SHA256SUMS"
    expected: dict[str, str] = {}
    if sums_file.is_file():
        for line in sums_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                expected[parts[1].lstrip("*")] = parts[0].lower()
    elif required:
        raise UserError(f"'{sums_file}' is missing; restore the embedded data (git checkout data/mnist)")
    for name in names:
        f = folder / name
        if not f.is_file():
            raise UserError(f"'{f}' is missing; restore it (git checkout data/mnist) or point --source elsewhere")
        if name not in expected:
            if required:
                raise UserError(f"'{name}' is not listed in '{sums_file}'; restore the embedded data (git checkout data/mnist)")
            continue
        got = _sha256(f)
        if got != expected[name]:
            raise UserError(
                f"checksum mismatch for '{f}': expected sha256 {expected[name][:16]}..., got {got[:16]}...; "
                "the file is damaged or was replaced: restore it (git checkout data/mnist)"
            )


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Read an IDX file (optionally gzip'd): big-endian int32 magic, `ndim` int32 sizes, uint8 data."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"cannot read MNIST file '{path}' ({err}); is it complete?") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"'{path}' is too short to be an IDX file ({len(raw)} bytes)")
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise UserError(f"'{path}' has IDX magic {got_magic}, expected {magic}; is it the right MNIST file?")
    dims = [int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
    need = int(np.prod(dims))
    if len(raw) - header != need:
        raise UserError(f"'{path}' holds {len(raw) - header} data bytes but its header promises {need} {dims}; the file is truncated")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


MNIST_IMAGES_RE = re.compile(r"^(.*)images-idx3-ubyte(\.gz)?$")


def _open_mnist(path: Path, opts: ConvertOptions) -> Source:
    m = MNIST_IMAGES_RE.match(path.name)
    assert m is not None
    labels_path = path.with_name(f"{m.group(1)}labels-idx1-ubyte{m.group(2) or ''}")
    if not labels_path.is_file():
        raise UserError(f"MNIST labels file '{labels_path}' not found next to '{path}'; put it beside the images file")
    verify_checksums(path.parent, [path.name, labels_path.name], required=False)
    images = _read_idx(path, 2051, 3)
    labels = _read_idx(labels_path, 2049, 1)
    if len(images) != len(labels):
        raise UserError(f"'{path}' has {len(images)} images but '{labels_path}' has {len(labels)} labels")
    if len(images) == 0:
        raise UserError(f"'{path}' holds no images")
    if opts.mnist_pad and images.shape[1:] == (28, 28):
        images = np.pad(images, [(0, 0), (2, 2), (2, 2)], mode="constant", constant_values=0)
    use_labels = opts.labels != "none"
    items = [
        Item(f"{path.name}[{k}]", functools.partial(PIL.Image.fromarray, images[k]), int(labels[k]) if use_labels else None)
        for k in range(min(len(images), opts.max_images or len(images)))
    ]
    return Source(items, f"MNIST '{path}'", labels_note="labels: MNIST digits 0-9" if use_labels else "")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays (a CIFAR batch is a dict of arrays/lists)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _open_cifar10(path: Path, opts: ConvertOptions) -> Source:
    all_images, all_labels = [], []
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            for b in range(1, 6):
                name = f"cifar-10-batches-py/data_batch_{b}"
                if name not in members:
                    raise UserError(f"'{path}' has no member '{name}'; is it the CIFAR-10 python version?")
                f = tar.extractfile(members[name])
                assert f is not None
                batch = _CifarUnpickler(f, encoding="latin1").load()
                data = batch.get("data") if isinstance(batch, dict) else None
                labels = batch.get("labels") if isinstance(batch, dict) else None
                if data is None or labels is None:
                    raise UserError(f"'{name}' in '{path}' lacks 'data' or 'labels'")
                data = np.asarray(data, dtype=np.uint8)
                if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
                    raise UserError(f"'{name}' in '{path}' has data of shape {list(data.shape)} and {len(labels)} labels; expected [N, 3072] and N")
                all_images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                all_labels.extend(int(v) for v in labels)
    except UserError:
        raise
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise UserError(f"cannot read CIFAR-10 tarball '{path}' ({err}); is it complete?") from None
    images = np.ascontiguousarray(np.concatenate(all_images))
    if any(not 0 <= v <= 9 for v in all_labels):
        raise UserError(f"'{path}' has labels outside 0-9")
    use_labels = opts.labels != "none"
    items = [
        Item(f"{path.name}[{k}]", functools.partial(PIL.Image.fromarray, images[k]), all_labels[k] if use_labels else None)
        for k in range(min(len(images), opts.max_images or len(images)))
    ]
    return Source(items, f"CIFAR-10 '{path}'", labels_note="labels: CIFAR-10 classes 0-9" if use_labels else "")


def open_source(source: str | os.PathLike, opts: ConvertOptions) -> Source:
    """Recognise the kind of `source` and list its images."""
    path = Path(source)
    if not path.exists():
        raise UserError(f"--source '{path}' does not exist")
    if path.is_dir():
        return _open_file_tree(path, opts)
    if MNIST_IMAGES_RE.match(path.name):
        return _open_mnist(path, opts)
    if path.name.endswith(".tar.gz") and "cifar-10" in path.name:
        return _open_cifar10(path, opts)
    if path.suffix.lower() == ".zip":
        return _open_file_tree(path, opts)
    raise UserError(
        f"don't know how to read '{path}': give a folder, a .zip, an MNIST '*-images-idx3-ubyte.gz' "
        "or 'cifar-10-python.tar.gz'"
    )


# ------------------------------------------------------------------------------------------------
# Per-image conversion


@dataclass
class Stats:
    alpha_dropped: list[str] = field(default_factory=list)
    sixteen_bit: list[str] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)


def to_l_or_rgb(img: PIL.Image.Image, name: str, stats: Stats) -> PIL.Image.Image:
    """Convert any Pillow mode to 8-bit 'L' or 'RGB' (alpha dropped, 16-bit scaled by 1/257)."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette.mode == "RGBA"
        if has_alpha:
            stats.alpha_dropped.append(name)
        return img.convert("RGBA").convert("RGB") if has_alpha else img.convert("RGB")
    if mode in ("RGBA", "RGBa", "RGBX"):
        if mode != "RGBX":
            stats.alpha_dropped.append(name)
        return img.convert("RGB")
    if mode in ("LA", "La", "PA"):
        stats.alpha_dropped.append(name)
        return img.convert("RGBA").convert("RGB") if mode == "PA" else img.getchannel(0)
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(img).astype(np.float64)
        if mode == "F":
            arr = np.clip(np.round(arr), 0, 255)
        else:
            stats.sixteen_bit.append(name)
            arr = np.clip(np.round(arr / 257.0), 0, 255)
        return PIL.Image.fromarray(arr.astype(np.uint8))
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV


class Converter:
    """Applies mode conversion, crop, transform and resize (`__call__`, stateless apart from the
    warning lists in `stats`); `check` verifies, in order, that every image matches the first."""

    def __init__(self, opts: ConvertOptions) -> None:
        self.opts = opts
        self.stats = Stats()
        self.first: Optional[tuple[str, tuple[int, int], str]] = None  # name, (w, h), mode
        self.resample = PIL.Image.Resampling.BOX if opts.resize_filter == "box" else PIL.Image.Resampling.LANCZOS

    def __call__(self, img: PIL.Image.Image, name: str) -> Optional[PIL.Image.Image]:
        o = self.opts
        img = to_l_or_rgb(img, name, self.stats)
        if o.channels is not None:
            img = img.convert("L" if o.channels == 1 else "RGB")
        if o.crop is not None:
            x, y, w, h = o.crop
            if x + w > img.width or y + h > img.height:
                raise UserError(
                    f"--crop {x},{y},{w},{h} does not fit inside '{name}', which is {img.width}x{img.height}; "
                    "choose a box inside the image"
                )
            img = img.crop((x, y, x + w, y + h))
        R = o.resolution
        if o.transform == "center-crop":
            s = min(img.width, img.height)
            left, top = (img.width - s) // 2, (img.height - s) // 2
            img = img.crop((left, top, left + s, top + s))
        elif o.transform == "center-crop-wide":
            img = self._center_crop_wide(img, name)
            if img is None:
                return None
        if R is not None and img.size != (R, R):
            img = img.resize((R, R), self.resample)
        return img

    def _center_crop_wide(self, img: PIL.Image.Image, name: str) -> Optional[PIL.Image.Image]:
        W, H = self.opts.resolution, self.opts.height
        assert W is not None and H is not None
        if img.width * H > img.height * W:  # wider than W:H -> trim the sides
            cw, ch = int(round(img.height * W / H)), img.height
        else:  # taller -> trim top and bottom
            cw, ch = img.width, int(round(img.width * H / W))
        if cw < W or ch < H:
            self.stats.too_small.append(name)
            return None
        left, top = (img.width - cw) // 2, (img.height - ch) // 2
        content = img.crop((left, top, left + cw, top + ch)).resize((W, H), self.resample)
        canvas = PIL.Image.new(img.mode, (W, W), 0)
        canvas.paste(content, (0, (W - H) // 2))
        return canvas

    def check(self, size: tuple[int, int], mode: str, name: str) -> None:
        if self.first is None:
            w, h = size
            if w != h or not is_power_of_two(w):
                raise UserError(
                    f"'{name}' gives {w}x{h} images, but the output must be square with a power-of-two side "
                    "(>= 4): pass --resolution N (with --transform center-crop or --crop to keep the aspect ratio)"
                )
            self.first = (name, size, mode)
            return
        first_name, first_size, first_mode = self.first
        if size != first_size or mode != first_mode:
            hint = "--channels 1 or 3" if size == first_size else "--resolution N with --transform center-crop"
            raise UserError(
                f"'{name}' gives a {size[0]}x{size[1]} {mode} image but the first one, '{first_name}', "
                f"gave {first_size[0]}x{first_size[1]} {first_mode}; all images must match: use {hint}"
            )


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(img: PIL.Image.Image) -> bytes:
    """Uncompressed PNG of an 8-bit 'L' or 'RGB' image (zlib level 0, filter 0 on every row).

    Same pixels and same kind of file as Pillow's `save(format='png', compress_level=0)`, about
    2.5x faster for small images.
    """
    arr = np.asarray(img, dtype=np.uint8)
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    color_type = {1: 0, 3: 2}[channels]
    rows = np.zeros((h, 1 + w * channels), dtype=np.uint8)  # leading 0 = filter type None
    rows[:, 1:] = arr.reshape(h, w * channels)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 0)),
            _png_chunk(b"IEND", b""),
        ]
    )


def archive_name(idx: int) -> str:
    """0 -> '00000/img00000000.png'; 12345 -> '00012/img00012345.png'."""
    s = f"{idx:08d}"
    return f"{s[:5]}/img{s}.png"


# ------------------------------------------------------------------------------------------------
# Destination


def check_dest(dest: Path) -> bool:
    """Refuse a destination that holds data. Returns True when it is an existing empty folder."""
    if dest.suffix.lower() == ".zip":
        if dest.exists():
            raise UserError(f"--dest '{dest}' already exists; choose a new name or delete it first (it was left untouched)")
        return False
    if dest.exists():
        if not dest.is_dir():
            raise UserError(f"--dest '{dest}' exists and is not a folder; give a .zip name or a new/empty folder")
        if any(dest.iterdir()):
            raise UserError(f"--dest folder '{dest}' is not empty; choose a new or empty folder (it was left untouched)")
        return True
    return False


@dataclass
class ConvertResult:
    dest: Path
    num_images: int
    image_shape: list[int]  # [C, H, W]
    labelled: bool
    skipped: list[str]
    stats: Stats
    class_names: Optional[list[str]] = None


# One converted image: PNG bytes (None if dropped), its (w, h) and mode, and its warnings.
Converted = tuple[Optional[bytes], tuple[int, int], str, Stats]


def convert_item(conv: Converter, item: Item) -> Converted:
    conv.stats = Stats()
    img = conv(item.load(), item.name)
    if img is None:
        return None, (0, 0), "", conv.stats
    return encode_png(img), img.size, img.mode, conv.stats


_worker_state: dict[str, Any] = {}  # per worker process: its own open source and converter


def _worker_init(source: str, opts: ConvertOptions) -> None:
    if "src" not in _worker_state:  # spawned (not forked): open the source again
        _worker_state["src"] = open_source(source, opts)
    _worker_state["conv"] = Converter(opts)


def _worker_convert(idx: int) -> Converted:
    return convert_item(_worker_state["conv"], _worker_state["src"].items[idx])


def _converted_stream(source: str | os.PathLike, src: Source, items: list[Item], opts: ConvertOptions,
                      workers: int, stack: contextlib.ExitStack) -> Iterable[Converted]:
    """Converted images in source order, from this process or from `workers` processes.

    Workers get the source by fork (or, where fork is missing, open it again themselves), so no
    image object crosses the process boundary; only the PNG bytes come back."""
    if workers <= 1 or len(items) < 256:
        conv = Converter(opts)
        return (convert_item(conv, item) for item in items)
    if "fork" in multiprocessing.get_all_start_methods():
        # Forked workers inherit the opened source (zip handles are reopened per process).
        ctx = multiprocessing.get_context("fork")
        _worker_state["src"] = src
        stack.callback(_worker_state.clear)
    else:
        ctx = multiprocessing.get_context("spawn")
    pool = stack.enter_context(ctx.Pool(workers, initializer=_worker_init, initargs=(str(source), opts)))
    return pool.imap(_worker_convert, range(len(items)), chunksize=64)


def convert_dataset(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    opts: Optional[ConvertOptions] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    workers: int = 1,
) -> ConvertResult:
    """Convert `source` into the dataset `dest` (a .zip or new/empty folder), atomically.

    Nothing is left at `dest` if any image fails; `UserError` explains what to fix. `workers > 1`
    decodes and encodes in that many processes (the output is identical).
    """
    opts = opts or ConvertOptions()
    opts.validate()
    dest = Path(dest)
    empty_dir = check_dest(dest)
    src = open_source(source, opts)
    try:
        items = src.items[: opts.max_images] if opts.max_images else src.items
        conv = Converter(opts)  # checks sizes and collects warnings in this process
        labels: list[list[Any]] = []
        n_unlabelled = 0
        is_zip = dest.suffix.lower() == ".zip"
        with atomic_path(dest, overwrite=empty_dir) as tmp, contextlib.ExitStack() as stack:
            zf = zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) if is_zip else None
            try:
                if zf is None:
                    tmp.mkdir()

                def write(name: str, data: bytes) -> None:
                    if zf is not None:
                        zf.writestr(name, data)
                    else:
                        p = tmp / name
                        p.parent.mkdir(parents=True, exist_ok=True)
                        p.write_bytes(data)

                stream = _converted_stream(source, src, items, opts, workers, stack)
                bar = tqdm(stream, total=len(items), unit="img", desc="converting", disable=not progress,
                           mininterval=0.5, file=sys.stderr)
                n = 0
                for (png, size, mode, stats), item in zip(bar, items):  # bar first: it counts the last image too
                    for key in ("alpha_dropped", "sixteen_bit", "too_small"):
                        getattr(conv.stats, key).extend(getattr(stats, key))
                    if png is None:
                        continue
                    conv.check(size, mode, item.name)
                    fname = archive_name(n)
                    write(fname, png)
                    if item.label is None:
                        n_unlabelled += 1
                    else:
                        labels.append([fname, item.label])
                    n += 1
                bar.close()
                if n == 0:
                    raise UserError(f"no images were written from {src.description} (all too small for center-crop-wide?)")
                meta: dict[str, Any] = {"labels": labels if n_unlabelled == 0 else None}
                if n_unlabelled == 0 and src.class_names is not None:
                    meta["class_names"] = src.class_names
                write(LABELS_FILE, json.dumps(meta).encode("utf-8"))
            finally:
                if zf is not None:
                    zf.close()
    finally:
        src.close()

    assert conv.first is not None
    _, (w, h), mode = conv.first
    result = ConvertResult(dest, n, [1 if mode == "L" else 3, h, w], n_unlabelled == 0, src.skipped, conv.stats, src.class_names)
    st = conv.stats
    if src.skipped:
        log(f"skipped {len(src.skipped)} non-image file(s), e.g. '{src.skipped[0]}'")
    if st.alpha_dropped:
        log(f"warning: dropped the alpha channel of {len(st.alpha_dropped)} image(s), e.g. '{st.alpha_dropped[0]}'")
    if st.sixteen_bit:
        log(f"warning: scaled {len(st.sixteen_bit)} 16-bit image(s) to 8 bits, e.g. '{st.sixteen_bit[0]}'")
    if st.too_small:
        log(f"warning: dropped {len(st.too_small)} image(s) too small for center-crop-wide, e.g. '{st.too_small[0]}'")
    if 0 < n_unlabelled < n:
        log(f"warning: {n_unlabelled} of {n} images have no label; wrote {{\"labels\": null}}")
    if src.labels_note and result.labelled:
        log(src.labels_note)
    return result


# ------------------------------------------------------------------------------------------------
# Embedded MNIST


def ensure_embedded_mnist(dest: str | os.PathLike | None = DEFAULT_MNIST_ZIP, resolution: int = 32) -> Path:
    """Return the path of the labelled MNIST training set as a dataset zip, building it once.

    Builds 60,000 grayscale `resolution` x `resolution` images (28x28 padded to 32x32, then
    box-resized if `resolution != 32`) from `data/mnist` after verifying its SHA-256 checksums.
    An existing `dest` is checked (image count, size) and reused, never overwritten. `dest=None`
    (or the default with another resolution) means `datasets/mnist<resolution>.zip` in the repo.
    """
    if dest is None or (Path(dest) == DEFAULT_MNIST_ZIP and resolution != 32):
        dest = REPO_ROOT / "datasets" / f"mnist{resolution}.zip"
    dest = Path(dest)
    if dest.exists():
        _check_existing_mnist(dest, resolution)
        return dest
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    verify_checksums(EMBEDDED_MNIST_DIR, files, required=True)
    opts = ConvertOptions(resolution=None if resolution == 32 else resolution)
    try:
        convert_dataset(EMBEDDED_MNIST_DIR / files[0], dest, opts)
    except UserError:
        if dest.exists():  # another process built it at the same time
            _check_existing_mnist(dest, resolution)
            return dest
        raise
    return dest


def _check_existing_mnist(dest: Path, resolution: int) -> None:
    try:
        with zipfile.ZipFile(dest) as zf:
            names = zf.namelist()
            pngs = [n for n in names if n.endswith(".png")]
            with PIL.Image.open(io.BytesIO(zf.read(pngs[0]))) as img:
                size, mode = img.size, img.mode
            ok = len(pngs) == MNIST_TRAIN_COUNT and LABELS_FILE in names and size == (resolution, resolution) and mode == "L"
    except (zipfile.BadZipFile, OSError, IndexError, KeyError):
        ok = False
    if not ok:
        raise UserError(
            f"'{dest}' exists but is not the {MNIST_TRAIN_COUNT}-image {resolution}x{resolution} MNIST dataset; "
            "delete it so it can be rebuilt"
        )


# ------------------------------------------------------------------------------------------------
# Command line


@click.command()
@click.option("--source", required=True, metavar="PATH", help="Folder, .zip, MNIST *-images-idx3-ubyte.gz or cifar-10-python.tar.gz.")
@click.option("--dest", required=True, metavar="PATH", help="Output .zip, or a new or empty folder.")
@click.option("--max-images", type=click.IntRange(min=1), help="Convert at most this many images (the first ones).")
@click.option("--resolution", type=int, metavar="N", help="Square output side (a power of two).")
@click.option("--transform", type=click.Choice(["center-crop", "center-crop-wide"]), help="Crop before resizing.")
@click.option("--crop", metavar="X,Y,W,H", help="Explicit crop box, applied first (CelebA 89x109: 17,27,54,54).")
@click.option("--resize-filter", type=click.Choice(["box", "lanczos"]), default="box", show_default=True)
@click.option("--width", type=int, help="Output width (official-tool option; same as --resolution).")
@click.option("--height", type=int, help="Output height (must equal the width, except with center-crop-wide).")
@click.option("--labels", type=click.Choice(["auto", "json", "folders", "none"]), default="auto", show_default=True,
              help="auto: dataset.json if present, else <class>/<image> folders, else none.")
@click.option("--channels", type=click.Choice(["1", "3"]), help="Force grayscale (1) or RGB (3) output.")
@click.option("--mnist-pad/--no-mnist-pad", default=True, show_default=True, help="Pad MNIST 28x28 to 32x32.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes that decode and encode images (the output is the same).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@cli_main
def main(
    source: str,
    dest: str,
    max_images: Optional[int],
    resolution: Optional[int],
    transform: Optional[str],
    crop: Optional[str],
    resize_filter: str,
    width: Optional[int],
    height: Optional[int],
    labels: str,
    channels: Optional[str],
    mnist_pad: bool,
    workers: int,
    progress: bool,
) -> None:
    """Convert images into a dataset for train.py (a .zip or folder of PNGs plus dataset.json).

    \b
    Examples:
      python dataset_tool.py --source=data/mnist/train-images-idx3-ubyte.gz --dest=datasets/mnist32.zip
      python dataset_tool.py --source=celeba.zip --dest=datasets/celeba64.zip --crop=17,27,54,54 --resolution=64
      python dataset_tool.py --source=cifar10_train.zip --dest=datasets/cifar10.zip
    """
    side = resolution if resolution is not None else width
    if resolution is not None and width is not None and width != resolution:
        raise UserError(f"--width {width} and --resolution {resolution} disagree; give one of them")
    if transform != "center-crop-wide":
        if height is not None and side is not None and height != side:
            raise UserError(f"output must be square: --height {height} differs from the width {side} (only center-crop-wide allows that)")
        if side is None:
            side = height
        height = None
    opts = ConvertOptions(
        max_images=max_images,
        resolution=side,
        height=height,
        transform=transform,
        crop=parse_crop(crop) if crop is not None else None,
        resize_filter=resize_filter,
        channels=int(channels) if channels else None,
        labels=labels,
        mnist_pad=mnist_pad,
    )
    result = convert_dataset(source, dest, opts, progress=progress, workers=workers)
    c, h, w = result.image_shape
    print(
        f"wrote {result.num_images} images ({w}x{h}, {c} channel{'s' if c > 1 else ''}, "
        f"{'labelled' if result.labelled else 'unlabelled'}) to {result.dest}"
    )


if __name__ == "__main__":
    main()
