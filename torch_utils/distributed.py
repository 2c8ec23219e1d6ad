"""Process groups, a fail-fast multi-process launcher and small collective helpers.

Two ways to run with several processes, both ending in `torch.distributed`:

- ``train.py --gpus=N`` on one machine: `launch(fn, N, ...)` starts N processes
  (``torch.multiprocessing``, start method ``spawn`` by default), each joins a process group
  through a fresh ``file://`` rendezvous in a temporary folder (or ``tcp://127.0.0.1:<free
  port>``) and runs ``fn(info, *args)`` with a `DistInfo`.
- ``torchrun`` (one or many nodes): the processes already exist; `init_from_env()` joins the group
  through ``env://`` from ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``.

Backend: NCCL when the process's device is CUDA, gloo otherwise. Every process group gets a
finite ``timeout`` (`DEFAULT_TIMEOUT_S` unless told): a collective that waits longer than that for
a rank that died or hung raises in the waiting ranks instead of blocking forever.

`launch` watches the children: as soon as one exits with a non-zero code (an exception, a signal,
an out-of-memory kill) it terminates the others (SIGTERM, which the children turn into an
exception so ``finally`` blocks and atomic writes clean up; SIGKILL after ``grace_s``) and raises
`dnnlib.util.UserError` naming the rank, its exit code and the error it reported. A whole-run
``join_timeout_s`` (off by default) bounds the run as well.

Per-rank seeds follow StyleGAN2-ADA: ``seed * world_size + rank`` (`rank_seed`).

Collective helpers (`barrier`, `all_reduce_`, `reduce_mean_dict`, `broadcast_module_`,
`broadcast_object`, `all_gather_object`, `max_param_difference`) are no-ops / identity when no
process group is initialised, so single-process code can call them unconditionally.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait as _wait_sentinels
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch

from dnnlib.util import UserError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistInfo",
    "LauncherTerminated",
    "rank_seed",
    "find_free_port",
    "default_backend",
    "resolve_device",
    "init_process_group",
    "torchrun_env",
    "init_from_env",
    "shutdown",
    "is_initialized",
    "get_rank",
    "get_world_size",
    "barrier",
    "all_reduce_",
    "reduce_mean_dict",
    "broadcast_module_",
    "broadcast_object",
    "all_gather_object",
    "max_param_difference",
    "launch",
]

DEFAULT_TIMEOUT_S = 300.0
"""Collective timeout (seconds) when none is given: a rank waiting longer than this fails."""


class LauncherTerminated(SystemExit):
    """Raised inside a child when the launcher terminates it (SIGTERM) because another rank failed."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` in ``[0, world_size)``, ``local_rank`` on its machine,
    the ``backend`` of its process group (None when running alone, without a group) and the
    ``device`` it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


# ------------------------------------------------------------------------------------------------
# Small pure helpers.


def rank_seed(seed: int, rank: int, world_size: int) -> int:
    """The seed of one process: ``seed * world_size + rank`` (distinct for every rank and seed)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, {world_size})")
    return int(seed) * int(world_size) + int(rank)


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it; tiny race possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_backend(device: torch.device) -> str:
    """``nccl`` for CUDA devices (when this torch build has it), else ``gloo``."""
    import torch.distributed as dist

    if torch.device(device).type == "cuda" and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device of the process with ``local_rank`` on its machine.

    ``auto``: ``cuda:<local_rank>`` when CUDA is available, else CPU. ``cuda`` (no index):
    ``cuda:<local_rank>``. ``cpu`` (and ``cuda:i``, ``mps``) as given. A missing GPU raises
    `UserError`.
    """
    text = str(name or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"--device: unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device={name}: CUDA is not available on this machine; use --device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise UserError(
                f"process with local rank {local_rank} needs GPU {device.index}, but this machine has "
                f"{torch.cuda.device_count()}; lower --gpus (or torchrun --nproc-per-node)"
            )
    return device


# ------------------------------------------------------------------------------------------------
# Process groups.


def _check_available() -> None:
    import torch.distributed as dist

    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed; use --gpus=1")


