"""Small tensor and module utilities used by the training loop, the losses and the CLIs.

- `assert_shape(tensor, shape)`: raise if a tensor's shape differs (None in `shape` = any size).
- `InfiniteSampler`: an endless, per-rank, deterministic and *resumable* sample order.
- `named_params_and_buffers`, `copy_params_and_buffers`: copy a module's state by name.
- `grads_are_finite`: one cheap check that every gradient of a module is finite.
- `seed_everything`, `get_rng_state`, `set_rng_state`: the python/numpy/torch RNGs as plain data.
- `select_device`: 'auto' | 'cpu' | 'cuda[:i]' | 'mps' -> torch.device, with clear errors.
- `print_module_summary`: a table of a module's parameters and buffers.
"""

from __future__ import annotations

import random
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from dnnlib.util import UserError


def assert_shape(tensor: torch.Tensor, shape: Sequence[Optional[int]]) -> None:
    """Raise `AssertionError` unless `tensor.shape` matches `shape` (None matches any size)."""
    if tensor.ndim != len(shape):
        raise AssertionError(f"wrong number of dimensions: got {tensor.ndim}, expected {len(shape)}")
    for idx, (size, want) in enumerate(zip(tensor.shape, shape)):
        if want is not None and size != want:
            raise AssertionError(f"wrong size for dimension {idx}: got {size}, expected {want}")


class InfiniteSampler(torch.utils.data.Sampler):
    """Endless sample order shared by all ranks, each rank taking every `num_replicas`-th item.

    The global order is the concatenation of epochs; epoch `e` is a permutation of
    `range(dataset_len)` drawn from `numpy.random.RandomState(seed + e)` (or the identity when
    `shuffle=False`). Rank `r` yields global positions `r, r + R, r + 2R, ...`, starting from its
    own position `start` (the number of items this rank has already consumed), so a resumed run
    sees exactly the data it would have seen without the interruption.
    """

    def __init__(
        self,
        dataset_len: int,
        rank: int = 0,
        num_replicas: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        start: int = 0,
    ) -> None:
        if dataset_len <= 0:
            raise UserError("the dataset is empty; point --data at a folder or zip with images")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.dataset_len = int(dataset_len)
        self.rank = int(rank)
        self.num_replicas = int(num_replicas)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.start = int(start)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.dataset_len)
        return np.random.RandomState((self.seed + epoch) % (2**32)).permutation(self.dataset_len)

    def __iter__(self) -> Iterator[int]:
        pos = self.start
        epoch, order = -1, None
        while True:
            g = pos * self.num_replicas + self.rank
            e, i = divmod(g, self.dataset_len)
            if e != epoch:
                epoch, order = e, self._epoch_order(e)
            yield int(order[i])
            pos += 1


def named_params_and_buffers(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """All (name, tensor) pairs of a module's parameters followed by its buffers."""
    return list(module.named_parameters()) + list(module.named_buffers())


@torch.no_grad()
def copy_params_and_buffers(src: torch.nn.Module, dst: torch.nn.Module, require_all: bool = False) -> None:
    """Copy every parameter and buffer of `src` into the tensor of the same name in `dst`.

    With `require_all=True`, a name of `dst` missing from `src` raises `KeyError`.
    """
    src_tensors = dict(named_params_and_buffers(src))
    for name, tensor in named_params_and_buffers(dst):
        if name in src_tensors:
            tensor.copy_(src_tensors[name].detach())
        elif require_all:
            raise KeyError(f"'{name}' missing from the source module")


def grads_are_finite(params: Sequence[torch.Tensor]) -> bool:
    """True when every element of every `.grad` in `params` is finite (None grads are skipped).

    Uses one `amax(|g|)` reduction per tensor (NaN propagates through amax, inf stays inf), then a
    single host sync.
    """
    maxima = [p.grad.detach().abs().amax().float() for p in params if p.grad is not None and p.grad.numel() > 0]
    if not maxima:
        return True
    return bool(torch.isfinite(torch.stack(maxima)).all())


# ------------------------------------------------------------------------------------------------
# Random number generators as plain data (for snapshots).


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global RNG and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """The python, numpy and torch RNG states as plain data (lists, ints, uint8 tensors)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `get_rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


# ------------------------------------------------------------------------------------------------
# Devices.


def select_device(name: str = "auto") -> torch.device:
    """'auto' -> the first CUDA device when available, else CPU; otherwise the named device.

    An unavailable device raises `UserError` (e.g. `--device=cuda` on a machine without CUDA).
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device: unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device={name}: CUDA is not available on this machine; use --device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device={name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError(f"--device={name}: MPS is not available on this machine; use --device=cpu")
    elif device.type != "cpu":
        raise UserError(f"--device: unsupported device type '{device.type}'; use auto, cpu, cuda or mps")
    return device


# ------------------------------------------------------------------------------------------------
# Module summary.


def print_module_summary(module: torch.nn.Module, name: str = "") -> int:
    """Print one line per direct child (parameter and buffer counts) and the total; return it."""
    rows = [(f"{name or type(module).__name__}.{child_name}", child) for child_name, child in module.named_children()]
    width = max([len(r[0]) for r in rows] + [10])
    print(f"{'module':<{width}}  {'params':>12}  {'buffers':>10}")
    total = 0
    for child_name, child in rows:
        n_p = sum(p.numel() for p in child.parameters())
        n_b = sum(b.numel() for b in child.buffers())
        total += n_p
        print(f"{child_name:<{width}}  {n_p:>12,}  {n_b:>10,}")
    own = sum(p.numel() for p in module.parameters(recurse=False))
    total += own
    print(f"{'total':<{width}}  {total:>12,}")
    return total
