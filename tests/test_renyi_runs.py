"""renyi.runs: reading run folders and merging a trial's attempts."""

from __future__ import annotations

import json

from helpers_renyi_runs import write_run
from renyi.runs import kimg_of_snapshot, list_run_dirs, pick_fid_metric, read_jsonl, read_trial


def test_kimg_of_snapshot_names():
    assert kimg_of_snapshot("network-snapshot-000012.pt") == 12
    assert kimg_of_snapshot("/a/b/network-snapshot-001000.pkl") == 1000
    assert kimg_of_snapshot("network-snapshot-x.pt") is None
    assert kimg_of_snapshot("fakes000012.png") is None


def test_read_jsonl_skips_torn_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n{"b": NaN}\n[1, 2]\n{"c": 3')  # last line cut by a kill
    recs = read_jsonl(p)
    assert [list(r) for r in recs] == [["a"], ["b"]]
    assert recs[1]["b"] != recs[1]["b"]  # NaN survives


def test_run_dirs_sorted_by_number(tmp_path):
    for name in ("00010-b", "00002-a", "notarun", "00003"):
        (tmp_path / name).mkdir()
    assert [p.name for p in list_run_dirs(tmp_path)] == ["00002-a", "00010-b"]


def test_resumed_attempt_continues_the_curve(tmp_path):
    # Attempt 0 reached kimg 3 (snapshots 0..3) and was killed; attempt 1 resumed from kimg 2
    # and ran to 5. Kimg 3 must come from attempt 1; no kimg may appear twice.
    write_run(tmp_path, 0, total_kimg=5, kimgs=[0, 1, 2, 3], fids={0: 300, 1: 200, 2: 150, 3: 999})
    write_run(tmp_path, 1, total_kimg=5, kimgs=[2, 3, 4, 5], fids={3: 120, 4: 110, 5: 100}, resume_kimg=2)
    hist = read_trial(tmp_path)
    assert hist.metrics["fid2k"] == [(0, 300.0), (1, 200.0), (2, 150.0), (3, 120.0), (4, 110.0), (5, 100.0)]
    kimgs = [r["Progress/kimg"]["mean"] for r in hist.stats]
    assert kimgs == [0, 1, 2, 3, 4, 5]
    assert sorted(hist.snapshots) == [0, 1, 2, 3, 4, 5]
    assert hist.snapshots[3].parent.name.startswith("00001")
    assert hist.newest_snapshot[0] == 5 and hist.last_kimg == 5 and hist.total_kimg == 5


def test_fresh_restart_supersedes_aborted_attempt(tmp_path):
    write_run(tmp_path, 0, total_kimg=4, kimgs=[0, 1], fids={0: 300, 1: 5.0})
    write_run(tmp_path, 1, total_kimg=4, kimgs=[0, 2, 4], fids={0: 310, 2: 200, 4: 100})
    hist = read_trial(tmp_path)
    assert hist.metrics["fid2k"] == [(0, 310.0), (2, 200.0), (4, 100.0)]
    assert sorted(hist.snapshots) == [0, 2, 4]


def test_pick_fid_metric():
    assert pick_fid_metric({"kid1k_full", "fid2k_full", "fid50k_full"}) == "fid2k_full"
    assert pick_fid_metric({"kid1k_full"}) is None
    assert pick_fid_metric({"fid2k", "fid10k"}, prefer="fid10k") == "fid10k"
    assert pick_fid_metric({"fid2k"}, prefer="fid10k") is None


def test_training_options_round_trip(tmp_path):
    run = write_run(tmp_path, 0, total_kimg=2, kimgs=[0, 2])
    opts = json.loads((run / "training_options.json").read_text())
    assert read_trial(tmp_path).options == opts


def test_resume_from_final_snapshot_keeps_fractional_ticks(tmp_path):
    # Ticks at 0.064, 1.088, 2.048 with snapshots named 0, 1, 2; a resume from ...-000002.pt that
    # has nothing left to train must keep the 2.048 tick.
    import json as _json

    run = write_run(tmp_path, 0, total_kimg=2, kimgs=[0, 1, 2])
    lines = (run / "stats.jsonl").read_text().splitlines()
    fixed = []
    for line, k in zip(lines, (0.064, 1.088, 2.048)):
        rec = _json.loads(line)
        rec["Progress/kimg"]["mean"] = k
        fixed.append(_json.dumps(rec))
    (run / "stats.jsonl").write_text("\n".join(fixed) + "\n")
    run1 = write_run(tmp_path, 1, total_kimg=2, kimgs=[], resume_kimg=2)
    (run1 / "stats.jsonl").unlink()
    hist = read_trial(tmp_path)
    assert [r["Progress/kimg"]["mean"] for r in hist.stats] == [0.064, 1.088, 2.048]
    assert hist.last_kimg == 2.048
