"""Compute quality metrics (FID, KID, precision/recall, IS) of a trained network or of image files.

Examples:

    # A snapshot of a run, against its own training set (from the snapshot), CPU or GPU:
    python calc_metrics.py --network=training-runs/00000-mnist/network-snapshot-000100.pt --metrics=fid2k_full

    # Another dataset, several metrics:
    python calc_metrics.py --network=net.pt --metrics=fid50k_full,kid50k_full,pr50k3_full --data=real.zip

    # Images made anywhere (a folder or zip), scored against the same real statistics:
    python calc_metrics.py --metrics=fid1k_full --data=real.zip --images=samples/

Each result is printed as one JSON line; it is also appended to `metric-<name>.jsonl` in the
network's folder when that folder is a training run (it holds `training_options.json`).
Real-data statistics are cached (see metrics/feature_stats.py), so a second call on the same
dataset only processes the generated images. Metric names: see metrics/metric_main.py.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

import click

from dnnlib.util import UserError, cli_main


@dataclass
class Config:
    network: Optional[str]
    metrics: list[str]
    data: Optional[str]
    mirror: Optional[bool]
    device: str
    gpus: int
    verbose: bool
    detector: Optional[str]
    precision: str
    images: Optional[str]
    vgg16: Optional[str]
    cache: bool
    seed: int


def parse_metric_list(text: str) -> list[str]:
    from metrics import metric_main

    names = [m.strip() for m in (text or "").split(",") if m.strip()]
    if names == ["none"]:
        return []
    bad = [m for m in names if not metric_main.is_valid_metric(m)]
    if bad:
        raise UserError(
            f"--metrics: unknown metric(s) {', '.join(bad)}; choose from {', '.join(metric_main.list_valid_metrics())} "
            "or any size: fid<N>[_full], kid<N>[_full], pr<N>k<K>[_full], is<N>"
        )
    return names


def _summary(G) -> str:
    params = sum(p.numel() for p in G.parameters())
    return (f"G: {type(G).__module__}.{type(G).__name__}, {params:,} parameters, z_dim={G.z_dim}, "
            f"c_dim={G.c_dim}, {G.img_resolution}x{G.img_resolution}x{G.img_channels}")


def run(info, cfg: Config) -> None:
    """One process: load the network (if any), compute every metric, report on rank 0."""
    import torch

    from metrics import metric_main

    main_rank = info.rank == 0
    G = None
    dataset_kwargs: Optional[dict] = None
    run_dir = None
    if cfg.network is not None:
        from training.snapshot import load_snapshot

        snap = load_snapshot(cfg.network, device=info.device)
        G = snap.G_ema if snap.G_ema is not None else snap.G
        net_dir = os.path.dirname(os.path.abspath(cfg.network))
        if os.path.isfile(os.path.join(net_dir, "training_options.json")):
            run_dir = net_dir
        if cfg.data is None:
            if not snap.training_set_kwargs:
                raise UserError(f"'{cfg.network}' does not record its training set; please specify --data")
            dataset_kwargs = dict(snap.training_set_kwargs)
    if cfg.data is not None:
        dataset_kwargs = dict(class_name="training.dataset.ImageFolderDataset", path=cfg.data)
    if dataset_kwargs is not None:
        if G is not None:
            dataset_kwargs.update(resolution=G.img_resolution, use_labels=(G.c_dim != 0))
        if cfg.mirror is not None:
            dataset_kwargs.update(xflip=cfg.mirror)
        dataset_kwargs.setdefault("class_name", "training.dataset.ImageFolderDataset")

    if main_rank and cfg.verbose:
        print(f"Device: {info.device} ({info.world_size} process{'es' if info.world_size > 1 else ''})")
        if G is not None:
            print(_summary(G))
        if cfg.images is not None:
            print(f"Generated images: {cfg.images}")
        if dataset_kwargs is not None:
            print(f"Real data: {dataset_kwargs['path']}")
        if cfg.precision != "fp32":
            print(f"Detector precision: {cfg.precision} (FIDs are comparable only with FIDs of the same precision)")
    torch.backends.cudnn.benchmark = True
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    for metric in cfg.metrics:
        result = metric_main.calc_metric(
            metric, G=G, dataset_kwargs=dataset_kwargs, num_gpus=info.world_size, rank=info.rank, device=info.device,
            progress=main_rank, cache=cfg.cache, detector=cfg.detector, precision=cfg.precision, images=cfg.images,
            vgg16=cfg.vgg16, seed=cfg.seed,
        )
        if main_rank:
            metric_main.report_metric(result, run_dir=run_dir,
                                      snapshot_pkl=os.path.basename(cfg.network) if cfg.network else cfg.images)
            if cfg.verbose:
                values = ", ".join(f"{k} = {v:.6g}" for k, v in result.results.items())
                print(f"{metric}: {values}  [{result.total_time_str}; {result.detector}]", file=sys.stderr)


def _child(info, cfg: Config) -> None:
    run(info, cfg)


@click.command(context_settings=dict(help_option_names=["-h", "--help"]))
@click.option("--network", "network", metavar="PATH", help="Network snapshot (network-snapshot-*.pt)")
@click.option("--metrics", default="fid50k_full", show_default=True, metavar="LIST",
              help="Comma-separated metric names, or none")
@click.option("--data", metavar="PATH", help="Real dataset (zip or folder) [default: the network's training set]")
@click.option("--mirror", type=bool, metavar="BOOL", help="Mirror the dataset x-wise [default: the network's setting]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="Number of processes/GPUs")
@click.option("--verbose", type=bool, default=True, show_default=True, metavar="BOOL", help="Print a summary and readable results")
@click.option("--detector", metavar="PATH", help="FID Inception weights (.pt TorchScript or .pth state dict) [default: see metrics/detector.py]")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="Inception arithmetic; bf16 is faster on GPUs and AMX/AVX512-BF16 CPUs (see bench/fid_speed.py)")
@click.option("--images", metavar="PATH", help="Folder or zip of images to evaluate instead of a network")
@click.option("--vgg16", metavar="PATH", help="VGG16 TorchScript (NVIDIA's vgg16.pt) for precision/recall [default: Inception features]")
@click.option("--cache/--no-cache", default=True, show_default=True, help="Use/refresh the on-disk real-data statistics")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of latents, labels and KID subsets")
@cli_main
def main(network, metrics, data, mirror, device, gpus, verbose, detector, precision, images, vgg16, cache, seed):
    """Compute metrics of a network snapshot or of a folder/zip of images (see the module docstring)."""
    from torch_utils import distributed as dist

    metric_list = parse_metric_list(metrics)
    if network is None and images is None:
        raise UserError("nothing to evaluate: give --network=PATH (a snapshot) or --images=PATH (a folder or zip)")
    if network is not None and images is not None:
        raise UserError("give either --network or --images, not both")
    if network is not None and not os.path.isfile(network):
        raise UserError(f"--network: '{network}' not found")
    if images is not None and not os.path.exists(images):
        raise UserError(f"--images: '{images}' not found")
    if data is not None and not os.path.exists(data):
        raise UserError(f"--data: '{data}' not found")
    if detector is not None and not os.path.isfile(detector):
        raise UserError(f"--detector: '{detector}' not found")
    if images is not None and metric_list:  # count before any Inception work on the real data
        from metrics import metric_main
        from metrics.image_source import ImageFiles

        have, need = len(ImageFiles(images)), max(metric_main.num_generated(m) for m in metric_list)
        if have < need:
            raise UserError(f"--images '{images}' holds {have} images but --metrics={','.join(metric_list)} needs {need}; "
                            f"add images or pick a smaller metric size (e.g. fid{have}_full)")
    cfg = Config(network=network, metrics=metric_list, data=data, mirror=mirror, device=device, gpus=gpus,
                 verbose=verbose, detector=detector, precision=precision, images=images, vgg16=vgg16, cache=cache,
                 seed=seed)
    if not metric_list:
        return
    if gpus == 1:
        run(dist.DistInfo(device=dist.resolve_device(device)), cfg)
    else:
        dist.launch(_child, gpus, args=(cfg,), device=device)


if __name__ == "__main__":
    main()
