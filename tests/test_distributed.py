"""Tests for torch_utils/distributed.py: 2 gloo processes on CPU, helpers and fail-fast launching.

Every launch has a `join_timeout_s`, and the failure tests use short collective timeouts, so no
test can hang. Workers are module-level functions (they are pickled into the new processes).
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from dnnlib.util import UserError, atomic_path
from torch_utils import distributed as D

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed in this build")

# forkserver: one clean server process imports torch once, later launches fork from it (fast, and
# as safe as spawn: the server never ran an op). train.py uses spawn.
FAST = dict(start_method="forkserver", device="cpu", join_timeout_s=90)


# ------------------------------------------------------------------------------------------------
# Pure helpers.


def test_rank_seed_follows_stylegan_rule_and_is_distinct():
    assert D.rank_seed(5, 1, 4) == 21
    seeds = {D.rank_seed(s, r, 4) for s in range(10) for r in range(4)}
    assert len(seeds) == 40
    with pytest.raises(ValueError):
        D.rank_seed(0, 4, 4)


def test_find_free_port_can_be_bound():
    import socket

    port = D.find_free_port()
    assert 1024 <= port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_backend_and_device_choice_on_cpu():
    assert D.default_backend(torch.device("cpu")) == "gloo"
    assert D.resolve_device("cpu", 3) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert D.resolve_device("auto", 1) == torch.device("cpu")
        with pytest.raises(UserError, match="CUDA is not available"):
            D.resolve_device("cuda", 0)
    with pytest.raises(UserError, match="unknown device"):
        D.resolve_device("tpu9", 0)


def test_torchrun_env_parsing():
    assert D.torchrun_env({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert D.torchrun_env(env) == dict(rank=3, world_size=4, local_rank=1, local_world_size=2)
    with pytest.raises(UserError, match="inconsistent"):
        D.torchrun_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(UserError, match="integers"):
        D.torchrun_env({"RANK": "x", "WORLD_SIZE": "4"})
    with pytest.raises(UserError, match="MASTER_ADDR and MASTER_PORT"):
        D.init_from_env(device="cpu", environ={"RANK": "0", "WORLD_SIZE": "2"})


def test_single_process_needs_no_group():
    info = D.init_process_group(0, 1, "env://", device="cpu")
    assert info == D.DistInfo(rank=0, world_size=1, local_rank=0, backend=None, device=torch.device("cpu"))
    assert not D.is_initialized() and D.get_world_size() == 1
    t = torch.tensor([2.0])
    assert D.all_reduce_(t, "mean") is t and t.item() == 2.0
    assert D.reduce_mean_dict({"b": 1, "a": 2.5}) == {"a": 2.5, "b": 1.0}
    assert D.all_gather_object("x") == ["x"] and D.broadcast_object(7) == 7
    with pytest.raises(UserError, match="timeout"):
        D.init_process_group(0, 2, "env://", device="cpu", timeout_s=0)


# ------------------------------------------------------------------------------------------------
# Two processes.


def _helpers_worker(info: D.DistInfo, scale: float) -> dict:
    torch.set_num_threads(1)
    out: dict = dict(rank=info.rank, world=info.world_size, backend=info.backend, device=str(info.device))
    out["seen_world"] = (D.get_rank(), D.get_world_size())
    t = torch.tensor([float(info.rank + 1) * scale, -float(info.rank)])
    out["sum"] = D.all_reduce_(t.clone(), "sum").tolist()
    out["mean"] = D.all_reduce_(t.clone(), "mean").tolist()
    out["max"] = D.all_reduce_(t.clone(), "max").tolist()
    out["dict"] = D.reduce_mean_dict({"loss": 1.0 + info.rank, "acc": 10.0 * info.rank})
    out["gathered"] = D.all_gather_object({"r": info.rank})
    out["bcast"] = D.broadcast_object(f"from rank {info.rank}", src=1)
    torch.manual_seed(D.rank_seed(0, info.rank, info.world_size))  # replicas start different
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net[1].running_mean.add_(info.rank)
    out["diff_before"] = D.max_param_difference(net)
    D.broadcast_module_(net, src=0)
    out["diff_after"] = D.max_param_difference(net)
    out["weight0"] = net[0].weight[0, 0].item()
    D.barrier(timeout_s=30)
    return out


def test_two_gloo_processes_helpers_and_results():
    t0 = time.monotonic()
    res = D.launch(_helpers_worker, 2, args=(2.0,), **FAST)
    assert [r["rank"] for r in res] == [0, 1]
    for r in res:
        assert r["world"] == 2 and r["backend"] == "gloo" and r["device"] == "cpu" and r["seen_world"] == (r["rank"], 2)
        assert r["sum"] == [6.0, -1.0]
        assert r["mean"] == [3.0, -0.5]
        assert r["max"] == [4.0, 0.0]
        assert r["dict"] == {"acc": 5.0, "loss": 1.5}
        assert r["gathered"] == [{"r": 0}, {"r": 1}]
        assert r["bcast"] == "from rank 1"
        assert r["diff_before"] >= 1.0  # different seeds and a shifted buffer
        assert r["diff_after"] == 0.0
    assert res[0]["weight0"] == res[1]["weight0"]
    assert time.monotonic() - t0 < 60


def _tcp_worker(info: D.DistInfo) -> int:
    t = torch.tensor([info.rank + 10])
    D.all_reduce_(t)
    return int(t.item())


def test_tcp_rendezvous():
    """A tcp://127.0.0.1:<free port> rendezvous instead of the default file:// one."""
    assert D.launch(_tcp_worker, 2, init_method="tcp", **FAST) == [21, 21]


