"""renyi.collapse: FID summary and failure decisions (NaN, collapse by FID, collapse by diversity)."""

from __future__ import annotations

import math

import numpy as np
from helpers_renyi_runs import RES, grid_png, write_run
from renyi.collapse import FailureCriteria, diversity_ratio, grid_diversity, grid_tiles, judge_trial
from renyi.runs import read_trial


def test_grid_diversity_values(tmp_path):
    rng = np.random.default_rng(0)
    grid_png(tmp_path / "same.png", rng, collapsed=True)
    grid_png(tmp_path / "rand.png", rng)
    same = grid_tiles(tmp_path / "same.png", RES)
    rand = grid_tiles(tmp_path / "rand.png", RES)
    assert same.shape == (16, RES, RES, 1)
    assert grid_diversity(same) == 0.0
    # Uniform 0..255 noise: per-pixel std over 16 tiles is about 255/sqrt(12) = 73.6.
    assert 55 < grid_diversity(rand) < 90
    assert diversity_ratio(tmp_path / "same.png", tmp_path / "rand.png", RES) == 0.0
    assert grid_tiles(tmp_path / "rand.png", 5) is None  # 32 px is not a multiple of 5


def test_tiles_are_cut_row_major(tmp_path):
    from PIL import Image

    img = np.zeros((2 * RES, 2 * RES), np.uint8)
    img[:RES, RES:] = 7  # top-right tile
    Image.fromarray(img).save(tmp_path / "g.png")
    tiles = grid_tiles(tmp_path / "g.png", RES)
    assert [float(t.mean()) for t in tiles] == [0.0, 7.0, 0.0, 0.0]


def test_healthy_trial(tmp_path):
    write_run(tmp_path, 0, total_kimg=4, kimgs=[0, 2, 4], fids={0: 400.0, 2: 90.0, 4: 95.0})
    v = judge_trial(read_trial(tmp_path), exit_code=0)
    assert not v.failed and v.reason == ""
    assert (v.fid_metric, v.fid_init, v.best_fid, v.best_kimg, v.final_fid, v.final_kimg) == ("fid2k", 400, 90, 2, 95, 4)
    assert v.num_evals == 3 and 0.8 < v.diversity_final < 1.25


def test_nan_in_stats_fails(tmp_path):
    write_run(tmp_path, 0, total_kimg=4, kimgs=[0, 2, 4], fids={0: 400.0, 2: 90.0, 4: 95.0}, nan_at=4)
    v = judge_trial(read_trial(tmp_path), exit_code=0)
    assert v.failed and v.reason.startswith("nan: Loss/G/loss=nan at kimg 4")


def test_nan_fid_fails(tmp_path):
    write_run(tmp_path, 0, total_kimg=2, kimgs=[0, 2], fids={0: 400.0, 2: float("nan")})
    v = judge_trial(read_trial(tmp_path))
    assert v.failed and "nan" in v.reason and v.best_fid == 400.0 and math.isnan(v.final_fid)


def test_fid_never_improving_is_collapse(tmp_path):
    write_run(tmp_path, 0, total_kimg=4, kimgs=[0, 2, 4], fids={0: 400.0, 2: 390.0, 4: 410.0})
    v = judge_trial(read_trial(tmp_path), exit_code=0)
    assert v.failed and v.reason.startswith("collapse: fid2k never below 0.95")
    # With a looser threshold (2.5 % improvement is enough) the same trial passes.
    v2 = judge_trial(read_trial(tmp_path), criteria=FailureCriteria(fid_improve_frac=0.02), exit_code=0)
    assert not v2.failed


def test_zero_diversity_is_collapse_without_fid(tmp_path):
    write_run(tmp_path, 0, total_kimg=4, kimgs=[0, 2, 4], collapsed=True)
    v = judge_trial(read_trial(tmp_path), exit_code=0)
    assert v.best_fid is None and v.num_evals == 0
    assert v.failed and v.reason.startswith("collapse: sample diversity") and v.diversity_final == 0.0


def test_nonzero_exit_with_nan_message(tmp_path):
    write_run(tmp_path, 0, total_kimg=4, kimgs=[0, 2])
    hist = read_trial(tmp_path)
    v = judge_trial(hist, exit_code=1, output_tail="tick 3\nerror: loss became NaN at kimg 2.4\n")
    assert v.failed and v.reason.startswith("nan: train.py exited with code 1")
    v = judge_trial(hist, exit_code=2, output_tail="error: --data: no such file\n")
    assert v.failed and v.reason == "exit code 2: error: --data: no such file"
