"""bias_act against direct formulas for every activation; default gains; clamp; gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torch_utils.ops.bias_act import ACTIVATIONS, bias_act


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP overhead on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SELU_L, SELU_A = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717

# Direct NumPy definitions: (function of z, default alpha, default gain).
DIRECT = {
    "linear": (lambda z, a: z, None, 1.0),
    "relu": (lambda z, a: np.maximum(z, 0), None, math.sqrt(2)),
    "lrelu": (lambda z, a: np.where(z >= 0, z, a * z), 0.2, math.sqrt(2)),
    "tanh": (lambda z, a: np.tanh(z), None, 1.0),
    "sigmoid": (lambda z, a: 1 / (1 + np.exp(-z)), None, 1.0),
    "elu": (lambda z, a: np.where(z >= 0, z, np.exp(z) - 1), None, 1.0),
    "selu": (lambda z, a: SELU_L * np.where(z >= 0, z, SELU_A * (np.exp(z) - 1)), None, 1.0),
    "softplus": (lambda z, a: np.log1p(np.exp(z)), None, 1.0),
    "swish": (lambda z, a: z / (1 + np.exp(-z)), None, math.sqrt(2)),
}


def test_registry_is_complete_with_official_defaults():
    assert set(ACTIVATIONS) == set(DIRECT)
    for name, (_, alpha, gain) in DIRECT.items():
        assert math.isclose(ACTIVATIONS[name].def_gain, gain), name
        if alpha is not None:
            assert math.isclose(ACTIVATIONS[name].def_alpha, alpha), name


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("act", sorted(DIRECT))
def test_values_match_direct_formula(act, impl):
    fn, def_alpha, def_gain = DIRECT[act]
    x = torch.randn(3, 5, 4, 2, dtype=torch.float64) * 2
    b = torch.randn(5, dtype=torch.float64)
    z = x.numpy() + b.numpy()[None, :, None, None]
    alpha = def_alpha if def_alpha is not None else 0.0
    # Default gain, no clamp.
    got = bias_act(x, b, act=act, impl=impl)
    np.testing.assert_allclose(got.numpy(), fn(z, alpha) * def_gain, rtol=1e-12, atol=1e-12)
    # Custom gain and clamp: clamp(act(z) * gain).
    got = bias_act(x, b, act=act, gain=0.7, clamp=0.9, impl=impl)
    np.testing.assert_allclose(got.numpy(), np.clip(fn(z, alpha) * 0.7, -0.9, 0.9), rtol=1e-12, atol=1e-12)
    # Bias along another axis, no bias at all.
    b2 = torch.randn(4, dtype=torch.float64)
    got = bias_act(x, b2, dim=2, act=act, impl=impl)
    np.testing.assert_allclose(got.numpy(), fn(x.numpy() + b2.numpy()[None, None, :, None], alpha) * def_gain, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bias_act(x, act=act, impl=impl).numpy(), fn(x.numpy(), alpha) * def_gain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_lrelu_custom_alpha_and_2d_input(impl):
    x = torch.randn(6, 7, dtype=torch.float64)
    b = torch.randn(7, dtype=torch.float64)
    z = (x + b).numpy()
    got = bias_act(x, b, act="lrelu", alpha=0.05, gain=2.0, impl=impl)
    np.testing.assert_allclose(got.numpy(), np.where(z >= 0, z, 0.05 * z) * 2.0, rtol=1e-12)


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("act", sorted(DIRECT))
def test_gradcheck_twice(act, impl):
    # Values away from the kinks (0 and the clamp level) so finite differences are valid.
    x = (torch.rand(2, 3, 2, 2, dtype=torch.float64) + 0.1) * torch.tensor([1.0, -1.0]).repeat(12)[:24].reshape(2, 3, 2, 2)
    x.requires_grad_(True)
    b = torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act(x, b, act=act, clamp=1.2, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_fast_backward_equals_reference_backward():
    x = torch.randn(4, 6, 5, 5, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    g = torch.randn(4, 6, 5, 5)
    for act, clamp in [("lrelu", None), ("lrelu", 0.5), ("relu", None), ("linear", 0.3), ("linear", None)]:
        grads = []
        for impl in ("ref", "fast"):
            y = bias_act(x, b, act=act, clamp=clamp, impl=impl)
            grads.append(torch.autograd.grad(y, [x, b], g))
        for a, c in zip(*grads):
            assert torch.allclose(a, c, atol=1e-6), (act, clamp)


def test_fast_path_leaves_input_untouched_and_keeps_dtype_and_layout():
    x = torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    x0 = x.clone()
    y = bias_act(x, torch.ones(4), act="lrelu")
    assert torch.equal(x, x0)
    assert y.is_contiguous(memory_format=torch.channels_last)
    # channels_last takes a different bias-add path: values must not change.
    b = torch.randn(4)
    assert torch.allclose(bias_act(x, b, act="lrelu", clamp=0.8), bias_act(x.contiguous(), b, act="lrelu", clamp=0.8, impl="ref"))
    yb = bias_act(x.bfloat16(), torch.ones(4), act="lrelu")  # float32 bias is cast to the input dtype
    assert yb.dtype == torch.bfloat16


def test_bad_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError):
        bias_act(x, act="gelu")
    with pytest.raises(ValueError):
        bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError):
        bias_act(x, clamp=-1)
    with pytest.raises(ValueError):
        bias_act(x, act="tanh", impl="cuda")
