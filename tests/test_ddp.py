"""Tests for training/ddp.py: DDP wrapping and the exact cross-process Rényi gradient (2 gloo ranks)."""

from __future__ import annotations

import math

import pytest
import torch

from renyi.coupling import CoupledLossAccumulator
from renyi.losses import renyi_generator_loss
from torch_utils import distributed as D
from training import ddp

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed in this build")

FAST = dict(start_method="forkserver", device="cpu", join_timeout_s=90)
SIZES = [3, 5]  # rank 0 holds 3 samples in 1 round, rank 1 holds 5 in 2 rounds (2 + 3)


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def _inputs() -> torch.Tensor:
    return torch.randn(sum(SIZES), 4, generator=torch.Generator().manual_seed(3)) * 2


def _reference_grads(alpha: float, l1: bool) -> tuple[list[torch.Tensor], float]:
    torch.manual_seed(0)
    net = _net()
    loss = renyi_generator_loss(net(_inputs()), alpha, l1=l1)
    loss.backward()
    return [p.grad.clone() for p in net.parameters()], float(loss.detach())


def _rank_worker(info: D.DistInfo, cases: list) -> list:
    """Per case: the DDP-averaged gradient of the coupled per-rank Rényi loss, and the loss."""
    torch.set_num_threads(1)
    out = []
    for alpha, l1 in cases:
        torch.manual_seed(100 + info.rank)  # different on purpose: DDP must broadcast rank 0's weights
        net = _net()
        if info.rank == 0:
            torch.manual_seed(0)
            net = _net()
        wrapped = ddp.wrap_networks(net, torch.nn.Linear(1, 1), info.device).G
        net.requires_grad_(True)
        x = _inputs()[sum(SIZES[: info.rank]): sum(SIZES[: info.rank + 1])]
        rounds = [x] if info.rank == 0 else [x[:2], x[2:]]
        acc = CoupledLossAccumulator(alpha=alpha, l1=False, total=x.shape[0])
        loss_value = None
        for r, xr in enumerate(rounds):
            last = r == len(rounds) - 1
            with ddp.sync_context(wrapped, last):
                logits = wrapped(xr)
            surrogate, rescale = acc.add_shard(logits)
            if last:
                local, _one = acc.finish()
                factor, loss_value = ddp.renyi_rank_factor(local, x.shape[0], alpha, l1, info.device)
                rescale, surrogate = rescale * factor, surrogate * factor
            for p in net.parameters():
                if p.grad is not None:
                    p.grad.mul_(rescale)
            surrogate.backward()
        out.append(([p.grad.clone() for p in net.parameters()], loss_value))
    problem = ddp.agree_on_problem("loss is nan" if info.rank == 1 else None, info.device)
    fine = ddp.agree_on_problem(None, info.device)
    return [out, problem, fine]


CASES = [(2.5, False), (0.5, True), (1.0, False), (0.0, False), (math.inf, False)]


def test_two_ranks_give_the_full_batch_renyi_gradient():
    results = D.launch(_rank_worker, 2, args=(CASES,), **FAST)
    for rank_result in results:
        out, problem, fine = rank_result
        assert problem == "rank 1: loss is nan" and fine is None
        for (grads, loss_value), (alpha, l1) in zip(out, CASES):
            ref_grads, ref_loss = _reference_grads(alpha, l1)
            assert abs(loss_value - ref_loss) < 1e-5, (alpha, l1)
            err = max(float((g - r).abs().max()) for g, r in zip(grads, ref_grads))
            scale = max(float(r.abs().max()) for r in ref_grads)
            assert scale > 1e-3 and err < 1e-6, (alpha, l1, err, scale)


def test_rank_factor_alone_is_the_identity_or_l1_sign():
    assert ddp.renyi_rank_factor(-0.2, 4, 2.0, False, torch.device("cpu")) == (1.0, -0.2)
    factor, value = ddp.renyi_rank_factor(-0.2, 4, 2.0, True, torch.device("cpu"))
    assert factor == 1.0 and abs(value - (math.log(2) - 0.2)) < 1e-12
    factor, value = ddp.renyi_rank_factor(-1.0, 4, 2.0, True, torch.device("cpu"))  # below -log 2
    assert factor == -1.0 and abs(value - (1.0 - math.log(2))) < 1e-12
    assert all(math.isnan(v) for v in ddp.renyi_rank_factor(float("nan"), 4, 2.0, False, torch.device("cpu")))
    assert ddp.agree_on_problem("x", torch.device("cpu")) == "x"
    with pytest.raises(RuntimeError, match="process group"):
        ddp.wrap_networks(_net(), _net(), torch.device("cpu"))
