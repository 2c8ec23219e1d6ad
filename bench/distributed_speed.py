"""Multi-process training speed: the training loop in 1 process vs N gloo/NCCL processes.

For `--cfg=dcgan` at 32 px on the embedded MNIST (same global batch in every row), prints img/s,
sec/kimg and CPU-seconds per kimg (summed over the processes) of
`training.training_loop.training_loop`, timed between its first and last tick (startup, DDP
construction and the first step excluded):

- "1 proc": one process with `--threads` threads (the baseline);
- "1 proc, 1 thr": one process with one thread each, when that differs from the baseline;
- "N procs": N processes (`torch_utils.distributed.launch`, DistributedDataParallel, gloo on
  CPU / NCCL on CUDA), each with threads/N threads, so both rows use the same cores.

It also times one all-reduce of a float32 tensor as large as G's + D's parameters (what DDP
averages per step: G's gradients in the G phase, D's in the D phase), the communication floor of
the N-process row.
On a 2-core CPU machine 2 processes cannot be faster than one with 2 threads: the point is that
the path works and what it costs.

    python bench/distributed_speed.py [--procs 2] [--steps 10] [--reps 2] [--batch 64] [--threads 2]
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch_utils import distributed  # noqa: E402
from training import configs  # noqa: E402


def _options(data_path: str, batch: int, steps: int, num_gpus: int, run_dir: str, device: str) -> dict:
    c = configs.build_config("dcgan", resolution=32, img_channels=1, batch=batch, batch_gpu=batch // num_gpus,
                             kimg=(steps + 1) * batch / 1000, tick=steps * batch / 1000)
    c.pop("default_aug")
    c.loss_kwargs.generator_loss = "renyi"
    c.loss_kwargs.generator_loss_kwargs = {"alpha": 3.0, "l1": False}
    return dict(c, run_dir=run_dir, training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path=data_path,
                                                             use_labels=False, max_size=None, xflip=False, resolution=32,
                                                             random_seed=0),
                data_loader_kwargs=dict(num_workers=0), image_snapshot_ticks=None, network_snapshot_ticks=None,
                random_seed=0, progress=False, grid_max=4, num_gpus=num_gpus, device=device)


def _timed_worker(info: distributed.DistInfo, opts: dict, threads: int) -> tuple[float, float]:
    """(wall, CPU) seconds of this process between the loop's first and last tick."""
    from training import training_loop

    torch.set_num_threads(threads)
    marks: list[tuple[float, float]] = []

    def abort_fn() -> bool:
        marks.append((time.perf_counter(), time.process_time()))
        return False

    with contextlib.redirect_stdout(io.StringIO()):
        training_loop.training_loop(**dict(opts, rank=info.rank, device=str(info.device)), abort_fn=abort_fn)
    (w0, c0), (w1, c1) = marks[0], marks[-1]
    return w1 - w0, c1 - c0


def _allreduce_worker(info: distributed.DistInfo, numel: int, reps: int) -> float:
    """Median seconds of one all-reduce (average) of `numel` float32 values."""
    t = torch.ones(numel, device=info.device)
    distributed.all_reduce_(t, "mean")  # warm-up (connections, buffers)
    times = []
    for _ in range(reps):
        distributed.barrier()
        t0 = time.perf_counter()
        distributed.all_reduce_(t, "mean")
        if info.device.type == "cuda":
            torch.cuda.synchronize(info.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _param_count(batch: int) -> int:
    from dnnlib.util import construct_class_by_name

    c = configs.build_config("dcgan", resolution=32, img_channels=1, batch=batch)
    common = dict(c_dim=0, img_resolution=32, img_channels=1)
    G = construct_class_by_name(**c.G_kwargs, **common)
    D = construct_class_by_name(**c.D_kwargs, **common)
    return sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())


@click.command()
@click.option("--data", help="MNIST 32 px dataset zip [default: the embedded one]", default=None)
@click.option("--procs", type=int, default=2, show_default=True, help="Processes of the multi-process row")
@click.option("--steps", type=int, default=10, show_default=True)
@click.option("--reps", type=int, default=2, show_default=True)
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="Threads in total (split over the processes)")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda (one GPU per process)")
def main(data, procs, steps, reps, batch, threads, device):
    """Benchmark 1 vs N training processes at the same global batch."""
    if data is None:
        import dataset_tool

        data = str(dataset_tool.ensure_embedded_mnist())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    per_proc_threads = max(1, threads // procs)
    print(f"DCGAN 32 px, --loss=renyi, global batch {batch}, {steps} timed steps x {reps} reps, device {device}, "
          f"{threads} thread(s) in total, load average {load:.1f}")
    rows = [("1 proc", 1, threads)]
    if per_proc_threads != threads:
        rows.append((f"1 proc, {per_proc_threads} thr", 1, per_proc_threads))
    rows.append((f"{procs} procs", procs, per_proc_threads))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):  # interleaved, so other jobs' load hits every row alike
            for i, (name, n, thr) in enumerate(rows):
                run_dir = os.path.join(tmp, f"run{rep}-{i}")
                os.makedirs(run_dir)
                out = distributed.launch(_timed_worker, n, args=(_options(data, batch, steps, n, run_dir, device), thr),
                                         start_method="forkserver", device=device)
                results[name].append((max(w for w, _ in out), sum(c for _, c in out)))
        numel = _param_count(batch)
        ar = distributed.launch(_allreduce_worker, procs, args=(numel, 5), start_method="forkserver", device=device)[0]
    nimg = steps * batch
    print(f"{'what':<14} {'img/s':>8} {'sec/kimg':>9} {'cpu-s/kimg':>11} {'vs 1 proc':>10}")
    base = None
    for name, vals in results.items():
        wall = statistics.median(v[0] for v in vals)
        cpu = statistics.median(v[1] for v in vals)
        sec_kimg = wall / nimg * 1000
        base = sec_kimg if base is None else base
        print(f"{name:<14} {nimg / wall:>8.1f} {sec_kimg:>9.2f} {cpu / nimg * 1000:>11.2f} {base / sec_kimg:>9.2f}x")
    print(f"one all-reduce of {numel / 1e6:.2f}M float32 (G + D parameters; per step DDP averages G's in the G "
          f"phase and D's in the D phase) over {procs} processes: {ar * 1000:.1f} ms = {ar / (batch / 1000):.2f} "
          "sec/kimg of pure communication")
    print("(vs 1 proc > 1x means faster; other jobs were running on this machine if the load average exceeds the "
          "thread count, so wall-clock figures are noisy)")


if __name__ == "__main__":
    main()
