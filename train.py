"""Train a GAN (DCGAN or StyleGAN2) with the Rényi or another generator loss.

Examples:

    # The embedded MNIST with the paper's DCGAN and the Rényi loss (alpha = 3):
    python train.py --loss=renyi --alpha=3 --kimg=30

    # StyleGAN2 on a dataset zip made by dataset_tool.py, non-saturating loss, no augmentation:
    python train.py --data=datasets/cifar10.zip --cfg=cifar --aug=noaug --metrics=none

    # Two processes on one machine (one per GPU with CUDA, NCCL; gloo processes on CPU):
    python train.py --gpus=2 --loss=renyi --alpha=3 --kimg=30

    # Two nodes with 8 GPUs each (run on every node; NODE_RANK 0 on the node at MASTER_ADDR):
    torchrun --nnodes=2 --nproc-per-node=8 --node-rank=$NODE_RANK --master-addr=$MASTER_ADDR \
        --master-port=29500 train.py --data=datasets/cifar10.zip --cfg=cifar --batch=64

A process that fails or hangs ends the whole run within --dist-timeout seconds, with the rank
and its error on stderr and in log.txt; snapshots are written atomically, so the last one stays
intact.

`train.py` only parses and validates the options into one explicit configuration dict (written
to `<run dir>/training_options.json`), then runs `training.training_loop.training_loop` on it.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Optional

import click

from dnnlib.util import EasyDict, UserError, atomic_write_text, cli_main

EMBEDDED_MNIST_INFO = dict(resolution=32, num_channels=1, size=60000, has_labels=True, label_dim=10, name="mnist32")


def _fmt(x: float) -> str:
    return f"{x:g}"


def parse_comma_list(s: Optional[str]) -> list[str]:
    if s is None or s.strip().lower() in ("", "none"):
        return []
    return [x.strip() for x in s.split(",") if x.strip()]


def next_run_dir(outdir: str, desc: str) -> str:
    """`<outdir>/<id:05d>-<desc>` with id = 1 + the largest numeric prefix in outdir (0 if none)."""
    ids = []
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            m = re.match(r"^(\d+)", name)
            if m and os.path.isdir(os.path.join(outdir, name)):
                ids.append(int(m.group(1)))
    return os.path.join(outdir, f"{max(ids, default=-1) + 1:05d}-{desc}")


def probe_dataset(path: str) -> EasyDict:
    from training.dataset import ImageFolderDataset

    ds = ImageFolderDataset(path=path, use_labels=True, max_size=None, xflip=False)
    info = EasyDict(resolution=ds.resolution, num_channels=ds.num_channels, size=len(ds), has_labels=ds.has_labels,
                    label_dim=ds.label_dim, name=ds.name)
    ds.close()
    return info


def torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def setup_training_options(
    *,
    outdir: str = "training-runs",
    gpus: int = 1,
    dist_timeout: float = 300.0,
    snap: int = 50,
    metrics: Optional[str] = None,
    seed: int = 0,
    data: Optional[str] = None,
    cond: bool = False,
    subset: Optional[int] = None,
    mirror: bool = False,
    cfg: Optional[str] = None,
    gamma: Optional[float] = None,
    kimg: Optional[float] = None,
    batch: Optional[int] = None,
    aug: Optional[str] = None,
    p: Optional[float] = None,
    target: Optional[float] = None,
    augpipe: Optional[str] = None,
    resume: Optional[str] = None,
    freezed: int = 0,
    fp32: bool = False,
    nhwc: bool = False,
    allow_tf32: bool = False,
    nobench: bool = False,
    workers: Optional[int] = None,
    loss: str = "ns",
    alpha: Optional[float] = None,
    alpha_schedule: Optional[str] = None,
    l1: bool = False,
    device: str = "auto",
    amp: str = "fp32",
    nan: str = "stop",
    tick: Optional[float] = None,
    batch_gpu: Optional[int] = None,
    cbase: Optional[int] = None,
    cmax: Optional[int] = None,
    map_depth: Optional[int] = None,
    mbstd_group: Optional[int] = None,
    glr: Optional[float] = None,
    dlr: Optional[float] = None,
    z_dim: Optional[int] = None,
    desc: Optional[str] = None,
    dry_run: bool = False,
    deterministic: bool = False,
    inject_nan_step: Optional[int] = None,
    notes: Optional[list] = None,
) -> tuple[EasyDict, str]:
    """Validate the options and build the training-loop configuration; return (options, desc).

    Every problem raises `UserError` with one line naming the option and how to fix it, before
    any work starts. `notes` (a list) receives human-readable lines about defaults chosen.
    """
    from torch_utils import misc
    from training import configs
    from training.loss import get_generator_loss

    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise UserError(f"--outdir={outdir} is a file, not a folder; choose a folder for the run folders")

    notes = notes if notes is not None else []
    args = EasyDict()

    # General.
    if gpus < 1 or gpus & (gpus - 1):
        raise UserError(f"--gpus={gpus} must be a power of two (1, 2, 4, ...)")
    if snap < 1:
        raise UserError(f"--snap={snap} must be >= 1 (ticks between snapshots)")
    if seed < 0:
        raise UserError(f"--seed={seed} must be >= 0")
    if workers is not None and workers < 0:
        raise UserError(f"--workers={workers} must be >= 0")
    if nan not in ("stop", "skip"):
        raise UserError(f"--nan={nan}: choose stop or skip")
    if amp not in ("fp32", "bf16"):
        raise UserError(f"--amp={amp}: choose fp32 or bf16")
    dev = misc.select_device(device)
    if gpus > 1:
        if dev.type == "cuda" and dev.index is not None:
            raise UserError(f"--device={device} with --gpus={gpus}: use --device=cuda (process i takes GPU i)")
        if dev.type == "cuda" and gpus > torch_cuda_count():
            raise UserError(f"--gpus={gpus} but this machine has {torch_cuda_count()} GPU(s); lower --gpus "
                            "(or use --device=cpu for CPU processes)")
        if dev.type not in ("cuda", "cpu"):
            raise UserError(f"--gpus={gpus} needs --device=cuda or cpu, not {dev.type}")
    if dist_timeout <= 0:
        raise UserError(f"--dist-timeout={dist_timeout} must be a positive number of seconds")
    args.num_gpus = gpus
    args.dist_timeout = float(dist_timeout)
    args.image_snapshot_ticks = args.network_snapshot_ticks = snap
    args.random_seed = seed
    args.device = str(dev)
    args.amp = amp
    args.nan_policy = nan
    args.deterministic = bool(deterministic)
    if inject_nan_step is not None:
        args.inject_nan_step = int(inject_nan_step)

    # Metrics (validated by name; the metrics package is imported only when some are asked for).
    metric_list = parse_comma_list(metrics)
    if metric_list:
        try:
            from metrics import metric_main
        except ImportError as err:
            raise UserError(f"--metrics: the metrics package is not available ({err}); use --metrics=none") from None
        bad = [m for m in metric_list if not metric_main.is_valid_metric(m)]
        if bad:
            raise UserError(f"--metrics: unknown metric(s) {', '.join(bad)}; choose from {', '.join(metric_main.list_valid_metrics())} or none")
    args.metrics = metric_list

    # Generator loss and its parameters.
    spec = get_generator_loss(loss)
    gen_kwargs: dict[str, Any] = {}
    if alpha is not None:
        if "alpha" not in spec.params:
            raise UserError(f"--alpha applies to the losses with an alpha (renyi, alpha), not --loss={loss}")
        if math.isnan(alpha) or alpha < 0:
            raise UserError(f"--alpha={alpha} must be >= 0 (or inf)")
        if loss == "alpha" and alpha == 0:
            raise UserError("--alpha=0 is outside the alpha-loss range (0, inf]; choose alpha > 0")
        gen_kwargs["alpha"] = float(alpha)
    if l1:
        if "l1" not in spec.params:
            raise UserError(f"--l1 applies to --loss=renyi only, not --loss={loss}")
        gen_kwargs["l1"] = True
    elif "l1" in spec.params:
        gen_kwargs["l1"] = False
    if alpha_schedule is not None and "alpha" not in spec.params:
        raise UserError(f"--alpha-schedule applies to the losses with an alpha (renyi, alpha), not --loss={loss}")
    if "alpha" in spec.params and "alpha" not in gen_kwargs:
        if alpha_schedule is None:
            raise UserError(f"--loss={loss} needs --alpha (e.g. --alpha=3) or --alpha-schedule")

    # Dataset.
    if data is None:
        import dataset_tool

        zip_path = Path(dataset_tool.DEFAULT_MNIST_ZIP)
        if dry_run and not zip_path.exists():
            info = EasyDict(EMBEDDED_MNIST_INFO)
            notes.append(f"no --data: would build the embedded MNIST into {zip_path} (32x32, 60000 images)")
        else:
            existed = zip_path.exists()
            zip_path = Path(dataset_tool.ensure_embedded_mnist())
            info = probe_dataset(str(zip_path))
            notes.append(f"no --data: using the embedded MNIST {zip_path} ({'cached' if existed else 'built now'}, "
                         f"{info.size} images {info.resolution}x{info.resolution})")
        data_path = str(zip_path)
        if cfg is None:
            cfg = "dcgan"
            notes.append("no --cfg: using --cfg=dcgan (the paper's MNIST DCGAN)")
    else:
        if not os.path.exists(data):
            raise UserError(f"--data: '{data}' does not exist; make a dataset with dataset_tool.py")
        info = probe_dataset(data)
        data_path = data
        if cfg is None:
            cfg = "auto"
            notes.append("no --cfg: using --cfg=auto (StyleGAN2)")
    if cond and not info.has_labels:
        raise UserError(f"--cond=true needs labels, but '{data_path}' has no dataset.json labels")
    args.training_set_kwargs = EasyDict(
        class_name="training.dataset.ImageFolderDataset", path=data_path, use_labels=bool(cond),
        max_size=info.size, xflip=bool(mirror), resolution=info.resolution, random_seed=seed,
    )
    desc_parts = [info.name]
    if cond:
        desc_parts.append("cond")
    if subset is not None:
        if not 1 <= subset <= info.size:
            raise UserError(f"--subset={subset} must be between 1 and the dataset size {info.size}")
        desc_parts.append(f"subset{subset}")
        if subset < info.size:
            args.training_set_kwargs.max_size = subset
    if mirror:
        desc_parts.append("mirror")

    # Base configuration.
    if cfg not in configs.ALL_CFGS:
        raise UserError(f"--cfg={cfg}: choose one of {', '.join(configs.ALL_CFGS)}")
    c = configs.build_config(
        cfg, resolution=info.resolution, img_channels=info.num_channels, num_gpus=gpus, device_type=dev.type,
        gamma=gamma, kimg=kimg, batch=batch, batch_gpu=batch_gpu, cbase=cbase, cmax=cmax, map_depth=map_depth,
        mbstd_group=mbstd_group, glr=glr, dlr=dlr, fp32=fp32, freezed=freezed, tick=tick, z_dim=z_dim,
    )
    desc_parts.append(f"{cfg}{gpus}" if cfg == "auto" else cfg)
    if gamma is not None:
        desc_parts.append(f"gamma{_fmt(gamma)}")
    if kimg is not None:
        desc_parts.append(f"kimg{_fmt(kimg)}")
    if batch is not None:
        desc_parts.append(f"batch{batch}")
    for key in ("G_kwargs", "D_kwargs", "G_opt_kwargs", "D_opt_kwargs", "loss_kwargs", "total_kimg", "batch_size",
                "batch_gpu", "ema_kimg", "ema_rampup", "G_reg_interval", "D_reg_interval", "kimg_per_tick"):
        args[key] = c[key]
    args.loss_kwargs.generator_loss = loss
    args.loss_kwargs.generator_loss_kwargs = gen_kwargs
    if alpha_schedule is not None:
        from renyi import schedule as schedule_lib

        sched = schedule_lib.from_string(alpha_schedule, alpha=alpha, dataset_size=int(args.training_set_kwargs.max_size))
        args.alpha_schedule = alpha_schedule
        start = float(sched.alpha_at(0.0))
        if alpha is not None and float(alpha) != start:
            raise UserError(f"--alpha={_fmt(alpha)} conflicts with --alpha-schedule={alpha_schedule}, which starts at "
                            f"alpha {_fmt(start)}; drop --alpha (a triangle's start is set with :start=A)")
        gen_kwargs.setdefault("alpha", start)

    # Augmentation.
    aug_explicit = aug is not None
    aug = aug if aug is not None else c.default_aug
    if aug not in ("noaug", "ada", "fixed"):
        raise UserError(f"--aug={aug}: choose noaug, ada or fixed")
    if aug_explicit:
        desc_parts.append(aug)
    if aug == "ada":
        if p is not None:
            raise UserError("--p can only be given with --aug=fixed")
        if target is not None and not 0 <= target <= 1:
            raise UserError(f"--target={target} must be between 0 and 1")
        args.ada_target = 0.6 if target is None else float(target)
        args.augment_p = 0.0
        if target is not None:
            desc_parts.append(f"target{_fmt(target)}")
    elif aug == "fixed":
        if p is None:
            raise UserError("--aug=fixed needs --p (the fixed augmentation probability, 0..1)")
        if not 0 <= p <= 1:
            raise UserError(f"--p={p} must be between 0 and 1")
        if target is not None:
            raise UserError("--target can only be given with --aug=ada")
        args.augment_p = float(p)
        desc_parts.append(f"p{_fmt(p)}")
    else:
        if p is not None or target is not None:
            raise UserError("--p and --target need --aug=ada or --aug=fixed")
        if augpipe is not None:
            raise UserError("--augpipe cannot be used with --aug=noaug")
        args.augment_p = 0.0
    if aug != "noaug":
        try:
            from training.augment import AUGPIPE_SPECS
        except ImportError as err:
            raise UserError(f"--aug={aug}: the augmentation module is not available ({err}); use --aug=noaug") from None
        pipe = augpipe or "bgc"
        if pipe not in AUGPIPE_SPECS:
            raise UserError(f"--augpipe={pipe}: choose one of {', '.join(AUGPIPE_SPECS)}")
        args.augment_kwargs = EasyDict(class_name="training.augment.AugmentPipe", **AUGPIPE_SPECS[pipe])
        if augpipe is not None:
            desc_parts.append(augpipe)
    args.ada_kimg = 500

    # Resume.
    args.resume_pkl = None
    if resume is not None and resume.lower() not in ("", "noresume"):
        if resume in ("ffhq256", "ffhq512", "ffhq1024", "celebahq256", "lsundog256") or "://" in resume:
            raise UserError(f"--resume={resume}: only local snapshot files (network-snapshot-*.pt) can be resumed")
        from training import snapshot as snapshot_lib

        snap = snapshot_lib.read_snapshot(resume)  # validates the file (UserError if foreign/corrupt)
        common = dict(c_dim=info.label_dim if cond else 0, img_resolution=info.resolution, img_channels=info.num_channels)
        problems = snapshot_lib.resume_differences(snap, args.G_kwargs, args.D_kwargs, common)
        saved_params = dict((snap.get("loss_state") or {}).get("gen_params") or {})
        run_params = dict(args.loss_kwargs.generator_loss_kwargs)
        if set(saved_params) != set(run_params):
            problems.append(f"generator loss parameters: snapshot {saved_params}, this run {run_params} "
                            f"(--loss={args.loss_kwargs.generator_loss})")
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            raise UserError(
                f"--resume={resume}: the snapshot does not match what these options build ({shown}); "
                "repeat the options of the original run (its training_options.json, next to the snapshot)")
        args.resume_pkl = str(resume)
        desc_parts.append("resumecustom")
    if freezed:
        if freezed < 0:
            raise UserError(f"--freezed={freezed} must be >= 0")
        desc_parts.append(f"freezed{freezed}")

    # Performance.
    args.cudnn_benchmark = not nobench
    args.allow_tf32 = bool(allow_tf32)
    args.nhwc = bool(nhwc)
    n_workers = workers if workers is not None else (3 if dev.type == "cuda" else 0)
    args.data_loader_kwargs = EasyDict(num_workers=n_workers, pin_memory=dev.type == "cuda")
    if n_workers > 0:
        args.data_loader_kwargs.prefetch_factor = 2

    # Our suffixes: the loss, L1, bf16, the user's description.
    if loss == "renyi" or loss == "alpha":
        a = "sched" if alpha_schedule is not None else _fmt(gen_kwargs["alpha"])
        desc_parts.append(f"{loss}{a}")
    else:
        desc_parts.append(loss)
    if l1:
        desc_parts.append("l1")
    if amp == "bf16":
        desc_parts.append("bf16")
    if desc:
        if not re.fullmatch(r"[A-Za-z0-9_.+=-]+", desc):
            raise UserError(f"--desc='{desc}' may only contain letters, digits and _ . + = -")
        desc_parts.append(desc)
    run_desc = "-".join(desc_parts)
    args.desc = run_desc
    args.cfg = cfg
    return args, run_desc


def _print_summary(args: EasyDict) -> None:
    ts = args.training_set_kwargs
    print()
    print(f"Output directory:   {args.run_dir}")
    print(f"Training data:      {ts.path} ({ts.max_size} images{', x-flips' if ts.xflip else ''}, {ts.resolution}px)")
    print(f"Config:             {args.cfg}, G {args.G_kwargs.class_name}")
    print(f"Generator loss:     {args.loss_kwargs.generator_loss} {json.dumps(args.loss_kwargs.generator_loss_kwargs)}"
          + (f", alpha schedule {args.alpha_schedule}" if args.get("alpha_schedule") else ""))
    print(f"Training duration:  {args.total_kimg:g} kimg, batch {args.batch_size} ({args.batch_gpu} per round), "
          f"ticks of {args.kimg_per_tick:g} kimg, snapshots every {args.network_snapshot_ticks} ticks")
    print(f"Device:             {args.device} ({args.amp}), {args.num_gpus} process(es)")
    print(f"Conditional model:  {ts.use_labels}")
    print()


@click.command(context_settings=dict(help_option_names=["-h", "--help"]))
# General.
@click.option("--outdir", help="Where to put the run folders", metavar="DIR", default="training-runs", show_default=True)
@click.option("--gpus", help="Number of processes, one per GPU (power of two; on CPU, gloo processes)", type=int, default=1, metavar="INT", show_default=True)
@click.option("--dist-timeout", help="Seconds a process waits for the others before the run fails", type=float, default=300.0, metavar="SEC", show_default=True)
@click.option("--snap", help="Snapshot interval in ticks", type=int, default=50, metavar="INT", show_default=True)
@click.option("--metrics", help="Comma-separated metrics, or none", default="none", show_default=True)
@click.option("--seed", help="Random seed", type=int, default=0, metavar="INT", show_default=True)
@click.option("-n", "--dry-run", help="Print the options and exit", is_flag=True)
# Dataset.
@click.option("--data", help="Dataset zip or folder [default: the embedded MNIST]", metavar="PATH")
@click.option("--cond", help="Train a class-conditional model", type=bool, default=False, metavar="BOOL")
@click.option("--subset", help="Train on only N images", type=int, metavar="INT")
@click.option("--mirror", help="Add x-flipped copies of the images", type=bool, default=False, metavar="BOOL")
# Base config.
@click.option("--cfg", help="Base config [default: dcgan without --data, auto with it]",
              type=click.Choice(["dcgan", "auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar"]))
@click.option("--gamma", help="R1 regularisation weight (overrides the cfg)", type=float)
@click.option("--kimg", help="Training length in thousands of images (overrides the cfg)", type=float)
@click.option("--batch", help="Total batch size (overrides the cfg)", type=int)
# Augmentation.
@click.option("--aug", help="Augmentation mode [default: ada, dcgan: noaug]", type=click.Choice(["noaug", "ada", "fixed"]))
@click.option("--p", help="Augmentation probability for --aug=fixed", type=float)
@click.option("--target", help="ADA target value for --aug=ada [default: 0.6]", type=float)
@click.option("--augpipe", help="Augmentation pipeline [default: bgc]",
              type=click.Choice(["blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"]))
# Transfer learning / resuming.
@click.option("--resume", help="Continue exactly from a network-snapshot-*.pt", metavar="PATH")
@click.option("--freezed", help="Freeze-D: number of frozen discriminator layers", type=int, default=0, metavar="INT")
# Performance.
@click.option("--fp32", help="Disable mixed precision (StyleGAN2 fp16 layers; CUDA only)", type=bool, default=False, metavar="BOOL")
@click.option("--nhwc", help="Use NHWC memory format with FP16", type=bool, default=False, metavar="BOOL")
@click.option("--nobench", help="Disable cuDNN benchmarking", type=bool, default=False, metavar="BOOL")
@click.option("--allow-tf32", help="Allow TF32 on CUDA", type=bool, default=False, metavar="BOOL")
@click.option("--workers", help="DataLoader worker processes [default: 3 on CUDA, 0 on CPU]", type=int, metavar="INT")
# Ours.
@click.option("--loss", help="Generator loss: ns, renyi, minimax, lk, alpha", default="ns", show_default=True)
@click.option("--alpha", help="Order alpha for --loss=renyi/alpha (>= 0, or inf)", type=float)
@click.option("--alpha-schedule", help="Alpha schedule: const, const:A, triangle:LOW:HIGH[:kimg=K]", metavar="SPEC")
@click.option("--l1", help="Rényi loss with the paper's L1 normalisation |L + log 2|", is_flag=True)
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps", default="auto", show_default=True)
@click.option("--amp", help="Autocast precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True)
@click.option("--nan", help="On NaN/inf: stop the run, or skip that update", type=click.Choice(["stop", "skip"]), default="stop", show_default=True)
@click.option("--tick", help="Tick length in kimg [default: cfg, 4; dcgan 1]", type=float)
@click.option("--batch-gpu", help="Images per accumulation round", type=int)
@click.option("--cbase", help="Capacity: StyleGAN2 channel_base / DCGAN width", type=int)
@click.option("--cmax", help="Max. feature maps per layer", type=int)
@click.option("--map-depth", help="Mapping network depth (StyleGAN2)", type=int)
@click.option("--mbstd-group", help="Minibatch std group size (StyleGAN2)", type=int)
@click.option("--glr", help="G learning rate (overrides the cfg)", type=float)
@click.option("--dlr", help="D learning rate (overrides the cfg)", type=float)
@click.option("--z-dim", "z_dim", help="Latent size (overrides the cfg)", type=int)
@click.option("--desc", help="Extra text for the run folder name", metavar="STR")
@click.option("--deterministic", help="Deterministic algorithms (slower)", type=bool, default=False, metavar="BOOL", hidden=True)
@click.option("--inject-nan-step", help="Testing: make D's output NaN at this step", type=int, hidden=True)
@cli_main
def main(outdir: str, dry_run: bool, **kwargs: Any) -> None:
    """Train a GAN; writes a run folder under --outdir (see README)."""
    from torch_utils import distributed

    layout = distributed.torchrun_env()
    if layout is not None and not dry_run:
        if kwargs.get("gpus", 1) not in (1, layout["world_size"]):
            raise UserError(f"--gpus={kwargs['gpus']} but torchrun started {layout['world_size']} processes; drop --gpus")
        kwargs["gpus"] = layout["world_size"]
    notes: list[str] = []
    args, run_desc = setup_training_options(outdir=outdir, dry_run=dry_run, notes=notes, **kwargs)
    if layout is not None and not dry_run:
        _main_torchrun(outdir, run_desc, args, notes)
        return
    for line in notes:
        print(line)
    args.run_dir = next_run_dir(outdir, run_desc)
    if dry_run:
        print("Training options:")
        print(json.dumps(args, indent=2))
        _print_summary(args)
        print("Dry run; exiting.")
        return
    _print_summary(args)
    _create_run_dir(args)
    if args.num_gpus == 1:
        import torch

        result = subprocess_fn(distributed.DistInfo(device=torch.device(args.device)), args, notes)
    else:
        print(f"Launching {args.num_gpus} processes...")
        try:
            result = distributed.launch(subprocess_fn, args.num_gpus, args=(args, notes), device=args.device,
                                        timeout_s=args.dist_timeout)[0]
        except UserError as err:
            with open(os.path.join(args.run_dir, "log.txt"), "a", encoding="utf-8") as f:
                f.write(f"error: {err}\n")
            raise
    _print_done(args, result)


def _create_run_dir(args: EasyDict) -> None:
    os.makedirs(args.run_dir, exist_ok=False)
    atomic_write_text(os.path.join(args.run_dir, "training_options.json"), json.dumps(args, indent=2) + "\n", overwrite=False)


def _print_done(args: EasyDict, result: dict) -> None:
    print(f"Done: {result['cur_nimg'] / 1000:g} kimg; run folder {args.run_dir}")
    if result["last_snapshot"]:
        print(f"Last snapshot: {result['last_snapshot']}")
    grids = sorted(Path(args.run_dir).glob("fakes[0-9]*.png"))
    if grids:
        print(f"Latest sample grid: {grids[-1]}")


def subprocess_fn(info: Any, args: EasyDict, notes: list[str]) -> dict:
    """Run the training loop as process ``info.rank`` of ``info.world_size`` (a
    `torch_utils.distributed.DistInfo`); rank 0 tees its output into ``<run_dir>/log.txt``."""
    import torch

    from training import training_loop

    if info.world_size > 1 and info.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.world_size))  # share the cores
    log_file = os.path.join(args.run_dir, "log.txt") if info.rank == 0 else None
    with training_loop.Logger(log_file):
        if info.rank == 0:
            for line in notes:
                print(line)
        opts = dict(args, rank=info.rank, num_gpus=info.world_size, device=str(info.device))
        res = training_loop.training_loop(**opts)
    return dict(cur_nimg=res.cur_nimg, last_snapshot=res.last_snapshot)


def _main_torchrun(outdir: str, run_desc: str, args: EasyDict, notes: list[str]) -> None:
    """One process of a torchrun job (any number of nodes): join the group from the environment,
    rank 0 makes the run folder, every rank trains."""
    from torch_utils import distributed

    info = distributed.init_from_env(device=args.device, timeout_s=args.dist_timeout)
    try:
        run_dir = None
        if info.rank == 0:
            for line in notes:
                print(line)
            args.run_dir = next_run_dir(outdir, run_desc)
            _print_summary(args)
            _create_run_dir(args)
            run_dir = args.run_dir
        args.run_dir = distributed.broadcast_object(run_dir, src=0)
        result = subprocess_fn(info, args, notes)
        if info.rank == 0:
            _print_done(args, result)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
