"""The tolerance rule for two numbers, and the spread of differences it judged.

Kept apart from any file format so that artifacts, tables and the parity
workers (`harness.parity.worker`) all judge numbers by the same rule.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

__all__ = ["DifferenceStats", "is_finite", "is_number", "numbers_close"]


def is_number(value: Any) -> bool:
    """int or float, not bool: JSON true is not the number 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: int | float) -> bool:
    """True for every int and for floats that are neither infinite nor NaN."""
    # math.isfinite would convert huge ints to float and overflow.
    return isinstance(value, int) or math.isfinite(value)


def numbers_close(a: int | float, b: int | float, atol: float, rtol: float) -> bool:
    """NOT differing: a == b, both NaN, or |a-b| <= atol + rtol * max(|a|, |b|).

    Symmetric on purpose (unlike numpy.isclose), so swapping image and host
    never changes a verdict. Evaluated in exact rational arithmetic: float
    rounding or overflow (1e308 - -1e308) must not decide close calls, and
    huge integers must not be rounded into equality. An infinity only matches
    the same infinity: inf - x <= rtol * inf would otherwise hold for any x.

    With atol = rtol = 0 this is value equality, not bit equality: -0.0
    equals 0.0 (they compare ==), and any NaN equals any NaN whatever its sign
    or payload. Bit equality of a whole file is what mode 'bitwise' checks.
    """
    if a == b:
        return True
    a_nan = isinstance(a, float) and math.isnan(a)
    b_nan = isinstance(b, float) and math.isnan(b)
    if a_nan or b_nan:
        return a_nan and b_nan
    if not (is_finite(a) and is_finite(b)):
        return False
    fa, fb = Fraction(a), Fraction(b)
    return abs(fa - fb) <= Fraction(atol) + Fraction(rtol) * max(abs(fa), abs(fb))


def _to_float(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


class DifferenceStats:
    """Running maximum of absolute and relative differences over finite number pairs.

    Exact (Fraction) for the same reason as numbers_close; converted to float
    only when reported, where an overflow becomes inf rather than an error.
    """

    def __init__(self) -> None:
        self.pairs = 0
        self.max_abs = Fraction(0)
        self.max_rel = Fraction(0)

    def add(self, a: int | float, b: int | float) -> None:
        if not (is_finite(a) and is_finite(b)):
            return
        self.pairs += 1
        if a == b:
            return
        fa, fb = Fraction(a), Fraction(b)
        diff = abs(fa - fb)
        self.max_abs = max(self.max_abs, diff)
        scale = max(abs(fa), abs(fb))
        if scale:
            self.max_rel = max(self.max_rel, diff / scale)

    def max_abs_diff(self) -> float | None:
        return _to_float(self.max_abs) if self.pairs else None

    def max_rel_diff(self) -> float | None:
        return _to_float(self.max_rel) if self.pairs else None
