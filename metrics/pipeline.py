"""Collecting detector features for real datasets, generators and image files.

Real images (`compute_feature_stats_for_dataset`): the dataset is built from `dataset_kwargs`
(`construct_class_by_name`), its first `max_items` items are read in order (uint8; grayscale is
repeated to 3 channels) and fed to the detector. The result is cached on disk (see
`metrics.feature_stats`); a cache hit builds no dataset and decodes no image.

Generated images (`compute_feature_stats_for_generator`): z ~ N(0, I) (float32, from a seeded
`torch.Generator` on the CPU), c = labels of random dataset items (one-hot; none when
`G.c_dim == 0`), `img = G(z=z, c=c, **G_kwargs)`, converted exactly as the official metrics do:
`(img * 127.5 + 128).clamp(0, 255).to(uint8)` (truncation, not rounding), 1 channel repeated to 3.

Image files (`compute_feature_stats_for_files`): the first `max_items` images of a folder/zip in
sorted order (`metrics.image_source.ImageFiles`), in place of a generator.

With several processes (`num_gpus > 1` and `torch.distributed` initialised), each rank handles
every `num_gpus`-th item and the features are gathered in the original order; rank 0 alone reads
and writes the cache.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from dnnlib.util import UserError, construct_class_by_name
from metrics import detector as detector_lib
from metrics.feature_stats import (FeatureStats, load_cached_stats, save_cached_stats, stats_cache_key,
                                   stats_cache_path)
from metrics.image_source import ImageFiles

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class MetricOptions:
    """Everything a metric needs besides its own constants.

    G: generator (None when `images` gives the generated set); G_kwargs: extra keyword arguments
    of `G(z, c, ...)`; dataset_kwargs: the real dataset (training.dataset kwargs dict); detector:
    Inception weights path (None: the lookup order of `metrics.detector`); precision: 'fp32' |
    'bf16'; vgg16: VGG16 TorchScript path for precision/recall (None: `RENYI_GAN_VGG16`, else the
    Inception features); images: folder/zip used as the generated set; detector_obj: an already
    built detector object (anything with the `metrics.detector.Detector` attributes) used instead
    of loading one; seed: seed of z, c and KID subsets; batch_size: detector batch.
    """

    G: Optional[torch.nn.Module] = None
    G_kwargs: dict = field(default_factory=dict)
    dataset_kwargs: dict = field(default_factory=dict)
    num_gpus: int = 1
    rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    cache: bool = True
    detector: Optional[str] = None
    precision: str = "fp32"
    vgg16: Optional[str] = None
    images: Optional[str] = None
    detector_obj: Any = None
    seed: int = 0
    batch_size: Optional[int] = None
    num_workers: Optional[int] = None
    used_detectors: list = field(default_factory=list)
    pr_features: Optional[str] = None

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.dataset_kwargs = copy.deepcopy(dict(self.dataset_kwargs or {}))
        if self.batch_size is None:
            self.batch_size = 64 if self.device.type == "cuda" else 32
        if self.num_workers is None:
            self.num_workers = 3 if self.device.type == "cuda" else 0


# ------------------------------------------------------------------------------------------------
# Detectors.


def get_inception(opts: MetricOptions, need_head: bool = False):
    """The Inception detector for these options (`detector_obj` when given)."""
    if opts.detector_obj is not None:
        det = opts.detector_obj
        if need_head and not getattr(det, "has_head", False):
            raise UserError("the Inception Score needs a detector with the 1008-way classifier head")
    else:
        det = detector_lib.load_inception(opts.detector, device=opts.device, precision=opts.precision,
                                          need_head=need_head, progress=opts.progress and opts.rank == 0)
    _note_detector(opts, det)
    return det


def get_pr_detector(opts: MetricOptions):
    """VGG16 when a file is given (option or `RENYI_GAN_VGG16`), else the Inception detector."""
    path = detector_lib.resolve_vgg16_path(opts.vgg16)
    if path is None:
        return get_inception(opts)
    det = detector_lib.load_vgg16(path, device=opts.device)
    _note_detector(opts, det)
    return det


def _note_detector(opts: MetricOptions, det: Any) -> None:
    desc = det.describe() if hasattr(det, "describe") else getattr(det, "identity", str(det))
    if desc not in opts.used_detectors:
        opts.used_detectors.append(desc)


# ------------------------------------------------------------------------------------------------
# Helpers.


def _progress(opts: MetricOptions, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc=desc, disable=not (opts.progress and opts.rank == 0),
                dynamic_ncols=True, smoothing=0.1)


def _distributed(opts: MetricOptions) -> bool:
    return opts.num_gpus > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


def _gather(x: torch.Tensor, opts: MetricOptions) -> torch.Tensor:
    """Rows of every rank, interleaved rank by rank: [r0 row0, r1 row0, ..., r0 row1, ...]."""
    if not _distributed(opts):
        return x
    dev = opts.device if opts.device.type == "cuda" else torch.device("cpu")
    xs = [torch.empty_like(x, device=dev) for _ in range(opts.num_gpus)]
    torch.distributed.all_gather(xs, x.to(dev))
    return torch.stack(xs, dim=1).flatten(0, 1).cpu()


def _broadcast_flag(flag: bool, opts: MetricOptions) -> bool:
    if not _distributed(opts):
        return flag
    dev = opts.device if opts.device.type == "cuda" else torch.device("cpu")
    t = torch.as_tensor(1.0 if flag else 0.0, device=dev)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item() != 0)


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator output in about [-1, 1] -> uint8 `[N, 3, H, W]` (the official conversion)."""
    x = (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x


def _rgb(images: torch.Tensor) -> torch.Tensor:
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def _same_shape_runs(images: list[np.ndarray]) -> Iterator[torch.Tensor]:
    start = 0
    for i in range(1, len(images) + 1):
        if i == len(images) or images[i].shape != images[start].shape:
            yield torch.from_numpy(np.stack(images[start:i]))
            start = i


# ------------------------------------------------------------------------------------------------
# Real images.


def dataset_stats_key(opts: MetricOptions, detector: Any, max_items: Optional[int], capture_all: bool,
                      capture_mean_cov: bool) -> tuple[dict, Any]:
    key = stats_cache_key(opts.dataset_kwargs, detector.identity, max_items=max_items, capture_all=capture_all,
                          capture_mean_cov=capture_mean_cov)
    return key, stats_cache_path(opts.dataset_kwargs, detector.name, key)


def require_real_data(opts: MetricOptions) -> None:
    """Fail early (before loading any detector) when a metric needs real data and has none."""
    if not opts.dataset_kwargs.get("path"):
        raise UserError("no real dataset given: pass --data=PATH (a dataset zip or folder)")


def compute_feature_stats_for_dataset(opts: MetricOptions, detector: Any, max_items: Optional[int] = None,
                                      capture_all: bool = False, capture_mean_cov: bool = False,
                                      desc: str = "real images") -> FeatureStats:
    """Statistics of the detector features of the (first `max_items`) dataset items, cached."""
    require_real_data(opts)
    cache_file = None
    if opts.cache:
        _key, cache_file = dataset_stats_key(opts, detector, max_items, capture_all, capture_mean_cov)
        cached = load_cached_stats(cache_file) if opts.rank == 0 else None
        if _broadcast_flag(cached is not None, opts):
            return cached if cached is not None else FeatureStats(capture_all, capture_mean_cov, max_items)

    dataset = construct_class_by_name(**opts.dataset_kwargs)
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=num_items)
    per_rank = (num_items - 1) // opts.num_gpus + 1
    subset = [(i * opts.num_gpus + opts.rank) % num_items for i in range(per_rank)]
    loader = torch.utils.data.DataLoader(dataset, sampler=subset, batch_size=opts.batch_size,
                                         num_workers=opts.num_workers)
    bar = _progress(opts, num_items, desc)
    for images, _labels in loader:
        feats = _gather(detector.features(_rgb(images)), opts)
        stats.append(feats)
        bar.update(min(feats.shape[0], bar.total - bar.n))
    bar.close()
    if cache_file is not None and opts.rank == 0:
        save_cached_stats(cache_file, stats)
    return stats


