"""StyleGAN2 training-step speed on the CPU: our fast ops vs a naive baseline, per phase.

Times the four phases of one StyleGAN2-ADA training iteration (spec section 3.2, no augmentation)
on random data, each including zero_grad, forward, backward and the Adam step:

  Gmain  G(z) with style mixing (0.9) -> D -> softplus(-logits), backward into G
  Dmain  G(z) without grad -> D on fakes and on reals, backward into D
  Greg   path-length penalty on batch/2 (grad of img . noise w.r.t. ws with create_graph), weight 2
  Dreg   R1 penalty (grad of D(real) w.r.t. real with create_graph), gamma 1

sec/kimg = (Gmain + Dmain + Greg / 4 + Dreg / 16) * 1000 / batch (lazy regularisation intervals 4
and 16, as the official loop).

Variants, built from the same weights:

  fast       our default ops (channels_last convolutions, separable FIR as strided/transposed
             depthwise convs, fused bias_act backward, gain folding, [N,O] demodulation)
  ref        the straightforward path, structured like NVIDIA's reference ops: NCHW, upfirdn2d by
             zero insertion + full 2-D depthwise filter + slicing, plain autograd bias_act,
             demodulation through [N,O,I,k,k] weights, activations modulated before the conv
  ref-fused  'ref' with the per-sample grouped-convolution modulated conv (fused_modconv=True)

Settings default to the spec's CPU measurement (res 32, channel_base 4096, channel_max 128, batch
16, 2 mapping layers, resnet D, 3 channels) and also run 64 px. Precision: fp32 and bf16 autocast.
The NVIDIA column repeats cpu-measurements.md (its reference ops on an Intel Sapphire Rapids 2-core
machine with AMX-BF16, 2 threads); NVIDIA's code cannot run here (licence, CUDA-only plugins), so
the fair comparison is against the baselines measured in the same run. bf16 is only fast on CPUs
with native bf16 (AVX512-BF16 / AMX); elsewhere it is emulated and much slower than fp32.

Phases are interleaved across variants (fast, ref, ..., fast, ref, ...) so load from other jobs
hits all alike; medians of wall time and of process CPU time are printed (CPU time is less
sensitive to other jobs; with 2 threads it counts both).

    python bench/stylegan2_speed.py [--res 32,64] [--amp fp32,bf16] [--variants fast,ref,ref-fused]
                                    [--batch 16] [--cbase 4096] [--cmax 128] [--reps 3] [--threads 2]
"""

from __future__ import annotations

import copy
import math
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import click
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.networks_stylegan2 import Discriminator, Generator, set_ops_impl  # noqa: E402

PHASES = ("Gmain", "Dmain", "Greg", "Dreg")
NVIDIA = {  # cpu-measurements.md, res 32 / cbase 4096 / cmax 128 / batch 16
    ("fp32", "sec/kimg"): "49-52",
    ("bf16", "sec/kimg"): "34-35",
    ("fp32", "Gmain"): "0.32",
    ("fp32", "Dmain"): "0.36",
    ("fp32", "Greg"): "0.30",
    ("fp32", "Dreg"): "0.42-0.49",
}