# ------------------------------------------------------------------------------------------------
# Failures end the whole run quickly, with the rank and the reason.


def _raising_worker(info: D.DistInfo, kind: str) -> None:
    if info.rank == 1:
        time.sleep(0.2)
        if kind == "user":
            raise UserError("bad option on rank one")
        if kind == "bug":
            raise ZeroDivisionError("division by zero in a worker")
        if kind == "exit":
            os._exit(7)
        if kind == "kill":
            os.kill(os.getpid(), 9)
    D.all_reduce_(torch.ones(1))  # rank 0 waits here for a rank that never comes
    time.sleep(120)


@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("user", r"rank 1 of 2 failed \(exit code 2\): UserError: bad option on rank one"),
        ("bug", r"rank 1 of 2 failed \(exit code 1\): ZeroDivisionError: division by zero in a worker \[at File .*test_distributed.py"),
        ("exit", r"rank 1 of 2 died without reporting an error \(exit code 7\)"),
        ("kill", r"rank 1 of 2 died without reporting an error \(exit code -9, SIGKILL \(killed; out of memory\?\)\)"),
    ],
)
def test_failing_rank_stops_everyone(kind, pattern):
    t0 = time.monotonic()
    with pytest.raises(UserError, match=pattern) as info:
        D.launch(_raising_worker, 2, args=(kind,), timeout_s=60, grace_s=3, settle_s=1, **FAST)
    assert "the other ranks were stopped" in str(info.value)
    assert "\n" not in str(info.value)
    assert time.monotonic() - t0 < 30  # neither the 60 s collective timeout nor the sleep


def _hanging_worker(info: D.DistInfo) -> None:
    if info.rank == 1:
        time.sleep(120)  # hangs without dying
    D.all_reduce_(torch.ones(1))


def test_hung_rank_ends_run_through_collective_timeout():
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"rank 0 of 2 failed \(exit code 1\): .*Timed out.* 2 s timeout: another rank hung or died"):
        D.launch(_hanging_worker, 2, timeout_s=2, grace_s=3, settle_s=1, **FAST)
    assert time.monotonic() - t0 < 30  # rank 1 (sleeping 120 s) was stopped by the launcher


def _sleeping_worker(info: D.DistInfo) -> None:
    time.sleep(120)


def test_whole_run_timeout():
    t0 = time.monotonic()
    with pytest.raises(UserError, match=r"did not finish within 3 s \(still running: rank 0, 1\)"):
        D.launch(_sleeping_worker, 2, grace_s=3, **dict(FAST, join_timeout_s=3))
    assert time.monotonic() - t0 < 20


def _snapshot_worker(info: D.DistInfo, folder: str) -> None:
    if info.rank == 0:
        with atomic_path(os.path.join(folder, "snapshot-000001.bin")) as tmp:
            tmp.write_bytes(b"complete snapshot one")
        with atomic_path(os.path.join(folder, "snapshot-000002.bin")) as tmp:
            tmp.write_bytes(b"half of snap")
            time.sleep(120)  # being written when rank 1 fails
            tmp.write_bytes(b"half of snapshot two, then the rest")
    else:
        time.sleep(1.0)
        raise RuntimeError("rank 1 crashed")


def test_failure_leaves_last_snapshot_intact(tmp_path):
    with pytest.raises(UserError, match="rank 1 of 2 failed .*RuntimeError: rank 1 crashed"):
        D.launch(_snapshot_worker, 2, args=(str(tmp_path),), grace_s=5, settle_s=0.5, **FAST)
    # The terminated rank 0 unwound its atomic write: no partial file, no temporary left over.
    assert sorted(os.listdir(tmp_path)) == ["snapshot-000001.bin"]
    assert (tmp_path / "snapshot-000001.bin").read_bytes() == b"complete snapshot one"
