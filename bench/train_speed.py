"""Training speed of the full loop vs a bare PyTorch loop over the same DCGAN networks.

Prints img/s and sec/kimg for `--cfg=dcgan` at 32 px (batch 64 by default) on the embedded MNIST:

- "bare": a minimal loop written here (in-memory real batches, G step with the non-saturating
  loss, D step with BCE, Adam) over the same G and D classes and settings;
- "loop": `training.training_loop.training_loop` (data loader, GANLoss, NaN checks, stats,
  EMA bookkeeping), timed between its first and last tick (startup and snapshots excluded).

Both are measured in the same process, interleaved (bare, loop, bare, loop, ...) so that load
from other jobs hits both alike; the table gives medians of wall-clock and of CPU-seconds per
kimg (CPU time is less sensitive to other jobs on the machine). Each is run in fp32 and with
bfloat16 autocast (`--amp=bf16`).

    python bench/train_speed.py [--steps 20] [--reps 3] [--batch 64] [--threads 2]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnnlib.util import EasyDict  # noqa: E402
from training import configs, training_loop  # noqa: E402
from training.dataset import ImageFolderDataset  # noqa: E402


def bare_loop(data_path: str, batch: int, steps: int, amp: str, seed: int = 0) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for `steps` steps after one warm-up step."""
    torch.manual_seed(seed)
    c = configs.build_config("dcgan", resolution=32, img_channels=1, batch=batch)
    G = training_loop.construct_class_by_name(**c.G_kwargs, c_dim=0, img_resolution=32, img_channels=1).train()
    D = training_loop.construct_class_by_name(**c.D_kwargs, c_dim=0, img_resolution=32, img_channels=1).train()
    opt_kw = {k: v for k, v in c.G_opt_kwargs.items() if k != "class_name"}
    g_opt = torch.optim.Adam(G.parameters(), **opt_kw)
    d_opt = torch.optim.Adam(D.parameters(), **opt_kw)
    ds = ImageFolderDataset(data_path)
    idx = np.random.RandomState(seed).permutation(len(ds))[: batch * 4]
    reals = torch.from_numpy(np.stack([ds[int(i)][0] for i in idx])).float() / 127.5 - 1
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp == "bf16" else nullcontext

    def step(i: int) -> None:
        real = reals[(i % 4) * batch: (i % 4 + 1) * batch]
        z = torch.randn(batch, G.z_dim)
        G.requires_grad_(True)
        g_opt.zero_grad(set_to_none=True)
        with ctx():
            logits = D(G(z, None).float(), None)
        F.softplus(-logits.float()).mean().backward()
        G.requires_grad_(False)
        g_opt.step()
        D.requires_grad_(True)
        d_opt.zero_grad(set_to_none=True)
        z = torch.randn(batch, G.z_dim)
        with ctx():
            fake = G(z, None).float()
            fake_logits = D(fake, None).float()
            real_logits = D(real, None).float()
        (F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()).backward()
        D.requires_grad_(False)
        d_opt.step()

    step(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i + 1)
    return time.perf_counter() - t0, time.process_time() - c0


def full_loop(data_path: str, batch: int, steps: int, amp: str, seed: int = 0) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the loop between its tick 0 (after step 1) and the end."""
    marks: list[tuple[float, float]] = []

    def abort_fn() -> bool:
        marks.append((time.perf_counter(), time.process_time()))
        return False

    c = configs.build_config("dcgan", resolution=32, img_channels=1, batch=batch, kimg=(steps + 1) * batch / 1000,
                             tick=steps * batch / 1000)
    c.pop("default_aug")
    c.loss_kwargs.generator_loss = "ns"
    c.loss_kwargs.generator_loss_kwargs = {}
    with tempfile.TemporaryDirectory() as run_dir:
        training_loop.training_loop(
            run_dir=run_dir, training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path=data_path,
                                                      use_labels=False, max_size=None, xflip=False, resolution=32, random_seed=seed),
            data_loader_kwargs=dict(num_workers=0), image_snapshot_ticks=None, network_snapshot_ticks=None, amp=amp,
            random_seed=seed, progress=False, grid_max=4, abort_fn=abort_fn, **c)
    (w0, c0), (w1, c1) = marks[0], marks[-1]
    return w1 - w0, c1 - c0


@click.command()
@click.option("--data", help="MNIST 32 px dataset zip [default: the embedded one]", default=None)
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--reps", type=int, default=3, show_default=True)
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--amps", default="fp32,bf16", show_default=True)
def main(data, steps, reps, batch, threads, amps):
    """Benchmark the training loop against a bare PyTorch loop."""
    torch.set_num_threads(threads)
    if data is None:
        import dataset_tool

        data = str(dataset_tool.ensure_embedded_mnist())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"DCGAN 32 px, batch {batch}, {steps} timed steps x {reps} reps, {threads} threads, load average {load:.1f}")
    import contextlib
    import io

    rows = []
    for amp in [a.strip() for a in amps.split(",") if a.strip()]:
        res = {"bare": [], "loop": []}
        for _ in range(reps):
            res["bare"].append(bare_loop(data, batch, steps, amp))
            with contextlib.redirect_stdout(io.StringIO()):
                res["loop"].append(full_loop(data, batch, steps, amp))
        nimg = steps * batch
        out = {}
        for kind, vals in res.items():
            wall = statistics.median(v[0] for v in vals)
            cpu = statistics.median(v[1] for v in vals)
            out[kind] = EasyDict(img_s=nimg / wall, sec_kimg=wall / nimg * 1000, cpu_kimg=cpu / nimg * 1000)
        for kind in ("bare", "loop"):
            o = out[kind]
            rows.append((amp, kind, o.img_s, o.sec_kimg, o.cpu_kimg))
        rows.append((amp, "overhead", float("nan"), out["loop"].sec_kimg / out["bare"].sec_kimg - 1,
                     out["loop"].cpu_kimg / out["bare"].cpu_kimg - 1))
    print(f"{'amp':<5} {'what':<9} {'img/s':>8} {'sec/kimg':>9} {'cpu-s/kimg':>11}")
    for amp, kind, img_s, sec_kimg, cpu_kimg in rows:
        if kind == "overhead":
            print(f"{amp:<5} {kind:<9} {'':>8} {sec_kimg:>+8.1%} {cpu_kimg:>+10.1%}")
        else:
            print(f"{amp:<5} {kind:<9} {img_s:>8.1f} {sec_kimg:>9.2f} {cpu_kimg:>11.2f}")
    print("(overhead = loop / bare - 1; other jobs were running on this machine if the load average exceeds the thread count)")


if __name__ == "__main__":
    main()
