"""Helpers for the training tests: a tiny real-MNIST dataset and tiny training configurations."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import PIL.Image

from dnnlib.util import EasyDict
from training import configs

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO_ROOT / "data" / "mnist"


def read_mnist(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n training digits [n, 28, 28] uint8 and labels [n] (reads only what it needs)."""
    with gzip.open(MNIST_DIR / "train-images-idx3-ubyte.gz") as f:
        raw = f.read(16 + n * 784)
    with gzip.open(MNIST_DIR / "train-labels-idx1-ubyte.gz") as f:
        lab = f.read(8 + n)
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, 28, 28)
    return images, np.frombuffer(lab, np.uint8, offset=8).astype(np.int64)


def make_tiny_mnist(dest: Path, n: int = 64, resolution: int = 16, labels: bool = True) -> Path:
    """A dataset zip (dataset_tool layout) of the first n real MNIST digits, padded to 32 and resized."""
    images, classes = read_mnist(n)
    entries = []
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, (img, cls) in enumerate(zip(images, classes)):
            padded = np.pad(img, 2)
            pil = PIL.Image.fromarray(padded, "L").resize((resolution, resolution), PIL.Image.BOX)
            buf = io.BytesIO()
            pil.save(buf, format="png")
            name = f"{i // 1000:05d}/img{i:08d}.png"
            zf.writestr(name, buf.getvalue())
            entries.append([name, int(cls)])
        zf.writestr("dataset.json", json.dumps({"labels": entries if labels else None}))
    return dest


def tiny_options(data: Path, run_dir: Path, *, loss: str = "ns", gen_kwargs: Optional[dict] = None, steps: int = 3,
                 batch: int = 8, batch_gpu: int = 4, steps_per_tick: int = 1, snap: int = 1, **overrides: Any) -> EasyDict:
    """training_loop kwargs for a tiny 16 px DCGAN run of `steps` steps."""
    kimg = steps * batch / 1000
    c = configs.build_config("dcgan", resolution=16, img_channels=1, batch=batch, batch_gpu=batch_gpu, kimg=kimg,
                             tick=steps_per_tick * batch / 1000, z_dim=16, cbase=8)
    c.pop("default_aug")
    c.loss_kwargs.generator_loss = loss
    c.loss_kwargs.generator_loss_kwargs = dict(gen_kwargs or {})
    opts = EasyDict(c)
    opts.update(
        run_dir=str(run_dir), training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path=str(data),
                                                       use_labels=False, max_size=None, xflip=False, resolution=16, random_seed=0),
        data_loader_kwargs=dict(num_workers=0), image_snapshot_ticks=snap, network_snapshot_ticks=snap, progress=False,
        grid_max=8,
    )
    opts.update(overrides)
    return opts
