"""Speed of the ADA augmentation pipe on CPU, against torch's grid_sample measured in the same run.

For each batch shape (default 32x1x32x32 and 16x3x64x64) and pipe (bgc, bgcfnc), at p = 1 by default
(every augmentation drawn with its full probability: the worst case; ADA's p is usually well below
1, try --p 0.2), it times, in ms per batch (median of --repeats after one warm-up):

  pipe fwd         AugmentPipe(images)
  pipe fwd+2bwd    the R1 pattern without D: y = pipe(x); g = grad((y*y).sum(), x, create_graph);
                   g.square().sum().backward()  (forward, backward and double backward)
  sample fwd       the pipe's bilinear sampler alone (`sample_fixed` with its FixedGridSampler) on
                   the pipe's own upsampled image and grid (this draw, all samples)
  sample fwd+2bwd  the same with the R1 pattern
  baseline fwd     torch.nn.functional.grid_sample (bilinear, zeros, align_corners=False) forward on
                   the same image and grid: the cost of the one step our sampler replaces
  baseline fwd+2bwd  grid_sample with the R1 pattern (torch >= 2.x has a double backward for it;
                   older versions, which StyleGAN2-ADA targeted, did not)

Times are process CPU time by default (--clock cpu; with --threads 1 that is the compute time and
it is less distorted by other jobs than wall time); --clock wall gives elapsed time. The load
average is printed: on a shared machine the figures are noisy either way.

Usage: .venv/bin/python bench/augment_speed.py [--threads 1] [--repeats 5] [--p 1.0]
                                               [--shapes 32x1x32x32,16x3x64x64] [--pipes bgc,bgcfnc]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import click
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import dnnlib  # noqa: E402
from torch_utils.ops.bilinear_sample import sample_fixed  # noqa: E402
from training.augment import AUGPIPE_SPECS, AugmentPipe, RandomDraws  # noqa: E402


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def time_ms(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.process_time) -> float:
    """Median time of fn() in milliseconds by ``clock``, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append((clock() - start) * 1000)
    return statistics.median(times)


def r1_pattern(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    """A closure running forward, backward with create_graph and the second backward through fn."""

    def run() -> None:
        inp = x.detach().requires_grad_(True)
        out = fn(inp)
        (grad,) = torch.autograd.grad(out.square().sum(), inp, create_graph=True)
        grad.square().sum().backward()

    return run


def parse_shapes(text: str) -> list[tuple[int, int, int, int]]:
    shapes = []
    for item in text.split(","):
        try:
            n, c, h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise dnnlib.util.UserError(f"--shapes: {item!r} is not NxCxHxW (e.g. 32x1x32x32)") from None
        if min(n, c, h, w) < 1:
            raise dnnlib.util.UserError(f"--shapes: {item!r} has a non-positive size")
        shapes.append((n, c, h, w))
    return shapes


@click.command()
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="timed runs per figure")
@click.option("--shapes", default="32x1x32x32,16x3x64x64", show_default=True, help="comma list of NxCxHxW")
@click.option("--pipes", default="bgc,bgcfnc", show_default=True, help="comma list of AUGPIPE_SPECS names")
@click.option("--p", "p", type=click.FloatRange(min=0), default=1.0, show_default=True, help="augmentation probability")
@click.option("--clock", type=click.Choice(sorted(CLOCKS)), default="cpu", show_default=True,
              help="cpu: process CPU time (less distorted by other jobs on a shared machine); wall: elapsed")
@click.option("--seed", type=int, default=0, show_default=True)
@dnnlib.util.cli_main
def main(threads: int, repeats: int, shapes: str, pipes: str, p: float, clock: str, seed: int) -> None:
    """Print the augmentation timing table."""
    torch.set_num_threads(threads)
    tick = CLOCKS[clock]

    def timed(fn: Callable[[], object]) -> float:
        return time_ms(fn, repeats, tick)

    shape_list = parse_shapes(shapes)
    pipe_names = [name.strip() for name in pipes.split(",") if name.strip()]
    for name in pipe_names:
        if name not in AUGPIPE_SPECS:
            raise dnnlib.util.UserError(f"--pipes: unknown pipe {name!r}; choose from {', '.join(AUGPIPE_SPECS)}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {threads} thread(s), {clock} time, {repeats} repeats (median), p = {p:g}, "
          f"load average {load:.2f} at start (other jobs share this machine: figures are noisy)")
    header = f"{'shape':>14} {'pipe':>7} | {'pipe fwd':>9} {'pipe fwd+2bwd':>14} | {'sample fwd':>10} " \
             f"{'sample fwd+2bwd':>15} | {'grid_sample fwd':>15} {'grid_sample fwd+2bwd':>20}  (ms/batch)"
    print(header)
    print("-" * len(header))
    for shape in shape_list:
        n, c, h, w = shape
        x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        for name in pipe_names:
            pipe = AugmentPipe(**AUGPIPE_SPECS[name])
            pipe.p.fill_(p)

            def forward(inp: torch.Tensor, pipe: AugmentPipe = pipe) -> torch.Tensor:
                return pipe(inp, generator=torch.Generator().manual_seed(seed + 1))

            pipe_fwd = timed(lambda: forward(x))
            pipe_dbl = timed(r1_pattern(forward, x))

            # The pipe's own sampling step: its upsampled image and its grid for this draw.
            G = pipe.draw_geometry(RandomDraws(n, x.dtype, x.device, torch.Generator().manual_seed(seed + 1)), h, w)
            if G is None:
                print(f"{'x'.join(map(str, shape)):>14} {name:>7} | {pipe_fwd:9.1f} {pipe_dbl:14.1f} | (no geometry drawn)")
                continue
            plan = pipe.geometry_plan(x, G)
            upsampled, ix, iy = plan.upsampled(x), plan.ix, plan.iy
            Hu, Wu = upsampled.shape[-2:]
            grid = torch.stack([(2 * ix + 1) / Wu - 1, (2 * iy + 1) / Hu - 1], dim=-1)

            def ours(inp: torch.Tensor) -> torch.Tensor:
                return sample_fixed(inp, plan.sampler)

            def torchs(inp: torch.Tensor) -> torch.Tensor:
                return F.grid_sample(inp, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

            err = (ours(upsampled).reshape(n, c, *ix.shape[1:]) - torchs(upsampled)).abs().max().item()
            sample_fwd = timed(lambda: ours(upsampled))
            sample_dbl = timed(r1_pattern(ours, upsampled))
            base_fwd = timed(lambda: torchs(upsampled))
            try:
                base_dbl = f"{timed(r1_pattern(torchs, upsampled)):20.1f}"
            except RuntimeError:
                base_dbl = f"{'unsupported':>20}"
            print(f"{'x'.join(map(str, shape)):>14} {name:>7} | {pipe_fwd:9.1f} {pipe_dbl:14.1f} | "
                  f"{sample_fwd:10.1f} {sample_dbl:15.1f} | {base_fwd:15.1f} {base_dbl}"
                  f"   [sampled {n}x{c}x{ix.shape[1]}x{ix.shape[2]} from {Hu}x{Wu}; max |ours - grid_sample| {err:.1e}]")


if __name__ == "__main__":
    main()