class Trainer:
    """One variant's G, D, optimisers and phase functions (StyleGAN2Loss structure, no augmentation)."""

    def __init__(self, G: Generator, D: Discriminator, variant: str, amp: str, batch: int) -> None:
        self.G, self.D, self.batch = G, D, batch
        impl = "fast" if variant == "fast" else "ref"
        set_ops_impl(G, impl)
        set_ops_impl(D, impl)
        self.fused = variant == "ref-fused"
        self.ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp == "bf16" else nullcontext
        self.G_opt = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
        self.D_opt = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
        self.pl_mean = torch.zeros([])
        res = G.img_resolution
        self.reals = torch.rand(batch, G.img_channels, res, res) * 2 - 1

    def run_G(self, z: torch.Tensor, update_emas: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self.G.mapping(z, None, update_emas=update_emas)
        if torch.rand([]) < 0.9:  # style mixing
            cutoff = int(torch.randint(1, ws.shape[1], []))
            ws2 = self.G.mapping(torch.randn_like(z), None)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return self.G.synthesis(ws, fused_modconv=self.fused), ws

    def _phase(self, net: torch.nn.Module, opt: torch.optim.Optimizer, body: Callable[[], None]) -> None:
        opt.zero_grad(set_to_none=True)
        net.requires_grad_(True)
        body()
        net.requires_grad_(False)
        opt.step()

    def Gmain(self) -> None:
        def body():
            with self.ctx():
                img, _ = self.run_G(torch.randn(self.batch, self.G.z_dim), update_emas=True)
                logits = self.D(img, None)
            F.softplus(-logits.float()).mean().backward()
        self._phase(self.G, self.G_opt, body)

    def Dmain(self) -> None:
        def body():
            with self.ctx():
                with torch.no_grad():
                    img, _ = self.run_G(torch.randn(self.batch, self.G.z_dim), update_emas=False)
                fake_logits = self.D(img, None)
            F.softplus(fake_logits.float()).mean().backward()
            with self.ctx():
                real_logits = self.D(self.reals, None)
            F.softplus(-real_logits.float()).mean().backward()
        self._phase(self.D, self.D_opt, body)

    def Greg(self) -> None:
        def body():
            n = self.batch // 2
            with self.ctx():
                img, ws = self.run_G(torch.randn(n, self.G.z_dim), update_emas=False)
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (grads,) = torch.autograd.grad((img.float() * noise).sum(), ws, create_graph=True)
            lengths = grads.square().sum(2).mean(1).sqrt()
            self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), 0.01)
            penalty = (lengths - self.pl_mean).square() * 2
            ((img[:, 0, 0, 0] * 0 + penalty).mean() * 4).backward()
        self._phase(self.G, self.G_opt, body)

    def Dreg(self) -> None:
        def body():
            real = self.reals.detach().requires_grad_(True)
            with self.ctx():
                logits = self.D(real, None)
            (grads,) = torch.autograd.grad(logits.float().sum(), real, create_graph=True)
            penalty = grads.square().sum([1, 2, 3]) * 0.5
            ((logits.float() * 0 + penalty).mean() * 16).backward()
        self._phase(self.D, self.D_opt, body)


def cpu_description() -> str:
    name, flags = platform.processor() or "cpu", ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flag_line = next(line for line in info.splitlines() if line.startswith("flags"))
        have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flag_line]
        flags = ", ".join(have)
    except (OSError, StopIteration):
        pass
    return f"{name} [{flags}]"


def measure(res: int, amp: str, variants: list[str], batch: int, cbase: int, cmax: int, reps: int) -> dict:
    torch.manual_seed(0)
    G0 = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3, mapping_kwargs=dict(num_layers=2),
                   synthesis_kwargs=dict(channel_base=cbase, channel_max=cmax))
    D0 = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=cbase, channel_max=cmax,
                       epilogue_kwargs=dict(mbstd_group_size=4))
    trainers = {v: Trainer(copy.deepcopy(G0), copy.deepcopy(D0), v, amp, batch) for v in variants}
    times = {(v, p): ([], []) for v in variants for p in PHASES}
    for rep in range(reps + 1):  # the first round is warm-up
        for p in PHASES:
            for v in variants:
                fn = getattr(trainers[v], p)
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if rep > 0:
                    times[(v, p)][0].append(wall)
                    times[(v, p)][1].append(cpu)
    return {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in times.items()}


def bf16_is_native(threads: int) -> bool:
    """True when a bfloat16 matmul is at least as fast as a float32 one (native bf16 units)."""
    a = torch.randn(512, 512)
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = a.to(dtype)
        x @ x
        t0 = time.perf_counter()
        for _ in range(5):
            x @ x
        rates[dtype] = time.perf_counter() - t0
    return rates[torch.bfloat16] <= rates[torch.float32]


def sec_per_kimg(per_call: dict[str, float], batch: int) -> float:
    return (per_call["Gmain"] + per_call["Dmain"] + per_call["Greg"] / 4 + per_call["Dreg"] / 16) * 1000 / batch