# ------------------------------------------------------------------------------------------------
# Generated images.


def _label_sampler(opts: MetricOptions, G: torch.nn.Module) -> Callable[[int], torch.Tensor]:
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim == 0:
        return lambda n: torch.zeros([n, 0])
    if not opts.dataset_kwargs.get("path"):
        raise UserError("the generator is conditional (c_dim > 0): pass --data so labels can be drawn from the dataset")
    kwargs = dict(opts.dataset_kwargs, use_labels=True)
    dataset = construct_class_by_name(**kwargs)
    if dataset.label_dim != c_dim:
        raise UserError(f"the generator expects {c_dim}-d labels but dataset '{kwargs['path']}' has {dataset.label_dim}-d labels")
    rng = np.random.RandomState((opts.seed * 1000003 + opts.rank) % (1 << 31))
    return lambda n: torch.from_numpy(np.stack([dataset.get_label(int(rng.randint(len(dataset)))) for _ in range(n)]))


def compute_feature_stats_for_generator(opts: MetricOptions, feature_fn: FeatureFn, num_gen: int,
                                        capture_all: bool = False, capture_mean_cov: bool = False,
                                        desc: str = "generated images", batch_gen: Optional[int] = None) -> FeatureStats:
    """Statistics of `feature_fn(uint8 images)` over `num_gen` generated images."""
    if opts.images is not None:
        return compute_feature_stats_for_files(opts, feature_fn, num_gen, capture_all, capture_mean_cov, desc)
    if opts.G is None:
        raise UserError("no generator and no --images: nothing to evaluate")
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    sample_c = _label_sampler(opts, G)
    gen = torch.Generator().manual_seed((opts.seed * 1000003 + opts.rank) % (1 << 63))
    batch = opts.batch_size
    batch_gen = batch_gen or min(batch, 16)
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=num_gen)
    bar = _progress(opts, num_gen, desc)
    with torch.no_grad():
        while not stats.is_full():
            # Every rank makes the same number of images (the gather needs equal sizes).
            todo = min(batch, -(-stats.remaining() // opts.num_gpus))
            images = []
            while todo > 0:
                n = min(batch_gen, todo)
                z = torch.randn([n, G.z_dim], generator=gen).to(opts.device)
                c = sample_c(n).to(opts.device)
                images.append(to_uint8(G(z=z, c=c, **opts.G_kwargs)))
                todo -= n
            feats = _gather(feature_fn(torch.cat(images)), opts)
            before = stats.num_items
            stats.append(feats)
            bar.update(stats.num_items - before)
    bar.close()
    return stats


def compute_feature_stats_for_files(opts: MetricOptions, feature_fn: FeatureFn, max_items: int,
                                    capture_all: bool = False, capture_mean_cov: bool = False,
                                    desc: str = "image files") -> FeatureStats:
    """Statistics of the first `max_items` images of `opts.images` (a folder or zip)."""
    files = ImageFiles(opts.images)
    if len(files) < max_items:
        raise UserError(
            f"--images '{opts.images}' holds {len(files)} images but the metric needs {max_items}; "
            f"add images or pick a smaller metric size (e.g. fid{len(files)}_full)"
        )
    stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov, max_items=max_items)
    per_rank = (max_items - 1) // opts.num_gpus + 1
    subset = [(i * opts.num_gpus + opts.rank) % max_items for i in range(per_rank)]
    bar = _progress(opts, max_items, desc)
    for start in range(0, per_rank, opts.batch_size):
        arrays = [files[j] for j in subset[start:start + opts.batch_size]]
        feats = torch.cat([feature_fn(t) for t in _same_shape_runs(arrays)])
        feats = _gather(feats, opts)
        before = stats.num_items
        stats.append(feats)
        bar.update(stats.num_items - before)
    bar.close()
    return stats