def init_process_group(
    rank: int,
    world_size: int,
    init_method: str,
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    local_rank: Optional[int] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DistInfo:
    """Join the process group (``init_method``: ``file://...``, ``tcp://host:port`` or ``env://``).

    Picks the device (`resolve_device`), makes it current on CUDA, picks the backend (``auto``:
    `default_backend`) and sets the collective timeout to ``timeout_s`` seconds. With
    ``world_size == 1`` no group is created. Returns this process's `DistInfo`.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise UserError(f"bad process layout: rank {rank} of world size {world_size}")
    if not timeout_s or timeout_s <= 0:
        raise UserError(f"the collective timeout must be a positive number of seconds, got {timeout_s}")
    local_rank = rank if local_rank is None else int(local_rank)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size == 1:
        return DistInfo(rank=0, world_size=1, local_rank=local_rank, backend=None, device=dev)
    _check_available()
    import torch.distributed as dist

    chosen = default_backend(dev) if backend == "auto" else backend
    if chosen not in ("gloo", "nccl"):
        raise UserError(f"unknown distributed backend '{backend}'; use auto, gloo or nccl")
    if chosen == "nccl" and dev.type != "cuda":
        raise UserError("the NCCL backend needs CUDA devices; use --device=cuda or the gloo backend")
    if chosen == "nccl" and not dist.is_nccl_available():
        raise UserError("this PyTorch build has no NCCL; use the gloo backend")
    kwargs: dict[str, Any] = {}
    if chosen == "nccl":
        kwargs["device_id"] = dev  # bind the group to this GPU (eager NCCL init, no device guessing)
    dist.init_process_group(
        backend=chosen,
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=float(timeout_s)),
        **kwargs,
    )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, backend=chosen, device=dev)


def torchrun_env(environ: Optional[Mapping[str, str]] = None) -> Optional[dict[str, int]]:
    """``{rank, world_size, local_rank, local_world_size}`` when started by torchrun, else None.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``LOCAL_WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``). Inconsistent values raise `UserError`.
    """
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        rank = int(env["RANK"])
        world = int(env["WORLD_SIZE"])
        local_rank = int(env.get("LOCAL_RANK", rank))
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise UserError(
            "RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE must be integers (they are set by torchrun); "
            "unset them to run a single process"
        ) from None
    if world < 1 or not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
        raise UserError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local_rank}")
    return dict(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world)


def init_from_env(
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    environ: Optional[Mapping[str, str]] = None,
) -> DistInfo:
    """Join the group described by torchrun's environment (``env://`` rendezvous)."""
    env = os.environ if environ is None else environ
    layout = torchrun_env(env)
    if layout is None:
        raise UserError("not started by torchrun: RANK and WORLD_SIZE are not set")
    if layout["world_size"] > 1:
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
        if missing:
            raise UserError(f"env:// rendezvous needs {' and '.join(missing)}; start the run with torchrun")
    return init_process_group(
        layout["rank"], layout["world_size"], "env://", backend=backend, device=device,
        local_rank=layout["local_rank"], timeout_s=timeout_s,
    )


def shutdown() -> None:
    """Leave the process group, if any (safe to call twice)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------
# Collectives (identity without a process group).


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if is_initialized() else 1


def barrier(timeout_s: Optional[float] = None) -> None:
    """Wait for every rank. On gloo with ``timeout_s`` uses ``monitored_barrier``, whose error
    names the ranks that did not arrive."""
    if not is_initialized():
        return
    import torch.distributed as dist

    if timeout_s is not None and dist.get_backend() == "gloo":
        dist.monitored_barrier(timeout=datetime.timedelta(seconds=float(timeout_s)), wait_all_ranks=True)
    else:
        dist.barrier()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In place over all ranks: ``sum``, ``mean`` (sum / world size), ``max`` or ``min``."""
    if not is_initialized():
        return tensor
    import torch.distributed as dist

    ops = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    if op not in ops:
        raise ValueError(f"unknown reduction '{op}'; use sum, mean, max or min")
    dist.all_reduce(tensor, op=ops[op])
    if op == "mean":
        tensor.div_(dist.get_world_size())
    return tensor


