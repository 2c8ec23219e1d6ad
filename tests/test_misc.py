"""torch_utils.misc: resumable sampler, RNG state round trip, device selection, finiteness checks."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from dnnlib.util import UserError
from torch_utils import misc


def _take(it, n):
    return list(itertools.islice(iter(it), n))


def test_sampler_epochs_are_permutations_and_resume_matches():
    s = misc.InfiniteSampler(10, seed=3)
    seq = _take(s, 30)
    for e in range(3):
        assert sorted(seq[10 * e: 10 * (e + 1)]) == list(range(10))
    assert seq[:10] != seq[10:20]  # a new order each epoch
    assert _take(misc.InfiniteSampler(10, seed=3, start=13), 17) == seq[13:]
    assert _take(misc.InfiniteSampler(10, seed=4), 10) != seq[:10]


def test_sampler_ranks_split_the_global_order():
    full = _take(misc.InfiniteSampler(7, seed=1), 28)
    r0 = _take(misc.InfiniteSampler(7, rank=0, num_replicas=2, seed=1), 14)
    r1 = _take(misc.InfiniteSampler(7, rank=1, num_replicas=2, seed=1), 14)
    assert r0 == full[0::2] and r1 == full[1::2]
    assert _take(misc.InfiniteSampler(7, rank=1, num_replicas=2, seed=1, start=5), 9) == full[11::2]


def test_rng_state_round_trip():
    misc.seed_everything(5)
    state = misc.get_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    misc.set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    # The state is plain data that a weights_only load accepts.
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    misc.set_rng_state(torch.load(buf, weights_only=True))
    assert random.random() == a[0]


def test_grads_are_finite():
    p = torch.nn.Parameter(torch.zeros(4))
    q = torch.nn.Parameter(torch.zeros(2))
    assert misc.grads_are_finite([p, q])  # no grads yet
    p.grad = torch.tensor([0.0, 1e30, -2.0, 3.0])
    assert misc.grads_are_finite([p, q])
    p.grad[1] = float("inf")
    assert not misc.grads_are_finite([p, q])
    p.grad[1] = float("nan")
    assert not misc.grads_are_finite([p, q])


def test_select_device():
    assert misc.select_device("cpu") == torch.device("cpu")
    assert misc.select_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UserError):
        misc.select_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            misc.select_device("cuda")


def test_copy_params_and_buffers_and_assert_shape():
    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.fill_(2.0)
        a.running_mean.fill_(0.5)
    misc.copy_params_and_buffers(a, b, require_all=True)
    assert torch.equal(b.weight, a.weight) and torch.equal(b.running_mean, a.running_mean)
    misc.assert_shape(torch.zeros(2, 3), [None, 3])
    with pytest.raises(AssertionError):
        misc.assert_shape(torch.zeros(2, 3), [2, 4])
