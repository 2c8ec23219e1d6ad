"""Tests for the generator-loss registry (training/loss.py top) as filled by renyi/register.py."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from dnnlib.util import UserError
from renyi import losses
from renyi.register import DEFAULT_GENERATOR_LOSS
from training.loss import get_generator_loss, list_generator_losses

PARAM_VALUES = {"alpha": 2.0, "l1": True, "k": 3.0, "gamma": 1.0}
EXPECTED = {
    "ns": (losses.nonsaturating_generator_loss, False, ()),
    "renyi": (losses.renyi_generator_loss, True, ("alpha", "l1")),
    "minimax": (losses.minimax_generator_loss, False, ()),
    "lk": (losses.lk_generator_loss, False, ("k", "gamma")),
    "alpha": (losses.alpha_generator_loss, False, ("alpha",)),
}


def test_all_names_registered_with_their_properties():
    assert set(EXPECTED) <= set(list_generator_losses())
    assert DEFAULT_GENERATOR_LOSS == "ns"
    for name, (fn, batch_level, params) in EXPECTED.items():
        spec = get_generator_loss(name)
        assert spec.name == name and spec.fn is fn
        assert spec.batch_level is batch_level
        assert spec.params == params
        accepted = inspect.signature(spec.fn).parameters
        assert all(p in accepted for p in spec.params)
        assert spec.description
    assert get_generator_loss("lk").discriminator_fn is losses.lk_discriminator_loss
    assert all(get_generator_loss(n).discriminator_fn is None for n in ("ns", "renyi", "minimax", "alpha"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_loss_trains_end_to_end(name):
    """One G step and one D step of a tiny GAN through the registry entry: finite, non-zero grads."""
    spec = get_generator_loss(name)
    params = {p: PARAM_VALUES[p] for p in spec.params}
    gen = torch.nn.Linear(4, 6)
    disc = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LeakyReLU(0.2), torch.nn.Linear(8, 1))
    z, reals = torch.randn(16, 4), torch.randn(16, 6)

    fake_logits = disc(gen(z))
    assert fake_logits.shape == (16, 1)
    g_loss = spec.fn(fake_logits, **params)
    assert g_loss.shape == () and math.isfinite(g_loss.item())
    g_loss.backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in gen.parameters())

    disc.zero_grad()
    d_fn = spec.discriminator_fn
    real_logits, fake_logits = disc(reals), disc(gen(z).detach())
    d_loss = d_fn(real_logits, fake_logits, **params) if d_fn else losses.discriminator_loss(real_logits, fake_logits)
    assert math.isfinite(d_loss.item())
    d_loss.backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in disc.parameters())


def test_registry_entries_compute_their_documented_values():
    logits = torch.randn(32, 1, dtype=torch.float64) * 2
    d = torch.sigmoid(logits)
    assert get_generator_loss("ns").fn(logits).item() == pytest.approx(-torch.log(d).mean().item(), rel=1e-12)
    assert get_generator_loss("minimax").fn(logits).item() == pytest.approx(torch.log(1 - d).mean().item(), rel=1e-12)
    assert get_generator_loss("renyi").fn(logits, alpha=2.0).item() == pytest.approx(
        math.log(1 - d.mean().item()), rel=1e-12
    )
    assert get_generator_loss("lk").fn(logits, k=2.0, gamma=1.0).item() == pytest.approx(
        ((logits - 1) ** 2).mean().item(), rel=1e-12
    )
    assert get_generator_loss("alpha").fn(logits, alpha=1.0).item() == pytest.approx(
        torch.log(1 - d).mean().item(), rel=1e-12
    )


def test_unknown_name_is_a_user_error_listing_valid_names():
    with pytest.raises(UserError, match=r"unknown generator loss 'wgan'.*ns.*renyi"):
        get_generator_loss("wgan")
