"""Alpha schedules for the Rényi generator loss: a constant, and the paper's triangle wave.

A schedule is a small frozen object whose ``alpha_at(kimg)`` is a pure function of the training
progress in thousands of images, so a resumed run lands on the same alpha as an uninterrupted
one. ``describe()`` gives a one-line summary for logs.

Triangle wave (Bhatia et al.: alpha moves by +-0.1 each epoch between two bounds, skipping 1.0):
the grid ``low, low+step, ..., high`` minus the value 1.0 is walked up and then down, one grid
point per ``period_kimg`` (an epoch when derived from the dataset size), and the walk repeats.
"Skipping 1.0" means 1.0 is removed from the grid, so the walk jumps straight across it in one
period: ``0.9 -> 1.1`` going up and ``1.1 -> 0.9`` going down. The endpoints are visited once per
turn (``..., 2.9, 3.0, 2.9, ...``), so a full cycle lasts ``2 (n - 1)`` periods for ``n`` grid
points. Example: ``TriangleAlpha(0, 3.0)`` gives 0, 0.1, ..., 0.9, 1.1, ..., 3.0, 2.9, ..., 1.1,
0.9, ..., 0.1, 0, 0.1, ...

CLI strings (`from_string`, option ``--alpha-schedule``):

- ``const`` (uses ``--alpha``) or ``const:ALPHA``;
- ``triangle:LOW:HIGH[:kimg=K][:step=S][:start=A]``: period ``K`` kimg, or one epoch
  (``dataset_size / 1000`` kimg) when ``kimg`` is omitted and the dataset size is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

from dnnlib.util import UserError
from renyi.losses import check_alpha

__all__ = ["ScheduleSpecError", "ConstantAlpha", "TriangleAlpha", "AlphaSchedule", "from_string"]

_TOL = 1e-9


class ScheduleSpecError(UserError, ValueError):
    """A bad alpha-schedule specification (a `UserError` for the CLI and a `ValueError`)."""


def _check_kimg(kimg: float) -> float:
    if isinstance(kimg, bool) or not isinstance(kimg, (int, float)) or not math.isfinite(kimg) or kimg < 0:
        raise ValueError(f"kimg must be a finite number >= 0, got {kimg!r}")
    return float(kimg)


def _as_alpha(value: object, what: str) -> float:
    try:
        return check_alpha(value, what)
    except ValueError as err:
        raise ScheduleSpecError(str(err)) from None


@dataclass(frozen=True)
class ConstantAlpha:
    """``alpha_at(kimg) = alpha`` for every kimg."""

    alpha: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _as_alpha(self.alpha, "alpha"))

    def alpha_at(self, kimg: float) -> float:
        _check_kimg(kimg)
        return self.alpha

    def describe(self) -> str:
        return f"constant alpha = {self.alpha:g}"


@dataclass(frozen=True)
class TriangleAlpha:
    """Triangle wave over the grid ``low, low+step, ..., high`` without 1.0 (see module docstring).

    Args:
        low, high: the bounds, ``0 <= low <= high`` (finite); ``high - low`` must be a whole
            number of steps.
        step: grid spacing (0.1 in the paper), ``> 0``.
        period_kimg: kimg spent on each grid point (one epoch in the paper; 60 = one MNIST epoch).
        start: first alpha (a grid point; default ``low``). The walk leaves it upwards, unless it
            is ``high``.
    """

    low: float
    high: float
    step: float = 0.1
    period_kimg: float = 60.0
    start: Optional[float] = None
    _cycle: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _offset: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        low = _as_alpha(self.low, "triangle low bound")
        high = _as_alpha(self.high, "triangle high bound")
        if math.isinf(high):
            raise ScheduleSpecError("triangle high bound must be finite, got inf")
        if high < low:
            raise ScheduleSpecError(f"triangle bounds must satisfy low <= high, got low={low:g}, high={high:g}")
        step = float(self.step) if isinstance(self.step, (int, float)) and not isinstance(self.step, bool) else math.nan
        if not (math.isfinite(step) and step > 0):
            raise ScheduleSpecError(f"triangle step must be a finite float > 0, got {self.step!r}")
        period = float(self.period_kimg) if isinstance(self.period_kimg, (int, float)) and not isinstance(self.period_kimg, bool) else math.nan
        if not (math.isfinite(period) and period > 0):
            raise ScheduleSpecError(f"triangle period_kimg must be a finite float > 0, got {self.period_kimg!r}")
        n_steps = round((high - low) / step)
        if abs(n_steps * step - (high - low)) > _TOL * max(1.0, high):
            raise ScheduleSpecError(
                f"triangle range [{low:g}, {high:g}] is not a whole number of steps of {step:g}; "
                "choose bounds that differ by a multiple of the step"
            )
        grid = [round(low + i * step, 12) for i in range(n_steps + 1)]
        grid = [g for g in grid if abs(g - 1.0) > _TOL]
        if not grid:
            raise ScheduleSpecError(f"triangle range [{low:g}, {high:g}] holds no alpha other than 1.0")
        cycle = tuple(grid + grid[-2:0:-1])
        if self.start is None:
            offset = 0
        else:
            start = _as_alpha(self.start, "triangle start")
            matches = [i for i, g in enumerate(grid) if abs(g - start) <= _TOL * max(1.0, start)]
            if not matches:
                raise ScheduleSpecError(
                    f"triangle start {start:g} is not on the grid {low:g}:{step:g}:{high:g} (1.0 excluded)"
                )
            offset = matches[0]
            start = grid[offset]
        for name, value in (("low", low), ("high", high), ("step", step), ("period_kimg", period)):
            object.__setattr__(self, name, value)
        if self.start is not None:
            object.__setattr__(self, "start", start)
        object.__setattr__(self, "_cycle", cycle)
        object.__setattr__(self, "_offset", offset)

    @property
    def values(self) -> tuple[float, ...]:
        """One full cycle of alphas, one per period, starting at ``low``."""
        return self._cycle

    def period_index(self, kimg: float) -> int:
        """``floor(kimg / period_kimg)`` (tolerant of float rounding at exact boundaries)."""
        return int(math.floor(round(_check_kimg(kimg) / self.period_kimg, 9)))

    def alpha_at(self, kimg: float) -> float:
        """The alpha for progress ``kimg``: ``cycle[(offset + period_index(kimg)) mod len(cycle)]``."""
        cycle = self._cycle
        return cycle[(self._offset + self.period_index(kimg)) % len(cycle)]

    def describe(self) -> str:
        start = self._cycle[self._offset]
        return (
            f"triangle alpha in [{self.low:g}, {self.high:g}] step {self.step:g} every "
            f"{self.period_kimg:g} kimg, skipping 1.0, starting at {start:g}; "
            f"cycle of {len(self._cycle)} periods"
        )


AlphaSchedule = Union[ConstantAlpha, TriangleAlpha]


def _parse_float(text: str, what: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ScheduleSpecError(f"--alpha-schedule '{spec}': {what} '{text}' is not a number") from None


def from_string(spec: str, alpha: Optional[float] = None, dataset_size: Optional[int] = None) -> AlphaSchedule:
    """Parse ``--alpha-schedule``: ``const``, ``const:A`` or ``triangle:LOW:HIGH[:kimg=K][:step=S][:start=A]``.

    ``alpha`` is the fixed ``--alpha`` used by plain ``const``; ``dataset_size`` (images per
    epoch) sets the triangle period to one epoch when ``kimg=`` is not given. Bad specs raise
    `ScheduleSpecError` (a `UserError` and `ValueError`) saying what is wrong and the valid forms.
    """
    forms = "valid forms: const, const:ALPHA, triangle:LOW:HIGH[:kimg=K][:step=S][:start=A]"
    if not isinstance(spec, str) or not spec.strip():
        raise ScheduleSpecError(f"--alpha-schedule must be a non-empty string; {forms}")
    parts = [p.strip() for p in spec.strip().split(":")]
    kind = parts[0].lower()
    if kind == "const":
        if len(parts) == 1:
            if alpha is None:
                raise ScheduleSpecError("--alpha-schedule 'const' needs --alpha (or write const:ALPHA)")
            return ConstantAlpha(alpha)
        if len(parts) == 2:
            return ConstantAlpha(_parse_float(parts[1], "alpha", spec))
        raise ScheduleSpecError(f"--alpha-schedule '{spec}': too many fields; {forms}")
    if kind == "triangle":
        if len(parts) < 3:
            raise ScheduleSpecError(f"--alpha-schedule '{spec}': triangle needs LOW and HIGH; {forms}")
        low = _parse_float(parts[1], "LOW", spec)
        high = _parse_float(parts[2], "HIGH", spec)
        opts: dict[str, float] = {}
        for part in parts[3:]:
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in ("kimg", "step", "start"):
                raise ScheduleSpecError(f"--alpha-schedule '{spec}': unknown option '{part}'; {forms}")
            if key in opts:
                raise ScheduleSpecError(f"--alpha-schedule '{spec}': option '{key}' given twice")
            opts[key] = _parse_float(value.strip(), key, spec)
        if "kimg" in opts:
            period = opts["kimg"]
        elif dataset_size is not None:
            if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
                raise ScheduleSpecError(f"dataset_size must be a positive int, got {dataset_size!r}")
            period = dataset_size / 1000.0
        else:
            raise ScheduleSpecError(
                f"--alpha-schedule '{spec}': give the period as :kimg=K (no dataset size to derive an epoch from)"
            )
        return TriangleAlpha(low, high, step=opts.get("step", 0.1), period_kimg=period, start=opts.get("start"))
    raise ScheduleSpecError(f"--alpha-schedule '{spec}': unknown schedule '{parts[0]}'; {forms}")
