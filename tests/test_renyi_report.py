"""renyi.report on synthetic sweep folders (files written in the documented train.py layout)."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_renyi_runs import write_run
from renyi.report import main as report_main
from renyi.report import write_report
from renyi.sweep import SweepDir, open_or_create
from renyi.sweep_grid import build_spec

from dnnlib.util import UserError


def _make_sweep(root: Path, **grid) -> SweepDir:
    spec = build_spec(
        loss=grid.get("loss"), alpha=grid.get("alpha"), l1=None, gamma=None, seeds=grid["seeds"], preset=None,
        train_args=["--kimg=4", "--metrics=fid2k"],
    )  # fmt: skip
    return open_or_create(root, spec)


def _finish(sweep: SweepDir, name: str, *, wall: float, marker: str = "DONE.json", exit_code: int = 0) -> None:
    trial = next(t for t in sweep.trials if t.name == name)
    tdir = sweep.trial_dir(trial)
    state = {"name": name, "attempts": [{"attempt": 1, "started": "2026-12-03T18:00:00+00:00", "ended": "x",
                                         "wall_s": wall, "exit_code": exit_code, "log": "attempt-1.log"}]}  # fmt: skip
    (tdir / "trial.json").write_text(json.dumps(state))
    (tdir / "attempt-1.log").write_text("tick 0\n")
    (tdir / marker).write_text(json.dumps({"name": name, "wall_s": wall, "verdict": {"reason": ""}}))


def _trial(sweep: SweepDir, setting: str, seed: int, *, best: float | None = None, nan: bool = False,
           collapse: bool = False, wall: float = 10.0) -> None:  # fmt: skip
    name = f"{setting}-s{seed}"
    tdir = sweep.root / "trials" / name
    if collapse:
        fids = {0: 400.0, 2: 395.0, 4: 398.0}
    else:
        fids = {0: 400.0, 2: best, 4: best + 5.0}
    write_run(tdir, 0, total_kimg=4, kimgs=[0, 2, 4], fids=fids, nan_at=4 if nan else None, seed=seed)
    _finish(sweep, name, wall=wall)


@pytest.fixture
def synthetic_sweep(tmp_path) -> SweepDir:
    sweep = _make_sweep(tmp_path / "sw", loss="ns,renyi", alpha="0.5,3", seeds="1,2,3")
    for seed, best in ((1, 100.0), (2, 110.0), (3, 120.0)):
        _trial(sweep, "ns", seed, best=best)
    _trial(sweep, "renyi-a0.5", 1, best=90.0)
    _trial(sweep, "renyi-a0.5", 2, best=96.0)
    _trial(sweep, "renyi-a0.5", 3, best=50.0, nan=True)  # NaN: counted as failed, not averaged
    _trial(sweep, "renyi-a3", 1, best=80.0)
    _trial(sweep, "renyi-a3", 2, collapse=True)
    # renyi-a3-s3 never started
    return sweep


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_tables(synthetic_sweep):
    out = write_report(synthetic_sweep.root)
    rows = _read_csv(out / "trials.csv")
    names = [r["name"] for r in rows]
    assert len(names) == 9 and sorted(names) == sorted(t.name for t in synthetic_sweep.trials)
    by = {r["name"]: r for r in rows}
    assert by["ns-s2"]["best_fid"] == "110" and by["ns-s2"]["best_kimg"] == "2" and by["ns-s2"]["final_fid"] == "115"
    assert by["ns-s2"]["fid_init"] == "400" and by["ns-s2"]["status"] == "done" and by["ns-s2"]["wall_s"] == "10"
    assert by["renyi-a0.5-s3"]["failed"] == "true" and by["renyi-a0.5-s3"]["reason"].startswith("nan:")
    assert by["renyi-a3-s2"]["failed"] == "true" and by["renyi-a3-s2"]["reason"].startswith("collapse:")
    assert by["renyi-a3-s3"]["status"] == "pending" and by["renyi-a3-s3"]["best_fid"] == ""
    assert by["renyi-a3-s1"]["alpha"] == "3" and by["ns-s1"]["alpha"] == ""

    summary = {r["setting"]: r for r in _read_csv(out / "summary.csv")}
    assert list(summary) == ["ns", "renyi-a0.5", "renyi-a3"]
    assert float(summary["ns"]["best_fid_mean"]) == pytest.approx(110.0)
    assert float(summary["ns"]["best_fid_std"]) == pytest.approx(10.0)
    assert float(summary["renyi-a0.5"]["best_fid_mean"]) == pytest.approx(93.0)
    assert float(summary["renyi-a0.5"]["best_fid_std"]) == pytest.approx(statistics.stdev([90.0, 96.0]), rel=1e-5)
    assert (summary["renyi-a0.5"]["n_fid"], summary["renyi-a0.5"]["n_failed"]) == ("2", "1")
    a3 = summary["renyi-a3"]
    assert (a3["best_fid_mean"], a3["best_fid_std"], a3["n_fid"], a3["n_failed"], a3["n_finished"], a3["n"]) == (
        "80", "", "1", "1", "2", "3",
    )  # fmt: skip

    md = (out / "summary.md").read_text()
    assert "| ns | 110.00 ± 10.00 | 3 | 0 | 3 / 3 |" in md
    assert "| renyi-a0.5 | 93.00 ± 4.24 | 2 | 1 | 3 / 3 |" in md
    assert "--loss=ns,renyi --alpha=0.5,3 --seeds=1,2,3 -- --kimg=4 --metrics=fid2k" in md
    assert "`renyi-a3-s2`: collapse" in md and "Not finished (1): `renyi-a3-s3`" in md


def test_report_plots_and_html(synthetic_sweep):
    out = write_report(synthetic_sweep.root)
    for png in ("fid_vs_kimg.png", "fid_vs_alpha.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    page = (out / "index.html").read_text()
    srcs = re.findall(r"src='([^']+)'", page)
    assert "fid_vs_kimg.png" in srcs and "fid_vs_alpha.png" in srcs
    samples = [s for s in srcs if s.startswith("samples/")]
    assert len(samples) == 8  # every started trial has a grid; the pending one has none
    assert all((out / s).is_file() for s in srcs)
    from PIL import Image

    with Image.open(out / samples[0]) as im:
        assert im.size == (32, 32)  # the whole 4 x 4 grid of 8 px tiles (fewer than 8 x 8 tiles)


def test_report_refuses_to_overwrite_without_force(synthetic_sweep):
    out = write_report(synthetic_sweep.root)
    with pytest.raises(UserError, match="--force"):
        write_report(synthetic_sweep.root)
    (out / "stale.txt").write_text("old")
    out2 = write_report(synthetic_sweep.root, force=True)
    assert out2 == out and not (out / "stale.txt").exists() and (out / "trials.csv").is_file()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".report")] == []


def test_report_without_fid(tmp_path):
    sweep = _make_sweep(tmp_path / "sw", loss="ns", seeds="1,2")
    for seed in (1, 2):
        write_run(sweep.root / "trials" / f"ns-s{seed}", 0, total_kimg=4, kimgs=[0, 2, 4], seed=seed)
        _finish(sweep, f"ns-s{seed}", wall=3.0)
    out = write_report(sweep.root)
    assert "No FID was recorded" in (out / "summary.md").read_text()
    assert not list(out.glob("*.png"))
    rows = _read_csv(out / "trials.csv")
    assert [(r["name"], r["status"], r["best_fid"], r["failed"]) for r in rows] == [
        ("ns-s1", "done", "", "false"), ("ns-s2", "done", "", "false"),
    ]  # fmt: skip
    assert "No FID recorded" in (out / "index.html").read_text()


def test_cli_rejects_a_folder_that_is_not_a_sweep(tmp_path):
    (tmp_path / "x").mkdir()
    result = CliRunner().invoke(report_main, [str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "error:" in result.output and "not a sweep folder" in result.output
    assert "Traceback" not in result.output


def test_cli_prints_summary(synthetic_sweep):
    result = CliRunner().invoke(report_main, [str(synthetic_sweep.root), "--metric=fid2k"])
    assert result.exit_code == 0, result.output
    assert "| renyi-a3 | 80.00 |" in result.output
    result = CliRunner().invoke(report_main, [str(synthetic_sweep.root), "--metric=fid50k_full", "--force"])
    assert result.exit_code == 2 and "no trial recorded that metric" in result.output
