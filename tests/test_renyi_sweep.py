"""renyi.sweep: grid expansion, options, folder rules, and a real end-to-end sweep that is killed and resumed."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from renyi.sweep import load_sweep, open_or_create
from renyi.sweep import main as sweep_main
from renyi.sweep_grid import PAPER_MNIST_SEEDS, Trial, build_spec, expand, parse_float_list, parse_int_list

from dnnlib.util import UserError

REPO = Path(__file__).resolve().parents[1]


def _spec(**kw):
    args = dict(loss=None, alpha=None, l1=None, gamma=None, seeds=None, preset=None, train_args=[])
    args.update(kw)
    return build_spec(**args)


def test_alpha_does_not_multiply_ns():
    trials = expand(_spec(loss="ns,renyi", alpha="0.5,1,2,3,inf", seeds="123,5005,1600"))
    assert len(trials) == 3 * (1 + 5)
    assert sum(t.loss == "ns" for t in trials) == 3
    assert all(t.alpha is None for t in trials if t.loss == "ns")
    # seed-major order: every setting of seed 123 first
    assert [t.seed for t in trials[:6]] == [123] * 6
    assert [t.setting for t in trials[:6]] == ["ns", "renyi-a0.5", "renyi-a1", "renyi-a2", "renyi-a3", "renyi-ainf"]
    assert trials[5].train_options() == ["--seed=123", "--loss=renyi", "--alpha=inf"]


def test_l1_and_gamma_variants():
    trials = expand(_spec(loss="ns,renyi", alpha="3", l1="off,on", gamma="0,10", seeds="1"))
    names = [t.name for t in trials]
    assert names == [
        "ns-g0-s1", "ns-g10-s1", "renyi-a3-nol1-g0-s1", "renyi-a3-l1-g0-s1",
        "renyi-a3-nol1-g10-s1", "renyi-a3-l1-g10-s1",
    ]  # fmt: skip
    assert trials[3].train_options() == ["--seed=1", "--loss=renyi", "--alpha=3", "--l1", "--gamma=0"]
    assert Trial.from_dict(json.loads(json.dumps(trials[3].as_dict()))) == trials[3]
    inf = Trial(loss="renyi", seed=1, alpha=math.inf)
    assert Trial.from_dict(json.loads(json.dumps(inf.as_dict()))) == inf


def test_default_loss_follows_alpha():
    assert {t.loss for t in expand(_spec(alpha="2", seeds="1"))} == {"renyi"}
    assert [t.name for t in expand(_spec(seeds="4-6"))] == ["ns-s4", "ns-s5", "ns-s6"]


def test_paper_mnist_preset():
    spec = _spec(preset="paper-mnist", train_args=["--kimg=10", "--metrics=none"])
    trials = expand(spec)
    assert spec.seeds == PAPER_MNIST_SEEDS and len(spec.seeds) == 10
    # ns x {gamma 0, 10} + renyi x {0.5, 3} x {no L1, L1} x {gamma 0, 10} = 10 settings per seed
    assert len({t.setting for t in trials}) == 10 and len(trials) == 100
    assert "--cfg=dcgan" in spec.train_args and "--batch=100" in spec.train_args
    assert "--kimg=10" in spec.train_args and "--kimg=15000" not in spec.train_args  # the user's value wins
    spec2 = _spec(preset="paper-mnist", seeds="1,2", alpha="3")
    assert spec2.seeds == [1, 2] and spec2.alphas == [3.0]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(alpha="3", seeds="1", train_args=["--seed=5"]), "sets --seed itself"),
        (dict(alpha="3", seeds="1", train_args=["--outdir", "x"]), "sets --outdir itself"),
        (dict(alpha="3", gamma="1", seeds="1", train_args=["--gamma=2"]), "sets --gamma itself"),
        (dict(loss="ns", alpha="3", seeds="1"), "none of the losses"),
        (dict(alpha="-1", seeds="1"), "not allowed"),
        (dict(alpha="x", seeds="1"), "not a number"),
        (dict(alpha="3"), "--seeds is required"),
        (dict(loss="nosuch", seeds="1"), "unknown generator loss"),
        (dict(l1="maybe", alpha="3", seeds="1"), "not on/off"),
    ],
)
def test_bad_options(kw, match):
    with pytest.raises(UserError, match=match):
        _spec(**kw)


def test_list_parsers():
    assert parse_float_list("0.5, 3,inf,3", "--alpha") == [0.5, 3.0, math.inf]
    assert parse_int_list("1,3-5,1", "--seeds") == [1, 3, 4, 5]


def test_dry_run_prints_and_writes_nothing(tmp_path):
    out = tmp_path / "sw"
    result = CliRunner().invoke(sweep_main, [f"--outdir={out}", "--loss=ns,renyi", "--alpha=0.5,3", "--seeds=1,2",
                                             "--dry-run", "--", "--kimg=1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "6 trials, 3 settings x 2 seeds"
    assert "renyi-a0.5-s1" in lines[1] and f"--outdir={out}/trials/renyi-a0.5-s1" in lines[1]
    assert "--alpha=0.5 --kimg=1" in lines[1]
    assert not out.exists()


def test_existing_folder_rules(tmp_path):
    spec = _spec(alpha="3", seeds="1,2")
    sweep = open_or_create(tmp_path / "sw", spec)
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["counts"] == {"done": 0, "failed": 0, "partial": 0, "pending": 2}
    assert [t.name for t in load_sweep(tmp_path / "sw").trials] == [t.name for t in sweep.trials]
    assert open_or_create(tmp_path / "sw", None).spec == spec  # resume with --outdir alone
    with pytest.raises(UserError, match="different sweep"):
        open_or_create(tmp_path / "sw", _spec(alpha="3", seeds="1,2,3"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    with pytest.raises(UserError, match="not a sweep folder"):
        open_or_create(tmp_path / "other", spec)
    with pytest.raises(UserError, match="not a sweep folder"):
        load_sweep(tmp_path / "other")


# ------------------------------------------------------------------------------------------------
# End to end with the real train.py.

needs_train = pytest.mark.skipif(not (REPO / "train.py").is_file(), reason="train.py not in the repository yet")

# Tiny trials: a 50k-parameter DCGAN (width 8, z 16) on 256 MNIST images, 2 kimg in ticks of 1 kimg
# with a snapshot per tick (snapshot names count whole kimg, so resuming needs the kimg-1 one).
TINY = ["--kimg=2", "--tick=1", "--snap=1", "--batch=64", "--metrics=none", "--subset=256",
        "--cbase=8", "--cmax=32", "--z-dim=16"]  # fmt: skip


@needs_train
@pytest.mark.slow
def test_sweep_killed_and_resumed_end_to_end(tmp_path):
    """A 2 x 2 grid (loss ns / renyi alpha 3, seeds 1 / 2) of tiny trials; the sweep process is
    SIGKILLed mid-way, restarted, and the report lists each trial exactly once, all complete."""
    out = tmp_path / "sw"
    cmd = [sys.executable, "-m", "renyi.sweep", f"--outdir={out}", "--loss=ns,renyi", "--alpha=3",
           "--seeds=1,2", "--jobs=2", "--threads=1", "--", *TINY]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Kill once the first trial is finished and the second one has a snapshot past kimg 0.
    deadline = time.time() + 300
    killed_state = None
    try:
        while time.time() < deadline and proc.poll() is None:
            done = list(out.glob("trials/*/DONE.json"))
            # a trial between its kimg-1 snapshot and its final (kimg-2) one
            snaps = [p for p in out.glob("trials/*/*/network-snapshot-000001.pt")
                     if not (p.parent / "network-snapshot-000002.pt").exists()]  # fmt: skip
            if done and snaps:
                proc.send_signal(signal.SIGKILL)
                killed_state = (len(done), snaps[0].parents[1].name)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_state is None:
            proc.kill()
        proc.wait()
    log = proc.stdout.read().decode()
    assert killed_state is not None, f"the sweep did not reach the kill point:\n{log[-3000:]}"
    n_done, partial = killed_state
    assert n_done < 4
    time.sleep(1.0)  # the orphaned train.py gets SIGTERM from the parent-death signal

    res = subprocess.run([sys.executable, "-m", "renyi.sweep", f"--outdir={out}", "--threads=1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"{partial}: resuming from" in res.stdout + res.stderr
    state = json.loads((out / "trials" / partial / "trial.json").read_text())
    assert state["attempts"][0]["outcome"].startswith("lost")
    assert state["attempts"][-1]["resume_kimg"] == 1 and state["attempts"][-1]["exit_code"] == 0

    res = subprocess.run([sys.executable, "-m", "renyi.report", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    with open(out / "report" / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["name"] for r in rows]
    assert sorted(names) == sorted(["ns-s1", "ns-s2", "renyi-a3-s1", "renyi-a3-s2"])
    assert all(r["status"] == "done" for r in rows), rows
    assert all(float(r["last_kimg"]) >= 2 for r in rows)
    resumed = next(r for r in rows if r["name"] == partial)
    assert resumed["attempts"] == "2"
    # The merged history of the resumed trial has every tick once, in order.
    from renyi.runs import read_trial

    kimgs = [r["Progress/kimg"]["mean"] for r in read_trial(out / "trials" / partial).stats]
    assert kimgs == sorted(set(kimgs)) and kimgs[-1] >= 2


@needs_train
@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "sw"
    res = subprocess.run([sys.executable, "-m", "renyi.sweep", f"--outdir={out}", "--loss=ns,renyi", "--alpha=3", "--seeds=1",
                          "--", "--inject-nan-step=1", *TINY],  # fmt: skip
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("ns-s1", "renyi-a3-s1"):
        rec = json.loads((out / "trials" / name / "FAILED.json").read_text())
        assert rec["exit_code"] != 0 and rec["verdict"]["failed"]
        assert "nan" in rec["verdict"]["reason"].lower(), rec["verdict"]
    assert json.loads((out / "sweep.json").read_text())["counts"]["failed"] == 2
    # A restart skips them; --retry-failed runs them again (and they fail again).
    res = subprocess.run([sys.executable, "-m", "renyi.sweep", f"--outdir={out}"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0 and "starting" not in res.stdout + res.stderr
    assert "sweep finished: 2 failed" in res.stdout
    res = subprocess.run([sys.executable, "-m", "renyi.sweep", f"--outdir={out}", "--retry-failed"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0 and (res.stdout + res.stderr).count("starting (attempt 2)") == 2
    assert len(list(out.glob("trials/*/FAILED-*.json"))) == 2  # the earlier records are kept


@pytest.mark.parametrize("train_args,needle", [(["--bogus-opt=1"], "No such option"), (["--kimg=0"], "--kimg")])
@pytest.mark.parametrize("dry", [True, False])
def test_bad_train_options_are_refused_before_any_trial(tmp_path, train_args, needle, dry):
    out = tmp_path / "sw"
    args = [f"--outdir={out}", "--seeds=1,2"] + (["--dry-run"] if dry else []) + ["--"] + train_args
    proc = subprocess.run([sys.executable, "-m", "renyi.sweep"] + args, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "train.py rejects the options of trial ns-s1" in line and needle in line
    assert not (out / "sweep.json").exists() and not (out / "trials").exists()
