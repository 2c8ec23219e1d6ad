"""fma(a, b, c) = a * b + c with broadcasting: values, gradients (twice)."""

from __future__ import annotations

import pytest
import torch

from torch_utils.ops.fma import fma

SHAPES = [
    ((2, 3, 4, 4), (2, 3, 1, 1), (2, 1, 4, 4)),  # modconv: x * demod + noise
    ((2, 3, 4, 4), (2, 3, 1, 1), (4, 4)),  # const noise
    ((3, 1), (1, 4), (4,)),
    ((5,), (5,), (5,)),
]


@pytest.mark.parametrize("shapes", SHAPES)
def test_values_and_grads_match_plain_expression(shapes):
    a, b, c = (torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes)
    y = fma(a, b, c)
    want = a * b + c
    assert y.shape == want.shape
    assert torch.allclose(y, want, rtol=1e-14, atol=1e-14)
    g = torch.randn_like(want)
    got_grads = torch.autograd.grad(y, [a, b, c], g)
    want_grads = torch.autograd.grad(want, [a, b, c], g)
    for gg, wg, t in zip(got_grads, want_grads, (a, b, c)):
        assert gg.shape == t.shape
        assert torch.allclose(gg, wg, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shapes", SHAPES[:3])
def test_gradcheck_twice(shapes):
    args = tuple(torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes)
    assert torch.autograd.gradcheck(fma, args)
    assert torch.autograd.gradgradcheck(fma, args)


def test_only_requested_grads():
    a = torch.randn(2, 3, requires_grad=True)
    b = torch.randn(2, 3)
    c = torch.randn(3)
    (ga,) = torch.autograd.grad(fma(a, b, c).sum(), [a])
    assert torch.allclose(ga, b)
