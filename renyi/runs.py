"""Read training run folders (as written by `train.py`) into one history per trial.

A run folder is ``<outdir>/<NNNNN>-<desc>/`` holding ``training_options.json``, ``stats.jsonl``
(one JSON object per tick), ``metric-<name>.jsonl`` (one JSON object per evaluated snapshot),
``network-snapshot-<kimg:06d>.pt``, ``fakes_init.png``, ``fakes<kimg:06d>.png``, ``reals.png`` and
``log.txt`` (see docs in notes/interfaces.md, "Run folder").

A *trial* folder is the ``--outdir`` given to `train.py` for one trial of a sweep. It holds one run
folder per attempt: the first attempt starts at kimg 0, and an attempt that was resumed with
``--resume=<run>/network-snapshot-K.pt`` starts at kimg K. `read_trial` merges the attempts into one
history with this rule (applied to attempts in the order of their number):

    an attempt that starts at kimg K discards every earlier record with kimg > K, then adds its own
    records (a record at kimg == K is replaced only if the new attempt wrote one).

Snapshot, grid and metric records are keyed by the whole kimg of the snapshot name; ticks in
stats.jsonl carry the exact kimg, so for them "kimg > K" means floor(kimg) > K, and earlier ticks at
or after the new attempt's first tick are dropped too.

So a fresh restart (K = 0) supersedes everything but a kimg-0 record it does not repeat, and a
resumed attempt continues the curve of the attempt it resumed, without duplicate kimg values.

Files that a killed process left half-written are tolerated: unparseable JSON lines are skipped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

RUN_DIR_RE = re.compile(r"^(\d{5})-.+$")
SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d+)\.(?:pt|pkl)$")
FAKES_RE = re.compile(r"^fakes(\d+)\.png$")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse a JSON-lines file; lines that are not a JSON object (e.g. a torn last line) are skipped."""
    records: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return records
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)  # accepts NaN / Infinity literals, as json.dumps writes them
        except ValueError:
            continue
        if isinstance(obj, dict):
            records.append(obj)
    return records


def read_json(path: Path) -> Optional[dict[str, Any]]:
    """Parse a JSON object file; None when it is missing or unreadable."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return None
    return obj if isinstance(obj, dict) else None


def kimg_of_snapshot(name: str | Path) -> Optional[int]:
    """``network-snapshot-000012.pt`` -> 12 (also ``.pkl``); None for any other name."""
    m = SNAPSHOT_RE.match(Path(str(name)).name)
    return int(m.group(1)) if m else None


def list_run_dirs(outdir: Path) -> list[Path]:
    """Run folders ``<NNNNN>-<desc>`` directly under ``outdir``, in the order of their number."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return []
    runs = [p for p in outdir.iterdir() if p.is_dir() and RUN_DIR_RE.match(p.name)]
    return sorted(runs, key=lambda p: (int(RUN_DIR_RE.match(p.name).group(1)), p.name))  # type: ignore[union-attr]


def _stat_mean(record: dict[str, Any], key: str) -> Optional[float]:
    value = record.get(key)
    if isinstance(value, dict):
        value = value.get("mean")
    if isinstance(value, (int, float)):
        return float(value)
    return None


@dataclass
class RunInfo:
    """What one run folder holds."""

    path: Path
    number: int
    options: dict[str, Any]
    start_kimg: int
    total_kimg: Optional[float]
    snapshots: dict[int, Path]
    fakes: dict[int, Path]
    metrics: dict[str, list[tuple[int, float]]]  # metric name -> [(kimg, value)] in file order
    stats: list[dict[str, Any]]
    metric_precision: dict[str, set[str]] = field(default_factory=dict)  # metric -> detector precisions

    @property
    def newest_snapshot(self) -> Optional[tuple[int, Path]]:
        if not self.snapshots:
            return None
        k = max(self.snapshots)
        return k, self.snapshots[k]


def _resume_kimg(options: dict[str, Any], stats: list[dict[str, Any]]) -> int:
    """The kimg an attempt started from: parsed from its resume snapshot name, else 0."""
    for key in ("resume_pkl", "resume", "resume_path"):
        value = options.get(key)
        if isinstance(value, str) and value and value.lower() not in ("noresume", "none"):
            k = kimg_of_snapshot(value)
            if k is not None:
                return k
            if stats:  # resumed from a file named differently: the first tick tells where it began
                first = _stat_mean(stats[0], "Progress/kimg")
                return int(first) if first is not None else 0
    return 0


def _metric_values(record: dict[str, Any]) -> dict[str, float]:
    results = record.get("results")
    out: dict[str, float] = {}
    if isinstance(results, dict):
        for name, value in results.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[str(name)] = float(value)
            elif value is None:
                out[str(name)] = math.nan
    return out


