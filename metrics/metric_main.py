"""Metrics by name: the registry used by `train.py --metrics`, `calc_metrics.py` and the sweep.

Registered names (the official StyleGAN2-ADA ones):

| name | definition |
| --- | --- |
| `fid50k_full` | FID, all real images (no mirroring) vs 50,000 generated |
| `fid50k` | FID, the first 50,000 real items (mirroring kept) vs 50,000 generated |
| `kid50k_full` | KID, up to 1,000,000 real vs 50,000 generated, 100 subsets of at most 1,000 |
| `kid50k` | KID, 50,000 real (mirroring kept) vs 50,000 generated |
| `pr50k3_full` | precision/recall, up to 200,000 real vs 50,000 generated, k = 3 |
| `pr50k3` | precision/recall, 50,000 real (mirroring kept) vs 50,000 generated, k = 3 |
| `is50k` | Inception Score of 50,000 generated images, 10 splits |

Any size by pattern (N = digits, optionally followed by `k` for thousands):
`fid<N>[_full]` (e.g. `fid2k_full`, `fid10k`, `fid500_full`), `kid<N>[_full]` (`kid1k_full`),
`pr<N>k<K>[_full]` (N thousands of generated images, K neighbours: `pr1k3_full`), `is<N>` (`is1k`).
Each is the official definition with 50,000 replaced by N (for the non-`_full` variants also the
number of real images).

Result keys equal the metric name, except precision/recall (`<name>_precision`, `<name>_recall`)
and IS (`<name>_mean`, `<name>_std`). Each result also says which detector produced it
(`detector`) and at which precision (`precision`).
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any, Callable, Optional

import torch

from dnnlib.util import EasyDict, UserError, format_time
from metrics.frechet import compute_fid
from metrics.inception_score import compute_is
from metrics.kid import compute_kid
from metrics.pipeline import MetricOptions
from metrics.precision_recall import compute_pr

MetricFn = Callable[[MetricOptions], dict]

_registry: dict[str, MetricFn] = {}


def register_metric(fn: MetricFn) -> MetricFn:
    """Decorator: register `fn(opts) -> dict of results` under its function name."""
    _registry[fn.__name__] = fn
    return fn


# ------------------------------------------------------------------------------------------------
# Metric families, parameterised by size.


def _full(opts: MetricOptions) -> None:
    opts.dataset_kwargs.update(max_size=None, xflip=False)


def _legacy(opts: MetricOptions) -> None:
    opts.dataset_kwargs.update(max_size=None)


def fid_metric(name: str, num: int, full: bool) -> MetricFn:
    def run(opts: MetricOptions) -> dict:
        (_full if full else _legacy)(opts)
        return {name: compute_fid(opts, max_real=None if full else num, num_gen=num)}
    return run


def kid_metric(name: str, num: int, full: bool) -> MetricFn:
    def run(opts: MetricOptions) -> dict:
        (_full if full else _legacy)(opts)
        return {name: compute_kid(opts, max_real=1_000_000 if full else num, num_gen=num, num_subsets=100,
                                  max_subset_size=1000)}
    return run


def pr_metric(name: str, num: int, k: int, full: bool) -> MetricFn:
    def run(opts: MetricOptions) -> dict:
        (_full if full else _legacy)(opts)
        p, r, features = compute_pr(opts, max_real=200_000 if full else num, num_gen=num, nhood_size=k)
        opts.pr_features = features
        return {f"{name}_precision": p, f"{name}_recall": r}
    return run


def is_metric(name: str, num: int) -> MetricFn:
    def run(opts: MetricOptions) -> dict:
        _full(opts)
        mean, std = compute_is(opts, num_gen=num, num_splits=10)
        return {f"{name}_mean": mean, f"{name}_std": std}
    return run


_SIZE = r"(\d+)(k?)"
_PATTERNS: list[tuple[re.Pattern, Callable[[str, re.Match], MetricFn]]] = [
    (re.compile(rf"^fid{_SIZE}(_full)?$"), lambda n, m: fid_metric(n, _num(m, 1), bool(m.group(3)))),
    (re.compile(rf"^kid{_SIZE}(_full)?$"), lambda n, m: kid_metric(n, _num(m, 1), bool(m.group(3)))),
    (re.compile(r"^pr(\d+)k(\d+)(_full)?$"), lambda n, m: pr_metric(n, int(m.group(1)) * 1000, int(m.group(2)), bool(m.group(3)))),
    (re.compile(rf"^is{_SIZE}$"), lambda n, m: is_metric(n, _num(m, 1))),
]
_MINIMUM = {"fid": 2, "kid": 2, "pr": 1, "is": 10}


def _num(m: re.Match, group: int) -> int:
    return int(m.group(group)) * (1000 if m.group(group + 1) else 1)


def _parse(name: str) -> Optional[MetricFn]:
    if name in _registry:
        return _registry[name]
    for pattern, make in _PATTERNS:
        m = pattern.match(name)
        if m:
            num = int(m.group(1)) * (1000 if (name.startswith("pr") or m.group(2)) else 1)
            family = re.match(r"^[a-z]+", name).group(0)
            if num < _MINIMUM[family]:
                return None
            return make(name, m)
    return None


for _name, _fn in [("fid50k_full", fid_metric("fid50k_full", 50000, True)),
                   ("fid50k", fid_metric("fid50k", 50000, False)),
                   ("kid50k_full", kid_metric("kid50k_full", 50000, True)),
                   ("kid50k", kid_metric("kid50k", 50000, False)),
                   ("pr50k3_full", pr_metric("pr50k3_full", 50000, 3, True)),
                   ("pr50k3", pr_metric("pr50k3", 50000, 3, False)),
                   ("is50k", is_metric("is50k", 50000))]:
    _registry[_name] = _fn

EXAMPLE_SIZED = ["fid10k_full", "fid5k_full", "fid2k_full", "fid1k_full", "fid10k", "kid10k_full", "kid1k_full",
                 "pr10k3_full", "pr1k3_full", "is10k", "is1k"]


def num_generated(metric: str) -> int:
    """How many generated images a valid metric name consumes (``fid2k_full`` -> 2000, ``pr1k3`` -> 1000)."""
    m = re.match(r"^[a-z]+(\d+)(k?)", metric)
    if m is None:
        raise ValueError(f"not a sized metric name: {metric}")
    return int(m.group(1)) * (1000 if m.group(2) else 1)


def is_valid_metric(metric: str) -> bool:
    """True for registered names and names matching the size patterns (module docstring)."""
    return isinstance(metric, str) and _parse(metric) is not None


def list_valid_metrics() -> list[str]:
    """Registered names, then examples of the sized patterns."""
    return list(_registry.keys()) + [n for n in EXAMPLE_SIZED if n not in _registry]


# ------------------------------------------------------------------------------------------------


def calc_metric(metric: str, G: Optional[torch.nn.Module] = None, dataset_kwargs: Optional[dict] = None,
                num_gpus: int = 1, rank: int = 0, device: torch.device | str = torch.device("cpu"),
                progress: bool = True, cache: bool = True, **kwargs: Any) -> EasyDict:
    """Compute one metric by name.

    Extra keyword arguments go to `MetricOptions`: `G_kwargs`, `detector` (Inception weights
    path), `precision` ('fp32' | 'bf16'), `vgg16` (VGG16 TorchScript path for precision/recall),
    `images` (a folder/zip used as the generated set instead of `G`), `detector_obj`, `seed`,
    `batch_size`, `num_workers`.

    Returns EasyDict(results=EasyDict(...), metric, total_time, total_time_str, num_gpus,
    detector, precision).
    """
    fn = _parse(metric)
    if fn is None:
        raise UserError(f"unknown metric '{metric}'; choose from {', '.join(list_valid_metrics())} "
                        "(or any size: fid<N>[_full], kid<N>[_full], pr<N>k<K>[_full], is<N>)")
    opts = MetricOptions(G=G, dataset_kwargs=dataset_kwargs or {}, num_gpus=num_gpus, rank=rank, device=device,
                         progress=progress, cache=cache, **kwargs)
    start = time.time()
    results = fn(opts)
    total = time.time() - start
    out = EasyDict(
        results=EasyDict(results), metric=metric, total_time=total, total_time_str=format_time(total),
        num_gpus=num_gpus, detector="; ".join(opts.used_detectors), precision=opts.precision,
    )
    if getattr(opts, "pr_features", None):
        out.pr_features = opts.pr_features
    return out


def report_metric(result_dict: dict, run_dir: Optional[str] = None, snapshot_pkl: Optional[str] = None) -> None:
    """Print the result as one JSON line and append it to `<run_dir>/metric-<metric>.jsonl`
    (with `snapshot_pkl` relative to `run_dir` and a `timestamp`)."""
    metric = result_dict["metric"]
    if snapshot_pkl is not None and run_dir is not None and os.path.isabs(str(snapshot_pkl)):
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(line)
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f"metric-{metric}.jsonl"), "a", encoding="utf-8") as f:
            f.write(line + "\n")