def reduce_mean_dict(values: Mapping[str, float], device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Average named floats over all ranks (every rank must pass the same keys)."""
    keys = sorted(values)
    if not is_initialized() or not keys:
        return {k: float(values[k]) for k in keys}
    names = all_gather_object(keys)
    if any(n != keys for n in names):
        raise RuntimeError(f"reduce_mean_dict: ranks passed different keys: {names}")
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    all_reduce_(packed, "mean")
    return {k: float(v) for k, v in zip(keys, packed.cpu().tolist())}


@torch.no_grad()
def broadcast_module_(module: torch.nn.Module, src: int = 0) -> torch.nn.Module:
    """Overwrite every parameter and buffer of ``module`` with rank ``src``'s values."""
    if not is_initialized():
        return module
    import torch.distributed as dist

    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=src)
    return module


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s (picklable) ``obj`` on every rank."""
    if not is_initialized():
        return obj
    import torch.distributed as dist

    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not is_initialized():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def max_param_difference(module: torch.nn.Module) -> float:
    """``max |x_rank - x_rank0|`` over every parameter and buffer element and every rank (0.0
    when alone): 0 means the replicas are in sync."""
    tensors = [t.detach().float().flatten() for t in list(module.parameters()) + list(module.buffers())]
    if not is_initialized() or not tensors:
        return 0.0
    flat = torch.cat(tensors)
    ref = flat.clone()
    import torch.distributed as dist

    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    all_reduce_(diff, "max")
    return float(diff.item())


# ------------------------------------------------------------------------------------------------
# The launcher.


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed; out of memory?)" if -code == signal.SIGKILL else ""
        return f"exit code {code}, {name}{hint}"
    return f"exit code {code}"


def _on_sigterm(signum: int, frame: Any) -> None:
    raise LauncherTerminated(128 + signal.SIGTERM)


def _write_report(path: str, report: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f)
    os.replace(tmp, path)


def _child_main(
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    init_method: str,
    backend: str,
    device: str,
    timeout_s: float,
    args: tuple,
    report_dir: str,
) -> None:
    """Body of one launched process: join the group, run ``fn(info, *args)``, report, leave."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    code = 0
    result_path = os.path.join(report_dir, f"result-{rank}.pkl")
    try:
        info = init_process_group(rank, world_size, init_method, backend=backend, device=device, timeout_s=timeout_s)
        try:
            result = fn(info, *args)
        except SystemExit as err:
            if err.code not in (0, None) or isinstance(err, LauncherTerminated):
                raise
            result = None  # fn called sys.exit(0): a success without a value
        with open(result_path + ".tmp", "wb") as f:
            pickle.dump(result, f)
        os.replace(result_path + ".tmp", result_path)
    except LauncherTerminated:
        code = 128 + signal.SIGTERM
    except BaseException as err:  # noqa: BLE001 - everything is reported to the launcher
        code = 2 if isinstance(err, UserError) else 1
        if isinstance(err, SystemExit):
            code = err.code if isinstance(err.code, int) else 1
        report = dict(
            time=time.time(), rank=rank, type=type(err).__name__, message=str(err).strip() or type(err).__name__,
            user_error=isinstance(err, UserError), traceback=traceback.format_exc(),
        )
        _write_report(os.path.join(report_dir, f"error-{rank}.json"), report)
        if not isinstance(err, (UserError, SystemExit)):
            sys.stderr.write(f"[rank {rank}] " + report["traceback"])
            sys.stderr.flush()
    finally:
        if code == 0:
            # Success, the result is on disk: leave at once, without tearing the gloo/NCCL group down or
            # running C++ destructors, whose teardown intermittently aborted a finished rank with
            # "terminate called without an active exception" (SIGABRT). Output is flushed just below.
            try:  # but do run multiprocessing's own finalizers (they release named semaphores)
                import multiprocessing.util as mp_util

                mp_util._exit_function()
            except Exception:  # noqa: BLE001 - best effort; exiting cleanly matters more
                pass
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        try:
            shutdown()
        except Exception:  # noqa: BLE001 - leaving a broken group must not hide the real error
            pass
    sys.exit(code)


_PEER_ERROR_HINTS = ("connection closed", "connection reset", "timed out", "timeout", "broken pipe", "peer")


def _looks_like_peer_failure(report: dict) -> bool:
    text = (report.get("type", "") + " " + report.get("message", "")).lower()
    return report.get("type") == "DistBackendError" or any(h in text for h in _PEER_ERROR_HINTS)


def _terminate(procs: Sequence[Any], grace_s: float) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(deadline - time.monotonic(), 0.0))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5.0)


def _failure_message(failures: list[tuple[float, int, Optional[int], Optional[dict]]], world_size: int, timeout_s: float) -> str:
    """One line naming the rank that most likely caused the failure, then the others."""

    def key(item):
        t, _rank, _code, report = item
        consequence = report is not None and _looks_like_peer_failure(report)
        return (consequence, t)

    ordered = sorted(failures, key=key)
    t0, rank, code, report = ordered[0]
    if report is not None:
        msg = f"rank {rank} of {world_size} failed ({_describe_exit(code)}): {report['type']}: {report['message']}"
        if not report.get("user_error"):
            last = [ln for ln in report.get("traceback", "").strip().splitlines() if ln.strip().startswith("File ")]
            if last:
                msg += f" [at {last[-1].strip()}]"
    else:
        msg = f"rank {rank} of {world_size} died without reporting an error ({_describe_exit(code)})"
    if report is not None and _looks_like_peer_failure(report):
        msg += f" (a collective failed or waited more than the {timeout_s:g} s timeout: another rank hung or died)"
    others = [f"rank {r} ({_describe_exit(c)})" for _t, r, c, _rep in ordered[1:]]
    if others:
        msg += "; also failed: " + ", ".join(others)
    msg += "; the other ranks were stopped"
    return " ".join(msg.split())


