"""Judge one trial: its FID summary, and whether it failed (NaN or collapse).

The paper (Bhatia et al., MNIST/DCGAN protocol) keeps each trial's best score and counts a trial as
failed when it produces NaN or never leaves the collapsed state. From a trial's run folders
(`renyi.runs.TrialHistory`) this module decides that with three checks, in this order:

1. **NaN** -- any non-finite value of a ``Loss/*`` statistic in ``stats.jsonl``, any non-finite FID,
   or a non-zero exit of ``train.py`` whose output mentions NaN.
2. **Collapse by FID** -- the FID never improves on its kimg-0 value by more than
   ``fid_improve_frac``: ``min_{k > 0} FID_k > (1 - fid_improve_frac) * FID_0``. Needs an FID at
   kimg 0 and at least one later one.
3. **Collapse by diversity** -- every sample grid after initialisation (``fakes<kimg>.png``) has
   near-zero diversity. The diversity of a grid of T tiles x_t (pixel values 0..255) is the
   per-pixel standard deviation across tiles, averaged over pixels,
   ``div = mean_p std_t x_t[p]``; a grid is collapsed when ``div(fakes) < min_diversity_ratio *
   div(reals)`` (``reals.png`` of the same run is the reference). It catches generators that draw
   (nearly) the same image for every z, or a blank canvas. It needs the tile size (the training
   resolution from ``training_options.json``) and grids whose sides are multiples of it.

A non-zero exit without NaN is a failure too ("exit code N: <last output line>"). A trial with no
FID recorded (``--metrics=none``) is judged on checks 1 and 3 only; its FID fields are None.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from renyi.runs import TrialHistory, image_resolution, pick_fid_metric

NAN_WORD_RE = re.compile(r"\bnan\b", re.IGNORECASE)


@dataclass(frozen=True)
class FailureCriteria:
    """Thresholds of the collapse checks (see the module docstring)."""

    fid_improve_frac: float = 0.05
    min_diversity_ratio: float = 0.1


@dataclass
class TrialVerdict:
    """Per-trial summary: FID figures (None without FID) and the failure decision."""

    fid_metric: Optional[str] = None
    fid_init: Optional[float] = None  # FID at kimg 0
    best_fid: Optional[float] = None
    best_kimg: Optional[int] = None
    final_fid: Optional[float] = None
    final_kimg: Optional[int] = None
    num_evals: int = 0
    diversity_final: Optional[float] = None  # diversity ratio fakes/reals of the newest grid
    failed: bool = False
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def grid_tiles(png: Path, tile: int) -> Optional[np.ndarray]:
    """Cut a sample grid into its ``tile x tile`` images: float32 ``[T, tile, tile, C]``.

    None when the grid's sides are not multiples of ``tile`` or the file is unreadable.
    """
    try:
        with Image.open(png) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "RGB") else im, dtype=np.float32)
    except (OSError, ValueError):
        return None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    if tile <= 0 or h % tile or w % tile:
        return None
    gh, gw = h // tile, w // tile
    return arr.reshape(gh, tile, gw, tile, c).transpose(0, 2, 1, 3, 4).reshape(gh * gw, tile, tile, c)


def grid_diversity(tiles: np.ndarray) -> float:
    """``mean_p std_t tiles[t, p]``: per-pixel std across tiles, averaged over pixels (0..255)."""
    if tiles.shape[0] < 2:
        return 0.0
    return float(tiles.astype(np.float64).std(axis=0).mean())


def diversity_ratio(fakes_png: Path, reals_png: Path, tile: int) -> Optional[float]:
    """``grid_diversity(fakes) / grid_diversity(reals)``; None when either grid cannot be tiled."""
    fakes = grid_tiles(fakes_png, tile)
    reals = grid_tiles(reals_png, tile)
    if fakes is None or reals is None:
        return None
    ref = grid_diversity(reals)
    if ref <= 0:
        return None
    return grid_diversity(fakes) / ref


def nonfinite_stat(stats: list[dict[str, Any]]) -> Optional[str]:
    """Name and kimg of the first ``Loss/*`` statistic whose mean is NaN or infinite, else None."""
    for record in stats:
        for key, value in record.items():
            if not key.startswith("Loss/"):
                continue
            mean = value.get("mean") if isinstance(value, dict) else value
            if isinstance(mean, (int, float)) and not math.isfinite(float(mean)):
                kimg = record.get("Progress/kimg", {})
                kimg = kimg.get("mean") if isinstance(kimg, dict) else kimg
                return f"{key}={mean} at kimg {kimg}"
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def judge_trial(
    hist: TrialHistory,
    metric: Optional[str] = None,
    criteria: FailureCriteria = FailureCriteria(),
    exit_code: Optional[int] = None,
    output_tail: str = "",
) -> TrialVerdict:
    """Summarise a trial and decide whether it failed (rules in the module docstring).

    ``exit_code``/``output_tail``: the last ``train.py`` exit status and the end of its output, when
    the caller ran it (the sweep does); None means unknown (only the run folders are judged).
    """
    v = TrialVerdict()
    v.fid_metric = pick_fid_metric(set(hist.metrics), prefer=metric)
    series = hist.metrics.get(v.fid_metric, []) if v.fid_metric else []
    v.num_evals = len(series)
    fid_nan = None
    if series:
        finite = [(k, x) for k, x in series if math.isfinite(x)]
        bad = [(k, x) for k, x in series if not math.isfinite(x)]
        if bad:
            fid_nan = f"{v.fid_metric}={bad[0][1]} at kimg {bad[0][0]}"
        v.final_kimg, v.final_fid = series[-1]
        if finite:
            v.best_kimg, v.best_fid = min(finite, key=lambda kx: (kx[1], kx[0]))
        init = [x for k, x in series if k == 0]
        v.fid_init = init[0] if init else None

    tile = image_resolution(hist.options)
    if tile and hist.reals is not None:
        ratios = []
        for k in sorted(hist.fakes):
            if k == 0 and len(hist.fakes) > 1:
                continue  # the kimg-0 grid shows the initial generator, not a training outcome
            r = diversity_ratio(hist.fakes[k], hist.reals, tile)
            if r is not None:
                ratios.append(r)
        if ratios:
            v.diversity_final = ratios[-1]
            div_collapsed = all(r < criteria.min_diversity_ratio for r in ratios)
        else:
            div_collapsed = False
    else:
        div_collapsed = False

    log_tail = (output_tail or "") + "\n" + hist.log_text()
    stat_nan = nonfinite_stat(hist.stats)
    if stat_nan:
        v.failed, v.reason = True, f"nan: {stat_nan}"
    elif fid_nan:
        v.failed, v.reason = True, f"nan: {fid_nan}"
    elif exit_code not in (None, 0) and NAN_WORD_RE.search(log_tail):
        v.failed, v.reason = True, f"nan: train.py exited with code {exit_code}: {_last_line(log_tail)}"
    elif exit_code not in (None, 0):
        v.failed, v.reason = True, f"exit code {exit_code}: {_last_line(log_tail)}"
    elif (
        v.fid_init is not None
        and v.fid_init > 0
        and any(k > 0 for k, _ in series)
        and min((x for k, x in series if k > 0), default=math.inf)
        > (1.0 - criteria.fid_improve_frac) * v.fid_init
    ):
        best_later = min(x for k, x in series if k > 0)
        v.failed, v.reason = True, (
            f"collapse: {v.fid_metric} never below {1 - criteria.fid_improve_frac:.2f} x its kimg-0 "
            f"value ({best_later:.2f} vs {v.fid_init:.2f})"
        )
    elif div_collapsed:
        v.failed, v.reason = True, (
            f"collapse: sample diversity below {criteria.min_diversity_ratio} x reals in every grid "
            f"(last {v.diversity_final:.3f})"
        )
    return v
