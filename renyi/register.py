"""Registers the generator losses of `renyi.losses` in the training loss registry (`training.loss`).

Names (the values of ``train.py --loss``) and their keyword parameters:

- ``ns`` (the default): non-saturating logistic, ``mean softplus(-l)``; per-sample.
- ``renyi`` (alpha, l1): the Rényi generator loss; batch-level (combine rounds with
  `renyi.coupling.CoupledLossAccumulator`).
- ``minimax``: saturating ``mean log(1 - D)``; per-sample.
- ``lk`` (k, gamma): LkGAN generator loss on the raw D output; its discriminator loss
  (LSGAN least squares, targets 1/0) is the entry's ``discriminator_fn``; per-sample.
- ``alpha`` (alpha): the alpha-loss GAN generator term; per-sample.
"""

from __future__ import annotations

from renyi.losses import (
    alpha_generator_loss,
    lk_discriminator_loss,
    lk_generator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
    renyi_generator_loss,
)
from training.loss import register_generator_loss

DEFAULT_GENERATOR_LOSS = "ns"

register_generator_loss(
    "ns",
    batch_level=False,
    description="non-saturating logistic: mean softplus(-l) (StyleGAN2 default)",
)(nonsaturating_generator_loss)

register_generator_loss(
    "renyi",
    batch_level=True,
    params=("alpha", "l1"),
    description="Renyi: 1/(alpha-1) log mean (1-D)^(alpha-1); l1 gives |L + log 2|",
)(renyi_generator_loss)

register_generator_loss(
    "minimax",
    batch_level=False,
    description="saturating minimax: mean log(1 - D) (= renyi at alpha 1)",
)(minimax_generator_loss)

register_generator_loss(
    "lk",
    batch_level=False,
    params=("k", "gamma"),
    description="LkGAN: mean |D - gamma|^k on raw D output, least-squares D (k=2: LSGAN)",
    discriminator_fn=lk_discriminator_loss,
)(lk_generator_loss)

register_generator_loss(
    "alpha",
    batch_level=False,
    params=("alpha",),
    description="alpha-loss GAN: a/(a-1) mean[(1-D)^((a-1)/a) - 1] (a=1: original GAN)",
)(alpha_generator_loss)
