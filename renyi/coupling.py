"""Exact Rényi generator loss when one batch is split into accumulation rounds or processes.

The Rényi loss is a statistic of the whole batch,
``L = (1/a) log( (1/N) sum_i exp(a s_i) )`` with ``a = alpha - 1`` and ``s_i = log(1 - D_i)``,
so the mean of per-round losses is *not* the full-batch loss. Write round r (``n_r`` samples) as
``LSE_r = logsumexp_{i in r}(a s_i)`` and ``L_r = (LSE_r - log n_r)/a`` (the round's own Rényi
loss). Then ``LSE_r = log n_r + a L_r`` and

    L = (1/a) log sum_r (n_r/N) exp(a L_r)                                      (value)
    dL = sum_r c_r dL_r,   c_r = exp(LSE_r - LSE_all) = softmax_r(log n_r + a L_r)   (gradient)

(``dL = (1/a) dLSE_all = (1/a) sum_r exp(LSE_r - LSE_all) dLSE_r`` and ``dLSE_r = a dL_r``; the
``log n_r`` and ``log N`` terms are constants.) The weights ``c_r`` sum to 1. Special cases, all
covered by the same rules: ``alpha = 1`` (``a = 0``): ``c_r = n_r/N``, ``L = sum_r (n_r/N) L_r``;
``alpha = 0``: ``a = -1``; ``alpha = inf``: ``L = max_r L_r`` and ``c`` is one-hot on the round
holding the batch maximum (ties: the *earliest* round, matching `torch.argmax`'s first maximal
element in the concatenated batch). With ``l1=True`` the loss is ``|L + log 2|`` and its gradient
is ``sign(L + log 2) dL``: the sign is only known at the end, so it is the final factor.

`CoupledLossAccumulator` applies this online (like the "online softmax"): before the backward of
round r it tells the caller to rescale the gradients already accumulated by
``exp(M_old - M_new)``, where ``M`` is the running ``logsumexp_r(log n_r + a L_r)``, and returns
the surrogate ``exp(log n_r + a L_r - M_new) * L_r`` whose backward adds round r's share. After the
last round the accumulated gradient is exactly ``sum_r c_r dL_r``.

For several processes, `shard_stats` / `combine_shard_stats` give the same combination as a
differentiable function of the per-shard losses, and `all_gather_with_grad` gathers them.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from renyi.losses import LOG2, _autocast_off, check_alpha, prepare_logits, renyi_from_log_one_minus_d, scaled_log_mean_exp

__all__ = ["CoupledLossAccumulator", "ShardStats", "shard_stats", "combine_shard_stats", "all_gather_with_grad"]


def _logaddexp(x: float, y: float) -> float:
    """``log(exp(x) + exp(y))`` for python floats, without overflow (``-inf`` allowed)."""
    if x == -math.inf:
        return y
    if y == -math.inf:
        return x
    hi, lo = (x, y) if x >= y else (y, x)
    return hi + math.log1p(math.exp(lo - hi))


class CoupledLossAccumulator:
    """Accumulates the exact full-batch Rényi generator loss over rounds (gradient accumulation).

    Usage (the training loop)::

        acc = CoupledLossAccumulator(alpha=alpha, l1=l1, total=N)
        for logits_r in rounds:                       # with graph to G's parameters
            surrogate, rescale_prev = acc.add_shard(logits_r)
            for p in params: if p.grad is not None: p.grad.mul_(rescale_prev)
            (surrogate * gain).backward()
        loss_value, final_scale = acc.finish()
        for p in params: if p.grad is not None: p.grad.mul_(final_scale)

    Afterwards ``p.grad`` (ignoring ``gain``) equals the gradient of
    ``renyi_generator_loss(cat(rounds), alpha, l1)``, and ``loss_value`` is that loss (a float).
    See the module docstring for the derivation. Each `add_shard` reads one float back from the
    device (the round's loss) to compute the python-float factors.

    Args:
        alpha: Rényi order (float >= 0 or inf).
        l1: use ``|L + log 2|``.
        total: the full batch size N, if known; `finish` checks the rounds add up to it.
    """

    def __init__(self, alpha: float, l1: bool = False, total: Optional[int] = None) -> None:
        self.alpha = check_alpha(alpha)
        self.a = self.alpha - 1.0
        self.l1 = bool(l1)
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
            raise ValueError(f"total must be a positive int (the full batch size), got {total!r}")
        self.total = total
        self.count = 0
        self._log_mass = -math.inf  # running logsumexp_r(log n_r + a L_r)   (finite alpha)
        self._best = -math.inf  # running max_r L_r                              (alpha = inf)
        self._round_losses: list[float] = []
        self._round_counts: list[int] = []
        self._finished = False

    def add_shard(self, fake_logits: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Register one round's logits; return ``(surrogate, rescale_prev)``.

        ``rescale_prev`` multiplies the gradients accumulated so far (before this round's
        backward); ``surrogate`` is the scalar to backpropagate for this round (it carries the
        round's weight; its value is not the loss).
        """
        if self._finished:
            raise RuntimeError("CoupledLossAccumulator.add_shard called after finish(); make a new accumulator")
        logits = prepare_logits(fake_logits, "fake_logits")
        n = int(logits.shape[0])
        with _autocast_off(logits):
            round_loss = renyi_from_log_one_minus_d(-F.softplus(logits), self.alpha)
        value = float(round_loss.detach())
        self.count += n
        self._round_losses.append(value)
        self._round_counts.append(n)
        if math.isinf(self.alpha):
            if value > self._best:  # strict: on ties the earliest round keeps the gradient
                self._best = value
                return round_loss * 1.0, 0.0
            return round_loss * 0.0, 1.0
        term = math.log(n) + self.a * value
        new_mass = _logaddexp(self._log_mass, term)
        rescale_prev = math.exp(self._log_mass - new_mass) if self._log_mass != -math.inf else 1.0
        coef = math.exp(term - new_mass)
        self._log_mass = new_mass
        return round_loss * coef, rescale_prev

    def finish(self) -> tuple[float, float]:
        """Return ``(loss_value, final_scale)``: the full-batch loss and the last gradient factor.

        ``final_scale`` is ``sign(L + log 2)`` with ``l1=True`` (0 exactly at equilibrium), else 1.
        """
        if not self._round_counts:
            raise ValueError("CoupledLossAccumulator.finish called before any add_shard (empty batch)")
        if self.total is not None and self.count != self.total:
            raise ValueError(f"the rounds hold {self.count} samples but total={self.total} was declared")
        self._finished = True
        losses = torch.tensor(self._round_losses, dtype=torch.float64)
        counts = torch.tensor(self._round_counts, dtype=torch.float64)
        full = float(_combine(losses, counts, self.alpha))
        if not self.l1:
            return full, 1.0
        shifted = full + LOG2
        return abs(shifted), float((shifted > 0) - (shifted < 0))


# ------------------------------------------------------------------------------------------------
# Pure-tensor building blocks for several processes.


class ShardStats(NamedTuple):
    """One shard's contribution: its own Rényi loss ``L_r`` (differentiable) and its size ``n_r``.

    The shard's log-sum-exp is ``LSE_r = log n_r + (alpha-1) L_r``; exchanging ``L_r`` rather
    than ``LSE_r`` keeps full precision near ``alpha = 1`` (recovering ``L`` from
    ``(LSE - log N)/(alpha-1)`` would lose digits there).
    """

    loss: torch.Tensor
    count: int


def shard_stats(fake_logits: torch.Tensor, alpha: float) -> ShardStats:
    """``ShardStats(L_r, n_r)`` for one shard's logits (``L_r`` = `renyi_generator_loss`, l1 off)."""
    alpha_f = check_alpha(alpha)
    logits = prepare_logits(fake_logits, "fake_logits")
    with _autocast_off(logits):
        loss = renyi_from_log_one_minus_d(-F.softplus(logits), alpha_f)
    return ShardStats(loss, int(logits.shape[0]))


def _combine(losses: torch.Tensor, counts: torch.Tensor, alpha: float) -> torch.Tensor:
    if math.isinf(alpha):
        return losses[torch.argmax(losses.detach())]
    weights = counts / counts.sum()
    return scaled_log_mean_exp(losses, alpha - 1.0, weights)


def combine_shard_stats(
    losses: Union[torch.Tensor, Sequence[torch.Tensor]],
    counts: Union[torch.Tensor, Sequence[int]],
    alpha: float,
    l1: bool = False,
) -> torch.Tensor:
    """The full-batch Rényi loss from per-shard losses ``L_r`` and sizes ``n_r``.

    ``L = (1/a) log sum_r (n_r/N) exp(a L_r)`` (``a = alpha-1``; ``a = 0``: the weighted mean;
    ``alpha = inf``: ``max_r L_r``, first maximal shard on ties), evaluated stably; ``l1`` gives
    ``|L + log 2|``. Differentiable in ``losses``, with ``dL/dL_r = softmax_r(log n_r + a L_r)``,
    so backpropagating it through each shard's ``L_r`` gives the full-batch gradient.
    """
    alpha_f = check_alpha(alpha)
    vals = losses if isinstance(losses, torch.Tensor) else torch.stack([torch.as_tensor(x) for x in losses])
    vals = vals.reshape(-1)
    cnt = torch.as_tensor(counts, dtype=vals.dtype, device=vals.device).reshape(-1)
    if vals.numel() == 0 or vals.shape != cnt.shape:
        raise ValueError(f"losses and counts must be non-empty and of equal length, got {list(vals.shape)} and {list(cnt.shape)}")
    if not bool((cnt > 0).all()):
        raise ValueError("counts must all be positive (every shard needs at least one sample)")
    if not bool(torch.isfinite(vals.detach()).all()):
        raise ValueError("losses contains NaN or infinite values")
    full = _combine(vals, cnt, alpha_f)
    return (full + LOG2).abs() if l1 else full


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        world = dist.get_world_size()
        ctx.rank = dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.rank]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Stack ``tensor`` from every process: ``[world_size, *tensor.shape]``, differentiable.

    All processes must pass the same shape (pad unequal shards). The backward sums the incoming
    gradient over all processes and returns each process its own slice, i.e. the gradient of the
    *sum over processes* of whatever each one computed from the gathered tensor. So if every
    process computes the same full-batch loss from the gathered values and backpropagates it,
    each process's parameters receive ``world_size x`` their share, and DDP's gradient *average*
    then yields exactly the full-batch gradient. When `torch.distributed` is not available or not
    initialised this is ``tensor.unsqueeze(0)`` (world size 1).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return tensor.unsqueeze(0)
    return _AllGatherWithGrad.apply(tensor)
