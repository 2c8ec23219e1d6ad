"""Write synthetic run folders in the documented train.py layout (for the sweep/report tests).

Only files are written here (training_options.json, stats.jsonl, metric-*.jsonl, snapshots, sample
grids); the code under test reads them like it reads real runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

RES = 8  # tile size of the synthetic sample grids
GRID = 4  # tiles per side


def grid_png(path: Path, rng: np.random.Generator, collapsed: bool = False) -> None:
    """A GRID x GRID grid of RES x RES grayscale tiles: random ones, or one tile repeated."""
    if collapsed:
        tile = rng.integers(0, 256, size=(RES, RES), dtype=np.uint8)
        tiles = np.stack([tile] * (GRID * GRID))
    else:
        tiles = rng.integers(0, 256, size=(GRID * GRID, RES, RES), dtype=np.uint8)
    img = tiles.reshape(GRID, GRID, RES, RES).transpose(0, 2, 1, 3).reshape(GRID * RES, GRID * RES)
    Image.fromarray(img, mode="L").save(path)


def write_run(
    trial_dir: Path,
    number: int,
    *,
    total_kimg: int,
    kimgs: list[int],
    fids: Optional[dict[int, float]] = None,
    resume_kimg: Optional[int] = None,
    nan_at: Optional[int] = None,
    collapsed: bool = False,
    seed: int = 0,
    metric: str = "fid2k",
) -> Path:
    """One run folder ``<number:05d>-mnist32-dcgan`` with a tick and a snapshot at each kimg."""
    rng = np.random.default_rng(seed * 1000 + number)
    run = Path(trial_dir) / f"{number:05d}-mnist32-dcgan"
    run.mkdir(parents=True)
    resume = "noresume" if resume_kimg is None else str(Path(trial_dir) / f"00000-x/network-snapshot-{resume_kimg:06d}.pt")
    options = {
        "total_kimg": total_kimg,
        "resume_pkl": resume,
        "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "resolution": RES},
    }
    (run / "training_options.json").write_text(json.dumps(options))
    grid_png(run / "reals.png", rng)
    if resume_kimg is None:
        grid_png(run / "fakes_init.png", rng, collapsed=True)
    with open(run / "stats.jsonl", "w") as f:
        for k in kimgs:
            loss = float("nan") if nan_at is not None and k >= nan_at else 0.7
            f.write(json.dumps({"Progress/kimg": {"num": 1, "mean": float(k), "std": 0.0},
                                "Loss/G/loss": {"num": 10, "mean": loss, "std": 0.1},
                                "timestamp": 1.0e9 + k}) + "\n")  # fmt: skip
    for k in kimgs:
        (run / f"network-snapshot-{k:06d}.pt").write_bytes(b"not a real snapshot")
        if k > 0 or resume_kimg is not None:
            grid_png(run / f"fakes{k:06d}.png", rng, collapsed=collapsed)
    if fids:
        with open(run / f"metric-{metric}.jsonl", "w") as f:
            for k in kimgs:
                if k in fids:
                    f.write(json.dumps({"results": {metric: fids[k]}, "metric": metric, "total_time": 1.0,
                                        "total_time_str": "1s", "num_gpus": 1,
                                        "snapshot_pkl": f"network-snapshot-{k:06d}.pt", "timestamp": 1.0e9}) + "\n")  # fmt: skip
    return run
