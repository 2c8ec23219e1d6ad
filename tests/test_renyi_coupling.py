"""Tests for renyi/coupling.py: k-shard gradients equal the full-batch Rényi gradient (float64)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from renyi.coupling import CoupledLossAccumulator, all_gather_with_grad, combine_shard_stats, shard_stats
from renyi.losses import renyi_generator_loss

INF = float("inf")
ALPHAS = [0.0, 0.5, 1.0, 1.0 + 1e-9, 2.0, 3.0, 10.0, INF]
SPLITS = {1: [13], 2: [9, 4], 3: [1, 7, 5], 5: [3, 1, 4, 1, 4]}  # unequal shard sizes, N = 13


def _tiny_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()


def _inputs(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(13, 3, generator=g, dtype=torch.float64) * 2.0


def _full_batch_grads(net, x, alpha, l1):
    net.zero_grad()
    loss = renyi_generator_loss(net(x), alpha, l1=l1)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters()]


def _accumulated_grads(net, x, sizes, alpha, l1, gain=1.0):
    """Exactly the loop from interfaces.md: rescale existing grads, backward the surrogate, finish."""
    net.zero_grad(set_to_none=True)
    acc = CoupledLossAccumulator(alpha=alpha, l1=l1, total=x.shape[0])
    for xs in torch.split(x, sizes):
        surrogate, rescale_prev = acc.add_shard(net(xs))
        for p in net.parameters():
            if p.grad is not None:
                p.grad.mul_(rescale_prev)
        (surrogate * gain).backward()
    value, final_scale = acc.finish()
    for p in net.parameters():
        p.grad.mul_(final_scale / gain)
    return value, [p.grad.clone() for p in net.parameters()]


def _max_rel_err(grads, ref):
    scale = max(g.abs().max().item() for g in ref)
    return max((a - b).abs().max().item() for a, b in zip(grads, ref)) / max(scale, 1e-300)


@pytest.mark.parametrize("l1", [False, True])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_accumulated_parameter_gradient_equals_full_batch(alpha, l1):
    net, x = _tiny_net(), _inputs()
    ref_value, ref_grads = _full_batch_grads(net, x, alpha, l1)
    assert max(g.abs().max().item() for g in ref_grads) > 1e-3  # a gradient worth comparing
    for k, sizes in SPLITS.items():
        value, grads = _accumulated_grads(net, x, sizes, alpha, l1, gain=3.0 if k == 3 else 1.0)
        assert _max_rel_err(grads, ref_grads) < 1e-10, (k, sizes)
        assert value == pytest.approx(ref_value, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("l1", [False, True])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_accumulated_logit_gradient_equals_full_batch(alpha, l1):
    g = torch.Generator().manual_seed(2)
    base = torch.randn(13, generator=g, dtype=torch.float64) * 3.0 - 1.0
    full = base.clone().requires_grad_(True)
    renyi_generator_loss(full, alpha, l1=l1).backward()
    for sizes in SPLITS.values():
        leaf = base.clone().requires_grad_(True)
        acc = CoupledLossAccumulator(alpha, l1)
        for chunk in torch.split(torch.arange(13), sizes):
            surrogate, rescale_prev = acc.add_shard(leaf[chunk])
            if leaf.grad is not None:
                leaf.grad.mul_(rescale_prev)
            surrogate.backward()
        _, final_scale = acc.finish()
        leaf.grad.mul_(final_scale)
        assert torch.allclose(leaf.grad, full.grad, rtol=1e-10, atol=1e-14 * full.grad.abs().max().item())


def test_without_coupling_rounds_would_be_wrong():
    # The reason for the module: averaging per-round losses is not the full-batch gradient.
    net, x = _tiny_net(), _inputs()
    _, ref = _full_batch_grads(net, x, 3.0, False)
    net.zero_grad()
    for xs in torch.split(x, [9, 4]):
        (renyi_generator_loss(net(xs), 3.0) * xs.shape[0] / 13).backward()
    assert _max_rel_err([p.grad for p in net.parameters()], ref) > 1e-3


def test_inf_ties_across_rounds_pick_the_earliest():
    logits = torch.tensor([0.5, -2.0, 1.0, -2.0, -2.0], dtype=torch.float64)  # equal maxima of s
    full = logits.clone().requires_grad_(True)
    renyi_generator_loss(full, INF).backward()
    leaf = logits.clone().requires_grad_(True)
    acc = CoupledLossAccumulator(INF)
    for chunk in (torch.tensor([0]), torch.tensor([1, 2]), torch.tensor([3, 4])):
        surrogate, rescale_prev = acc.add_shard(leaf[chunk])
        if leaf.grad is not None:
            leaf.grad.mul_(rescale_prev)
        surrogate.backward()
    acc.finish()
    assert torch.equal(leaf.grad, full.grad)
    assert leaf.grad.nonzero().flatten().tolist() == [1]


@pytest.mark.parametrize("l1", [False, True])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_combine_shard_stats_value_and_gradient(alpha, l1):
    net, x = _tiny_net(), _inputs()
    ref_value, ref_grads = _full_batch_grads(net, x, alpha, l1)
    for sizes in SPLITS.values():
        net.zero_grad()
        stats = [shard_stats(net(xs), alpha) for xs in torch.split(x, sizes)]
        assert [s.count for s in stats] == sizes
        loss = combine_shard_stats([s.loss for s in stats], [s.count for s in stats], alpha, l1=l1)
        loss.backward()
        assert loss.item() == pytest.approx(ref_value, rel=1e-12, abs=1e-14)
        assert _max_rel_err([p.grad for p in net.parameters()], ref_grads) < 1e-10


def test_float32_rounds_are_close_to_float64():
    net, x = _tiny_net(), _inputs()
    ref_value, ref_grads = _full_batch_grads(net, x, 1.0 + 1e-6, False)
    net32 = _tiny_net().float()
    value, grads = _accumulated_grads(net32, x.float(), [3, 1, 4, 1, 4], 1.0 + 1e-6, False)
    assert value == pytest.approx(ref_value, rel=1e-6)
    assert _max_rel_err([g.double() for g in grads], ref_grads) < 1e-5


def test_accumulator_misuse_is_reported():
    acc = CoupledLossAccumulator(2.0, total=4)
    with pytest.raises(ValueError, match="before any add_shard"):
        acc.finish()
    acc.add_shard(torch.zeros(3))
    with pytest.raises(ValueError, match="total=4"):
        acc.finish()
    acc.add_shard(torch.zeros(1, 1))
    value, scale = acc.finish()
    assert value == pytest.approx(-math.log(2.0)) and scale == 1.0
    with pytest.raises(RuntimeError, match="after finish"):
        acc.add_shard(torch.zeros(2))
    with pytest.raises(ValueError, match="alpha"):
        CoupledLossAccumulator(-1.0)
    with pytest.raises(ValueError, match="total"):
        CoupledLossAccumulator(2.0, total=0)
    with pytest.raises(ValueError, match="empty"):
        CoupledLossAccumulator(2.0).add_shard(torch.zeros(0))
    with pytest.raises(ValueError, match="counts"):
        combine_shard_stats([torch.tensor(0.0)], [0], 2.0)
    # L1 at exact equilibrium: value 0, final gradient factor 0 (the subgradient torch.abs uses).
    acc = CoupledLossAccumulator(3.0, l1=True)
    acc.add_shard(torch.zeros(2, dtype=torch.float64))
    assert acc.finish() == (pytest.approx(0.0, abs=1e-15), 0.0)


def test_all_gather_with_grad_without_process_group_is_identity():
    x = torch.randn(3, requires_grad=True)
    y = all_gather_with_grad(x)
    assert y.shape == (1, 3) and torch.equal(y[0], x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(3.0))


_TWO_PROCESS_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
    sys.path.insert(0, {repo!r})
    from renyi.coupling import all_gather_with_grad, combine_shard_stats, shard_stats
    from renyi.losses import renyi_generator_loss

    SIZES = [5, 8]

    def make():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
        x = torch.randn(13, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        return net, x

    def worker(rank, init_file, out_file, alpha):
        dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=2)
        torch.set_num_threads(1)
        net, x = make()
        xs = torch.split(x, SIZES)[rank]
        st = shard_stats(net(xs), alpha)
        losses = all_gather_with_grad(st.loss.reshape(1)).reshape(-1)
        counts = torch.zeros(2, dtype=torch.int64); counts[rank] = st.count
        dist.all_reduce(counts)
        loss = combine_shard_stats(losses, counts, alpha, l1=True)
        loss.backward()
        for p in net.parameters():  # what DDP does: average gradients over processes
            dist.all_reduce(p.grad); p.grad /= 2
        if rank == 0:
            net2, _ = make()
            ref = renyi_generator_loss(net2(x), alpha, l1=True); ref.backward()
            err = max((a.grad - b.grad).abs().max().item() for a, b in zip(net.parameters(), net2.parameters()))
            with open(out_file, "w") as f:
                f.write(f"{{err}} {{abs(loss.item() - ref.item())}}")
        dist.destroy_process_group()

    if __name__ == "__main__":
        mp.start_processes(worker, args=(sys.argv[1], sys.argv[2], float(sys.argv[3])), nprocs=2, start_method="fork")
    """
)


@pytest.mark.slow
def test_two_processes_match_full_batch(tmp_path, repo_root):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    script = tmp_path / "two_proc.py"
    script.write_text(_TWO_PROCESS_SCRIPT.format(repo=str(repo_root)))
    out = tmp_path / "result.txt"
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "init"), str(out), "2.5"], check=True, timeout=120,
        capture_output=True,
    )
    grad_err, value_err = map(float, out.read_text().split())
    assert grad_err < 1e-12 and value_err < 1e-12
