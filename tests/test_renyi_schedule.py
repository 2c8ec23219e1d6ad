"""Tests for renyi/schedule.py: constant and triangle-wave alpha schedules and their CLI strings."""

from __future__ import annotations

import pytest

from dnnlib.util import UserError
from renyi.schedule import ConstantAlpha, ScheduleSpecError, TriangleAlpha, from_string


def _walk(schedule, periods, period_kimg):
    return [schedule.alpha_at(i * period_kimg) for i in range(periods)]


def test_constant():
    sched = ConstantAlpha(2.5)
    assert [sched.alpha_at(k) for k in (0, 0.5, 1e6)] == [2.5, 2.5, 2.5]
    assert ConstantAlpha(float("inf")).alpha_at(3) == float("inf")
    assert ConstantAlpha(0).alpha_at(0) == 0.0
    assert "2.5" in sched.describe()
    with pytest.raises(ValueError, match="alpha"):
        ConstantAlpha(-1.0)
    with pytest.raises(ValueError, match="kimg"):
        sched.alpha_at(-1)


def test_triangle_skips_one_and_turns_at_the_bounds():
    sched = TriangleAlpha(0.0, 3.0, period_kimg=60)
    up = [round(0.1 * i, 10) for i in range(31) if i != 10]  # 0, 0.1, ..., 0.9, 1.1, ..., 3.0
    expected_cycle = up + up[-2:0:-1]
    assert list(sched.values) == expected_cycle
    assert len(sched.values) == 2 * (len(up) - 1) == 58
    walk = _walk(sched, 2 * 58 + 3, 60)
    assert walk == expected_cycle * 2 + expected_cycle[:3]  # periodic
    assert 1.0 not in walk
    steps = [round(b - a, 10) for a, b in zip(walk, walk[1:])]
    assert set(steps) == {0.1, -0.1, 0.2, -0.2}  # +-0.1 per epoch, 0.2 only across the skipped 1.0
    assert [(a, b) for a, b in zip(walk, walk[1:]) if abs(b - a) > 0.15][:2] == [(0.9, 1.1), (1.1, 0.9)]


@pytest.mark.parametrize(
    "low,high,n_grid",
    [(0.0, 0.9, 10), (0.0, 3.0, 30), (1.1, 4.0, 30)],  # the paper's three ranges
)
def test_paper_ranges(low, high, n_grid):
    sched = TriangleAlpha(low, high, period_kimg=60)
    assert min(sched.values) == low and max(sched.values) == high
    assert len(set(sched.values)) == n_grid
    assert sched.alpha_at(0) == low
    assert sched.alpha_at((n_grid - 1) * 60) == high
    assert sched.alpha_at(n_grid * 60) == pytest.approx(high - 0.1)


def test_alpha_at_is_a_pure_function_of_kimg():
    sched = TriangleAlpha(0.0, 3.0, period_kimg=60)
    forward = [sched.alpha_at(k) for k in range(0, 4000, 7)]
    again = [sched.alpha_at(k) for k in reversed(range(0, 4000, 7))][::-1]
    assert forward == again  # a resumed run lands at the same place
    assert sched.alpha_at(59.999) == 0.0 and sched.alpha_at(60.0) == 0.1
    # Float progress that should be exactly on a boundary (e.g. 3 * 0.1 kimg periods).
    tiny = TriangleAlpha(0.0, 3.0, period_kimg=0.1)
    assert tiny.alpha_at(0.1 + 0.2) == 0.3


def test_start_option():
    sched = TriangleAlpha(0.0, 3.0, period_kimg=1, start=2.0)
    assert _walk(sched, 4, 1) == [2.0, 2.1, 2.2, 2.3]
    top = TriangleAlpha(0.0, 3.0, period_kimg=1, start=3.0)
    assert _walk(top, 3, 1) == [3.0, 2.9, 2.8]
    assert "starting at 2" in sched.describe()
    with pytest.raises(ValueError, match="not on the grid"):
        TriangleAlpha(0.0, 3.0, start=1.0)
    with pytest.raises(ValueError, match="not on the grid"):
        TriangleAlpha(0.0, 3.0, start=0.05)


def test_from_string():
    assert from_string("const", alpha=3.0) == ConstantAlpha(3.0)
    assert from_string("const:0.5").alpha_at(10) == 0.5
    sched = from_string("triangle:1.1:4.0:kimg=60")
    assert isinstance(sched, TriangleAlpha) and sched.period_kimg == 60.0
    assert (sched.low, sched.high) == (1.1, 4.0)
    # Epoch length from the dataset size: 60000 images = 60 kimg per step.
    epoch = from_string("triangle:0:0.9", dataset_size=60000)
    assert epoch.period_kimg == 60.0 and epoch.alpha_at(60) == 0.1
    assert from_string("triangle:0:3:kimg=10", dataset_size=60000).period_kimg == 10.0
    custom = from_string(" triangle:0:1.5:step=0.5:kimg=2:start=1.5 ")
    assert list(custom.values) == [0.0, 0.5, 1.5, 0.5] and custom.alpha_at(0) == 1.5
    assert "triangle" in sched.describe() and "skipping 1.0" in sched.describe()


@pytest.mark.parametrize(
    "spec,kwargs,match",
    [
        ("", {}, "non-empty"),
        ("wave:0:1", {}, "unknown schedule"),
        ("const", {}, "needs --alpha"),
        ("const:abc", {}, "not a number"),
        ("const:-1", {}, "alpha"),
        ("const:1:2", {}, "too many"),
        ("triangle:0", {}, "LOW and HIGH"),
        ("triangle:0:3", {}, "kimg=K"),
        ("triangle:3:0:kimg=1", {}, "low <= high"),
        ("triangle:-1:3:kimg=1", {}, ">= 0"),
        ("triangle:0:3.05:kimg=1", {}, "whole number of steps"),
        ("triangle:1:1:kimg=1", {}, "no alpha other than 1.0"),
        ("triangle:0:3:kimg=0", {}, "period_kimg"),
        ("triangle:0:3:kimg=1:kimg=2", {}, "given twice"),
        ("triangle:0:3:speed=1", {}, "unknown option"),
        ("triangle:0:inf:kimg=1", {}, "finite"),
        ("triangle:0:3:step=0:kimg=1", {}, "step"),
        ("triangle:0:3", {"dataset_size": 0}, "dataset_size"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, kwargs, match):
    with pytest.raises(ScheduleSpecError, match=match) as info:
        from_string(spec, **kwargs)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
