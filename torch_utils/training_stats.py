"""Named running statistics for training: report values anywhere, read windows of them per tick.

A `Reporter` accumulates, for every name, the moments `[count, sum, sum of squares]` of all values
reported under it (float64, on the device of the values, so reporting never forces a host sync).
A `Collector` reads the change of those moments since its previous `update()`, so several
collectors (one per tick for logs, one for the ADA heuristic, ...) can watch the same reporter
independently:

    num  = delta count
    mean = delta sum / num
    std  = sqrt(max(delta sumsq / num - mean^2, 0))

With several processes, `Collector.update(num_gpus=N)` sums the deltas over all ranks first
(`torch.distributed.all_reduce`, over the union of the names reported on any rank), so every rank
sees the same numbers.
"""

from __future__ import annotations

import math
import re
from typing import Optional, Union

import numpy as np
import torch

from dnnlib.util import EasyDict


class Reporter:
    """Accumulates `[count, sum, sumsq]` per statistic name (no global state: pass it around)."""

    def __init__(self) -> None:
        self._moments: dict[str, torch.Tensor] = {}

    def report(self, name: str, value: Union[float, int, np.ndarray, torch.Tensor]) -> None:
        """Add every element of `value` (scalar or tensor, detached) to the moments of `name`."""
        if isinstance(value, torch.Tensor):
            elems = value.detach().flatten().to(torch.float64)
        else:
            elems = torch.as_tensor(np.asarray(value, dtype=np.float64)).flatten()
        if elems.numel() == 0:
            return
        moments = torch.stack([torch.ones_like(elems).sum(), elems.sum(), elems.square().sum()])
        prev = self._moments.get(name)
        if prev is None:
            self._moments[name] = moments
        else:
            if prev.device != moments.device:
                moments = moments.to(prev.device)
            prev.add_(moments)

    def names(self) -> list[str]:
        return sorted(self._moments)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """All cumulative moments as CPU tensors (for snapshots)."""
        return {n: self.cumulative(n) for n in self.names()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._moments = {n: m.detach().clone().to(torch.float64) for n, m in state.items()}

    def cumulative(self, name: str) -> torch.Tensor:
        """Moments of `name` so far as a CPU float64 tensor [3] (zeros if never reported)."""
        m = self._moments.get(name)
        return torch.zeros(3, dtype=torch.float64) if m is None else m.detach().cpu().clone()


class Collector:
    """Windows of a `Reporter`'s statistics: `update()` closes a window, then query it.

    `regex` (optional) restricts which names are collected.
    """

    def __init__(self, reporter: Reporter, regex: Optional[str] = None) -> None:
        self._reporter = reporter
        self._regex = re.compile(regex) if regex else None
        self._last: dict[str, torch.Tensor] = {}
        self._window: dict[str, torch.Tensor] = {}

    def update(self, num_gpus: int = 1, device: Optional[torch.device] = None) -> None:
        """Close the current window: moments reported since the previous `update()`."""
        names = [n for n in self._reporter.names() if self._regex is None or self._regex.fullmatch(n)]
        if num_gpus > 1:  # the union over ranks, so every rank reduces the same packed tensor
            import torch.distributed as dist

            everyone: list = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, names)
            names = sorted(set().union(*everyone))
        deltas = []
        for name in names:
            cum = self._reporter.cumulative(name)
            deltas.append(cum - self._last.get(name, torch.zeros(3, dtype=torch.float64)))
            self._last[name] = cum
        if num_gpus > 1 and deltas:
            import torch.distributed as dist

            packed = torch.stack(deltas).to(device or torch.device("cpu"))
            dist.all_reduce(packed)
            deltas = list(packed.cpu())
        self._window = {n: d for n, d in zip(names, deltas) if d[0] > 0}

    def names(self) -> list[str]:
        return sorted(self._window)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Where the current window starts (cumulative moments at the last `update()`)."""
        return {n: m.clone() for n, m in self._last.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._last = {n: m.detach().clone().to(torch.float64) for n, m in state.items()}
        self._window = {}

    def num(self, name: str) -> int:
        d = self._window.get(name)
        return 0 if d is None else int(d[0])

    def mean(self, name: str) -> float:
        d = self._window.get(name)
        return float("nan") if d is None else float(d[1] / d[0])

    def std(self, name: str) -> float:
        d = self._window.get(name)
        if d is None:
            return float("nan")
        mean = float(d[1] / d[0])
        return math.sqrt(max(float(d[2] / d[0]) - mean * mean, 0.0))

    def __getitem__(self, name: str) -> float:
        return self.mean(name)

    def as_dict(self) -> EasyDict:
        """`{name: {num, mean, std}}` for every statistic seen in the window."""
        return EasyDict({n: EasyDict(num=self.num(n), mean=self.mean(n), std=self.std(n)) for n in self.names()})
