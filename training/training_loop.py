"""The main training loop: phases, lazy regularisation, EMA, ADA, ticks, snapshots and logs.

`training_loop(**options)` takes the dict that `train.py` writes to `training_options.json` (plus
`rank`) and fills the run folder:

- `log.txt` (everything printed, one line per tick), `stats.jsonl` (one JSON object per tick:
  `{stat: {num, mean, std}, ..., "timestamp"}`),
- `reals.png`, `reals_aug.png` (when augmenting: the first rows of reals through the pipe at p = 1),
  `fakes_init.png`, `fakesNNNNNN.png`,
- `network-snapshot-NNNNNN.pt` (see `training.snapshot`) and `losses.png` at each network
  snapshot, `metric-<name>.jsonl` from the metrics run after each network snapshot.

One training step (one minibatch of `batch_size` images, `batch_gpu` per round):
phases in the order Gmain, Greg, Dmain, Dreg (or Gboth/Dboth without lazy regularisation); a
reg phase runs when `batch_idx % interval == 0` with gradient gain = interval, and its
optimiser uses `lr * r`, `betas ** r` with `r = interval / (interval + 1)`. After the phases:
`G_ema <- lerp(G, G_ema, beta)`, `beta = 0.5 ** (batch_size / ema_nimg)`,
`ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup)` (ema_kimg = 0: G_ema = G), and every
`ada_interval` steps the ADA rule `p <- max(p + sign(E[sign(D(x))] - target) * batch_size *
ada_interval / (ada_kimg * 1000), 0)`.

Several processes (`num_gpus > 1`, `rank`; started by `train.py --gpus=N` or torchrun, see
`torch_utils.distributed`): G and D are wrapped in DistributedDataParallel (`training.ddp`), so
all replicas start from rank 0's weights and gradients are averaged once per phase; rank k reads
every num_gpus-th image (`misc.InfiniteSampler`) and takes the k-th slice of the step's latents,
which are drawn from a generator seeded by (random_seed, step), so N processes with batch_gpu
images per round train exactly like one process running all their rounds (the Rényi loss is
combined over the global batch); statistics are summed over ranks; only rank 0 writes files;
metrics use every rank; a NaN/inf on any rank makes all ranks skip or stop together.

A NaN/inf in a logit, loss or gradient stops the run with `TrainingDivergedError` (the last good
snapshot stays as it is), or with `nan_policy='skip'` drops that phase's update and goes on.
Resuming from a snapshot restores weights, optimiser moments, EMA, counters, RNG states, the data
position, the augmentation probability and the loss state, so the run continues exactly.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import sys
import time
from typing import Any, Callable, Optional

import numpy as np
import torch

from dnnlib.util import EasyDict, UserError, atomic_write_bytes, construct_class_by_name, format_time
from torch_utils import misc, training_stats
from training import snapshot as snapshot_lib
from training.augment import ada_update
from training.loss import NonFiniteError


class TrainingDivergedError(UserError):
    """A loss or gradient became NaN/inf and the run was stopped (nan_policy='stop')."""


# ------------------------------------------------------------------------------------------------
# Logging.


class Logger:
    """Tee `sys.stdout`/`sys.stderr` into a log file (append mode) while active."""

    def __init__(self, file_name: Optional[str]) -> None:
        self.file = open(file_name, "a", encoding="utf-8") if file_name else None
        self.stdout, self.stderr = sys.stdout, sys.stderr

    def __enter__(self) -> "Logger":
        sys.stdout = _Tee(self.stdout, self.file)
        sys.stderr = _Tee(self.stderr, self.file)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr = self.stdout, self.stderr
        if self.file is not None:
            self.file.close()


class _Tee:
    def __init__(self, stream: Any, file: Any) -> None:
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.stream.write(text)
        if self.file is not None and text:
            self.file.write(text)
            self.file.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        if self.file is not None:
            self.file.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.stream.fileno()


# ------------------------------------------------------------------------------------------------
# Image grids.


def grid_shape(resolution: int, grid_max: int = 16) -> tuple[int, int]:
    """(gw, gh) = (clip(7680 // W, 7, 32), clip(4320 // H, 4, 32)), each capped at `grid_max`."""
    gw = int(np.clip(7680 // resolution, 7, 32))
    gh = int(np.clip(4320 // resolution, 4, 32))
    return min(gw, max(grid_max, 7)), min(gh, max(grid_max, 4))


def setup_snapshot_image_grid(training_set: Any, random_seed: int = 0, grid_max: int = 16):
    """((gw, gh), images uint8 [N,C,H,W], labels float32 [N, label_dim]) for the snapshot grids.

    Unlabelled data: `gw * gh` random images. Labelled data: row y shows class y (cycling through
    the classes present), gw images of that class.
    """
    rnd = np.random.RandomState(random_seed)
    gw, gh = grid_shape(training_set.resolution, grid_max)
    n = len(training_set)
    if not training_set.has_labels:
        idx = rnd.permutation(n)[: gw * gh] if n >= gw * gh else rnd.randint(n, size=gw * gh)
    else:
        by_label: dict[tuple, list[int]] = {}
        for i in rnd.permutation(n)[: min(n, 20000)]:
            key = tuple(training_set.get_label(int(i)).tolist())
            by_label.setdefault(key, []).append(int(i))
        keys = sorted(by_label, reverse=True)
        idx = []
        for y in range(gh):
            pool = by_label[keys[y % len(keys)]]
            idx += [pool[x % len(pool)] for x in range(gw)]
    images, labels = zip(*[training_set[int(i)] for i in idx])
    return (gw, gh), np.stack(images), np.stack(labels)


def image_grid_png(img: np.ndarray, drange: tuple[float, float], grid_size: tuple[int, int]) -> bytes:
    """PNG bytes of a (gh x gw) grid of images [N, C, H, W] with values in `drange`."""
    import PIL.Image

    lo, hi = drange
    img = np.asarray(img, dtype=np.float32)
    img = np.rint((img - lo) * (255 / (hi - lo))).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    _n, c, h, w = img.shape
    img = img[: gw * gh].reshape(gh, gw, c, h, w).transpose(0, 3, 1, 4, 2).reshape(gh * h, gw * w, c)
    pil = PIL.Image.fromarray(img[:, :, 0], "L") if c == 1 else PIL.Image.fromarray(img, "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="png")
    return buf.getvalue()


def save_image_grid(img: np.ndarray, fname: str | os.PathLike, drange, grid_size) -> None:
    atomic_write_bytes(fname, image_grid_png(img, drange, grid_size))


@torch.no_grad()
def generate_grid(G_ema: torch.nn.Module, grid_z: torch.Tensor, grid_c: torch.Tensor, batch: int) -> np.ndarray:
    out = [G_ema(z, c, noise_mode="const").cpu() for z, c in zip(grid_z.split(batch), grid_c.split(batch))]
    return torch.cat(out).numpy()


# ------------------------------------------------------------------------------------------------
# Loss curves.


def plot_losses(stats_path: str | os.PathLike, out_path: str | os.PathLike) -> bool:
    """Render losses.png from stats.jsonl (G and D losses, real/fake scores vs kimg)."""
    rows = []
    try:
        with open(stats_path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError):
        return False
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(name: str):
        xs, ys = [], []
        for r in rows:
            if name in r and "Progress/kimg" in r:
                xs.append(r["Progress/kimg"]["mean"])
                ys.append(r[name]["mean"])
        return xs, ys

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("Loss/G/loss", "Loss/D/loss", "Loss/G/reg", "Loss/D/reg"):
        xs, ys = series(name)
        if xs:
            axes[0].plot(xs, ys, label=name)
    axes[0].set_xlabel("kimg")
    axes[0].set_title("losses (tick means)")
    axes[0].legend(fontsize=8)
    for name in ("Loss/scores/real", "Loss/scores/fake", "Progress/alpha", "Progress/augment"):
        xs, ys = series(name)
        if xs:
            axes[1].plot(xs, ys, label=name)
    axes[1].set_xlabel("kimg")
    axes[1].set_title("D logits, alpha, augment p")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(out_path, buf.getvalue())
    return True


# ------------------------------------------------------------------------------------------------
# Helpers.


@contextlib.contextmanager
def preserved_rng():
    """Run a block (image grids, metrics) without disturbing the training RNG streams."""
    state = misc.get_rng_state()
    try:
        yield
    finally:
        misc.set_rng_state(state)


def cpu_mem_gb() -> float:
    """Resident memory of this process in GB (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def collate_images(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack dataset items (uint8 image [C,H,W], float32 label) into two tensors (copies)."""
    images = torch.from_numpy(np.stack([item[0] for item in batch]))
    labels = torch.from_numpy(np.stack([item[1] for item in batch]).astype(np.float32))
    return images, labels


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval) -> list[EasyDict]:
    phases = []
    for name, module, opt_kwargs, interval in (
        ("G", G, G_opt_kwargs, G_reg_interval),
        ("D", D, D_opt_kwargs, D_reg_interval),
    ):
        kw = dict(opt_kwargs)
        if interval is None:
            opt = construct_class_by_name(module.parameters(), **kw)
            phases.append(EasyDict(name=name + "both", module=module, opt=opt, interval=1))
        else:
            ratio = interval / (interval + 1)
            kw["lr"] = kw["lr"] * ratio
            kw["betas"] = [b**ratio for b in kw["betas"]]
            opt = construct_class_by_name(module.parameters(), **kw)
            phases.append(EasyDict(name=name + "main", module=module, opt=opt, interval=1))
            phases.append(EasyDict(name=name + "reg", module=module, opt=opt, interval=int(interval)))
    return phases


# ------------------------------------------------------------------------------------------------


def training_loop(
    run_dir: str = ".",
    training_set_kwargs: dict = {},
    data_loader_kwargs: dict = {},
    G_kwargs: dict = {},
    D_kwargs: dict = {},
    G_opt_kwargs: dict = {},
    D_opt_kwargs: dict = {},
    augment_kwargs: Optional[dict] = None,
    loss_kwargs: dict = {},
    metrics: list = [],
    random_seed: int = 0,
    num_gpus: int = 1,
    rank: int = 0,
    device: str = "auto",
    batch_size: int = 4,
    batch_gpu: int = 4,
    ema_kimg: float = 10,
    ema_rampup: Optional[float] = None,
    G_reg_interval: Optional[int] = 4,
    D_reg_interval: Optional[int] = 16,
    augment_p: float = 0,
    ada_target: Optional[float] = None,
    ada_interval: int = 4,
    ada_kimg: float = 500,
    total_kimg: float = 25000,
    kimg_per_tick: float = 4,
    image_snapshot_ticks: Optional[int] = 50,
    network_snapshot_ticks: Optional[int] = 50,
    resume_pkl: Optional[str] = None,
    alpha_schedule: Optional[str] = None,
    amp: str = "fp32",
    nan_policy: str = "stop",
    deterministic: bool = False,
    cudnn_benchmark: bool = True,
    allow_tf32: bool = False,
    grid_max: int = 16,
    inject_nan_step: Optional[int] = None,
    progress: Optional[bool] = None,
    abort_fn: Optional[Callable[[], bool]] = None,
    **unused: Any,
) -> EasyDict:
    """Train G and D as configured; return EasyDict(cur_nimg, cur_tick, batch_idx, last_snapshot,
    nan_skipped). See the module docstring. `inject_nan_step` (testing) turns D's output into NaN
    during that step. Keys of `unused` (e.g. `desc`, `run_dir` extras) are ignored."""
    start_time = time.time()
    dev = misc.select_device(device)
    is_main = rank == 0
    run_dir = str(run_dir)
    if nan_policy not in ("stop", "skip"):
        raise UserError(f"nan_policy must be 'stop' or 'skip', got '{nan_policy}'")
    misc.seed_everything(random_seed * num_gpus + rank)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cudnn_benchmark) and not deterministic
        torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
        torch.backends.cudnn.allow_tf32 = bool(allow_tf32)
    reporter = training_stats.Reporter()
    tick_stats = training_stats.Collector(reporter)
    ada_stats = training_stats.Collector(reporter, regex=r"Loss/signs/real")

    # Dataset.
    training_set = construct_class_by_name(**training_set_kwargs)
    if is_main:
        print(f"Dataset: {training_set.name}, {len(training_set)} images, shape {training_set.image_shape}, "
              f"label dim {training_set.label_dim}")

    # Networks.
    common = dict(c_dim=training_set.label_dim, img_resolution=training_set.resolution, img_channels=training_set.num_channels)
    G = construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False).to(dev)
    D = construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False).to(dev)
    G_ema = copy.deepcopy(G).eval()
    ema_follows_G = not ema_kimg  # ema_kimg = 0: G_ema is a copy of G, synced when it is used
    augment_pipe = None
    if augment_kwargs is not None and (augment_p > 0 or ada_target is not None):
        augment_pipe = construct_class_by_name(**augment_kwargs).train().requires_grad_(False).to(dev)
        augment_pipe.p.copy_(torch.as_tensor(float(augment_p)))
    if is_main:
        n_g = sum(p.numel() for p in G.parameters())
        n_d = sum(p.numel() for p in D.parameters())
        print(f"Networks: G {type(G).__module__}.{type(G).__name__} ({n_g:,} params), "
              f"D {type(D).__name__} ({n_d:,} params), device {dev}, amp {amp}")

    # Several processes: DistributedDataParallel wrappers (they copy rank 0's weights to all ranks).
    ddp_modules = None
    if num_gpus > 1:
        from torch_utils import distributed
        from training import ddp as ddp_lib

        if distributed.get_world_size() != num_gpus or distributed.get_rank() != rank:
            raise UserError(f"num_gpus={num_gpus}, rank={rank} but the process group has rank {distributed.get_rank()} of "
                            f"{distributed.get_world_size()}; start multi-process runs with train.py --gpus=N or torchrun")
        ddp_modules = ddp_lib.wrap_networks(G, D, dev)
        distributed.broadcast_module_(G_ema)
        if augment_pipe is not None:
            distributed.broadcast_module_(augment_pipe)
        if is_main:
            print(f"Distributed: {num_gpus} processes, DistributedDataParallel over "
                  f"{', '.join(ddp_modules)} (backend {torch.distributed.get_backend()})")

    # Loss and phases.
    extra_loss_kwargs = dict(ddp=ddp_modules) if ddp_modules is not None else {}
    loss = construct_class_by_name(device=dev, G=G, D=D, augment_pipe=augment_pipe, reporter=reporter, amp=amp,
                                   **loss_kwargs, **extra_loss_kwargs)
    phases = _make_phases(G, D, G_opt_kwargs, D_opt_kwargs, G_reg_interval, D_reg_interval)
    schedule = None
    if alpha_schedule:
        from renyi import schedule as schedule_lib

        schedule = schedule_lib.from_string(alpha_schedule, alpha=loss.gen_params.get("alpha"), dataset_size=len(training_set))
        if "alpha" not in loss.spec.params:
            raise UserError(f"--alpha-schedule needs a loss with an alpha parameter, not '{loss.spec.name}'")

    # Progress counters (possibly from a snapshot).
    cur_nimg, cur_tick, batch_idx, tick_start_nimg = 0, 0, 0, 0
    resume_state = None
    if resume_pkl:
        resume_state = snapshot_lib.read_snapshot(resume_pkl)
        if is_main:
            print(f"Resuming from '{resume_pkl}'")
        for name, module in (("G", G), ("D", D)):
            module.load_state_dict(resume_state[name]["state_dict"])
        rec = resume_state["G_ema"]
        G_ema.load_state_dict(resume_state[rec["same_as"]]["state_dict"] if rec.get("same_as") else rec["state_dict"])
        if augment_pipe is not None and resume_state.get("augment_p") is not None:
            augment_pipe.p.copy_(torch.as_tensor(float(resume_state["augment_p"])))
        opt_states = {"G": resume_state.get("G_opt"), "D": resume_state.get("D_opt")}
        for phase in phases:
            st = opt_states.get(phase.name[0])
            if st is not None and phase.name.endswith(("main", "both")):
                phase.opt.load_state_dict(st)
        if resume_state.get("loss_state"):
            loss.load_state_dict(resume_state["loss_state"])
        prog = resume_state.get("progress", {})
        cur_nimg = int(prog.get("cur_nimg", 0))
        batch_idx = int(prog.get("batch_idx", 0))
        cur_tick = int(prog.get("cur_tick", -1)) + 1
        tick_start_nimg = cur_nimg
        if resume_state.get("stats"):
            reporter.load_state_dict(resume_state["stats"]["reporter"])
            ada_stats.load_state_dict(resume_state["stats"]["ada"])
            tick_stats.update()  # the snapshot's own tick was already written to stats.jsonl

    # Data: a deterministic, resumable order.
    per_gpu_batch = batch_size // num_gpus
    if per_gpu_batch % batch_gpu != 0:
        raise UserError(f"batch_gpu={batch_gpu} must divide the per-GPU batch {per_gpu_batch}")
    sampler = misc.InfiniteSampler(len(training_set), rank=rank, num_replicas=num_gpus, seed=random_seed,
                                   start=batch_idx * per_gpu_batch)
    dl_kwargs = dict(data_loader_kwargs)
    if int(dl_kwargs.get("num_workers", 0)) == 0:
        dl_kwargs.pop("prefetch_factor", None)
        dl_kwargs.pop("persistent_workers", None)
    if dev.type != "cuda":
        dl_kwargs.pop("pin_memory", None)
    loader = torch.utils.data.DataLoader(training_set, sampler=sampler, batch_size=per_gpu_batch,
                                         collate_fn=collate_images, generator=torch.Generator().manual_seed(random_seed),
                                         **dl_kwargs)
    data_iter = iter(loader)
    if resume_state is not None:
        per_rank = resume_state.get("rng_per_rank") or []
        if len(per_rank) == num_gpus:
            misc.set_rng_state(per_rank[rank])
        elif num_gpus == 1:
            misc.set_rng_state(resume_state["rng"])
        else:  # the process count changed: latents stay exact (see below), dropout/augment draws do not
            misc.seed_everything(random_seed * num_gpus + rank + 7919 * batch_idx)
            if is_main:
                print(f"note: the snapshot was written by {max(len(per_rank), 1)} process(es), this run has {num_gpus}; "
                      "per-process random streams were re-seeded")

    # Snapshot grids (rank 0), without touching the training RNGs.
    grid_size = grid_z = grid_c = None
    if is_main:
        with preserved_rng():
            grid_size, images, labels = setup_snapshot_image_grid(training_set, random_seed, grid_max)
            save_image_grid(images, os.path.join(run_dir, "reals.png"), (0, 255), grid_size)
            if augment_pipe is not None:  # drawn at p = 1 (every transform on), so the grid shows what ADA can do
                p_now = augment_pipe.p.detach().clone()
                with torch.no_grad():
                    augment_pipe.p.fill_(1.0)
                    aug = augment_pipe(torch.as_tensor(images[: 8 * grid_size[0]], device=dev).float() / 127.5 - 1)
                    augment_pipe.p.copy_(p_now)
                save_image_grid(aug.cpu().numpy(), os.path.join(run_dir, "reals_aug.png"), (-1, 1), (grid_size[0], aug.shape[0] // grid_size[0]))
            grid_z = torch.randn([labels.shape[0], G.z_dim], generator=torch.Generator().manual_seed(random_seed)).to(dev)
            grid_c = torch.from_numpy(labels).to(dev)
            if resume_state is None:
                save_image_grid(generate_grid(G_ema, grid_z, grid_c, max(batch_gpu, 64)), os.path.join(run_dir, "fakes_init.png"), (-1, 1), grid_size)

    label_dim = training_set.label_dim
    num_phases = len(phases)

    def draw_latents(step: int) -> tuple[list, list]:
        """Per phase: this rank's z and c chunks (rounds of batch_gpu).

        The whole step's latents come from a generator seeded by (random_seed, step), and each rank
        takes its contiguous slice, so the global batch of latents (and its grouping into rounds of
        batch_gpu) does not depend on the number of processes, and a resumed run draws the same."""
        seed = int(np.random.SeedSequence([int(random_seed), int(step), 0x1A7E]).generate_state(1, np.uint64)[0] >> 1)
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn([num_phases, batch_size, G.z_dim], generator=gen)
        mine = slice(rank * per_gpu_batch, (rank + 1) * per_gpu_batch)
        zs = [pz[mine].to(dev).split(batch_gpu) for pz in z]
        if label_dim == 0:
            cs = [torch.zeros([per_gpu_batch, 0], device=dev).split(batch_gpu) for _ in range(num_phases)]
        else:
            idx = torch.randint(len(training_set), [num_phases, batch_size], generator=gen)[:, mine]
            cs = [torch.from_numpy(np.stack([training_set.get_label(int(i)) for i in row])).to(dev).split(batch_gpu)
                  for row in idx]
        return zs, cs

    # NaN injection for tests: a forward hook on D active during one step.
    step_box = {"step": batch_idx}
    if inject_nan_step is not None:
        def _nan_hook(_module, _inputs, output):
            if step_box["step"] == inject_nan_step:
                return output * float("nan")
            return output
        D.register_forward_hook(_nan_hook)

    last_snapshot: Optional[str] = None
    nan_skipped = 0
    total_nimg = int(round(total_kimg * 1000))
    bar = None
    if is_main:
        from tqdm import tqdm

        bar = tqdm(total=total_nimg, initial=min(cur_nimg, total_nimg), unit="img", unit_scale=True, dynamic_ncols=True,
                   file=sys.__stderr__, disable=(None if progress is None else not progress), desc="training", leave=False)
        print(f"Training for {total_kimg:g} kimg (batch {batch_size}, {batch_size // num_gpus // batch_gpu} round(s) of {batch_gpu}), "
              f"ticks of {kimg_per_tick:g} kimg...")
    def log_line(line: str) -> None:
        if bar is not None:
            bar.clear()
        print(line, flush=True)
        if bar is not None:
            bar.refresh()

    tick_start_time = time.time()
    maintenance_time = tick_start_time - start_time
    done = cur_nimg >= total_nimg

    def save_network_snapshot(rng_states: list) -> str:
        nonlocal last_snapshot
        if ema_follows_G:
            misc.copy_params_and_buffers(G, G_ema, require_all=True)
        path = os.path.join(run_dir, f"network-snapshot-{cur_nimg // 1000:06d}.pt")
        phase_opt = {p.name[0]: p.opt for p in phases}
        snapshot_lib.save_snapshot(
            path, G=G, D=D, G_ema="same_as_G" if ema_follows_G else G_ema, augment_pipe=augment_pipe,
            augment_p=float(augment_pipe.p) if augment_pipe is not None else float(augment_p),
            training_set_kwargs=dict(training_set_kwargs),
            G_opt=phase_opt["G"].state_dict(), D_opt=phase_opt["D"].state_dict(),
            progress=dict(cur_nimg=cur_nimg, cur_tick=cur_tick, batch_idx=batch_idx, tick_start_nimg=tick_start_nimg),
            rng=rng_states[0], rng_per_rank=rng_states if num_gpus > 1 else None, loss_state=loss.state_dict(),
            alpha_schedule=dict(spec=alpha_schedule, alpha=loss.gen_params.get("alpha")),
            stats=dict(reporter=reporter.state_dict(), ada=ada_stats.state_dict()),
            training_options=dict(batch_size=batch_size, batch_gpu=batch_gpu, total_kimg=total_kimg, random_seed=random_seed),
        )
        last_snapshot = path
        return path

    # Main loop.
    while not done:
        step_box["step"] = batch_idx
        # Fetch data.
        real_img, real_c = next(data_iter)
        real_img = (real_img.to(dev).to(torch.float32) / 127.5 - 1).split(batch_gpu)
        real_c = real_c.to(dev).split(batch_gpu)
        all_gen_z, all_gen_c = draw_latents(batch_idx)
        if schedule is not None:
            alpha = float(schedule.alpha_at(cur_nimg / 1000))
            loss.set_generator_param("alpha", alpha)
        if "alpha" in loss.gen_params:
            reporter.report("Progress/alpha", float(loss.gen_params["alpha"]))

        # Phases.
        for phase, gen_z, gen_c in zip(phases, all_gen_z, all_gen_c):
            if batch_idx % phase.interval != 0 or not loss.phase_does_work(phase.name):
                continue
            t0 = time.perf_counter()
            params = [p for p in phase.module.parameters()]
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            problem = None
            try:
                values = loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                                   gen_c=gen_c, gain=phase.interval, params=params)
            except NonFiniteError as err:
                problem = f"{err.what}: {err.value}"
                values = {}
            phase.module.requires_grad_(False)
            # (With several processes DDP has averaged the gradients in the last backward.)
            if problem is None and not all(math.isfinite(v) for v in values.values()):
                problem = "loss values " + ", ".join(f"{k}={v}" for k, v in values.items())
            if problem is None and not misc.grads_are_finite(params):
                bad = [n for n, p in phase.module.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
                problem = f"gradients of {len(bad)} tensor(s), e.g. {bad[:3]}"
            if num_gpus > 1:
                problem = ddp_lib.agree_on_problem(problem, dev)  # every rank skips or stops alike
            if problem is not None:
                msg = (f"NaN/inf detected at step {batch_idx} (kimg {cur_nimg / 1000:.3f}), phase {phase.name}: {problem}")
                if nan_policy == "skip":
                    nan_skipped += 1
                    reporter.report("Progress/nan_skipped", 1.0)
                    if is_main:
                        log_line(f"warning: {msg}; update skipped (--nan=skip)")
                    phase.opt.zero_grad(set_to_none=True)
                    continue
                where = f"last good snapshot: {last_snapshot}" if last_snapshot else "no snapshot was written yet"
                if bar is not None:
                    bar.close()
                if is_main:
                    with open(os.path.join(run_dir, "log.txt"), "a", encoding="utf-8") as f:
                        f.write(f"error: {msg}; training stopped ({where})\n")
                raise TrainingDivergedError(f"{msg}; training stopped ({where}); try a lower learning rate, R1 (--gamma) or --nan=skip")
            phase.opt.step()
            _sync(dev)
            reporter.report("Timing/" + phase.name, (time.perf_counter() - t0) * 1000)

        # EMA.
        if not ema_follows_G:
            with torch.no_grad():
                ema_nimg = ema_kimg * 1000
                if ema_rampup is not None:
                    ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
                beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
                ema_params, g_params = list(G_ema.parameters()), list(G.parameters())
                torch._foreach_lerp_(ema_params, g_params, 1.0 - beta)
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)

        # Counters.
        cur_nimg += batch_size
        batch_idx += 1
        if bar is not None:
            bar.update(batch_size)

        # ADA.
        if augment_pipe is not None and ada_target is not None and batch_idx % ada_interval == 0:
            ada_stats.update(num_gpus=num_gpus, device=dev)
            new_p = ada_update(float(augment_pipe.p), ada_stats.mean("Loss/signs/real"), ada_target, batch_size,
                               ada_interval, ada_kimg)
            with torch.no_grad():
                augment_pipe.p.copy_(torch.as_tensor(new_p))

        # Tick?
        done = cur_nimg >= total_nimg
        if not done and cur_tick != 0 and cur_nimg < tick_start_nimg + kimg_per_tick * 1000:
            continue

        # --- Tick maintenance (does not disturb the training RNG streams). ---
        tick_end_time = time.time()
        with preserved_rng():
            tick_kimg = (cur_nimg - tick_start_nimg) / 1000
            tick_time = tick_end_time - tick_start_time
            total_time = tick_end_time - start_time
            p_now = float(augment_pipe.p) if augment_pipe is not None else 0.0
            reporter.report("Progress/tick", cur_tick)
            reporter.report("Progress/kimg", cur_nimg / 1000)
            reporter.report("Progress/augment", p_now)
            reporter.report("Timing/total_sec", total_time)
            reporter.report("Timing/sec_per_tick", tick_time)
            reporter.report("Timing/sec_per_kimg", tick_time / max(tick_kimg, 1e-9))
            reporter.report("Timing/maintenance_sec", maintenance_time)
            reporter.report("Timing/total_hours", total_time / 3600)
            reporter.report("Timing/total_days", total_time / 86400)
            reporter.report("Resources/cpu_mem_gb", cpu_mem_gb())
            gpu_gb = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0
            reporter.report("Resources/peak_gpu_mem_gb", gpu_gb)
            if is_main:
                fields = [
                    f"tick {cur_tick:<5d}", f"kimg {cur_nimg / 1000:<9.3f}", f"time {format_time(total_time):<12s}",
                    f"sec/tick {tick_time:<7.1f}", f"sec/kimg {tick_time / max(tick_kimg, 1e-9):<7.2f}",
                    f"maintenance {maintenance_time:<6.1f}", f"cpumem {cpu_mem_gb():<6.2f}", f"gpumem {gpu_gb:<6.2f}",
                    f"augment {p_now:.3f}",
                ]
                if "alpha" in loss.gen_params:
                    fields.append(f"alpha {float(loss.gen_params['alpha']):.3f}")
                log_line(" ".join(fields))

            if abort_fn is not None and abort_fn():
                done = True
                if is_main:
                    print("Aborting...")

            # Image snapshot.
            if is_main and image_snapshot_ticks is not None and (done or cur_tick % image_snapshot_ticks == 0):
                if ema_follows_G:
                    misc.copy_params_and_buffers(G, G_ema, require_all=True)
                images = generate_grid(G_ema, grid_z, grid_c, max(batch_gpu, 64))
                save_image_grid(images, os.path.join(run_dir, f"fakes{cur_nimg // 1000:06d}.png"), (-1, 1), grid_size)

            # Network snapshot, metrics.
            snapshot_name = None
            if network_snapshot_ticks is not None and (done or cur_tick % network_snapshot_ticks == 0):
                if ema_follows_G:
                    misc.copy_params_and_buffers(G, G_ema, require_all=True)
                rng_states = [misc.get_rng_state()]
                if num_gpus > 1:  # every rank's random streams, so a resume continues each exactly
                    rng_states = distributed.all_gather_object(rng_states[0])
                if is_main:
                    snapshot_name = save_network_snapshot(rng_states)
                else:  # written by rank 0; named in this rank's messages too
                    last_snapshot = os.path.join(run_dir, f"network-snapshot-{cur_nimg // 1000:06d}.pt")
                if metrics:
                    from metrics import metric_main

                    if is_main:
                        print("Evaluating metrics...")
                    for metric in metrics:
                        result = metric_main.calc_metric(metric=metric, G=G_ema, dataset_kwargs=training_set_kwargs,
                                                         num_gpus=num_gpus, rank=rank, device=dev)
                        if is_main:
                            metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=os.path.basename(snapshot_name))

            # Stats.
            tick_stats.update(num_gpus=num_gpus, device=dev)
            if is_main:
                fields = dict(tick_stats.as_dict(), timestamp=time.time())
                with open(os.path.join(run_dir, "stats.jsonl"), "a", encoding="utf-8") as f:
                    f.write(json.dumps(fields) + "\n")
                if snapshot_name is not None:
                    plot_losses(os.path.join(run_dir, "stats.jsonl"), os.path.join(run_dir, "losses.png"))

        cur_tick += 1
        tick_start_nimg = cur_nimg
        tick_start_time = time.time()
        maintenance_time = tick_start_time - tick_end_time

    if bar is not None:
        bar.close()
    if is_main:
        print("Exiting...")
    return EasyDict(cur_nimg=cur_nimg, cur_tick=cur_tick, batch_idx=batch_idx, last_snapshot=last_snapshot,
                    nan_skipped=nan_skipped, G=G, D=D, G_ema=G_ema)
