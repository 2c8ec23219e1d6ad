"""Forward+backward cost of the generator losses from logits, next to a small network step.

For batch sizes 64 and 4096 it times ``loss(logits).backward()`` for the non-saturating loss (the
baseline, StyleGAN2's default), the Rényi loss at several alphas (with and without L1), the Rényi
loss accumulated exactly over 4 rounds (`renyi.coupling.CoupledLossAccumulator`), and, for scale,
one forward+backward step of a small DCGAN-style conv discriminator on 28x28 images at the same
batch size. Each figure is the median of ``--repeats`` timed runs after warm-up, measured in the
same process. On a shared machine the figures are noisy; compare rows within one run.

    .venv/bin/python bench/loss_speed.py [--device cpu|cuda] [--repeats 30] [--threads 2]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dnnlib.util import UserError, cli_main  # noqa: E402
from renyi.coupling import CoupledLossAccumulator  # noqa: E402
from renyi.losses import nonsaturating_generator_loss, renyi_generator_loss  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    for _ in range(3):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _loss_step(fn: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        x = logits.detach().requires_grad_(True)
        fn(x).backward()

    return step


def _coupled_step(alpha: float, logits: torch.Tensor, rounds: int) -> Callable[[], None]:
    def step() -> None:
        x = logits.detach().requires_grad_(True)
        acc = CoupledLossAccumulator(alpha, total=x.shape[0])
        for chunk in torch.chunk(torch.arange(x.shape[0], device=x.device), rounds):
            surrogate, rescale_prev = acc.add_shard(x[chunk])
            if x.grad is not None:
                x.grad.mul_(rescale_prev)
            surrogate.backward()
        _, scale = acc.finish()
        x.grad.mul_(scale)

    return step


def _small_disc(device: torch.device) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 64, 5, stride=2, padding=2), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(64, 128, 5, stride=2, padding=2), torch.nn.LeakyReLU(0.2),
        torch.nn.Flatten(), torch.nn.Linear(128 * 7 * 7, 1),
    ).to(device)


def _net_step(net: torch.nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        net.zero_grad(set_to_none=True)
        nonsaturating_generator_loss(net(images)).backward()

    return step


@click.command()
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda")
@click.option("--repeats", default=30, show_default=True, type=click.IntRange(min=3))
@click.option("--threads", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--net-repeats", default=5, show_default=True, type=click.IntRange(min=1),
              help="repeats for the (slow) network step")
@cli_main
def main(device: str, repeats: int, threads: int, net_repeats: int) -> None:
    """Print a table of loss forward+backward times (ms) and their ratio to the baseline."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda given but CUDA is not available; use --device cpu")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows: list[tuple[str, int, float]] = []
    batches = (64, 4096)
    for n in batches:
        logits = torch.randn(n, 1, device=dev) * 3
        cases: list[tuple[str, Callable[[], None], int]] = [("ns (baseline)", _loss_step(nonsaturating_generator_loss, logits), repeats)]
        for alpha in (0.0, 0.5, 1.0, 1.0 + 1e-6, 2.0, 10.0, float("inf")):
            cases.append((f"renyi alpha={alpha:.7g}", _loss_step(lambda x, a=alpha: renyi_generator_loss(x, a), logits), repeats))
        cases.append(("renyi alpha=2 l1", _loss_step(lambda x: renyi_generator_loss(x, 2.0, l1=True), logits), repeats))
        cases.append(("renyi alpha=2, 4 coupled rounds", _coupled_step(2.0, logits, 4), repeats))
        net_n = min(n, 256)
        images = torch.randn(net_n, 1, 28, 28, device=dev)
        cases.append((f"conv D fwd+bwd 28x28 (batch {net_n})", _net_step(_small_disc(dev), images), net_repeats))
        for name, step, reps in cases:
            rows.append((name, n, _median_ms(step, dev, reps)))

    print(f"# loss forward+backward, median ms ({device}, {threads} threads, torch {torch.__version__});")
    print("# other jobs may share this machine: figures are noisy, compare within the run.")
    print(f"{'case':<40}{'batch':>7}{'ms':>11}{'x ns':>8}")
    for n in batches:
        base = next(ms for name, b, ms in rows if b == n and name.startswith("ns"))
        for name, b, ms in rows:
            if b == n:
                print(f"{name:<40}{b:>7}{ms:>11.4f}{ms / base:>8.2f}")


if __name__ == "__main__":
    main()
