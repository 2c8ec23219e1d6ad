"""train.py: option validation (one line, exit 2), run naming, dry run, a tiny run, NaN exit."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

import train
from helpers_training import REPO_ROOT, make_tiny_mnist

TINY = ["--cfg=dcgan", "--batch=8", "--batch-gpu=4", "--cbase=8", "--z-dim=16", "--tick=0.008"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "mnist16.zip", n=64)


def _invoke(args):
    return CliRunner().invoke(train.main, args, catch_exceptions=False)


@pytest.mark.parametrize("bad,needle", [
    (["--gpus=3"], "--gpus=3"),
    (["--gpus=2", "--dist-timeout=0"], "--dist-timeout=0"),
    (["--snap=0"], "--snap"),
    (["--loss=nope"], "unknown generator loss"),
    (["--loss=renyi"], "needs --alpha"),
    (["--alpha=2"], "--alpha applies"),
    (["--loss=renyi", "--alpha=-1"], "--alpha=-1"),
    (["--l1"], "--l1 applies"),
    (["--loss=renyi", "--alpha-schedule=zigzag"], "unknown schedule"),
    (["--loss=renyi", "--alpha=3", "--alpha-schedule=const:2"], "conflicts with --alpha-schedule=const:2"),
    (["--kimg=0"], "--kimg"),
    (["--kimg=inf"], "--kimg=inf"),
    (["--batch=10", "--batch-gpu=3"], "--batch-gpu=3"),
    (["--aug=fixed"], "needs --p"),
    (["--aug=ada", "--p=0.3"], "--p can only"),
    (["--cfg=dcgan", "--augpipe=bgc"], "--augpipe cannot"),
    (["--subset=100000"], "--subset"),
    (["--resume=/nonexistent.pt"], "not found"),
    (["--cond=true", "--mirror=true", "--device=cuda:7"], "--device"),
    (["--metrics=nonsense"], "--metrics"),
    (["--desc=a b"], "--desc"),
])
def test_bad_values_give_one_error_line(tmp_path, tiny_data, bad, needle):
    if needle == "--device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    res = _invoke([f"--data={tiny_data}", f"--outdir={tmp_path}", "-n"] + bad)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    assert not any(tmp_path.iterdir())


def test_foreign_resume_file_is_refused(tmp_path, tiny_data):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weight": torch.zeros(2)}, bogus)
    res = _invoke([f"--data={tiny_data}", f"--outdir={tmp_path / 'runs'}", f"--resume={bogus}", "-n"])
    assert res.exit_code == 2 and "not a snapshot of this project" in res.stderr


def test_dry_run_names_the_run_like_stylegan2_ada(tmp_path, tiny_data):
    (tmp_path / "00007-old").mkdir()
    res = _invoke([f"--data={tiny_data}", f"--outdir={tmp_path}", "-n", "--cond=1", "--subset=32", "--mirror=1", "--cfg=dcgan",
                   "--gamma=10", "--kimg=1.5", "--batch=50", "--loss=renyi", "--alpha=3", "--l1"])
    assert res.exit_code == 0, res.output
    assert "00008-mnist16-cond-subset32-mirror-dcgan-gamma10-kimg1.5-batch50-renyi3-l1" in res.output
    opts = json.loads(res.output.split("Training options:\n", 1)[1].split("\n\n", 1)[0])
    assert opts["loss_kwargs"]["generator_loss_kwargs"] == {"alpha": 3.0, "l1": True}
    assert opts["loss_kwargs"]["r1_gamma"] == 10 and opts["batch_size"] == 50
    assert opts["training_set_kwargs"]["max_size"] == 32 and opts["training_set_kwargs"]["xflip"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00007-old"]  # dry run creates nothing


def test_no_data_defaults_to_embedded_mnist_and_dcgan(tmp_path):
    res = _invoke([f"--outdir={tmp_path}", "-n", "--loss=renyi", "--alpha=3"])
    assert res.exit_code == 0, res.output
    assert "embedded MNIST" in res.output and "--cfg=dcgan" in res.output
    assert "mnist32-dcgan-renyi3" in res.output


def test_tiny_cli_run_writes_options_and_log(tmp_path, tiny_data):
    torch.set_num_threads(1)
    res = _invoke([f"--data={tiny_data}", f"--outdir={tmp_path}", "--kimg=0.016", "--snap=1", "--loss=renyi", "--alpha=3"] + TINY)
    assert res.exit_code == 0, res.output
    (run,) = tmp_path.iterdir()
    assert run.name == "00000-mnist16-dcgan-kimg0.016-batch8-renyi3"
    opts = json.loads((run / "training_options.json").read_text())
    assert opts["total_kimg"] == 0.016 and opts["loss_kwargs"]["class_name"] == "training.loss.GANLoss"
    log = (run / "log.txt").read_text()
    assert log.count("\ntick ") + log.startswith("tick ") >= 2 and "alpha 3.000" in log
    assert (run / "network-snapshot-000000.pt").is_file() and "Latest sample grid" in res.output


@pytest.mark.slow
def test_nan_exits_nonzero_without_traceback(tmp_path, tiny_data):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), f"--data={tiny_data}", f"--outdir={tmp_path}",
                           "--kimg=0.032", "--snap=1", "--inject-nan-step=2"] + TINY,
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1 and "step 2" in err_lines[0] and "last good snapshot" in err_lines[0]
    (run,) = tmp_path.iterdir()
    assert "training stopped" in (run / "log.txt").read_text()
    assert (run / "network-snapshot-000000.pt").is_file()


def test_resume_with_other_network_options_is_one_error_line(tmp_path, tiny_data):
    torch.set_num_threads(1)
    base = [f"--data={tiny_data}", f"--outdir={tmp_path / 'a'}", "--kimg=0.008", "--snap=1"] + TINY
    assert _invoke(base).exit_code == 0
    (snap,) = (tmp_path / "a").glob("*/network-snapshot-000000.pt")
    same = [f"--data={tiny_data}", f"--outdir={tmp_path / 'b'}", f"--resume={snap}", "-n"] + TINY
    res = _invoke(same)
    assert res.exit_code == 0, res.output
    wider = [a if a != "--cbase=8" else "--cbase=16" for a in same]
    res = _invoke(wider)
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--resume" in lines[0] and "training_options.json" in lines[0]
    assert "snapshot 8, this run 16" in lines[0] or "snapshot 128, this run 256" in lines[0], lines[0]
    res = _invoke(same + ["--loss=renyi", "--alpha=3"])  # the snapshot was trained with ns
    assert res.exit_code == 2 and "generator loss parameters" in res.output and res.output.count("\n") == 1
    assert not (tmp_path / "b").exists()


def test_outdir_that_is_a_file_is_one_error_line(tmp_path, tiny_data):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    res = _invoke([f"--data={tiny_data}", f"--outdir={afile}", "--kimg=0.008"] + TINY)
    assert res.exit_code == 2 and "is a file" in res.output and res.output.count("\n") == 1
    assert afile.read_text() == "keep me"


def test_tiny_stylegan2_ada_run_end_to_end(tmp_path, tiny_data):
    """--cfg=auto (narrow StyleGAN2) + Rényi + ADA on a subset: all four phases run, the run folder is complete."""
    torch.set_num_threads(1)
    res = _invoke([f"--data={tiny_data}", f"--outdir={tmp_path}", "--cfg=auto", "--cbase=256", "--cmax=32",
                   "--map-depth=2", "--batch=8", "--kimg=0.032", "--tick=0.016", "--snap=1", "--loss=renyi",
                   "--alpha=3", "--aug=ada", "--subset=48", "--seed=3"])
    assert res.exit_code == 0, res.output
    (run,) = tmp_path.iterdir()
    assert run.name == "00000-mnist16-subset48-auto1-kimg0.032-batch8-ada-renyi3"
    for name in ("training_options.json", "log.txt", "stats.jsonl", "reals.png", "reals_aug.png", "fakes_init.png",
                 "fakes000000.png", "network-snapshot-000000.pt", "losses.png"):
        assert (run / name).is_file(), name
    import numpy as np
    from PIL import Image

    reals, aug = (np.asarray(Image.open(run / n)) for n in ("reals.png", "reals_aug.png"))
    top = reals[: aug.shape[0], : aug.shape[1]]
    assert aug.shape == top.shape and np.abs(aug.astype(int) - top).mean() > 5  # the pipe at p = 1 changes the reals
    opts = json.loads((run / "training_options.json").read_text())
    assert opts["G_kwargs"]["class_name"] == "training.networks_stylegan2.Generator"
    assert opts["training_set_kwargs"]["max_size"] == 48
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    # Lazy regularisation ran (Greg: path length, Dreg: R1) beside the main phases; ADA reports p.
    for key in ("Timing/Gmain", "Timing/Greg", "Timing/Dmain", "Timing/Dreg", "Loss/pl_penalty", "Loss/r1_penalty",
                "Progress/augment", "Progress/alpha"):
        assert key in keys, key
    assert all(r["Progress/alpha"]["mean"] == 3.0 for r in rows if "Progress/alpha" in r)
    assert all(math.isfinite(r["Loss/G/loss"]["mean"]) for r in rows if "Loss/G/loss" in r)
    from training import snapshot

    snap = snapshot.load_snapshot(run / "network-snapshot-000000.pt")
    assert type(snap.G_ema).__name__ == "Generator" and snap.augment_pipe is not None
    img = snap.G_ema(torch.randn(2, snap.G_ema.z_dim), None, noise_mode="const")
    assert img.shape == (2, 1, 16, 16) and torch.isfinite(img).all()
