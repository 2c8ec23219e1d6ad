"""Feature statistics of image sets (float64), and their on-disk cache for datasets.

`FeatureStats` accumulates detector features the way the official metrics do:

    N = number of items,  mean = (1/N) sum_i x_i,  cov = (1/N) sum_i x_i x_i^T - mean mean^T

(the *biased* covariance; pytorch-fid and torch-fidelity divide by N - 1 instead), with the sums
kept in float64. It can also keep every feature vector (float32) for KID and precision/recall,
and, while N <= d, keeps the vectors for the covariance factor (X - mean) / sqrt(N) that lets the
Fréchet distance skip the d x d eigendecompositions.

Dataset statistics are cached in `<cache>/gan-metrics/<dataset>-<detector>-<key>.npz` (written
atomically, plain numpy arrays, no pickle). The key is the md5 of a JSON record of

- the dataset's *content*: for a `.zip`, the sha256 of its central directory (every member's name,
  CRC-32 and size: a change to any image changes it, while moving or renaming the zip does not);
  for a folder, the sha256 of every file's relative path, size and modification time (touching a
  file invalidates the cache);
- every setting that changes the result: resolution, xflip (mirror), max_size and its random
  seed, the maximum number of items, the capture mode, and the detector's identity (weights
  digest, precision, implementation version).

A cache hit reads only the zip's directory (or the folder listing) and the `.npz`: no image is
decoded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch

from dnnlib.util import UserError, atomic_write_bytes, make_cache_dir_path

CACHE_FORMAT = 1


class FeatureStats:
    """Streamed statistics of feature vectors (see the module docstring).

    Args:
        capture_all: keep every vector (float32) for `get_all()`.
        capture_mean_cov: accumulate float64 sums for `get_mean_cov()`.
        max_items: stop accepting vectors after this many (None: no limit).
    """

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False, max_items: Optional[int] = None) -> None:
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.max_items = max_items
        self.num_items = 0
        self.num_features: Optional[int] = None
        self._all: list[np.ndarray] = []
        self._few: Optional[list[np.ndarray]] = [] if capture_mean_cov else None  # while N <= d
        self._sum: Optional[np.ndarray] = None
        self._sum_outer: Optional[np.ndarray] = None

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def remaining(self) -> Optional[int]:
        return None if self.max_items is None else max(self.max_items - self.num_items, 0)

    def append(self, x: np.ndarray | torch.Tensor) -> None:
        """Add vectors `x` `[n, d]` (beyond `max_items` they are dropped)."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"features must be [n, d], got shape {x.shape}")
        if self.num_features is None:
            self.num_features = x.shape[1]
        elif x.shape[1] != self.num_features:
            raise ValueError(f"features have {x.shape[1]} dims, earlier ones {self.num_features}")
        rem = self.remaining()
        if rem is not None:
            x = x[:rem]
        if x.shape[0] == 0:
            return
        self.num_items += x.shape[0]
        if self.capture_all:
            self._all.append(x.copy())
        if self.capture_mean_cov:
            if self._few is not None:
                self._few.append(x.copy())
                if self.num_items > self.num_features:
                    self._few = None  # full-rank covariance: no factor needed
            x64 = x.astype(np.float64)
            if self._sum is None:
                self._sum = np.zeros(x.shape[1], np.float64)
                self._sum_outer = np.zeros((x.shape[1], x.shape[1]), np.float64)
            self._sum += x64.sum(axis=0)
            self._sum_outer += x64.T @ x64

    def get_all(self) -> np.ndarray:
        """All captured vectors, float32 `[N, d]`."""
        if not self.capture_all:
            raise RuntimeError("FeatureStats was created without capture_all")
        if not self._all:
            return np.zeros((0, self.num_features or 0), np.float32)
        if len(self._all) > 1:
            self._all = [np.concatenate(self._all, axis=0)]
        return self._all[0]

    def get_mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """float64 mean `[d]` and biased covariance `[d, d]` (see the module docstring)."""
        if not self.capture_mean_cov:
            raise RuntimeError("FeatureStats was created without capture_mean_cov")
        if self.num_items == 0 or self._sum is None:
            raise UserError("no feature vectors were collected (empty image set?)")
        mean = self._sum / self.num_items
        cov = self._sum_outer / self.num_items - np.outer(mean, mean)
        return mean, (cov + cov.T) / 2

    def get_cov_factor(self) -> Optional[np.ndarray]:
        """F = (X - mean) / sqrt(N), `[d, N]` float64, so that the biased covariance is F F^T;
        available while N <= d (else None). Used by the Fréchet distance for rank-deficient sets."""
        if not self.capture_mean_cov or self._few is None or self.num_items == 0:
            return None
        x = np.concatenate(self._few, axis=0).astype(np.float64)
        mean = self._sum / self.num_items
        return ((x - mean) / np.sqrt(self.num_items)).T

    # -- serialisation ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays: dict[str, Any] = dict(
            format=np.int64(CACHE_FORMAT), num_items=np.int64(self.num_items),
            num_features=np.int64(self.num_features or 0),
            capture_all=np.bool_(self.capture_all), capture_mean_cov=np.bool_(self.capture_mean_cov),
            max_items=np.int64(-1 if self.max_items is None else self.max_items),
        )
        if self.capture_all:
            arrays["all"] = self.get_all()
        if self.capture_mean_cov and self._sum is not None:
            arrays["sum"] = self._sum
            arrays["sum_outer"] = self._sum_outer
            if self._few is not None:
                arrays["few"] = np.concatenate(self._few, axis=0)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "FeatureStats":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["format"]) != CACHE_FORMAT:
                raise ValueError("unknown feature-stats format")
            max_items = int(z["max_items"])
            s = cls(capture_all=bool(z["capture_all"]), capture_mean_cov=bool(z["capture_mean_cov"]),
                    max_items=None if max_items < 0 else max_items)
            s.num_items = int(z["num_items"])
            s.num_features = int(z["num_features"]) or None
            if s.capture_all:
                s._all = [z["all"]]
            if s.capture_mean_cov and "sum" in z:
                s._sum = z["sum"]
                s._sum_outer = z["sum_outer"]
                s._few = [z["few"]] if "few" in z else None
        return s