def launch(
    fn: Callable[..., Any],
    world_size: int,
    args: tuple = (),
    *,
    backend: str = "auto",
    device: str = "auto",
    init_method: Optional[str] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    start_method: str = "spawn",
    join_timeout_s: Optional[float] = None,
    grace_s: float = 10.0,
    settle_s: float = 2.0,
) -> list[Any]:
    """Run ``fn(info, *args)`` in ``world_size`` new processes joined in one process group.

    ``fn`` must be picklable (a module-level function). ``init_method`` defaults to a fresh
    ``file://`` rendezvous in a temporary folder (pass ``"tcp"`` for ``tcp://127.0.0.1:<free
    port>``). Each process gets ``info.device = resolve_device(device, rank)``; ``backend`` and
    ``timeout_s`` go to `init_process_group`.

    Returns the ``fn`` return values (picklable) in rank order. When a process fails (exception,
    signal, non-zero ``sys.exit``) the others get SIGTERM (then SIGKILL after ``grace_s``) and a
    `UserError` names the failing rank, its exit code and its error; ``settle_s`` is how long the
    launcher waits for the other ranks' own errors before deciding which rank was first. With
    ``join_timeout_s`` the whole run is bounded as well. Ctrl-C stops all processes.
    """
    if world_size < 1:
        raise UserError(f"--gpus must be at least 1, got {world_size}")
    if not timeout_s or timeout_s <= 0:
        raise UserError(f"the collective timeout must be a positive number of seconds, got {timeout_s}")
    _check_available()
    import torch.multiprocessing as mp

    ctx = mp.get_context(start_method)
    if start_method == "forkserver":
        # The server imports these once; every rank then forks from it instead of importing torch.
        # (torch._dynamo: imported lazily by the first optimiser, seconds on a busy machine.)
        ctx.set_forkserver_preload(["torch", "torch.distributed", "torch._dynamo", "torch_utils.distributed"])
    report_dir = tempfile.mkdtemp(prefix="renyi-gan-launch-")
    try:
        if init_method is None:
            init_method = "file://" + os.path.join(report_dir, "rendezvous")
        elif init_method == "tcp":
            init_method = f"tcp://127.0.0.1:{find_free_port()}"
        procs = []
        for rank in range(world_size):
            p = ctx.Process(
                target=_child_main,
                args=(fn, rank, world_size, init_method, backend, str(device), float(timeout_s), tuple(args), report_dir),
                name=f"rank{rank}",
                daemon=False,  # ranks may start DataLoader workers of their own
            )
            p.start()
            procs.append(p)
        deadline = None if join_timeout_s is None else time.monotonic() + float(join_timeout_s)
        failures: list[tuple[float, int, Optional[int], Optional[dict]]] = []
        try:
            pending = {p.sentinel: (rank, p) for rank, p in enumerate(procs)}
            first_failure_at: Optional[float] = None
            while pending:
                now = time.monotonic()
                if first_failure_at is not None and now - first_failure_at >= settle_s:
                    break
                wait_s = 0.5
                if deadline is not None:
                    wait_s = min(wait_s, max(deadline - now, 0.0))
                ready = _wait_sentinels(list(pending), timeout=wait_s)
                for sentinel in ready:
                    rank, p = pending.pop(sentinel)
                    p.join()
                    if p.exitcode != 0:
                        path = os.path.join(report_dir, f"error-{rank}.json")
                        report = None
                        if os.path.exists(path):
                            with open(path, encoding="utf-8") as f:
                                report = json.load(f)
                        failures.append((report["time"] if report else time.time(), rank, p.exitcode, report))
                        if first_failure_at is None:
                            first_failure_at = time.monotonic()
                if deadline is not None and time.monotonic() >= deadline and pending and not failures:
                    alive = ", ".join(str(r) for r, _p in sorted(pending.values(), key=lambda rp: rp[0]))
                    _terminate(procs, grace_s)
                    raise UserError(
                        f"the {world_size} processes did not finish within {join_timeout_s:g} s "
                        f"(still running: rank {alive}); all were stopped"
                    )
        except BaseException:
            _terminate(procs, grace_s)
            raise
        if failures:
            _terminate(procs, grace_s)
            raise UserError(_failure_message(failures, world_size, timeout_s))
        results = []
        for rank in range(world_size):
            path = os.path.join(report_dir, f"result-{rank}.pkl")
            if not os.path.exists(path):
                raise UserError(f"rank {rank} of {world_size} exited with code 0 but returned no result "
                                "(it left through os._exit?)")
            with open(path, "rb") as f:
                results.append(pickle.load(f))
        return results
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)


@contextlib.contextmanager
def process_group(
    rank: int, world_size: int, init_method: str, **kwargs: Any
) -> Iterator[DistInfo]:
    """``with process_group(...) as info:`` joins the group (see `init_process_group`) and leaves
    it on exit."""
    info = init_process_group(rank, world_size, init_method, **kwargs)
    try:
        yield info
    finally:
        shutdown()
