"""Generator-loss registry (filled by `renyi.register`) and the phase-based GAN loss.

Registry
--------
A generator loss maps the discriminator logits of one batch of generated images, shape ``[N]`` or
``[N, 1]``, to a scalar tensor that the generator minimises. Each entry is a `GeneratorLossSpec`:

- ``name``: the value of ``train.py --loss`` (``ns``, ``renyi``, ``minimax``, ``lk``, ``alpha``).
- ``fn(fake_logits, **params) -> scalar``: the full-batch loss.
- ``batch_level``: False when the loss is the batch mean of per-sample terms (then any split of
  the batch into rounds or processes is exact by averaging); True when it is a statistic of the
  whole batch (the Rényi loss, a log of a batch mean), which the training loop must combine
  exactly across rounds with `renyi.coupling`.
- ``params``: the keyword parameters ``fn`` accepts (e.g. ``("alpha", "l1")``).
- ``discriminator_fn``: None for the standard BCE discriminator loss, or a replacement
  ``fn(real_logits, fake_logits, **params) -> scalar`` for losses that change D too (LkGAN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from dnnlib.util import UserError

GeneratorLossFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class GeneratorLossSpec:
    """One registered generator loss (see the module docstring for the meaning of each field)."""

    name: str
    fn: GeneratorLossFn
    batch_level: bool
    params: tuple[str, ...] = ()
    description: str = ""
    discriminator_fn: Optional[Callable[..., torch.Tensor]] = field(default=None)


GENERATOR_LOSSES: dict[str, GeneratorLossSpec] = {}


def register_generator_loss(
    name: str,
    *,
    batch_level: bool,
    params: tuple[str, ...] = (),
    description: str = "",
    discriminator_fn: Optional[Callable[..., torch.Tensor]] = None,
) -> Callable[[GeneratorLossFn], GeneratorLossFn]:
    """Decorator that registers ``fn`` under ``name``; re-registering the same name replaces it."""

    def decorator(fn: GeneratorLossFn) -> GeneratorLossFn:
        GENERATOR_LOSSES[name] = GeneratorLossSpec(
            name=name,
            fn=fn,
            batch_level=batch_level,
            params=tuple(params),
            description=description,
            discriminator_fn=discriminator_fn,
        )
        return fn

    return decorator


def _load_builtin_losses() -> None:
    # Imported lazily: renyi.register imports this module to call register_generator_loss.
    import renyi.register  # noqa: F401


def list_generator_losses() -> list[str]:
    """Names of all registered generator losses, sorted."""
    _load_builtin_losses()
    return sorted(GENERATOR_LOSSES)


def get_generator_loss(name: str) -> GeneratorLossSpec:
    """The spec registered under ``name``; an unknown name raises `UserError` listing valid ones."""
    _load_builtin_losses()
    try:
        return GENERATOR_LOSSES[name]
    except KeyError:
        valid = ", ".join(sorted(GENERATOR_LOSSES))
        raise UserError(f"unknown generator loss '{name}'; choose one of: {valid}") from None