# ------------------------------------------------------------------------------------------------
# Dataset identity and the cache.


def dataset_content_digest(path: str | os.PathLike) -> str:
    """sha256 of a dataset's content listing (see the module docstring); reads no image."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        try:
            with zipfile.ZipFile(p) as zf:
                for info in sorted(zf.infolist(), key=lambda i: i.filename):
                    h.update(f"{info.filename}\0{info.CRC}\0{info.file_size}\n".encode())
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"cannot read dataset zip '{p}' ({err}); rebuild it with dataset_tool.py") from None
        return "zip-" + h.hexdigest()
    if p.is_dir():
        entries = []
        for root, _dirs, files in os.walk(p):
            for f in files:
                full = os.path.join(root, f)
                st = os.stat(full)
                entries.append(f"{os.path.relpath(full, p)}\0{st.st_size}\0{st.st_mtime_ns}\n")
        for e in sorted(entries):
            h.update(e.encode())
        return "dir-" + h.hexdigest()
    raise UserError(f"dataset path '{p}' does not exist; pass --data with a dataset zip or folder")


def dataset_name(dataset_kwargs: Mapping[str, Any]) -> str:
    p = str(dataset_kwargs.get("path", "dataset")).rstrip("/\\")
    return Path(p).stem if p.lower().endswith(".zip") else Path(p).name


def stats_cache_key(dataset_kwargs: Mapping[str, Any], detector_identity: str, **stats_kwargs: Any) -> dict[str, Any]:
    """The JSON-able record whose md5 names a dataset's cached statistics."""
    return dict(
        format=CACHE_FORMAT,
        content=dataset_content_digest(dataset_kwargs["path"]),
        resolution=dataset_kwargs.get("resolution"),
        xflip=bool(dataset_kwargs.get("xflip", False)),
        max_size=dataset_kwargs.get("max_size"),
        random_seed=dataset_kwargs.get("random_seed", 0) if dataset_kwargs.get("max_size") is not None else None,
        class_name=dataset_kwargs.get("class_name", "training.dataset.ImageFolderDataset"),
        detector=detector_identity,
        stats={k: stats_kwargs[k] for k in sorted(stats_kwargs)},
    )


def stats_cache_path(dataset_kwargs: Mapping[str, Any], detector_name: str, key: Mapping[str, Any]) -> Path:
    md5 = hashlib.md5(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Path(make_cache_dir_path("gan-metrics", f"{dataset_name(dataset_kwargs)}-{detector_name}-{md5}.npz"))


def load_cached_stats(path: Path) -> Optional[FeatureStats]:
    """The stats at `path`, or None when absent or unreadable (then they are recomputed)."""
    if not path.is_file():
        return None
    try:
        return FeatureStats.from_bytes(path.read_bytes())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def save_cached_stats(path: Path, stats: FeatureStats) -> None:
    atomic_write_bytes(path, stats.to_bytes())


def iter_batches(n: int, batch: int) -> Iterable[tuple[int, int]]:
    for start in range(0, n, batch):
        yield start, min(start + batch, n)
