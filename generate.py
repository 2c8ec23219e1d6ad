"""Generate images from a trained network snapshot (its G_ema).

Examples:

    python generate.py --network=training-runs/00000-mnist32-dcgan-renyi3/network-snapshot-000030.pt \\
        --seeds=0-63 --grid=8x8 --outdir=out
    python generate.py --network=<snapshot.pt> --seeds=1,2,5-7 --class=3 --outdir=out

Each seed s draws z from `numpy.random.RandomState(s).randn(1, z_dim)` (as float32), so the same
seed gives the same image on every device. Without `--grid` one `seedNNNN.png` per seed is
written; with `--grid=WxH` a single `grid-WxH.png` holding exactly W*H seeds row by row. Existing
files are never overwritten unless `--force` is given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import click
import numpy as np
import torch

from dnnlib.util import UserError, atomic_write_bytes, cli_main


def parse_seeds(text: str) -> list[int]:
    """'1,2,5-7' -> [1, 2, 5, 6, 7] (ranges inclusive); bad input -> UserError."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(f"--seeds: '{part}' is not a seed or a range; write e.g. 0,3,10-19")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"--seeds: range '{part}' runs backwards; write {hi}-{lo}")
        if lo >= 2**32 or hi >= 2**32:
            raise UserError(f"--seeds: '{part}' exceeds the largest seed 4294967295")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise UserError("--seeds: no seeds given")
    return seeds


def parse_grid(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UserError(f"--grid: '{text}' must look like WxH with positive integers, e.g. 8x8")
    return int(m.group(1)), int(m.group(2))


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] in about [-1, 1] -> uint8 [H, W, C] via x * 127.5 + 128, clamped."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def png_bytes(arr: np.ndarray) -> bytes:
    import io

    import PIL.Image

    pil = PIL.Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else PIL.Image.fromarray(arr, "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="png")
    return buf.getvalue()


def generate_images(
    network: str,
    seeds: list[int],
    outdir: str,
    truncation_psi: float = 1.0,
    class_idx: Optional[int] = None,
    noise_mode: str = "const",
    grid: Optional[tuple[int, int]] = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Write the images (see the module docstring) and return their paths."""
    from tqdm import tqdm

    from torch_utils import misc
    from training.snapshot import load_snapshot

    if noise_mode not in ("const", "random", "none"):
        raise UserError(f"--noise-mode={noise_mode}: choose const, random or none")
    if grid is not None and len(seeds) != grid[0] * grid[1]:  # one image per cell: no seed silently dropped
        raise UserError(f"--grid={grid[0]}x{grid[1]} needs {grid[0] * grid[1]} seeds, got {len(seeds)}; e.g. --seeds=0-{grid[0] * grid[1] - 1}")
    dev = misc.select_device(device)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--outdir={outdir} is a file, not a folder; choose a folder for the images")
    if grid is not None:
        targets = [out / f"grid-{grid[0]}x{grid[1]}.png"]
    else:
        targets = [out / f"seed{seed:04d}.png" for seed in seeds]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise UserError(f"'{existing[0]}' already exists ({len(existing)} file(s) would be overwritten); use --force or another --outdir")

    snap = load_snapshot(network, device=dev)
    G = snap.G_ema
    label = torch.zeros([1, G.c_dim], device=dev)
    if G.c_dim != 0:
        if class_idx is None:
            raise UserError(f"this network is conditional ({G.c_dim} classes): give --class=0..{G.c_dim - 1}")
        if not 0 <= class_idx < G.c_dim:
            raise UserError(f"--class={class_idx} is outside 0..{G.c_dim - 1}")
        label[:, class_idx] = 1
    elif class_idx is not None:
        print("warning: --class is ignored, the network is unconditional")
    if truncation_psi != 1 and not hasattr(G, "mapping"):
        print("warning: --trunc has no effect on a network without a mapping network (DCGAN)")

    images = []
    with torch.no_grad():
        for seed in tqdm(seeds, desc="generating", unit="img", disable=not progress or len(seeds) < 8):
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim).astype(np.float32)).to(dev)
            img = G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode)
            images.append(to_uint8(img[0].float()))
    out.mkdir(parents=True, exist_ok=True)
    if grid is not None:
        gw, gh = grid
        h, w, c = images[0].shape
        canvas = np.stack(images).reshape(gh, gw, h, w, c).transpose(0, 2, 1, 3, 4).reshape(gh * h, gw * w, c)
        atomic_write_bytes(targets[0], png_bytes(canvas))
    else:
        for arr, target in zip(images, targets):
            atomic_write_bytes(target, png_bytes(arr))
    return targets


@click.command(context_settings=dict(help_option_names=["-h", "--help"]))
@click.option("--network", "network", help="Network snapshot (network-snapshot-*.pt)", required=True, metavar="PATH")
@click.option("--seeds", help="Seeds, e.g. 0,1,4-6", required=True)
@click.option("--trunc", "truncation_psi", help="Truncation psi (StyleGAN2 only)", type=float, default=1, show_default=True)
@click.option("--class", "class_idx", help="Class label (conditional networks)", type=int)
@click.option("--noise-mode", help="Noise mode", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@click.option("--outdir", help="Where to save the images", required=True, metavar="DIR")
@click.option("--grid", help="Write one WxH grid instead of one file per seed", metavar="WxH")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps", default="auto", show_default=True)
@click.option("--force", help="Overwrite existing files", is_flag=True)
@cli_main
def main(network: str, seeds: str, truncation_psi: float, class_idx: Optional[int], noise_mode: str, outdir: str,
         grid: Optional[str], device: str, force: bool) -> None:
    """Generate images with a trained network."""
    paths = generate_images(network, parse_seeds(seeds), outdir, truncation_psi, class_idx, noise_mode, parse_grid(grid), device, force)
    print(f"Wrote {len(paths)} file(s) to {os.path.abspath(outdir)}" + (f": {paths[0].name}" if len(paths) == 1 else ""))


if __name__ == "__main__":
    main()
