"""generate.py: seeds and grids from a snapshot, determinism, no overwrite without --force."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import generate
from dnnlib.util import UserError
from training.networks_dcgan import Discriminator, Generator
from training.snapshot import save_snapshot


def _snapshot(path, c_dim=0):
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=c_dim, img_resolution=16, img_channels=1, width=4, init_std=0.2)
    D = Discriminator(c_dim=c_dim, img_resolution=16, img_channels=1, width=4)
    save_snapshot(path, G=G, D=D, G_ema="same_as_G")
    return G


def test_parse_seeds_and_grid():
    assert generate.parse_seeds("1,2,5-7") == [1, 2, 5, 6, 7]
    for bad in ("", "a", "3-1", "1,,2", "-4"):
        with pytest.raises(UserError):
            generate.parse_seeds(bad)
    assert generate.parse_grid("4x3") == (4, 3) and generate.parse_grid(None) is None
    with pytest.raises(UserError):
        generate.parse_grid("4x0")


def test_seed_images_match_the_network_and_are_deterministic(tmp_path):
    G = _snapshot(tmp_path / "net.pt").eval()
    res = CliRunner().invoke(generate.main, [f"--network={tmp_path / 'net.pt'}", "--seeds=3,5", f"--outdir={tmp_path / 'out'}", "--device=cpu"])
    assert res.exit_code == 0, res.output
    img = np.asarray(PIL.Image.open(tmp_path / "out" / "seed0003.png"))
    z = torch.from_numpy(np.random.RandomState(3).randn(1, 8).astype(np.float32))
    with torch.no_grad():
        expected = (G(z, None)[0, 0] * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    assert img.shape == (16, 16) and np.abs(img.astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(img, np.asarray(PIL.Image.open(tmp_path / "out" / "seed0005.png")))


def test_grid_and_overwrite_protection(tmp_path):
    _snapshot(tmp_path / "net.pt")
    args = [f"--network={tmp_path / 'net.pt'}", "--seeds=0-5", "--grid=3x2", f"--outdir={tmp_path / 'out'}"]
    assert CliRunner().invoke(generate.main, args).exit_code == 0
    grid = tmp_path / "out" / "grid-3x2.png"
    assert PIL.Image.open(grid).size == (48, 32)
    before = grid.read_bytes()
    res = CliRunner().invoke(generate.main, args)
    assert res.exit_code == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert CliRunner().invoke(generate.main, args + ["--force"]).exit_code == 0
    assert grid.read_bytes() == before  # same seeds, same images
    res = CliRunner().invoke(generate.main, [f"--network={tmp_path / 'net.pt'}", "--seeds=0-2", "--grid=3x2", f"--outdir={tmp_path / 'o2'}"])
    assert res.exit_code == 2 and "needs 6 seeds" in res.stderr
    res = CliRunner().invoke(generate.main, [f"--network={tmp_path / 'net.pt'}", "--seeds=0-9", "--grid=3x2", f"--outdir={tmp_path / 'o3'}"])
    assert res.exit_code == 2 and "needs 6 seeds, got 10" in res.stderr and not (tmp_path / "o3").exists()


def test_conditional_network_needs_a_class_and_foreign_file_fails(tmp_path):
    _snapshot(tmp_path / "cond.pt", c_dim=10)
    base = [f"--network={tmp_path / 'cond.pt'}", "--seeds=1", f"--outdir={tmp_path / 'out'}"]
    res = CliRunner().invoke(generate.main, base)
    assert res.exit_code == 2 and "--class" in res.stderr
    assert CliRunner().invoke(generate.main, base + ["--class=12"]).exit_code == 2
    assert CliRunner().invoke(generate.main, base + ["--class=4"]).exit_code == 0
    (tmp_path / "junk.pt").write_bytes(b"not a snapshot")
    res = CliRunner().invoke(generate.main, [f"--network={tmp_path / 'junk.pt'}", "--seeds=1", f"--outdir={tmp_path / 'o'}"])
    assert res.exit_code == 2 and res.stderr.startswith("error:") and "Traceback" not in res.output


def test_outdir_that_is_a_file_is_refused_and_kept(tmp_path):
    _snapshot(tmp_path / "net.pt")
    afile = tmp_path / "out.txt"
    afile.write_text("keep me")
    res = CliRunner().invoke(generate.main, [f"--network={tmp_path / 'net.pt'}", "--seeds=0", f"--outdir={afile}"])
    assert res.exit_code == 2 and "is a file" in res.stderr and afile.read_text() == "keep me"