@click.command()
@click.option("--res", default="32,64", show_default=True, help="Comma-separated resolutions.")
@click.option("--amp", default="fp32,bf16", show_default=True, help="Comma-separated: fp32, bf16 (autocast).")
@click.option("--variants", default="fast,ref,ref-fused", show_default=True, help="Comma-separated: fast, ref, ref-fused.")
@click.option("--batch", default=16, show_default=True)
@click.option("--cbase", default=4096, show_default=True)
@click.option("--cmax", default=128, show_default=True)
@click.option("--reps", default=3, show_default=True, help="Timed calls per phase (after one warm-up).")
@click.option("--threads", default=2, show_default=True)
def main(res: str, amp: str, variants: str, batch: int, cbase: int, cmax: int, reps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    variant_list = [v for v in variants.split(",") if v]
    for v in variant_list:
        if v not in ("fast", "ref", "ref-fused"):
            raise click.BadParameter(f"unknown variant {v!r}", param_hint="--variants")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"CPU: {cpu_description()}; torch {torch.__version__}; {threads} threads; load average at start {load[0]:.1f}")
    print(f"G/D: cbase {cbase}, cmax {cmax}, 2 mapping layers, resnet D, batch {batch}; {reps} timed calls per phase (median)")
    print("NVIDIA = its reference ops on the spec's Intel SPR machine (cpu-measurements.md); not run here.\n")
    amps = [x for x in amp.split(",") if x]
    native_bf16 = "bf16" not in amps or bf16_is_native(threads)
    if not native_bf16:
        print("note: bfloat16 is emulated on this CPU (slower than float32); bf16 rows use 1 timed call and only the"
              " first resolution (pass --amp bf16 --res R to force one).\n")
    header = f"{'res':>4} {'prec':>5} {'variant':>9} | " + " ".join(f"{p:>13}" for p in PHASES) + f" | {'sec/kimg':>17} | {'vs ref':>10} | NVIDIA s/kimg"
    print(header)
    print(f"{'':>4} {'':>5} {'':>9} | " + " ".join(f"{'wall/cpu s':>13}" for _ in PHASES) + f" | {'wall / cpu':>17} | {'wall/cpu':>10} |")
    print("-" * len(header))
    resolutions = [int(x) for x in res.split(",") if x]
    for r in resolutions:
        for a in amps:
            if a == "bf16" and not native_bf16 and r != resolutions[0] and amps != ["bf16"]:
                continue
            m = measure(r, a, variant_list, batch, cbase, cmax, reps if (a != "bf16" or native_bf16) else 1)
            base = None
            if "ref" in variant_list:
                base = tuple(sec_per_kimg({p: m[("ref", p)][i] for p in PHASES}, batch) for i in (0, 1))
            for v in variant_list:
                wall = {p: m[(v, p)][0] for p in PHASES}
                cpu = {p: m[(v, p)][1] for p in PHASES}
                spk_w, spk_c = sec_per_kimg(wall, batch), sec_per_kimg(cpu, batch)
                cells = " ".join(f"{wall[p]:6.3f}/{cpu[p]:6.3f}" for p in PHASES)
                ratio = f"{base[0] / spk_w:4.2f}/{base[1] / spk_c:4.2f}x" if base else "-"
                nv = NVIDIA.get((a, "sec/kimg"), "-") if (r == 32 and batch == 16 and cbase == 4096 and cmax == 128) else "-"
                print(f"{r:>4} {a:>5} {v:>9} | {cells} | {spk_w:8.1f} /{spk_c:7.1f} | {ratio:>10} | {nv}")
            sys.stdout.flush()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\nload average at end {load[0]:.1f} (above {threads} means other jobs shared the cores: wall times are inflated)")
    print("NVIDIA per-call fp32 at res 32: Gmain 0.32 s, Dmain 0.36 s, Greg 0.30 s, Dreg 0.42-0.49 s.")


if __name__ == "__main__":
    main()