def read_run(path: Path) -> RunInfo:
    """Collect the files of one run folder (missing files give empty fields)."""
    path = Path(path)
    m = RUN_DIR_RE.match(path.name)
    number = int(m.group(1)) if m else -1
    options = read_json(path / "training_options.json") or {}
    stats = read_jsonl(path / "stats.jsonl")
    snapshots: dict[int, Path] = {}
    fakes: dict[int, Path] = {}
    metrics: dict[str, list[tuple[int, float]]] = {}
    precision: dict[str, set[str]] = {}
    for child in path.iterdir() if path.is_dir() else []:
        k = kimg_of_snapshot(child.name)
        if k is not None:
            snapshots[k] = child
            continue
        fm = FAKES_RE.match(child.name)
        if fm:
            fakes[int(fm.group(1))] = child
            continue
        if child.name.startswith("metric-") and child.name.endswith(".jsonl"):
            for record in read_jsonl(child):
                k = kimg_of_snapshot(str(record.get("snapshot_pkl", "")))
                if k is None:
                    continue
                for name, value in _metric_values(record).items():
                    metrics.setdefault(name, []).append((k, value))
                    precision[name] = precision.get(name, set()) | {str(record.get("precision") or "fp32")}
    total = options.get("total_kimg")
    total_kimg = float(total) if isinstance(total, (int, float)) else None
    return RunInfo(
        path=path,
        number=number,
        options=options,
        start_kimg=_resume_kimg(options, stats),
        total_kimg=total_kimg,
        snapshots=snapshots,
        fakes=fakes,
        metrics=metrics,
        stats=stats,
        metric_precision=precision,
    )


@dataclass
class TrialHistory:
    """The merged history of all attempts in one trial folder (see the module docstring)."""

    trial_dir: Path
    runs: list[RunInfo] = field(default_factory=list)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # sorted by kimg
    stats: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[int, Path] = field(default_factory=dict)
    fakes: dict[int, Path] = field(default_factory=dict)
    reals: Optional[Path] = None
    fakes_init: Optional[Path] = None
    total_kimg: Optional[float] = None
    metric_precision: dict[str, set[str]] = field(default_factory=dict)  # metric -> detector precisions

    @property
    def newest_snapshot(self) -> Optional[tuple[int, Path]]:
        if not self.snapshots:
            return None
        k = max(self.snapshots)
        return k, self.snapshots[k]

    @property
    def last_kimg(self) -> Optional[float]:
        """The furthest training progress recorded: newest tick's kimg or newest snapshot."""
        values = [_stat_mean(r, "Progress/kimg") for r in self.stats]
        values = [v for v in values if v is not None]
        if self.snapshots:
            values.append(float(max(self.snapshots)))
        return max(values) if values else None

    @property
    def options(self) -> dict[str, Any]:
        return self.runs[-1].options if self.runs else {}

    def log_text(self, tail_chars: int = 20000) -> str:
        """The end of the newest attempt's log.txt ('' when none)."""
        if not self.runs:
            return ""
        try:
            data = (self.runs[-1].path / "log.txt").read_bytes()
        except OSError:
            return ""
        return data[-tail_chars:].decode("utf-8", errors="replace")


def _merge_points(acc: dict[int, Any], start: int, new: dict[int, Any]) -> None:
    for k in [k for k in acc if k > start]:
        del acc[k]
    acc.update(new)


def read_trial(trial_dir: Path) -> TrialHistory:
    """Merge every run folder of a trial folder into one `TrialHistory`."""
    trial_dir = Path(trial_dir)
    hist = TrialHistory(trial_dir=trial_dir)
    metric_acc: dict[str, dict[int, float]] = {}
    stats_acc: list[dict[str, Any]] = []
    for path in list_run_dirs(trial_dir):
        run = read_run(path)
        hist.runs.append(run)
        k0 = run.start_kimg
        names = set(metric_acc) | set(run.metrics)
        for name in names:
            acc = metric_acc.setdefault(name, {})
            _merge_points(acc, k0, dict(run.metrics.get(name, [])))
        _merge_points(hist.snapshots, k0, run.snapshots)
        _merge_points(hist.fakes, k0, run.fakes)
        # Snapshot names count whole kimg (floor), ticks carry the exact kimg: the tick of the
        # snapshot an attempt resumed from (e.g. 2.048 for ...-000002.pt) is kept.
        stats_acc = [r for r in stats_acc if math.floor(_stat_mean(r, "Progress/kimg") or 0.0) <= k0]
        first = _stat_mean(run.stats[0], "Progress/kimg") if run.stats else None
        if first is not None:  # an attempt may log its start tick again: keep the newer record
            stats_acc = [r for r in stats_acc if (_stat_mean(r, "Progress/kimg") or 0.0) < first]
        stats_acc.extend(run.stats)
        if (run.path / "reals.png").is_file():
            hist.reals = run.path / "reals.png"
        if (run.path / "fakes_init.png").is_file() and (k0 == 0 or hist.fakes_init is None):
            hist.fakes_init = run.path / "fakes_init.png"
        if run.total_kimg is not None:
            hist.total_kimg = run.total_kimg
        for name, precs in run.metric_precision.items():
            hist.metric_precision[name] = hist.metric_precision.get(name, set()) | precs
    hist.metrics = {name: sorted(acc.items()) for name, acc in metric_acc.items() if acc}
    hist.stats = stats_acc
    return hist


def pick_fid_metric(names: list[str] | set[str], prefer: Optional[str] = None) -> Optional[str]:
    """The FID-type metric to report: ``prefer`` if present, else the first name starting with 'fid'."""
    names = sorted(names)
    if prefer:
        return prefer if prefer in names else None
    fids = [n for n in names if n.lower().startswith("fid")]
    return fids[0] if fids else None


def image_resolution(options: dict[str, Any]) -> Optional[int]:
    """The training image resolution recorded in ``training_options.json`` (None when absent)."""
    for container in ("training_set_kwargs", "G_kwargs"):
        sub = options.get(container)
        if isinstance(sub, dict):
            for key in ("resolution", "img_resolution"):
                if isinstance(sub.get(key), int):
                    return int(sub[key])
    return None
