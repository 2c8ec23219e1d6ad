"""A folder or `.zip` of image files made anywhere (e.g. another codebase's samples).

`ImageFiles(path)` lists every file Pillow can decode (recursively, sorted by relative path) and
returns each as a uint8 `[3, H, W]` array (grayscale, palette and RGBA images are converted to
RGB; alpha is dropped). Unlike the training datasets it needs no `dataset.json`, and images may
have different sizes (the detectors resize to their input size anyway).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image

from dnnlib.util import UserError


def _image_exts() -> set[str]:
    PIL.Image.init()
    return {e.lower() for e in PIL.Image.registered_extensions()}


class ImageFiles:
    """Images of a folder or zip in sorted order; `len()`, `[i] -> uint8 [3, H, W]`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        exts = _image_exts()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        if os.path.isdir(self.path):
            self._kind = "dir"
            names = []
            for root, _dirs, files in os.walk(self.path):
                for f in files:
                    names.append(os.path.relpath(os.path.join(root, f), self.path).replace(os.sep, "/"))
        elif os.path.isfile(self.path) and self.path.lower().endswith(".zip"):
            self._kind = "zip"
            try:
                names = [n for n in self._zipfile().namelist() if not n.endswith("/")]
            except (zipfile.BadZipFile, OSError) as err:
                raise UserError(f"--images: cannot read zip '{self.path}' ({err})") from None
        else:
            raise UserError(f"--images: '{self.path}' is neither a folder nor a .zip file of images")
        self.names = sorted(n for n in names if os.path.splitext(n)[1].lower() in exts)
        if not self.names:
            raise UserError(f"--images: no image files found in '{self.path}'")

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"] = None
        state["_zip_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, idx: int) -> np.ndarray:
        name = self.names[idx]
        try:
            if self._kind == "dir":
                data = Path(self.path, name).read_bytes()
            else:
                data = self._zipfile().read(name)
            with PIL.Image.open(io.BytesIO(data)) as img:
                arr = np.asarray(img.convert("RGB"))
        except (OSError, SyntaxError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise UserError(f"--images: cannot decode '{name}' in '{self.path}' ({err})") from None
        return np.ascontiguousarray(arr.transpose(2, 0, 1))
