"""Reading image datasets made by `dataset_tool.py` (or by the official StyleGAN2-ADA tool).

A dataset is a folder or a `.zip` holding image files (normally uncompressed PNGs laid out as
`NNNNN/imgNNNNNNNN.png`) plus an optional `dataset.json` at its root:

    {"labels": [["00000/img00000000.png", 3], ...]}      # one integer class per image
    {"labels": [["00000/img00000000.png", [0.1, 2.0]], ...]}  # or one float vector per image
    {"labels": null}                                      # unlabelled

`ImageFolderDataset[i]` returns `(image, label)`: `image` is a uint8 array `[C, H, W]` (C = 1 or
3) and `label` a float32 array `[label_dim]` (one-hot for integer classes, the vector itself for
float labels, shape `[0]` when the dataset is unlabelled or `use_labels=False`).

Index mapping: with `max_size=M` smaller than the number of images `N`, a random subset of `M`
images is kept (a permutation drawn from `numpy.random.RandomState(random_seed)`, its first `M`
entries, sorted). With `xflip=True` the kept list is repeated twice and the second copy is
mirrored left-right, so `len(ds) = 2 * min(N, M)`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from dnnlib.util import EasyDict, UserError

LABELS_FILE = "dataset.json"


def image_extensions() -> set[str]:
    """Lower-case file extensions (with the dot) that Pillow can decode, e.g. {'.png', '.jpg'}."""
    PIL.Image.init()
    return {ext.lower() for ext in PIL.Image.registered_extensions()}


def _file_ext(name: str) -> str:
    """'a/b.PNG' -> '.png'; '' when the base name has no dot (or only a leading one)."""
    base = name[name.rfind("/") + 1:]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def parse_labels_json(data: bytes | str, where: str) -> dict[str, Any] | None:
    """Parse the text of a `dataset.json`; return {relpath: label} or None for `{"labels": null}`.

    Each label must be a non-negative integer or a non-empty list of numbers (all lists the same
    length). Anything else raises `UserError` naming `where`.
    """
    fix = 'expected {"labels": [["relative/path.png", <int class or [floats]>], ...]} or {"labels": null}'
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{where} is not valid JSON ({err}); {fix}") from None
    if not isinstance(obj, dict) or "labels" not in obj:
        raise UserError(f"{where} has no 'labels' key; {fix}")
    entries = obj["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise UserError(f"{where}: 'labels' is a {type(entries).__name__}, not a list; {fix}")
    labels: dict[str, Any] = {}
    vec_len: int | None = None
    for k, entry in enumerate(entries):
        if (
            not isinstance(entry, (list, tuple))
            or len(entry) != 2
            or not isinstance(entry[0], str)
        ):
            raise UserError(f"{where}: labels entry #{k} is {entry!r}, not [path, label]; {fix}")
        name, label = entry[0].replace("\\", "/"), entry[1]
        if isinstance(label, bool) or not isinstance(label, (int, list)):
            raise UserError(f"{where}: label of '{name}' is {label!r}; {fix}")
        if isinstance(label, int):
            if label < 0:
                raise UserError(f"{where}: label of '{name}' is negative ({label}); classes start at 0")
            kind_len = -1
        else:
            if not label or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in label):
                raise UserError(f"{where}: label of '{name}' is {label!r}; a vector label must be a non-empty list of numbers")
            kind_len = len(label)
        if vec_len is None:
            vec_len = kind_len
        elif vec_len != kind_len:
            raise UserError(f"{where}: label of '{name}' ({label!r}) does not match the kind/length of the first label")
        if name in labels:
            raise UserError(f"{where}: '{name}' is listed twice; give each image one label")
        labels[name] = label
    return labels


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images and labels from a dataset folder or `.zip` (see the module docstring).

    Args:
        path: the `.zip` file or folder.
        resolution: expected image side; a different one raises `UserError` (None: accept).
        use_labels: read `dataset.json` labels (otherwise labels have shape `[0]`).
        max_size: keep a random subset of at most this many images (None: all).
        xflip: append a left-right mirrored copy of every image (doubles the length).
        random_seed: seed of the subset permutation.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int | None = None,
        use_labels: bool = False,
        max_size: int | None = None,
        xflip: bool = False,
        random_seed: int = 0,
    ) -> None:
        self._path = str(path)
        self._use_labels = bool(use_labels)
        self._zipfile: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

        if os.path.isdir(self._path):
            self._type = "dir"
            names = []
            for root, _dirs, files in os.walk(self._path):
                for f in files:
                    names.append(os.path.relpath(os.path.join(root, f), self._path).replace(os.sep, "/"))
        elif os.path.isfile(self._path) and _file_ext(self._path) == ".zip":
            self._type = "zip"
            try:
                names = [n for n in self._get_zipfile().namelist() if not n.endswith("/")]
            except (zipfile.BadZipFile, OSError) as err:
                raise UserError(f"cannot read dataset zip '{self._path}' ({err}); rebuild it with dataset_tool.py") from None
        elif os.path.exists(self._path):
            raise UserError(f"dataset path '{self._path}' is neither a folder nor a .zip file; make one with dataset_tool.py")
        else:
            raise UserError(f"dataset path '{self._path}' does not exist; make one with dataset_tool.py")

        exts = image_extensions()
        self._all_names = set(names)
        self._image_fnames = sorted(n for n in names if _file_ext(n) in exts)
        if not self._image_fnames:
            raise UserError(f"no image files found in dataset '{self._path}'; make one with dataset_tool.py")
        self._name = Path(self._path.rstrip("/\\")).stem if self._type == "zip" else Path(os.path.abspath(self._path)).name

        # Shape from the first image.
        first = self._load_raw_image(0, check=False)
        if first.shape[1] != first.shape[2]:
            raise UserError(
                f"dataset '{self._path}': images must be square, but '{self._image_fnames[0]}' is "
                f"{first.shape[2]}x{first.shape[1]}; convert with dataset_tool.py --resolution ..."
            )
        self._raw_shape = [len(self._image_fnames)] + list(first.shape)
        if resolution is not None and first.shape[1] != resolution:
            raise UserError(
                f"dataset '{self._path}' has {first.shape[1]}x{first.shape[2]} images, not the requested "
                f"resolution {resolution}; rebuild it with dataset_tool.py --resolution {resolution}"
            )

        # Labels.
        self._raw_labels = self._load_raw_labels() if self._use_labels else None
        if self._raw_labels is None:
            self._raw_labels = np.zeros([len(self._image_fnames), 0], dtype=np.float32)
        if self._raw_labels.dtype == np.int64:
            self._label_shape = [int(self._raw_labels.max()) + 1]
        else:
            self._label_shape = list(self._raw_labels.shape[1:])

        # Index mapping: random subset, then mirroring.
        self._raw_idx = np.arange(len(self._image_fnames), dtype=np.int64)
        if max_size is not None:
            if int(max_size) < 1:
                raise UserError(f"max_size must be at least 1, got {max_size}")
            if len(self._raw_idx) > max_size:
                perm = self._raw_idx.copy()
                np.random.RandomState(random_seed % (1 << 31)).shuffle(perm)
                self._raw_idx = np.sort(perm[: int(max_size)])
        self._xflip = np.zeros(len(self._raw_idx), dtype=np.uint8)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, np.ones_like(self._xflip)])

    # -- file access ------------------------------------------------------------------------------

    def _get_zipfile(self) -> zipfile.ZipFile:
        # One handle per process: a handle inherited through fork shares the file offset.
        if self._zipfile is None or self._zip_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self._path)
            self._zip_pid = os.getpid()
        return self._zipfile

    def _read_bytes(self, fname: str) -> bytes:
        if self._type == "dir":
            with open(os.path.join(self._path, fname), "rb") as f:
                return f.read()
        return self._get_zipfile().read(fname)

    def close(self) -> None:
        """Close the zip handle (it is reopened on demand)."""
        if self._zipfile is not None and self._zip_pid == os.getpid():
            self._zipfile.close()
        self._zipfile = None
        self._zip_pid = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zipfile"] = None
        state["_zip_pid"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _load_raw_image(self, raw_idx: int, check: bool = True) -> np.ndarray:
        fname = self._image_fnames[raw_idx]
        try:
            data = self._read_bytes(fname)
            with PIL.Image.open(io.BytesIO(data)) as img:
                img.load()
                if img.mode not in ("L", "RGB"):
                    raise UserError(
                        f"'{fname}' in dataset '{self._path}' has mode {img.mode} (need 8-bit grayscale or RGB); "
                        "convert the dataset with dataset_tool.py"
                    )
                image = np.array(img)  # a writable copy (torch warns about read-only arrays)
        except UserError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise UserError(f"cannot decode '{fname}' in dataset '{self._path}' ({err}); rebuild the dataset with dataset_tool.py") from None
        image = image[np.newaxis] if image.ndim == 2 else image.transpose(2, 0, 1)
        if check and list(image.shape) != self._raw_shape[1:]:
            raise UserError(
                f"'{fname}' in dataset '{self._path}' has shape {list(image.shape)} (C,H,W) but the first image "
                f"'{self._image_fnames[0]}' has {self._raw_shape[1:]}; all images must match: convert with dataset_tool.py"
            )
        return np.ascontiguousarray(image)

    def _load_raw_labels(self) -> np.ndarray | None:
        where = f"'{LABELS_FILE}' in dataset '{self._path}'"
        if LABELS_FILE not in self._all_names:
            return None
        labels = parse_labels_json(self._read_bytes(LABELS_FILE), where)
        if labels is None:
            return None
        missing_files = sorted(set(labels) - set(self._image_fnames))
        if missing_files:
            raise UserError(
                f"{where} names {len(missing_files)} file(s) that are not images of the dataset, e.g. "
                f"'{missing_files[0]}'; fix dataset.json or rebuild with dataset_tool.py"
            )
        unlabelled = [f for f in self._image_fnames if f not in labels]
        if unlabelled:
            raise UserError(
                f"{where} has no label for {len(unlabelled)} image(s), e.g. '{unlabelled[0]}'; "
                'label every image or write {"labels": null}'
            )
        values = [labels[f] for f in self._image_fnames]
        if isinstance(values[0], int):
            return np.asarray(values, dtype=np.int64)
        return np.asarray(values, dtype=np.float32)

    # -- public API -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._raw_idx.size)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        image = self._load_raw_image(int(self._raw_idx[idx]))
        if self._xflip[idx]:
            image = np.ascontiguousarray(image[:, :, ::-1])
        return image, self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """Label of item `idx` as float32 `[label_dim]` (one-hot for integer classes)."""
        label = self._raw_labels[self._raw_idx[idx]]
        if self._raw_labels.dtype == np.int64:
            onehot = np.zeros(self._label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.astype(np.float32).copy()

    def get_details(self, idx: int) -> EasyDict:
        """`raw_idx` (index into the sorted file list), `xflip` and `raw_label` of item `idx`."""
        return EasyDict(
            raw_idx=int(self._raw_idx[idx]),
            xflip=bool(self._xflip[idx]),
            raw_label=self._raw_labels[self._raw_idx[idx]].copy(),
            fname=self._image_fnames[int(self._raw_idx[idx])],
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        return self._path

    @property
    def image_shape(self) -> list[int]:
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        return self.image_shape[1]

    @property
    def label_shape(self) -> list[int]:
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        return self.label_shape[0]

    @property
    def has_labels(self) -> bool:
        return self.label_dim != 0

    @property
    def has_onehot_labels(self) -> bool:
        return self._raw_labels.dtype == np.int64
