"""Summarise a sweep folder into tables, plots and one HTML page.

    python -m renyi.report DIR [--out DIR/report] [--metric fid2k] [--force]

Writes (atomically, as one folder) ``DIR/report/``:

- ``trials.csv``: one row per trial of ``sweep.json`` (every trial exactly once, also unstarted
  ones): status, best FID and the kimg where it was reached, final FID, FID at kimg 0, failed flag
  and reason (`renyi.collapse.judge_trial`), final sample diversity, kimg reached, wall time.
- ``summary.csv`` and ``summary.md``: per setting (the trial name without its seed), the mean and
  sample standard deviation (ddof = 1) of the best FID over the *finished, not failed* trials, the
  number of those values, the count of failed trials and the number of trials. Failed trials are
  counted, not averaged (the paper's protocol).
- ``fid_vs_kimg.png``: FID against kimg per setting; the line is the mean over the seeds that have a
  value at that kimg, the band spans their minimum to maximum (all trials with data, failed ones
  included, so the band shows the spread that actually happened).
- ``fid_vs_alpha.png``: best FID against alpha with +-1 std error bars, one line per
  (loss, L1, gamma) family; losses without alpha are drawn as horizontal lines with a +-1 std band;
  alpha = inf is drawn at the right end, labelled "inf".
- ``samples/<trial>.png``: the top-left 8 x 8 tiles of each trial's newest sample grid
  (``fakes<kimg>.png``), and ``index.html`` putting the tables, plots and samples together.

Without any FID (``--metrics=none``) the FID columns stay empty, the plots are skipped and the
pages say so.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
import shutil
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
from PIL import Image

from dnnlib.util import UserError, cli_main
from renyi.collapse import FailureCriteria, judge_trial
from renyi.runs import image_resolution, read_trial
from renyi.sweep import SweepDir, _tail, load_sweep
from renyi.sweep_grid import SweepSpec, Trial, fmt_num

SAMPLE_TILES = 8  # thumbnails show the top-left SAMPLE_TILES x SAMPLE_TILES images of a grid


@dataclass
class TrialRow:
    """One line of trials.csv."""

    name: str
    setting: str
    loss: str
    alpha: Optional[float]
    l1: Optional[bool]
    gamma: Optional[float]
    seed: int
    status: str  # done | failed | partial | pending
    failed: bool = False
    reason: str = ""
    fid_metric: Optional[str] = None
    fid_init: Optional[float] = None
    best_fid: Optional[float] = None
    best_kimg: Optional[int] = None
    final_fid: Optional[float] = None
    final_kimg: Optional[int] = None
    num_evals: int = 0
    diversity_final: Optional[float] = None
    last_kimg: Optional[float] = None
    total_kimg: Optional[float] = None
    wall_s: Optional[float] = None
    attempts: int = 0
    precision: str = ""  # detector precision(s) of the FID values (fp32, bf16)
    curve: list[tuple[int, float]] = field(default_factory=list, repr=False)
    sample_grid: Optional[Path] = field(default=None, repr=False)
    tile: Optional[int] = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


CSV_FIELDS = [
    "name", "setting", "loss", "alpha", "l1", "gamma", "seed", "status", "failed", "reason",
    "fid_metric", "fid_init", "best_fid", "best_kimg", "final_fid", "final_kimg", "num_evals",
    "diversity_final", "last_kimg", "total_kimg", "wall_s", "attempts", "precision",
]  # fmt: skip


def collect_rows(sweep: SweepDir, metric: Optional[str] = None, criteria: FailureCriteria = FailureCriteria()) -> list[TrialRow]:
    """Judge every trial of the sweep from its run folders (the files are the source of truth)."""
    rows = []
    for t in sweep.trials:
        row = TrialRow(
            name=t.name, setting=t.setting, loss=t.loss, alpha=t.alpha, l1=t.l1, gamma=t.gamma, seed=t.seed,
            status=sweep.status(t),
        )  # fmt: skip
        if row.status != "pending":
            tdir = sweep.trial_dir(t)
            hist = read_trial(tdir)
            attempts = sweep.state(t).get("attempts", [])
            last = attempts[-1] if attempts else {}
            exit_code = last.get("exit_code") if row.finished else None
            tail = _tail(tdir / str(last.get("log", ""))) if last.get("log") else ""
            v = judge_trial(hist, metric=metric, criteria=criteria, exit_code=exit_code, output_tail=tail)
            if row.status == "failed" and not v.failed:  # e.g. stopped early: the marker says why
                marker = sweep.marker(t)
                v.failed = True
                v.reason = (marker[1].get("verdict", {}) if marker else {}).get("reason", "") or "failed"
            row.failed = v.failed and row.finished
            row.reason = v.reason if row.finished else ""
            for key in ("fid_metric", "fid_init", "best_fid", "best_kimg", "final_fid", "final_kimg", "num_evals", "diversity_final"):
                setattr(row, key, getattr(v, key))
            row.last_kimg, row.total_kimg = hist.last_kimg, hist.total_kimg
            walls = [a.get("wall_s") for a in attempts if a.get("wall_s") is not None]
            row.wall_s = round(float(sum(walls)), 1) if walls else None
            row.attempts = len(attempts)
            row.curve = list(hist.metrics.get(v.fid_metric, [])) if v.fid_metric else []
            row.precision = "+".join(sorted(hist.metric_precision.get(v.fid_metric, set()))) if v.fid_metric else ""
            if hist.fakes:
                row.sample_grid = hist.fakes[max(hist.fakes)]
            row.tile = image_resolution(hist.options)
        rows.append(row)
    return rows


@dataclass
class SettingSummary:
    """One line of summary.csv."""

    setting: str
    loss: str
    alpha: Optional[float]
    l1: Optional[bool]
    gamma: Optional[float]
    n: int  # trials in the grid
    n_finished: int
    n_failed: int
    n_fid: int  # finished, not failed trials with a best FID (the values averaged)
    best_fid_mean: Optional[float]
    best_fid_std: Optional[float]
    best_kimg_mean: Optional[float]
    final_fid_mean: Optional[float]
    final_fid_std: Optional[float]
    wall_s_mean: Optional[float]


def _mean_std(values: list[float]) -> tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    mean = float(statistics.fmean(values))
    std = float(statistics.stdev(values)) if len(values) >= 2 else None
    return mean, std


def summarize(rows: list[TrialRow]) -> list[SettingSummary]:
    """Per-setting statistics, settings in grid order (rules in the module docstring)."""
    order: list[str] = []
    groups: dict[str, list[TrialRow]] = {}
    for r in rows:
        if r.setting not in groups:
            order.append(r.setting)
            groups[r.setting] = []
        groups[r.setting].append(r)
    out = []
    for s in order:
        g = groups[s]
        ok = [r for r in g if r.finished and not r.failed and r.best_fid is not None]
        best_mean, best_std = _mean_std([r.best_fid for r in ok])  # type: ignore[misc]
        final_mean, final_std = _mean_std([r.final_fid for r in ok if r.final_fid is not None and math.isfinite(r.final_fid)])
        kimg_mean, _ = _mean_std([float(r.best_kimg) for r in ok if r.best_kimg is not None])
        wall_mean, _ = _mean_std([r.wall_s for r in g if r.finished and r.wall_s is not None])
        out.append(
            SettingSummary(
                setting=s, loss=g[0].loss, alpha=g[0].alpha, l1=g[0].l1, gamma=g[0].gamma, n=len(g),
                n_finished=sum(r.finished for r in g), n_failed=sum(r.failed for r in g), n_fid=len(ok),
                best_fid_mean=best_mean, best_fid_std=best_std, best_kimg_mean=kimg_mean,
                final_fid_mean=final_mean, final_fid_std=final_std, wall_s_mean=wall_mean,
            )  # fmt: skip
        )
    return out


# ------------------------------------------------------------------------------------------------
# Tables.


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)


def write_csv(path: Path, fields: list[str], records: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for rec in records:
        w.writerow([_cell(rec.get(f)) for f in fields])
    path.write_text(buf.getvalue(), encoding="utf-8")


def _pm(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def sweep_command(spec: SweepSpec, outdir: str) -> str:
    """The `renyi.sweep` command line that reproduces ``spec`` (preset values written out)."""
    parts = ["python -m renyi.sweep", f"--outdir={outdir}", f"--loss={','.join(spec.losses)}"]
    if spec.alphas is not None:
        parts.append("--alpha=" + ",".join(fmt_num(a) for a in spec.alphas))
    if spec.l1 is not None:
        parts.append("--l1=" + ",".join("on" if v else "off" for v in spec.l1))
    if spec.gammas is not None:
        parts.append("--gamma=" + ",".join(fmt_num(g) for g in spec.gammas))
    parts.append("--seeds=" + ",".join(str(s) for s in spec.seeds))
    if spec.eval_metrics:
        parts.append(f"--eval-metrics={','.join(spec.eval_metrics)}")
        if spec.eval_precision != "fp32":
            parts.append(f"--eval-precision={spec.eval_precision}")
        if spec.eval_snapshots != "all":
            parts.append(f"--eval-snapshots={spec.eval_snapshots}")
    if spec.train_args:
        parts += ["--"] + list(spec.train_args)
    return " ".join(parts)


def summary_markdown(summary: list[SettingSummary], rows: list[TrialRow], spec: SweepSpec, outdir: str,
                     criteria: FailureCriteria) -> str:  # fmt: skip
    metric = next((r.fid_metric for r in rows if r.fid_metric), None)
    lines = [f"# Sweep summary: `{outdir}`", ""]
    lines.append(f"Command: `{sweep_command(spec, outdir)}`")
    lines.append("")
    if metric is None:
        lines += ["**No FID was recorded** in any trial (e.g. `--metrics=none`): the FID columns are empty.", ""]
    else:
        precs = sorted({p for r in rows if r.fid_metric == metric for p in r.precision.split("+") if p})
        lines.append(
            f"Metric: `{metric}` (lower is better; Inception precision {'/'.join(precs) or '?'}). "
            "Best FID = the lowest value over a trial's snapshots."
        )
        if len(precs) > 1:
            lines.append("**Warning: FIDs of different detector precisions are mixed; they are not exactly comparable.**")
        lines.append("")
    lines.append(
        f"| setting | best {metric or 'FID'} (mean ± std) | n averaged | failed | finished / trials | "
        f"kimg of best (mean) | final {metric or 'FID'} (mean ± std) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for s in summary:
        kimg = f"{s.best_kimg_mean:.1f}" if s.best_kimg_mean is not None else "-"
        lines.append(
            f"| {s.setting} | {_pm(s.best_fid_mean, s.best_fid_std)} | {s.n_fid} | {s.n_failed} | "
            f"{s.n_finished} / {s.n} | {kimg} | {_pm(s.final_fid_mean, s.final_fid_std)} |"
        )
    lines.append("")
    failed = [r for r in rows if r.failed]
    lines.append(
        "Mean ± sample std (ddof = 1) over the finished trials that did not fail; failed trials are "
        "counted, not averaged. A trial fails on NaN, on a non-zero train.py exit, when its FID never "
        f"drops below {1 - criteria.fid_improve_frac:.2f} x its kimg-0 value, or when every sample grid "
        f"has a diversity below {criteria.min_diversity_ratio} x that of the real images "
        "(see renyi/collapse.py)."
    )
    if failed:
        lines += ["", "Failed trials:", ""]
        lines += [f"- `{r.name}`: {r.reason}" for r in failed]
    unfinished = [r.name for r in rows if not r.finished]
    if unfinished:
        lines += ["", f"Not finished ({len(unfinished)}): " + ", ".join(f"`{n}`" for n in unfinished)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# Plots (matplotlib's object API on the Agg canvas: no global pyplot state).


def _new_figure(w: float = 7.0, h: float = 4.5):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_fid_vs_kimg(rows: list[TrialRow], path: Path, metric: str) -> bool:
    """Mean FID per setting over seeds with a min-max band; False when no curve has data."""
    groups: dict[str, list[TrialRow]] = {}
    for r in rows:
        if r.curve:
            groups.setdefault(r.setting, []).append(r)
    if not groups:
        return False
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    for i, (setting, g) in enumerate(groups.items()):
        kimgs = sorted({k for r in g for k, _ in r.curve})
        per_k = [[x for r in g for k2, x in r.curve if k2 == k and math.isfinite(x)] for k in kimgs]
        pts = [(k, v) for k, v in zip(kimgs, per_k) if v]
        if not pts:
            continue
        ks = np.array([k for k, _ in pts], dtype=float)
        mean = np.array([np.mean(v) for _, v in pts])
        lo = np.array([np.min(v) for _, v in pts])
        hi = np.array([np.max(v) for _, v in pts])
        color = f"C{i % 10}"
        ax.plot(ks, mean, color=color, marker="o", ms=3, label=f"{setting} (n={len(g)})")
        ax.fill_between(ks, lo, hi, color=color, alpha=0.2, linewidth=0)
    lo_all, hi_all = ax.get_ylim()
    if lo_all > 0 and hi_all / lo_all > 4:  # the untrained kimg-0 values would flatten the rest
        ax.set_yscale("log")
    ax.set_xlabel("kimg")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs training progress (mean over seeds, band = min..max)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return True


def plot_fid_vs_alpha(summary: list[SettingSummary], path: Path, metric: str) -> bool:
    """Best FID vs alpha with std error bars; False when no setting has both an alpha and an FID."""
    with_alpha = [s for s in summary if s.alpha is not None and s.best_fid_mean is not None]
    without = [s for s in summary if s.alpha is None and s.best_fid_mean is not None]
    if not with_alpha:
        return False
    finite = sorted({s.alpha for s in with_alpha if s.alpha is not None and math.isfinite(s.alpha)})
    inf_x = (finite[-1] + max(1.0, 0.25 * (finite[-1] - finite[0]))) if finite else 1.0

    def xpos(a: float) -> float:
        return inf_x if math.isinf(a) else a

    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    families: dict[tuple, list[SettingSummary]] = {}
    for s in with_alpha:
        families.setdefault((s.loss, s.l1, s.gamma), []).append(s)
    ci = 0
    for (loss, l1, gamma), g in families.items():
        g = sorted(g, key=lambda s: xpos(s.alpha))  # type: ignore[arg-type]
        label = loss + ("" if l1 is None else (" L1" if l1 else " no L1")) + ("" if gamma is None else f" gamma={fmt_num(gamma)}")
        ax.errorbar(
            [xpos(s.alpha) for s in g], [s.best_fid_mean for s in g],  # type: ignore[arg-type]
            yerr=[s.best_fid_std or 0.0 for s in g], color=f"C{ci % 10}", marker="o", capsize=4, label=label,
        )  # fmt: skip
        ci += 1
    for s in without:
        color = f"C{ci % 10}"
        ci += 1
        ax.axhline(s.best_fid_mean, color=color, linestyle="--", label=f"{s.setting} (no alpha)")  # type: ignore[arg-type]
        if s.best_fid_std:
            ax.axhspan(s.best_fid_mean - s.best_fid_std, s.best_fid_mean + s.best_fid_std, color=color, alpha=0.12)  # type: ignore[operator]
    ticks = finite + ([inf_x] if any(math.isinf(s.alpha) for s in with_alpha) else [])  # type: ignore[arg-type]
    ax.set_xticks(ticks)
    ax.set_xticklabels([("inf" if x == inf_x and x not in finite else fmt_num(x)) for x in ticks])
    ax.set_xlabel("alpha")
    ax.set_ylabel(f"best {metric} (mean ± std over seeds)")
    ax.set_title(f"best {metric} vs alpha")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return True


def write_thumbnail(grid: Path, tile: Optional[int], dest: Path) -> bool:
    """Copy the top-left SAMPLE_TILES^2 images of a sample grid (the whole grid scaled down when the
    tile size is unknown) to ``dest``."""
    try:
        with Image.open(grid) as im:
            im.load()
            if tile and im.width % tile == 0 and im.height % tile == 0:
                box = (0, 0, min(im.width, SAMPLE_TILES * tile), min(im.height, SAMPLE_TILES * tile))
                out = im.crop(box)
            else:
                out = im.copy()
                out.thumbnail((384, 384))
        out.save(dest, optimize=True)
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------
# HTML.


def index_html(summary: list[SettingSummary], rows: list[TrialRow], outdir: str, summary_md: str,
               plots: list[str], samples: dict[str, list[tuple[str, str]]]) -> str:  # fmt: skip
    e = html.escape
    metric = next((r.fid_metric for r in rows if r.fid_metric), None) or "FID"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Sweep report: {e(outdir)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}img.s{image-rendering:pixelated;width:256px;margin:4px}"
        ".fail{color:#b00}</style></head><body>",
        f"<h1>Sweep report: <code>{e(outdir)}</code></h1>",
        f"<p>Tables: <a href='summary.md'>summary.md</a>, <a href='summary.csv'>summary.csv</a>, "
        f"<a href='trials.csv'>trials.csv</a>.</p>",
        f"<h2>Per setting</h2><table><tr><th>setting</th><th>best {e(metric)} mean ± std</th><th>n averaged</th>"
        "<th>failed</th><th>finished / trials</th><th>final mean ± std</th></tr>",
    ]
    for s in summary:
        parts.append(
            f"<tr><td>{e(s.setting)}</td><td>{e(_pm(s.best_fid_mean, s.best_fid_std))}</td><td>{s.n_fid}</td>"
            f"<td>{s.n_failed}</td><td>{s.n_finished} / {s.n}</td><td>{e(_pm(s.final_fid_mean, s.final_fid_std))}</td></tr>"
        )
    parts.append("</table>")
    if plots:
        parts.append("<h2>Plots</h2>")
        parts += [f"<p><img src='{e(p)}' alt='{e(p)}'></p>" for p in plots]
    else:
        parts.append("<p><b>No FID recorded</b>: no plots (train with --metrics=fid2k_full or similar).</p>")
    parts.append("<h2>Trials</h2><table><tr><th>trial</th><th>status</th><th>best</th><th>at kimg</th>"
                 "<th>final</th><th>kimg</th><th>wall s</th><th>failure</th></tr>")  # fmt: skip
    for r in rows:
        cls = " class='fail'" if r.failed else ""
        parts.append(
            f"<tr{cls}><td>{e(r.name)}</td><td>{e(r.status)}</td><td>{e(_cell(r.best_fid))}</td>"
            f"<td>{e(_cell(r.best_kimg))}</td><td>{e(_cell(r.final_fid))}</td><td>{e(_cell(r.last_kimg))}</td>"
            f"<td>{e(_cell(r.wall_s))}</td><td>{e(r.reason)}</td></tr>"
        )
    parts.append("</table><h2>Samples (newest grid of each trial, top-left 8 x 8)</h2>")
    for setting, items in samples.items():
        parts.append(f"<h3>{e(setting)}</h3><div>")
        for name, rel in items:
            parts.append(f"<figure style='display:inline-block;margin:0'><img class='s' src='{e(rel)}' alt='{e(name)}'>"
                         f"<figcaption>{e(name)}</figcaption></figure>")  # fmt: skip
        parts.append("</div>")
    parts.append(f"<h2>summary.md</h2><pre>{e(summary_md)}</pre></body></html>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------------
# Entry point.


def write_report(sweep_root: Path, out: Optional[Path] = None, metric: Optional[str] = None, force: bool = False,
                 criteria: FailureCriteria = FailureCriteria()) -> Path:  # fmt: skip
    """Build the report folder for the sweep in ``sweep_root``; returns its path."""
    sweep = load_sweep(Path(sweep_root))
    out = Path(out) if out is not None else sweep.root / "report"
    if out.exists() and not force:
        raise UserError(f"'{out}' already exists; pass --force to replace it, or --out to write elsewhere")
    rows = collect_rows(sweep, metric=metric, criteria=criteria)
    if metric is not None and not any(r.fid_metric for r in rows) and any(r.status != "pending" for r in rows):
        raise UserError(f"--metric={metric}: no trial recorded that metric; check metric-*.jsonl in the run folders")
    summary = summarize(rows)
    label = str(sweep_root)
    md = summary_markdown(summary, rows, sweep.spec, label, criteria)
    metric_name = next((r.fid_metric for r in rows if r.fid_metric), None)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write_csv(tmp / "trials.csv", CSV_FIELDS, [asdict(r) for r in rows])
        write_csv(tmp / "summary.csv", list(SettingSummary.__dataclass_fields__), [asdict(s) for s in summary])
        (tmp / "summary.md").write_text(md, encoding="utf-8")
        plots = []
        if metric_name is not None:
            if plot_fid_vs_kimg(rows, tmp / "fid_vs_kimg.png", metric_name):
                plots.append("fid_vs_kimg.png")
            if plot_fid_vs_alpha(summary, tmp / "fid_vs_alpha.png", metric_name):
                plots.append("fid_vs_alpha.png")
        samples: dict[str, list[tuple[str, str]]] = {}
        (tmp / "samples").mkdir()
        for r in rows:
            if r.sample_grid is not None and write_thumbnail(r.sample_grid, r.tile, tmp / "samples" / f"{r.name}.png"):
                samples.setdefault(r.setting, []).append((r.name, f"samples/{r.name}.png"))
        (tmp / "index.html").write_text(index_html(summary, rows, label, md, plots, samples), encoding="utf-8")
        # Swap the finished folder in: readers see either the old report or the new one, whole.
        old = out.with_name(f".{out.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Report folder [default: SWEEP_DIR/report].")
@click.option("--metric", type=str, help="FID metric to report (default: the first fid* metric found).")
@click.option("--force", is_flag=True, help="Replace an existing report folder.")
@cli_main
def main(sweep_dir: str, out: Optional[str], metric: Optional[str], force: bool) -> None:
    """Write tables, plots and index.html for the sweep in SWEEP_DIR."""
    path = write_report(Path(sweep_dir), Path(out) if out else None, metric=metric, force=force)
    print((path / "summary.md").read_text(encoding="utf-8"))
    print(f"report written to {path} (open {path / 'index.html'})")


if __name__ == "__main__":
    main()
