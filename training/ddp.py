"""DistributedDataParallel plumbing shared by the training loop and `training.loss.GANLoss`.

With ``num_gpus > 1`` every process holds a replica of G and D wrapped in
``torch.nn.parallel.DistributedDataParallel`` (`wrap_networks`): the wrappers broadcast rank 0's
parameters and buffers once (so all replicas start equal whatever each rank's seed) and average
the gradients over processes during the backward pass. Like StyleGAN2-ADA, a StyleGAN2 generator
is wrapped as its two halves (``G_mapping``, ``G_synthesis``) because the loss calls them
separately; buffers are copied from rank 0 once and not re-broadcast at every forward (BatchNorm
running statistics and ``w_avg`` then evolve per rank; rank 0's are saved).

Within one phase (several accumulation rounds) only the *last* backward of the trained network
synchronises; the earlier rounds run under ``no_sync()`` (`sync_context`), so the gradients are
averaged once per phase. A network used only as a fixed function in a phase (D in Gmain, G in
Dmain) is called unwrapped, so DDP expects no gradient for it.

The batch-level Rényi loss is made exact across processes by `renyi_rank_factor`: each rank
accumulates the exact gradient of its *own* Rényi loss ``L_k`` over its rounds
(`renyi.coupling.CoupledLossAccumulator`), then the ranks exchange ``(L_k, n_k)`` and each scales
its gradient by ``W * dL/dL_k`` where ``L = combine_shard_stats(L_1..L_W, n_1..n_W)`` is the loss of
the global batch. DDP's average then gives ``sum_k dL/dL_k dL_k = dL``: the gradient of one
process holding the whole batch.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Iterator, Optional

import torch

from dnnlib.util import EasyDict, UserError

__all__ = ["wrap_networks", "sync_context", "renyi_rank_factor", "agree_on_problem"]


def _wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    import inspect

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    kwargs: dict[str, Any] = dict(find_unused_parameters=False)
    if device.type == "cuda":
        kwargs["device_ids"] = [device.index if device.index is not None else torch.cuda.current_device()]
    # Buffers: copied from rank 0 once, then per rank (no broadcast before every forward). Newer
    # torch spells this forward_sync_buffers=False; broadcast_buffers=False (older) skips the copy.
    new_api = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    kwargs["forward_sync_buffers" if new_api else "broadcast_buffers"] = False
    # DDP registers gradient hooks only for parameters that require grad when it is built; the loop
    # keeps networks frozen between phases, so unfreeze them for the construction only.
    module.requires_grad_(True)
    try:
        wrapped = DistributedDataParallel(module, **kwargs)
    finally:
        module.requires_grad_(False)
    if not new_api:
        with torch.no_grad():
            for buf in module.buffers():
                dist.broadcast(buf, src=0)
    return wrapped


def wrap_networks(G: torch.nn.Module, D: torch.nn.Module, device: torch.device) -> EasyDict:
    """DDP wrappers ``EasyDict(G=..., D=...)`` or, for generators with a mapping network,
    ``EasyDict(G_mapping=..., G_synthesis=..., D=...)``. Needs an initialised process group.

    Building them copies rank 0's parameters and buffers to every rank (in place: ``G`` and ``D``
    themselves are updated).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("wrap_networks needs an initialised torch.distributed process group")
    # A [1, n] weight's gradient may come out with strides (1, 1) instead of (n, 1): the same memory
    # layout for a size-1 dimension, but DDP warns about it once per process. Not a problem here.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    out = EasyDict()
    split = hasattr(G, "mapping") and hasattr(G, "synthesis") and getattr(G, "num_ws", 0) > 0
    if split:
        halves = {id(p) for p in list(G.mapping.parameters()) + list(G.synthesis.parameters())}
        if any(id(p) not in halves for p in G.parameters()):
            raise UserError(f"{type(G).__name__} has parameters outside its mapping and synthesis networks; "
                            "multi-process training cannot wrap it")
        out.G_mapping = _wrap(G.mapping, device)
        out.G_synthesis = _wrap(G.synthesis, device)
    else:
        out.G = _wrap(G, device)
    out.D = _wrap(D, device)
    return out


@contextlib.contextmanager
def sync_context(module: Optional[torch.nn.Module], sync: bool) -> Iterator[None]:
    """Run a forward of a DDP ``module`` whose backward averages gradients (``sync``) or only
    accumulates them locally (``not sync``: ``module.no_sync()``). A plain module: no-op."""
    if sync or module is None or not hasattr(module, "no_sync"):
        yield
    else:
        with module.no_sync():
            yield


def renyi_rank_factor(local_loss: float, count: int, alpha: float, l1: bool, device: torch.device) -> tuple[float, float]:
    """``(factor, global_loss)`` for this rank's Rényi loss ``L_k`` over its ``n_k = count`` samples.

    ``global_loss = combine_shard_stats([L_1..L_W], [n_1..n_W], alpha, l1)`` is the loss of the
    global batch (``(1/a) log sum_k (n_k/N) exp(a L_k)``, ``a = alpha - 1``; max for alpha = inf;
    ``|L + log 2|`` with l1), identical on every rank. ``factor = W * dL/dL_k`` multiplies this
    rank's gradient of ``L_k`` so that averaging over the ``W`` ranks yields ``dL``. When a rank's
    loss is not finite both numbers are NaN on every rank (the caller skips or stops, all ranks
    alike). Without a process group: ``(1.0 or the l1 sign, local_loss or its l1 form)``.
    """
    import torch.distributed as dist

    from renyi.coupling import combine_shard_stats

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    dev = device if device.type == "cuda" else torch.device("cpu")
    mine = torch.tensor([float(local_loss), float(count)], dtype=torch.float64, device=dev)
    if world > 1:
        parts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(parts, mine)
        table = torch.stack(parts).cpu()
        rank = dist.get_rank()
    else:
        table = mine.cpu().reshape(1, 2)
        rank = 0
    losses = table[:, 0].clone()
    if not bool(torch.isfinite(losses).all()):
        return math.nan, math.nan
    losses.requires_grad_(True)
    full = combine_shard_stats(losses, table[:, 1], alpha, l1=l1)
    (grad,) = torch.autograd.grad(full, [losses])
    return float(grad[rank]) * world, float(full.detach())


def agree_on_problem(problem: Optional[str], device: torch.device) -> Optional[str]:
    """Make every rank take the same decision about a NaN/inf: None when no rank saw a problem,
    else one message naming each rank's problem (``"rank 1: ..."``). Identity when alone."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return problem
    dev = device if device.type == "cuda" else torch.device("cpu")
    flag = torch.tensor([1.0 if problem else 0.0], device=dev)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if float(flag.item()) == 0.0:
        return None
    messages: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(messages, problem)
    return "; ".join(f"rank {r}: {m}" for r, m in enumerate(messages) if m)
