"""Speed of dataset_tool conversion and of ImageFolderDataset reading, against plain-PIL baselines.

For each source (the embedded MNIST IDX, and the shared CIFAR-10 class-folder zip when present) it
converts the first `--images` images and times:

  convert   dataset_tool.convert_dataset (what `python dataset_tool.py` runs, no progress bar),
            in 1 process and with `--workers 2`
  baseline  the straightforward loop: PIL.Image.open on each source image (or fromarray for IDX),
            Pillow PNG save with compress_level=0, zipfile.writestr
  read      ImageFolderDataset through a torch DataLoader (batch 64), 0 and 2 workers
  baseline  a plain loop over the same zip: zf.read + PIL decode + numpy array

Prints one table (images/s and ratio = figure / baseline of the same stage, from wall time; plus
CPU seconds, workers included, and images per CPU second). The load average is printed too: on a
shared machine the wall-time figures are noisy.

Usage: .venv/bin/python bench/dataset_speed.py [--images 10000] [--shared ../shared/data]
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

import click
import numpy as np
import PIL.Image
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from dataset_tool import ConvertOptions, archive_name, convert_dataset  # noqa: E402
from training.dataset import ImageFolderDataset  # noqa: E402


CPU_SECONDS: list[float] = []  # CPU time (this process + reaped children) of each timed() call


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    """(fn(), wall seconds); also appends fn's CPU seconds, children included, to CPU_SECONDS."""
    c0, t0 = os.times(), time.perf_counter()
    n = fn()
    wall, c1 = time.perf_counter() - t0, os.times()
    CPU_SECONDS.append(sum(getattr(c1, k) - getattr(c0, k) for k in ("user", "system", "children_user", "children_system")))
    return n, wall


def baseline_convert_idx(src: Path, dest: Path, limit: int) -> int:
    raw = gzip.decompress(src.read_bytes())
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:limit]
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as out:
        for k, arr in enumerate(images):
            buf = io.BytesIO()
            PIL.Image.fromarray(np.pad(arr, 2)).save(buf, format="png", compress_level=0)
            out.writestr(archive_name(k), buf.getvalue())
    return len(images)


def baseline_convert_zip(src: Path, dest: Path, limit: int) -> int:
    with zipfile.ZipFile(src) as zf, zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as out:
        names = sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".png")))[:limit]
        for k, name in enumerate(names):
            img = PIL.Image.open(io.BytesIO(zf.read(name))).convert("RGB")
            buf = io.BytesIO()
            img.save(buf, format="png", compress_level=0)
            out.writestr(archive_name(k), buf.getvalue())
    return len(names)


def baseline_read(path: Path) -> int:
    total = 0
    with zipfile.ZipFile(path) as zf:
        for name in sorted(n for n in zf.namelist() if n.endswith(".png")):
            arr = np.asarray(PIL.Image.open(io.BytesIO(zf.read(name))))
            total += arr.shape[0] > 0
    return total


def loader_read(path: Path, workers: int) -> int:
    ds = ImageFolderDataset(path, use_labels=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, num_workers=workers, shuffle=False)
    return sum(int(x.shape[0]) for x, _c in loader)


@click.command()
@click.option("--images", type=click.IntRange(min=100), default=10000, show_default=True, help="Images per source.")
@click.option("--shared", type=click.Path(path_type=Path), default=REPO_ROOT.parent / "shared" / "data",
              show_default=True, help="Shared data folder (CIFAR-10 rows are skipped if absent).")
def main(images: int, shared: Path) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    sources = [("MNIST idx", REPO_ROOT / "data" / "mnist" / "train-images-idx3-ubyte.gz", baseline_convert_idx)]
    cifar = shared / "cifar10" / "cifar10_train_jpg_q75.zip"
    if cifar.is_file():
        sources.append(("CIFAR-10 jpg zip", cifar, baseline_convert_zip))
    else:
        print(f"(CIFAR-10 rows skipped: {cifar} not found)")
    load0 = os.getloadavg()
    rows: list[tuple[str, str, int, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, src, baseline in sources:
            out = Path(tmp) / f"{label.split()[0]}.zip"
            nb, tb = timed(lambda: baseline(src, Path(tmp) / "baseline.zip", images))
            cb = CPU_SECONDS[-1]
            for workers in (1, 2):
                dest = out if workers == 1 else Path(tmp) / f"{label.split()[0]}-w{workers}.zip"
                n, t = timed(lambda: convert_dataset(src, dest, ConvertOptions(max_images=images), progress=False,
                                                     log=lambda s: None, workers=workers).num_images)
                rows.append((label, f"convert: dataset_tool, {workers} proc", n, t, CPU_SECONDS[-1], tb / nb * n / t))
            rows.append((label, "convert: baseline PIL loop", nb, tb, cb, 1.0))
            nr, trb = timed(lambda: baseline_read(out))
            crb = CPU_SECONDS[-1]
            for workers in (0, 2):
                n2, t2 = timed(lambda: loader_read(out, workers))
                rows.append((label, f"read: DataLoader, {workers} workers", n2, t2, CPU_SECONDS[-1], (n2 / t2) / (nr / trb)))
            rows.append((label, "read: baseline zip+PIL loop", nr, trb, crb, 1.0))
    load1 = os.getloadavg()
    print(f"\ndataset speed ({images} images per source, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; load average {load0[0]:.1f} at start, {load1[0]:.1f} at end)")
    print(f"| {'source':<16} | {'stage':<30} | {'images':>7} | {'seconds':>8} | {'images/s':>9} | {'vs baseline':>11} "
          f"| {'CPU s':>6} | {'img/CPU-s':>9} |")
    print(f"|{'-' * 18}|{'-' * 32}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 13}|{'-' * 8}|{'-' * 11}|")
    for label, stage, n, t, cpu, ratio in rows:
        print(f"| {label:<16} | {stage:<30} | {n:>7} | {t:>8.2f} | {n / t:>9.0f} | {ratio:>10.2f}x "
              f"| {cpu:>6.2f} | {n / max(cpu, 1e-9):>9.0f} |")
    print("images/s and 'vs baseline' use wall time; CPU s counts this process and its workers "
          "(less sensitive to other jobs on the machine).")


if __name__ == "__main__":
    main()
