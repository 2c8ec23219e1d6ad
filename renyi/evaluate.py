"""Evaluate metrics on the snapshots of a trial (or run) folder after training, resumably.

    python -m renyi.evaluate TRIAL_DIR --metrics=fid2k [--snapshots=all|last|0,10] [--precision=bf16]

For each metric and each snapshot of the trial's merged history (`renyi.runs.read_trial`, so a
resumed trial is evaluated once per kimg) that has no value for that metric yet, the snapshot's
``G_ema`` is evaluated with `metrics.metric_main.calc_metric` and the result appended to
``metric-<name>.jsonl`` of the run folder that holds the snapshot (`report_metric`, the same
record train.py writes). Snapshots already evaluated are skipped, so a stopped evaluation resumes.

Why after training rather than inside train.py: the sweep can choose the detector precision
(``bf16`` is ~3x faster on CPUs with bf16 matrix units; its FIDs are comparable with each other but
differ from fp32 ones by up to ~1-2 %, see shared/spec/cpu-measurements.md), and the Inception
network is loaded once per trial instead of once per snapshot. The precision is stored in each
record (``precision``), and `renyi.report` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from dnnlib.util import UserError, cli_main
from renyi.runs import read_trial


def select_kimgs(available: list[int], which: str) -> list[int]:
    """``which``: 'all', 'last' (the newest snapshot) or a comma list of kimg values (those present)."""
    available = sorted(available)
    if which == "all":
        return available
    if which == "last":
        return available[-1:]
    try:
        wanted = {int(x) for x in which.split(",") if x.strip()}
    except ValueError:
        raise UserError(f"--snapshots: '{which}' is not all, last or a comma list of kimg values") from None
    return [k for k in available if k in wanted]


def pending_snapshots(trial_dir: Path, metric: str, which: str = "all") -> list[tuple[int, Path]]:
    """(kimg, snapshot path) of the selected snapshots with no value for ``metric`` yet, by kimg."""
    hist = read_trial(trial_dir)
    have = {k for k, _ in hist.metrics.get(metric, [])}
    chosen = select_kimgs(list(hist.snapshots), which)
    return [(k, hist.snapshots[k]) for k in chosen if k not in have]


def evaluate_trial(
    trial_dir: Path,
    metrics: list[str],
    precision: str = "fp32",
    detector: Optional[str] = None,
    progress: bool = True,
    which: str = "all",
) -> int:
    """Evaluate every pending (snapshot, metric) pair; returns how many results were written."""
    import torch

    from metrics import detector as detector_lib
    from metrics import metric_main
    from training.snapshot import load_snapshot

    bad = [m for m in metrics if not metric_main.is_valid_metric(m)]
    if bad:
        raise UserError(f"--metrics: unknown metric(s) {', '.join(bad)}; e.g. fid2k (2k generated vs the first 2k real)")
    trial_dir = Path(trial_dir)
    if not read_trial(trial_dir).runs:
        raise UserError(f"'{trial_dir}' holds no run folders (<NNNNN>-<desc>); give a train.py --outdir")
    device = torch.device("cpu")
    det = None
    written = 0
    for metric in metrics:
        for kimg, snap_path in pending_snapshots(trial_dir, metric, which):
            if det is None:
                det = detector_lib.load_inception(detector, device=device, precision=precision, progress=progress)
            snap = load_snapshot(snap_path, device=device)
            dataset_kwargs = snap.training_set_kwargs
            if not dataset_kwargs:
                raise UserError(f"'{snap_path}' records no training_set_kwargs; cannot compare it with real images")
            result = metric_main.calc_metric(
                metric=metric, G=snap.G_ema, dataset_kwargs=dataset_kwargs, device=device,
                progress=progress, detector_obj=det, precision=precision,
            )  # fmt: skip
            metric_main.report_metric(result, run_dir=str(snap_path.parent), snapshot_pkl=snap_path.name)
            written += 1
    return written


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("trial_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--metrics", "metrics_", required=True, help="Comma list of metrics, e.g. fid2k.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True, help="Detector precision.")
@click.option("--detector", type=click.Path(dir_okay=False, exists=True), help="Inception weights file.")
@click.option("--snapshots", default="all", show_default=True, help="Which snapshots: all, last, or kimg list (0,10).")
@cli_main
def main(trial_dir: str, metrics_: str, precision: str, detector: Optional[str], snapshots: str) -> None:
    """Evaluate METRICS on every not yet evaluated snapshot in TRIAL_DIR (a train.py --outdir)."""
    metrics = [m.strip() for m in metrics_.split(",") if m.strip() and m.strip() != "none"]
    select_kimgs([], snapshots)  # validate before loading anything
    n = evaluate_trial(Path(trial_dir), metrics, precision=precision, detector=detector, which=snapshots)
    print(f"{n} result(s) written")


if __name__ == "__main__":
    main()
