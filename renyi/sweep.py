"""Run a grid of train.py trials (loss x alpha x L1 x gamma x seed), resumably.

    python -m renyi.sweep --outdir=DIR --alpha=0.5,1,2,3,inf --seeds=123,5005,1600 \\
        [--l1=off,on] [--loss=ns,renyi] [--gamma=0,10] [--jobs=N] [--preset=paper-mnist] \\
        [--eval-metrics=fid2k --eval-precision=bf16] [--dry-run] [--retry-failed] [--threads=T] \\
        -- <any other train.py options>

Layout of DIR (``renyi.report`` reads it):

- ``sweep.json``: the grid (``spec``), the trial list with each trial's folder and train.py options,
  and a status view; rewritten atomically.
- ``trials/<name>/``: the trial's ``--outdir``; train.py makes one run folder ``<NNNNN>-<desc>`` per
  attempt in it. ``trial.json`` lists the attempts (start, end, wall time, exit code, resume
  snapshot), ``attempt-<n>.log`` holds each attempt's console output.
- With ``--eval-metrics``, a trial whose train.py finished is then evaluated by ``python -m
  renyi.evaluate`` (every snapshot, results appended to the run folders' metric-*.jsonl; resumable);
  ``trial.json`` records ``"trained": true`` so a restart goes straight to the evaluation.
- ``trials/<name>/DONE.json``: written atomically only when train.py exited with 0, the run
  reached its ``total_kimg`` (and the evaluation, if any, exited with 0); holds the trial's verdict (`renyi.collapse.judge_trial`: best/final
  FID, failed flag for NaN/collapse) and wall time.
- ``trials/<name>/FAILED.json``: written when train.py exited non-zero (not an interruption) or
  stopped early; the sweep goes on. ``--retry-failed`` runs such trials again.

Restarting the same command (or just ``--outdir=DIR``) skips trials with a marker, resumes an
unfinished trial from its newest ``network-snapshot-*.pt`` (``--resume``) and starts the rest.
Ctrl-C / SIGTERM stop the running train.py processes and leave every file consistent (markers are
only ever written whole); a SIGKILL of the sweep also stops its children on Linux (parent-death
signal), and the next start notices the half-recorded attempt. One sweep per DIR at a time (lock).
Each train.py gets ``OMP_NUM_THREADS=--threads`` (default: ``cores // jobs`` unless the variable is
already set). On a shared, busy CPU one thread per trial is much faster than two: oversubscribed
OpenMP threads spin against each other (measured 6x on this project's 2-core machine under load).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import click

from dnnlib.util import UserError, atomic_write_text, cli_main, format_time
from renyi.collapse import FailureCriteria, TrialVerdict, judge_trial
from renyi.runs import list_run_dirs, read_json, read_trial
from renyi.sweep_grid import SweepSpec, Trial, build_spec, expand

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP_FORMAT = "renyi-sweep"
SWEEP_VERSION = 1
INTERRUPT_CODES = (130, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _parse_time(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        return _dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


# ------------------------------------------------------------------------------------------------
# The sweep folder.


@dataclass
class SweepDir:
    """A sweep folder: its spec, trials and the per-trial state files."""

    root: Path
    spec: SweepSpec
    trials: list[Trial]
    created: str = field(default_factory=_now)

    def trial_dir(self, trial: Trial) -> Path:
        return self.root / "trials" / trial.name

    # -- per-trial state --------------------------------------------------------------------------
    def state(self, trial: Trial) -> dict[str, Any]:
        return read_json(self.trial_dir(trial) / "trial.json") or {"name": trial.name, "attempts": []}

    def save_state(self, trial: Trial, state: dict[str, Any]) -> None:
        _write_json(self.trial_dir(trial) / "trial.json", state)

    def marker(self, trial: Trial) -> Optional[tuple[str, dict[str, Any]]]:
        """('done' | 'failed', marker contents) when the trial is finished, else None."""
        for status, fname in (("done", "DONE.json"), ("failed", "FAILED.json")):
            data = read_json(self.trial_dir(trial) / fname)
            if data is not None:
                return status, data
        return None

    def status(self, trial: Trial) -> str:
        """done | failed (train.py failed) | partial (started, unfinished) | pending."""
        m = self.marker(trial)
        if m is not None:
            return m[0]
        tdir = self.trial_dir(trial)
        if (tdir / "trial.json").exists() or list_run_dirs(tdir):
            return "partial"
        return "pending"

    # -- sweep.json ---------------------------------------------------------------------------------
    def save(self) -> None:
        statuses = {t.name: self.status(t) for t in self.trials}
        obj = {
            "format": SWEEP_FORMAT,
            "version": SWEEP_VERSION,
            "created": self.created,
            "updated": _now(),
            "spec": self.spec.as_dict(),
            "train_script": "train.py",
            "trials": [
                {**t.as_dict(), "dir": f"trials/{t.name}", "train_options": t.train_options(), "status": statuses[t.name]}
                for t in self.trials
            ],
            "counts": {s: sum(1 for v in statuses.values() if v == s) for s in ("done", "failed", "partial", "pending")},
        }
        _write_json(self.root / "sweep.json", obj)


def load_sweep(root: Path) -> SweepDir:
    """Open an existing sweep folder; `UserError` when ``root`` is not one."""
    root = Path(root)
    data = read_json(root / "sweep.json")
    if data is None or data.get("format") != SWEEP_FORMAT:
        raise UserError(
            f"'{root}' is not a sweep folder (no valid sweep.json); give the --outdir of a "
            f"`python -m renyi.sweep` run"
        )
    if int(data.get("version", 0)) > SWEEP_VERSION:
        raise UserError(f"'{root}/sweep.json' was written by a newer version (format {data.get('version')})")
    try:
        spec = SweepSpec.from_dict(data["spec"])
        trials = [Trial.from_dict(t) for t in data["trials"]]
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"'{root}/sweep.json' is damaged ({err}); restore it or start a new sweep") from None
    return SweepDir(root=root, spec=spec, trials=trials, created=str(data.get("created", _now())))


# ------------------------------------------------------------------------------------------------
# Running trials.


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec (Linux only)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: get SIGTERM when the sweep dies
    except Exception:
        pass


@dataclass
class Running:
    trial: Trial
    proc: subprocess.Popen
    attempt: int
    started: float
    log_path: Path
    log_file: Any
    phase: str = "train"  # train | eval


class _Stop(Exception):
    """Raised by the SIGTERM handler to stop the sweep like Ctrl-C does."""


def _tail(path: Path, n: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _verdict_line(v: TrialVerdict) -> str:
    if v.best_fid is None:
        fid = "no FID recorded"
    else:
        fid = f"best {v.fid_metric} {v.best_fid:.2f} at kimg {v.best_kimg} (final {v.final_fid:.2f})"
    return fid + (f"; FAILED: {v.reason}" if v.failed else "")


class SweepRunner:
    """Runs the unfinished trials of a `SweepDir`, ``jobs`` at a time."""

    def __init__(
        self,
        sweep: SweepDir,
        jobs: int = 1,
        retry_failed: bool = False,
        train_script: Path = REPO_ROOT / "train.py",
        python: str = sys.executable,
        poll_s: float = 0.5,
        criteria: FailureCriteria = FailureCriteria(),
        threads: Optional[int] = None,
    ) -> None:
        self.sweep = sweep
        self.threads = threads
        self.jobs = max(1, int(jobs))
        self.retry_failed = retry_failed
        self.train_script = Path(train_script)
        self.python = python
        self.poll_s = poll_s
        self.criteria = criteria
        self.running: dict[str, Running] = {}
        self.session_walls: list[float] = []
        self.stopping = False

    # -- bookkeeping --------------------------------------------------------------------------------
    def _close_stale_attempts(self, trial: Trial) -> None:
        """Attempts left open by a sweep that was killed: mark them 'lost' with an estimated end."""
        state = self.sweep.state(trial)
        changed = False
        for att in state.get("attempts", []):
            if att.get("ended") is None:
                log = self.sweep.trial_dir(trial) / str(att.get("log", ""))
                end = log.stat().st_mtime if log.is_file() else _parse_time(att.get("started"))
                start = _parse_time(att.get("started")) or end
                att["ended"] = _dt.datetime.fromtimestamp(end).astimezone().isoformat(timespec="seconds") if end else None
                att["wall_s"] = max(0.0, (end or 0) - (start or 0))
                att["outcome"] = "lost (the sweep stopped without recording it)"
                changed = True
        if changed:
            self.sweep.save_state(trial, state)

    def _todo(self) -> list[Trial]:
        todo = []
        for t in self.sweep.trials:
            m = self.sweep.marker(t)
            if m is None:
                todo.append(t)
            elif m[0] == "failed" and self.retry_failed:
                tdir = self.sweep.trial_dir(t)
                os.replace(tdir / "FAILED.json", tdir / f"FAILED-{int(time.time())}.json")
                todo.append(t)
        return todo

    def _wall_total(self, trial: Trial) -> float:
        return float(sum(a.get("wall_s") or 0.0 for a in self.sweep.state(trial).get("attempts", [])))

    # -- one trial ----------------------------------------------------------------------------------
    def command(self, trial: Trial, resume: Optional[Path]) -> list[str]:
        """The train.py command of a trial (resuming from ``resume`` when given)."""
        cmd = [self.python, str(self.train_script), f"--outdir={self.sweep.trial_dir(trial)}"]
        cmd += trial.train_options() + list(self.sweep.spec.train_args)
        if resume is not None:
            cmd.append(f"--resume={resume}")
        return cmd

    def eval_command(self, trial: Trial) -> list[str]:
        """The `renyi.evaluate` command of a trial (the sweep's --eval-metrics)."""
        spec = self.sweep.spec
        return [self.python, "-m", "renyi.evaluate", str(self.sweep.trial_dir(trial)),
                f"--metrics={','.join(spec.eval_metrics)}", f"--precision={spec.eval_precision}",
                f"--snapshots={spec.eval_snapshots}"]  # fmt: skip

    def start(self, trial: Trial) -> Running:
        """Launch the trial's next step: train.py (fresh or resumed) or, once trained, the evaluation."""
        tdir = self.sweep.trial_dir(trial)
        tdir.mkdir(parents=True, exist_ok=True)
        self._close_stale_attempts(trial)
        state = self.sweep.state(trial)
        record: dict[str, Any] = {"attempt": len(state.get("attempts", [])) + 1, "started": _now(), "ended": None}
        if state.get("trained") and self.sweep.spec.eval_metrics:
            phase, cmd = "eval", self.eval_command(trial)
        else:
            newest = read_trial(tdir).newest_snapshot
            resume = newest[1] if newest is not None and newest[0] > 0 else None
            phase, cmd = "train", self.command(trial, resume)
            record.update(
                resume=None if resume is None else str(resume.relative_to(tdir)),
                resume_kimg=None if newest is None or resume is None else newest[0],
            )
        log_path = tdir / f"attempt-{record['attempt']}.log"
        record.update(phase=phase, command=cmd[1:], log=log_path.name)
        state.setdefault("attempts", []).append(record)
        self.sweep.save_state(trial, state)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        threads = self.threads
        if threads is None and "OMP_NUM_THREADS" not in os.environ:
            threads = max(1, (os.cpu_count() or 1) // self.jobs)
        if threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        log_file = open(log_path, "ab")
        proc = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_set_parent_death_signal if sys.platform.startswith("linux") else None,
        )
        run = Running(trial=trial, proc=proc, attempt=record["attempt"], started=time.time(), log_path=log_path,
                      log_file=log_file, phase=phase)  # fmt: skip
        self.running[trial.name] = run
        return run

    def finish(self, run: Running, rc: int) -> str:
        """Record a finished step; returns the trial's status: done | failed | partial | evaluate
        (trained, the evaluation comes next)."""
        run.log_file.close()
        trial, tdir = run.trial, self.sweep.trial_dir(run.trial)
        wall = time.time() - run.started
        hist = read_trial(tdir)
        total, last = hist.total_kimg, hist.last_kimg
        if run.phase == "eval":
            complete = rc == 0
        else:
            complete = rc == 0 and (total is None or (last is not None and last >= math.floor(total)))
        interrupted = (self.stopping or rc in INTERRUPT_CODES) and not complete
        if complete:
            outcome = "complete"
        elif interrupted:
            outcome = "interrupted"
        elif rc == 0:
            outcome = f"stopped early at kimg {last} of {total}"
        else:
            outcome = f"exit code {rc}"
        state = self.sweep.state(trial)
        for att in state.get("attempts", []):
            if att.get("attempt") == run.attempt:
                att.update(ended=_now(), wall_s=round(wall, 3), exit_code=rc, outcome=outcome)
        if run.phase == "train" and complete:
            state["trained"] = True
        self.sweep.save_state(trial, state)
        if interrupted:
            return "partial"
        if run.phase == "train" and complete and self.sweep.spec.eval_metrics:
            return "evaluate"
        verdict = judge_trial(hist, criteria=self.criteria, exit_code=rc, output_tail=_tail(run.log_path))
        if not complete and not verdict.failed:
            verdict.failed, verdict.reason = True, f"incomplete: {outcome}"
        if run.phase == "eval" and not complete:
            verdict.failed, verdict.reason = True, f"evaluation failed: {outcome}: {_tail(run.log_path, 300).strip().splitlines()[-1:]}"
        record = {
            "name": trial.name,
            "setting": trial.setting,
            "seed": trial.seed,
            "finished": _now(),
            "exit_code": rc,
            "wall_s": round(self._wall_total(trial), 3),
            "last_kimg": last,
            "total_kimg": total,
            "attempts": len(state.get("attempts", [])),
            "verdict": verdict.as_dict(),
        }
        _write_json(tdir / ("DONE.json" if complete else "FAILED.json"), record)
        self.session_walls.append(self._wall_total(trial))
        return "done" if complete else "failed"

    # -- the loop -----------------------------------------------------------------------------------
    def _eta(self, remaining: int) -> str:
        walls = self.session_walls or [
            float(m[1].get("wall_s", 0.0)) for t in self.sweep.trials if (m := self.sweep.marker(t)) is not None
        ]
        walls = [w for w in walls if w > 0]
        if not walls or remaining <= 0:
            return "?" if remaining > 0 else "0s"
        return format_time(sum(walls) / len(walls) * remaining / self.jobs)

    def _progress_postfix(self) -> str:
        parts = []
        for name, run in self.running.items():
            last = read_trial(self.sweep.trial_dir(run.trial)).last_kimg
            parts.append(f"{name}@{'?' if last is None else f'{last:g}'}kimg")
        return " ".join(parts)

    def _stop_children(self, grace_s: float = 10.0) -> None:
        """SIGINT (train.py stops as on Ctrl-C), then SIGTERM, then SIGKILL, ``grace_s`` apart."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [r for r in self.running.values() if r.proc.poll() is None]
            if not alive:
                return
            for run in alive:
                try:
                    run.proc.send_signal(sig)
                except OSError:
                    pass
            deadline = time.time() + grace_s
            for run in alive:
                try:
                    run.proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    pass

    def run(self) -> dict[str, int]:
        """Run every unfinished trial; returns counts of final statuses. Raises `_Stop`/KeyboardInterrupt."""
        from tqdm import tqdm

        trials = self.sweep.trials
        todo = self._todo()
        n_total = len(trials)
        finished_before = n_total - len(todo)
        self.sweep.save()
        bar = tqdm(total=n_total, initial=finished_before, desc="sweep", unit="trial", dynamic_ncols=True)
        queue = list(todo)
        last_postfix = 0.0
        # The first evaluation computes (and caches) the real images' statistics: until one has
        # finished, evaluations run one at a time and the other slots keep training.
        eval_ready = not self.sweep.spec.eval_metrics or any(self.sweep.status(t) == "done" for t in trials)
        eval_wait: list[Trial] = []
        started: list[str] = []  # trials started in this session (for the [i/n] counter)

        def evaluating() -> bool:
            return any(r.phase == "eval" for r in self.running.values())

        def next_trial() -> Optional[Trial]:
            if eval_wait and (eval_ready or not evaluating()):
                return eval_wait.pop(0)
            while queue:
                t = queue.pop(0)
                if not eval_ready and evaluating() and self.sweep.state(t).get("trained"):
                    eval_wait.append(t)
                    continue
                return t
            return None

        try:
            while queue or self.running or eval_wait:
                changed = False
                while len(self.running) < self.jobs:
                    trial = next_trial()
                    if trial is None:
                        break
                    changed = True
                    run = self.start(trial)
                    last = self.sweep.state(trial)["attempts"][-1]
                    if last.get("phase") == "eval":
                        how = "evaluating its snapshots"
                    else:
                        how = f"resuming from {last['resume']}" if last.get("resume") else "starting"
                    if trial.name not in started:
                        started.append(trial.name)
                    bar.write(f"[{finished_before + len(started)}/{n_total}] {trial.name}: {how} (attempt {run.attempt})")
                    self.sweep.save()
                for name, run in list(self.running.items()):
                    rc = run.proc.poll()
                    if rc is None:
                        continue
                    del self.running[name]
                    changed = True
                    status = self.finish(run, rc)
                    if status == "evaluate":
                        msg = f"{name}: trained in {format_time(time.time() - run.started)}; "
                        if eval_ready or not evaluating():
                            self.start(run.trial)
                            msg += f"evaluating {','.join(self.sweep.spec.eval_metrics)} on its snapshots"
                        else:
                            eval_wait.append(run.trial)
                            msg += "its evaluation waits for the first one (real-image statistics)"
                        bar.write(msg)
                        continue
                    if run.phase == "eval" and status == "done":
                        eval_ready = True
                    self.sweep.save()
                    bar.update(1 if status in ("done", "failed") else 0)
                    line = f"{name}: {status} in {format_time(time.time() - run.started)}"
                    marker = self.sweep.marker(run.trial)
                    if marker is not None:
                        v = TrialVerdict(**marker[1]["verdict"])
                        line += f" - {_verdict_line(v)}"
                    remaining = len(queue) + len(self.running) + len(eval_wait)
                    bar.write(f"{line} | {remaining} left, ETA {self._eta(remaining)}")
                if self.running and (time.time() - last_postfix > 2.0 or changed):
                    bar.set_postfix_str(self._progress_postfix(), refresh=True)
                    last_postfix = time.time()
                time.sleep(self.poll_s)
        except (KeyboardInterrupt, _Stop):
            self.stopping = True
            bar.write("stopping: interrupting the running train.py processes ...")
            self._stop_children()
            for name, run in list(self.running.items()):
                self.finish(run, run.proc.returncode if run.proc.returncode is not None else -signal.SIGTERM)
                del self.running[name]
            self.sweep.save()
            raise
        finally:
            bar.close()
        counts: dict[str, int] = {}
        for t in trials:
            s = self.sweep.status(t)
            counts[s] = counts.get(s, 0) + 1
        return counts


def check_train_options(runner: "SweepRunner", trial: Trial) -> None:
    """Validate the grid's train.py options up front: ``train.py ... -n`` for one trial, in a scratch folder.

    A rejected option is one `UserError` line (train.py's own message), before any trial starts.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = runner.command(trial, None)
        cmd = [c if not c.startswith("--outdir=") else f"--outdir={tmp}" for c in cmd] + ["-n"]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        msg = next((ln for ln in lines if ln.lower().startswith("error")), lines[-1] if lines else f"exit code {proc.returncode}")
        raise UserError(f"train.py rejects the options of trial {trial.name}: {msg}")


# ------------------------------------------------------------------------------------------------
# Folder set-up and locking.


def open_or_create(outdir: Path, spec: Optional[SweepSpec]) -> SweepDir:
    """The sweep in ``outdir``: created from ``spec`` when new, checked against it when it exists."""
    outdir = Path(outdir)
    if (outdir / "sweep.json").exists():
        sweep = load_sweep(outdir)
        if spec is not None and spec.as_dict() != sweep.spec.as_dict():
            raise UserError(
                f"'{outdir}' already holds a different sweep (grid or train.py options differ); "
                f"run `python -m renyi.sweep --outdir={outdir}` alone to resume it, or choose a new --outdir"
            )
        return sweep
    if spec is None:
        raise UserError(f"'{outdir}' holds no sweep yet: give the grid (--seeds and --alpha/--loss, or --preset)")
    if outdir.exists() and any(p.name != ".sweep.lock" for p in outdir.iterdir()):
        raise UserError(f"'{outdir}' exists and is not a sweep folder; choose a new or empty --outdir")
    sweep = SweepDir(root=outdir, spec=spec, trials=expand(spec))
    names = [t.name for t in sweep.trials]
    if len(set(names)) != len(names):  # cannot happen with deduplicated lists; kept as a guard
        raise UserError("the grid yields duplicate trial names")
    outdir.mkdir(parents=True, exist_ok=True)
    sweep.save()
    return sweep


class SweepLock:
    """An exclusive lock on ``<outdir>/.sweep.lock`` (released automatically if the process dies)."""

    def __init__(self, outdir: Path) -> None:
        self.path = Path(outdir) / ".sweep.lock"
        self.fd: Optional[int] = None

    def __enter__(self) -> "SweepLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            os.close(self.fd)
            self.fd = None
            raise UserError(f"another sweep (pid {other or '?'}) is running in '{self.path.parent}'; wait for it or stop it") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ------------------------------------------------------------------------------------------------
# Command line.


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Sweep folder (created, or resumed).")
@click.option("--alpha", type=str, help="Rényi orders, comma list (e.g. 0.5,1,2,3,inf); only for losses that take alpha.")
@click.option("--seeds", type=str, help="Seeds, comma list or ranges (e.g. 123,5005,1600 or 0-4).")
@click.option("--l1", type=str, help="L1 normalisation values, e.g. off,on (only for losses that take l1).")
@click.option("--loss", type=str, help="Generator losses, comma list (e.g. ns,renyi). Default: renyi with --alpha, else ns.")
@click.option("--gamma", type=str, help="R1 weights, comma list (e.g. 0,10).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Trials run at the same time.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per trial (OMP_NUM_THREADS) [default: cores // jobs, or $OMP_NUM_THREADS].")
@click.option("--preset", type=click.Choice(["paper-mnist"]), help="Ready-made grid (see renyi/sweep_grid.py).")
@click.option("--eval-metrics", type=str, help="Metrics the sweep computes on every snapshot after training (e.g. fid2k).")
@click.option("--eval-precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="Inception precision for --eval-metrics (bf16: ~3x faster on CPU, FIDs shift by ~1 %).")
@click.option("--eval-snapshots", default="all", show_default=True,
              help="Snapshots to evaluate: all, last, or a kimg list (e.g. 0,10).")
@click.option("--retry-failed", is_flag=True, help="Run trials again whose train.py failed before.")
@click.option("--dry-run", "-n", is_flag=True, help="Print the trials and their train.py commands; run nothing.")
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
@cli_main
def main(
    outdir: str,
    alpha: Optional[str],
    seeds: Optional[str],
    l1: Optional[str],
    loss: Optional[str],
    gamma: Optional[str],
    jobs: int,
    threads: Optional[int],
    preset: Optional[str],
    eval_metrics: Optional[str],
    eval_precision: str,
    eval_snapshots: str,
    retry_failed: bool,
    dry_run: bool,
    train_args: tuple[str, ...],
) -> None:
    """Run a grid of train.py trials; options after `--` go to every train.py call.

    Example: python -m renyi.sweep --outdir=runs/sweep1 --loss=ns,renyi --alpha=0.5,3
    --seeds=123,5005,1600 -- --cfg=dcgan --kimg=100 --metrics=fid2k_full
    """
    gave_grid = any(v is not None for v in (alpha, seeds, l1, loss, gamma, preset, eval_metrics)) or bool(train_args)
    spec = (
        build_spec(loss=loss, alpha=alpha, l1=l1, gamma=gamma, seeds=seeds, preset=preset, train_args=list(train_args),
                   eval_metrics=eval_metrics, eval_precision=eval_precision, eval_snapshots=eval_snapshots)  # fmt: skip
        if gave_grid
        else None
    )
    out = Path(outdir)
    if dry_run:
        if spec is None:
            sweep = load_sweep(out)
        else:
            sweep = SweepDir(root=out, spec=spec, trials=expand(spec))
        runner = SweepRunner(sweep, jobs=jobs)
        check_train_options(runner, sweep.trials[0])
        for i, t in enumerate(sweep.trials, 1):
            status = sweep.status(t) if (out / "sweep.json").exists() else "new"
            print(f"{i:4d}  {t.name:<32s} [{status}]  " + " ".join(runner.command(t, None)[1:]))
            if sweep.spec.eval_metrics:
                print(f"{'':6s}{'':32s}  then: " + " ".join(runner.eval_command(t)[1:]))
        print(f"{len(sweep.trials)} trials, {len({t.setting for t in sweep.trials})} settings x {len(sweep.spec.seeds)} seeds")
        return
    if not (REPO_ROOT / "train.py").is_file():
        raise UserError(f"train.py not found in {REPO_ROOT}; the sweep runs the repository's train.py")
    if not out.exists() and spec is not None:
        out.mkdir(parents=True)
    if not out.is_dir():
        raise UserError(f"'{out}' is not a sweep folder (it does not exist); give the grid to start one")
    with SweepLock(out):
        if spec is not None and not (out / "sweep.json").exists():  # a new sweep: check its train.py options once
            new = SweepDir(root=out, spec=spec, trials=expand(spec))
            check_train_options(SweepRunner(new, jobs=jobs), new.trials[0])
        sweep = open_or_create(out, spec)
        runner = SweepRunner(sweep, jobs=jobs, retry_failed=retry_failed, threads=threads)
        old = signal.signal(signal.SIGTERM, _raise_stop)
        try:
            counts = runner.run()
        except (KeyboardInterrupt, _Stop):
            print(
                f"interrupted; state saved. Run `python -m renyi.sweep --outdir={out}` again to resume.",
                file=sys.stderr,
            )
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, old)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"sweep finished: {summary}. Report: python -m renyi.report {out}")


if __name__ == "__main__":
    main()
